package ingest

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestHostileJSONPeakRSS is the acceptance test of issue 10's bounded
// memory: it builds the tailgate binary (without -race, whose shadow memory
// would dwarf what is measured), runs `tailgate serve` with the default
// limits, has 16 clients send pathological OTLP/JSON bodies at once (deep
// ones of 16MiB, and wide ones; each resending after a 429 until its body
// has been read and answered), and requires the process's peak resident
// memory (VmHWM) to stay under 1GiB and a valid request to be accepted
// afterwards. Before the depth check, the deep bodies alone took the
// process to 3GiB in the report; before the decode budget, 16MiB
// bodies of empty resource spans, 4 at a time, took it to 10GiB.
func TestHostileJSONPeakRSS(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary; skipped with -short")
	}
	if raceEnabled {
		t.Skip("measures a binary built without -race; run without -race")
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go tool to build tailgate with")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()

	dir := t.TempDir()
	bin := filepath.Join(dir, "tailgate")
	build := exec.CommandContext(ctx, goTool, "build", "-o", bin, "../../cmd/tailgate")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	cfgPath := filepath.Join(dir, "tailgate.yaml")
	cfg := fmt.Sprintf(`server:
  api: 127.0.0.1:0
ingest:
  otlp_grpc: 127.0.0.1:0
  otlp_http: 127.0.0.1:0
  max_spans_per_request: 0 # the JSON decode budget alone must bound memory
storage:
  path: %s
`, filepath.Join(dir, "data"))
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}

	cmd := exec.CommandContext(ctx, bin, "serve", "--config", cfgPath)
	cmd.Env = append(os.Environ(), "GOMEMLIMIT=") // measure server.memory_limit's default, not the caller's
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// The log is read to the end so the process never blocks on it, and
	// kept to explain a failure.
	var (
		logMu    sync.Mutex
		logLines []string
	)
	logText := func() string {
		logMu.Lock()
		defer logMu.Unlock()
		return strings.Join(logLines, "\n")
	}
	addrc := make(chan string, 1)
	logDone := make(chan struct{})
	go func() {
		defer close(logDone)
		httpAddr := regexp.MustCompile(`msg="OTLP/HTTP receiver listening".* addr=(\S+)`)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := httpAddr.FindStringSubmatch(sc.Text()); m != nil {
				addrc <- m[1]
			}
			logMu.Lock()
			logLines = append(logLines, sc.Text())
			logMu.Unlock()
		}
	}()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		_ = cmd.Process.Signal(syscall.SIGTERM)
		<-logDone
		if err := cmd.Wait(); err != nil {
			t.Errorf("tailgate serve: %v\n%s", err, logText())
		}
	}
	defer stop()

	var addr string
	select {
	case addr = <-addrc:
	case <-logDone:
		t.Fatalf("tailgate serve exited before listening:\n%s", logText())
	case <-ctx.Done():
		t.Fatalf("tailgate serve did not listen: %v\n%s", ctx.Err(), logText())
	}
	url := "http://" + addr + tracesPath
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()

	// Half the clients send the shape of issue 10: a valid request whose
	// span attribute nests arrays about 600,000 levels deep, which pdata's
	// decoder follows level by level. The others send 16MiB of brackets,
	// 16MiB of empty resource spans (which pdata would turn into gigabytes),
	// or the widest body of empty spans the decode budget lets through.
	const clients, bodySize = 16, 16 << 20
	type hostile struct {
		body   []byte
		status int
		msg    string // in the response
	}
	var (
		deep     = hostile{deepAttributeBody(bodySize), http.StatusBadRequest, "nested deeper than 64 levels"}
		brackets = hostile{bytes.Repeat([]byte("["), bodySize), http.StatusBadRequest, "nested deeper than 64 levels"}
		wide     = hostile{wideBody(`{"resourceSpans":[`, `]}`, (bodySize-20)/3), http.StatusRequestEntityTooLarge, "objects and arrays) would take about"}
		// 680,005 objects and arrays and 2,040,048 bytes: an estimate of
		// 263,161,968 bytes, just under the 256MiB (268,435,456) budget.
		widest = hostile{wideBody(`{"resourceSpans":[{"scopeSpans":[{"spans":[`, `]}]}]}`, 680_000), http.StatusOK, ""}
	)
	kinds := []hostile{deep, deep, deep, deep, brackets, wide, widest, widest}
	var wg sync.WaitGroup
	refused := make([]int, clients) // 429s before the body was taken
	for i := range clients {
		h := kinds[i%len(kinds)]
		wg.Go(func() {
			for ctx.Err() == nil {
				req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(h.body))
				if err != nil {
					t.Error(err)
					return
				}
				req.Header.Set("Content-Type", contentTypeJSON)
				resp, err := client.Do(req)
				if err != nil {
					// A server that answers 429 without reading a 16MiB body
					// may close the connection under the client's write.
					refused[i]++
					continue
				}
				msg, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusTooManyRequests {
					refused[i]++
					continue
				}
				if resp.StatusCode != h.status || !bytes.Contains(msg, []byte(h.msg)) {
					t.Errorf("client %d: HTTP %d %.300s, want %d with %q", i, resp.StatusCode, msg, h.status, h.msg)
				}
				return
			}
			t.Errorf("client %d: %v", i, ctx.Err())
		})
	}
	wg.Wait()
	t.Logf("bodies refused with 429 or a closed connection before being read, per client: %v", refused)

	hwm, err := peakRSS(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("peak RSS (VmHWM) of tailgate serve: %.1f MiB", float64(hwm)/(1<<20))
	if hwm >= 1<<30 {
		t.Errorf("peak RSS %d bytes, want under 1GiB", hwm)
	}

	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(jsonRequest(validTraceID, validSpanID)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentTypeJSON)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("valid request afterwards: %v", err)
	}
	msg, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("valid request afterwards: HTTP %d %s, want 200", resp.StatusCode, msg)
	}
	stop()
}

// wideBody is prefix, n empty objects in a list, then suffix.
func wideBody(prefix, suffix string, n int) []byte {
	b := make([]byte, 0, len(prefix)+3*n+len(suffix))
	b = append(b, prefix...)
	b = append(b, "{}"...)
	b = append(b, strings.Repeat(",{}", n-1)...)
	return append(b, suffix...)
}

// deepAttributeBody is an OTLP/JSON request of exactly size bytes whose
// one span has an attribute of arrays nested as deep as fits.
func deepAttributeBody(size int) []byte {
	const tail = `{"intValue":"1"}` + `}]}]}]}]}`
	levels := (size - len(jsonDeepPrefix) - len(tail)) / (len(jsonWrapOpen) + len(jsonWrapClose))
	b := make([]byte, 0, size)
	b = append(b, jsonDeepPrefix...)
	b = append(b, strings.Repeat(jsonWrapOpen, levels)...)
	b = append(b, `{"intValue":"1"}`...)
	b = append(b, strings.Repeat(jsonWrapClose, levels)...)
	b = append(b, `}]}]}]}]}`...)
	// Pad to the exact size with JSON whitespace.
	return append(b, bytes.Repeat([]byte(" "), size-len(b))...)
}

// peakRSS reads a process's peak resident set size (VmHWM) in bytes.
func peakRSS(pid int) (int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(data)) {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("VmHWM %q: %w", v, err)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("no VmHWM in /proc/%d/status", pid)
}
