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
// limits, has 16 clients send 16MiB OTLP/JSON bodies of nothing but
// opening brackets at once (each resending after a 429 until its body has
// been read and refused), and requires the process's peak resident memory
// (VmHWM) to stay under 1GiB and a valid request to be accepted afterwards.
// Before the depth check, such bodies took the process to about 3GiB.
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

	// Most clients send the shape of issue 10 (a valid request whose span
	// attribute nests arrays about 600,000 levels deep, which pdata's
	// decoder follows level by level); one in eight plain brackets.
	const clients, bodySize = 16, 16 << 20
	bodies := [][]byte{deepAttributeBody(bodySize), bytes.Repeat([]byte("["), bodySize)}
	var wg sync.WaitGroup
	refused := make([]int, clients) // 429s before the body was taken
	for i := range clients {
		wg.Go(func() {
			for ctx.Err() == nil {
				req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(bodies[min(i%8, 1)]))
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
				switch resp.StatusCode {
				case http.StatusTooManyRequests:
					refused[i]++
					continue
				case http.StatusBadRequest:
					if !bytes.Contains(msg, []byte("nested deeper than 64 levels")) {
						t.Errorf("client %d: 400 for another reason: %s", i, msg)
					}
				default:
					t.Errorf("client %d: HTTP %d %s, want 400", i, resp.StatusCode, msg)
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
