package export

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace"
	"google.golang.org/grpc/codes"

	"github.com/tailgate-sre/tailgate/internal/otlptest"
	"github.com/tailgate-sre/tailgate/internal/units"
)

// The child process of TestPersistentQueueSurvivesKill9 is this test
// binary run again with these variables set.
const (
	killChildEnv = "TAILGATE_EXPORT_KILL_CHILD"
	killDirEnv   = "TAILGATE_EXPORT_KILL_DIR"
	killAddrEnv  = "TAILGATE_EXPORT_KILL_ADDR"

	killRequests      = 20
	killTracesPerReq  = 5
	killQueuedMessage = "QUEUED"
)

// killConfig is the exporter config of both processes: a persistent queue
// with the default group commit (1s), and a retry budget so short that the
// child's batches outlast it before the kill.
func killConfig(addr string) Config {
	cfg := DefaultConfig()
	cfg.OTLP = &OTLPConfig{Endpoint: addr}
	cfg.Queue.Persistent = true
	cfg.Queue.MaxBytes = units.Bytes(64 << 20)
	cfg.Queue.BatchTimeout = 0
	cfg.Retry = RetryConfig{
		InitialInterval: units.Duration(10 * time.Millisecond),
		MaxInterval:     units.Duration(50 * time.Millisecond),
		MaxElapsed:      units.Duration(20 * time.Millisecond),
	}
	return cfg
}

// killRequest returns request i: traces i*10+1 .. i*10+5, one span each,
// with status ERROR in the even requests and OK in the odd ones.
func killRequest(t testing.TB, i int) ([]byte, []uint64, bool) {
	var ids []uint64
	for j := range killTracesPerReq {
		ids = append(ids, uint64(i*10+j+1))
	}
	isErr := i%2 == 0
	code := ptrace.StatusCodeOk
	if isErr {
		code = ptrace.StatusCodeError
	}
	return traceRequest(t, code, ids...), ids, isErr
}

// TestKill9Child is the child: it exports every request to a backend that
// answers UNAVAILABLE, waits until the senders have retried past the
// retry budget, says so on stdout and waits to be killed. Run alone, it
// skips.
func TestKill9Child(t *testing.T) {
	if os.Getenv(killChildEnv) != "1" {
		t.Skip("the child of TestPersistentQueueSurvivesKill9")
	}
	cfg := killConfig(os.Getenv(killAddrEnv))
	e, err := New(cfg, Settings{StorageDir: os.Getenv(killDirEnv)})
	if err != nil {
		t.Fatal(err)
	}
	// Count the retry waits; the third one is past max_elapsed (waits of
	// 10ms, 15ms, 22.5ms without jitter; 20ms budget).
	var waits atomic.Int64
	outlasted := make(chan struct{})
	e.jitter = 0
	e.wait = func(ctx context.Context, d time.Duration) error {
		if waits.Add(1) == 3 {
			close(outlasted)
		}
		return sleep(ctx, d)
	}
	if err := e.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	for i := range killRequests {
		req, _, _ := killRequest(t, i)
		if err := e.Export(context.Background(), req, killTracesPerReq); err != nil {
			t.Fatal(err)
		}
	}
	<-outlasted
	fmt.Printf("%s %d\n", killQueuedMessage, killRequests)
	select {} // until SIGKILL
}

// TestPersistentQueueSurvivesKill9 is the acceptance test: kept
// error traces queued for a backend that is down survive a kill -9 and
// arrive when it comes back.
func TestPersistentQueueSurvivesKill9(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("needs SIGKILL")
	}
	if os.Getenv(killChildEnv) != "" {
		t.Skip("in the child")
	}
	sink := otlptest.NewSink(t)
	sink.Break(otlptest.Fault{Code: codes.Unavailable, Message: "backend down"})
	dir := t.TempDir()

	ctx, cancel := context.WithTimeout(t.Context(), time.Minute) // a bound, not a wait
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestKill9Child$", "-test.count=1")
	cmd.Env = append(os.Environ(), killChildEnv+"=1", killDirEnv+"="+dir, killAddrEnv+"="+sink.GRPCAddr())
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	queued := false
	var lines []string
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if sc.Text() == fmt.Sprintf("%s %d", killQueuedMessage, killRequests) {
			queued = true
			break
		}
		lines = append(lines, sc.Text())
	}
	if !queued {
		_ = cmd.Wait()
		t.Fatalf("the child ended without queueing; stdout:\n%s\nstderr:\n%s", strings.Join(lines, "\n"), stderr.String())
	}
	if err := cmd.Process.Kill(); err != nil { // SIGKILL
		t.Fatal(err)
	}
	err = cmd.Wait()
	if ws, ok := cmd.ProcessState.Sys().(interface{ Signaled() bool }); !ok || !ws.Signaled() {
		t.Fatalf("the child was not killed by a signal: %v", err)
	}
	if sink.SpanCount() != 0 {
		t.Fatalf("the broken backend accepted %d spans", sink.SpanCount())
	}

	// The backend comes back; a fresh exporter on the same directory
	// sends what the dead one had queued.
	sink.Heal()
	cfg := killConfig(sink.GRPCAddr())
	logs := &syncBuffer{}
	e, err := New(cfg, Settings{StorageDir: dir, Logger: slogText(logs)})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := e.Shutdown(context.Background()); err != nil {
			t.Error(err)
		}
	})
	if err := sink.WaitSpans(ctx, killRequests*killTracesPerReq); err != nil {
		t.Fatalf("%v; exporter log:\n%s", err, logs.String())
	}
	got := map[uint64]bool{}
	for id := range sink.SpansByTrace() {
		got[binary.BigEndian.Uint64(id[8:])] = true
	}
	var missingErr, missingOK []uint64
	for i := range killRequests {
		_, ids, isErr := killRequest(t, i)
		for _, id := range ids {
			switch {
			case got[id]:
			case isErr:
				missingErr = append(missingErr, id)
			default:
				missingOK = append(missingOK, id)
			}
		}
	}
	if len(missingErr) > 0 || len(missingOK) > 0 {
		t.Errorf("after kill -9 and restart, missing error traces %v and other traces %v", missingErr, missingOK)
	}
	if !strings.Contains(logs.String(), fmt.Sprintf("batches=%d spans=%d error_batches=%d", killRequests, killRequests*killTracesPerReq, killRequests/2)) {
		t.Errorf("the start log does not report the pending requests:\n%s", logs.String())
	}
	if len(got) != killRequests*killTracesPerReq {
		t.Errorf("%d distinct traces arrived, want %d", len(got), killRequests*killTracesPerReq)
	}
}

func slogText(w io.Writer) *slog.Logger { return slog.New(slog.NewTextHandler(w, nil)) }
