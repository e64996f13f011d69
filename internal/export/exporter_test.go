package export

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tailgate-sre/tailgate/internal/units"
)

var errTest = errors.New("test failure")

// callShape is what a test expects of one send: when (after the first
// export), how many spans and requests.
type callShape struct {
	After time.Duration
	Spans int
	Reqs  int
}

func shapes(calls []fakeCall, t0 time.Time) []callShape {
	var out []callShape
	for _, c := range calls {
		out = append(out, callShape{After: c.at.Sub(t0), Spans: c.spans, Reqs: c.reqs})
	}
	return out
}

func TestBatching(t *testing.T) {
	tests := []struct {
		name     string
		maxBytes units.Bytes // 0 for testConfig's 1MiB
		requests []int       // spans per Export call, all at once
		want     []callShape
	}{
		{
			name:     "fills a batch at once, the rest after batch_timeout",
			requests: []int{10, 10, 10, 10},
			want:     []callShape{{0, 30, 3}, {200 * time.Millisecond, 10, 1}},
		},
		{
			name:     "below max_batch_spans waits for batch_timeout",
			requests: []int{5, 7},
			want:     []callShape{{200 * time.Millisecond, 12, 2}},
		},
		{
			name:     "a request larger than a batch goes alone",
			requests: []int{50, 10},
			want:     []callShape{{0, 50, 1}, {200 * time.Millisecond, 10, 1}},
		},
		{
			// Each 1-span request here encodes in 136 bytes (the names
			// span-0 to span-4 are equally long): two fit in 400, three
			// (408) do not.
			name:     "max_batch_bytes bounds a batch",
			maxBytes: 400,
			requests: []int{1, 1, 1, 1, 1},
			want:     []callShape{{0, 2, 2}, {0, 2, 2}, {200 * time.Millisecond, 1, 1}},
		},
		{
			name:     "requests are not split to fill a batch",
			requests: []int{20, 20, 10},
			want:     []callShape{{0, 20, 1}, {0, 30, 2}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				fc := &fakeClient{}
				cfg := testConfig("127.0.0.1:1")
				if tt.maxBytes > 0 {
					cfg.Queue.MaxBatchBytes = tt.maxBytes
				}
				e, reg := startFake(t, cfg, fc)
				var gen spanGen
				var sent []byte
				t0 := time.Now()
				total := 0
				for _, n := range tt.requests {
					req, _ := gen.request(t, n)
					sent = append(sent, req...)
					total += n
					if err := e.Export(t.Context(), req, n); err != nil {
						t.Fatal(err)
					}
				}
				time.Sleep(time.Second)
				synctest.Wait()
				calls := fc.snapshot()
				if diff := cmp.Diff(tt.want, shapes(calls, t0)); diff != "" {
					t.Errorf("sends (-want +got):\n%s", diff)
				}
				// The batches, in order, are the requests' bytes in order.
				var got []byte
				for _, c := range calls {
					got = append(got, c.data...)
				}
				if !bytes.Equal(got, sent) {
					t.Errorf("sent bytes differ from the exported requests")
				}
				if err := e.Shutdown(t.Context()); err != nil {
					t.Fatal(err)
				}
				want := counts{Sent: float64(total)}
				if diff := cmp.Diff(want, readCounts(t, reg, KindOTLPGRPC)); diff != "" {
					t.Errorf("counters (-want +got):\n%s", diff)
				}
			})
		})
	}
}

func TestExportBlocksWhileQueueFull(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fc := &fakeClient{hold: make(chan struct{})} // the backend hangs
		e, reg := startFake(t, testConfig("127.0.0.1:1"), fc)
		var gen spanGen
		// 30 go in flight (held by the backend), 70 wait: the queue (100) is full.
		for _, n := range []int{30, 30, 30, 10} {
			req, _ := gen.request(t, n)
			if err := e.Export(t.Context(), req, n); err != nil {
				t.Fatal(err)
			}
		}
		synctest.Wait()
		if got := e.QueueSpans(); got != 100 {
			t.Fatalf("QueueSpans = %d, want 100", got)
		}
		if got := metricValue(t, reg, "tailgate_exporter_queue_spans", KindOTLPGRPC); got != 100 {
			t.Fatalf("queue gauge = %v, want 100", got)
		}
		if got := metricValue(t, reg, "tailgate_exporter_queue_capacity_spans", KindOTLPGRPC); got != 100 {
			t.Fatalf("capacity gauge = %v, want 100", got)
		}

		// An Export with a deadline gives up with the context's error.
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		req, _ := gen.request(t, 5)
		start := time.Now()
		if err := e.Export(ctx, req, 5); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Export with a deadline on a full queue = %v, want DeadlineExceeded", err)
		}
		if waited := time.Since(start); waited != 5*time.Second {
			t.Errorf("Export waited %v, want 5s", waited)
		}

		// An Export without a deadline blocks until the backend drains.
		done := make(chan error, 1)
		go func() {
			req, _ := gen.request(t, 10)
			done <- e.Export(context.Background(), req, 10)
		}()
		synctest.Wait()
		select {
		case err := <-done:
			t.Fatalf("Export returned %v on a full queue, want it to block", err)
		default:
		}
		close(fc.hold)
		synctest.Wait()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("Export after the queue drained: %v", err)
			}
		default:
			t.Fatal("Export still blocked after the queue drained")
		}
		if err := e.Shutdown(t.Context()); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(counts{Sent: 110}, readCounts(t, reg, KindOTLPGRPC)); diff != "" {
			t.Errorf("counters (-want +got):\n%s", diff)
		}
		if got := e.QueueSpans(); got != 0 {
			t.Errorf("QueueSpans after shutdown = %d, want 0", got)
		}
	})
}

func TestOversizedRequestEntersAnEmptyQueue(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fc := &fakeClient{hold: make(chan struct{})}
		e, _ := startFake(t, testConfig("127.0.0.1:1"), fc)
		var gen spanGen
		req, _ := gen.request(t, 150) // more than max_spans (100)
		if err := e.Export(t.Context(), req, 150); err != nil {
			t.Fatal(err)
		}
		if got := e.QueueSpans(); got != 150 {
			t.Errorf("QueueSpans = %d, want 150", got)
		}
		close(fc.hold)
		if err := e.Shutdown(t.Context()); err != nil {
			t.Fatal(err)
		}
	})
}

func TestRetry(t *testing.T) {
	ok := func(int) (partialSuccess, error) { return partialSuccess{}, nil }
	// failFirst fails the first n attempts with err, then calls then.
	failFirst := func(n int, err error, then func(int) (partialSuccess, error)) func(int) (partialSuccess, error) {
		return func(call int) (partialSuccess, error) {
			if call < n {
				return partialSuccess{}, err
			}
			return then(call)
		}
	}
	tests := []struct {
		name       string
		maxElapsed time.Duration
		respond    func(int) (partialSuccess, error)
		wantMS     []int // attempt times, in ms after the first
		wantCounts counts
	}{
		{
			name:       "retryable then ok",
			respond:    failFirst(1, retryable(errTest, 0), ok),
			wantMS:     []int{0, 1000},
			wantCounts: counts{Sent: 10, Retries: 1},
		},
		{
			// Intervals 1, 1.5, 2.25, 3.375, then 5.0625 capped at 4, 4.
			name:       "backoff grows 1.5x up to max_interval",
			respond:    failFirst(6, retryable(errTest, 0), ok),
			wantMS:     []int{0, 1000, 2500, 4750, 8125, 12125, 16125},
			wantCounts: counts{Sent: 10, Retries: 6},
		},
		{
			name:       "server throttle replaces the backoff",
			respond:    failFirst(2, retryable(errTest, 7*time.Second), ok),
			wantMS:     []int{0, 7000, 14000},
			wantCounts: counts{Sent: 10, Retries: 2},
		},
		{
			name:       "permanent error fails at once",
			respond:    failFirst(1, permanent(errTest), ok),
			wantMS:     []int{0},
			wantCounts: counts{Failed: 10},
		},
		{
			name:       "unclassified error is permanent",
			respond:    failFirst(1, errTest, ok),
			wantMS:     []int{0},
			wantCounts: counts{Failed: 10},
		},
		{
			// Attempts at 0, 1, 2.5, 4.75, 8.125; the next wait (4s) would
			// end at 12.125s, past 10s.
			name:       "gives up after max_elapsed",
			maxElapsed: 10 * time.Second,
			respond:    failFirst(100, retryable(errTest, 0), ok),
			wantMS:     []int{0, 1000, 2500, 4750, 8125},
			wantCounts: counts{Failed: 10, Retries: 4},
		},
		{
			name:       "a throttle beyond max_elapsed gives up at once",
			maxElapsed: 10 * time.Second,
			respond:    failFirst(100, retryable(errTest, 11*time.Second), ok),
			wantMS:     []int{0},
			wantCounts: counts{Failed: 10},
		},
		{
			name: "partial success counts the rejected as failed",
			respond: func(int) (partialSuccess, error) {
				return partialSuccess{rejected: 3, message: "3 spans had empty names"}, nil
			},
			wantMS:     []int{0},
			wantCounts: counts{Sent: 7, Failed: 3},
		},
		{
			name: "partial success rejecting more than sent is clamped",
			respond: func(int) (partialSuccess, error) {
				return partialSuccess{rejected: 50}, nil
			},
			wantMS:     []int{0},
			wantCounts: counts{Failed: 10},
		},
		{
			name: "partial success with a message only is a success",
			respond: func(int) (partialSuccess, error) {
				return partialSuccess{message: "deprecated attribute"}, nil
			},
			wantMS:     []int{0},
			wantCounts: counts{Sent: 10},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				cfg := testConfig("127.0.0.1:1")
				cfg.Queue.BatchTimeout = 0
				if tt.maxElapsed > 0 {
					cfg.Retry.MaxElapsed = units.Duration(tt.maxElapsed)
				}
				fc := &fakeClient{respond: tt.respond}
				e, reg := startFake(t, cfg, fc)
				var gen spanGen
				req, _ := gen.request(t, 10)
				if err := e.Export(t.Context(), req, 10); err != nil {
					t.Fatal(err)
				}
				time.Sleep(time.Hour)
				synctest.Wait()
				calls := fc.snapshot()
				var got []time.Duration
				for _, c := range calls {
					got = append(got, c.at.Sub(calls[0].at))
				}
				var want []time.Duration
				for _, ms := range tt.wantMS {
					want = append(want, time.Duration(ms)*time.Millisecond)
				}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("attempt times (-want +got):\n%s", diff)
				}
				if err := e.Shutdown(t.Context()); err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(tt.wantCounts, readCounts(t, reg, KindOTLPGRPC)); diff != "" {
					t.Errorf("counters (-want +got):\n%s", diff)
				}
				if got := metricValue(t, reg, "tailgate_exporter_send_duration_seconds", KindOTLPGRPC); got != float64(len(calls)) {
					t.Errorf("send duration observations = %v, want %d", got, len(calls))
				}
			})
		})
	}
}

func TestShutdownFlushesWithoutWaiting(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := testConfig("127.0.0.1:1")
		cfg.Queue.BatchTimeout = units.Duration(time.Hour)
		fc := &fakeClient{}
		e, reg := startFake(t, cfg, fc)
		var gen spanGen
		t0 := time.Now()
		for range 2 {
			req, _ := gen.request(t, 10)
			if err := e.Export(t.Context(), req, 10); err != nil {
				t.Fatal(err)
			}
		}
		if err := e.Shutdown(t.Context()); err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
		if diff := cmp.Diff([]callShape{{0, 20, 2}}, shapes(fc.snapshot(), t0)); diff != "" {
			t.Errorf("sends (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff(counts{Sent: 20}, readCounts(t, reg, KindOTLPGRPC)); diff != "" {
			t.Errorf("counters (-want +got):\n%s", diff)
		}
		if !fc.closed {
			t.Error("client not shut down")
		}
		req, _ := gen.request(t, 1)
		if err := e.Export(t.Context(), req, 1); !errors.Is(err, ErrClosed) {
			t.Errorf("Export after Shutdown = %v, want ErrClosed", err)
		}
		if err := e.Shutdown(t.Context()); err != nil {
			t.Errorf("second Shutdown = %v, want nil", err)
		}
		if err := e.Start(t.Context()); !errors.Is(err, ErrClosed) {
			t.Errorf("Start after Shutdown = %v, want ErrClosed", err)
		}
	})
}

func TestShutdownDeadlineDropsTheRest(t *testing.T) {
	tests := []struct {
		name string
		fc   func() *fakeClient
	}{
		{"backend unavailable, batch in retry wait", func() *fakeClient {
			return &fakeClient{respond: func(int) (partialSuccess, error) { return partialSuccess{}, retryable(errTest, 0) }}
		}},
		{"backend hangs, attempt in flight", func() *fakeClient {
			return &fakeClient{hold: make(chan struct{})}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				cfg := testConfig("127.0.0.1:1")
				cfg.Retry.MaxElapsed = 0 // retry until shutdown
				cfg.OTLP.Timeout = units.Duration(time.Hour)
				fc := tt.fc()
				e, reg := startFake(t, cfg, fc)
				var gen spanGen
				for range 5 {
					req, _ := gen.request(t, 10)
					if err := e.Export(t.Context(), req, 10); err != nil {
						t.Fatal(err)
					}
				}
				time.Sleep(time.Minute)

				ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
				defer cancel()
				start := time.Now()
				err := e.Shutdown(ctx)
				if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "50 spans dropped") {
					t.Errorf("Shutdown = %v, want 50 spans dropped and DeadlineExceeded", err)
				}
				if took := time.Since(start); took != 5*time.Second {
					t.Errorf("Shutdown took %v, want the 5s deadline", took)
				}
				got := readCounts(t, reg, KindOTLPGRPC)
				got.Retries = 0 // how many depends on the case; the spans matter
				if diff := cmp.Diff(counts{Dropped: 50}, got); diff != "" {
					t.Errorf("counters (-want +got):\n%s", diff)
				}
				if got := e.QueueSpans(); got != 0 {
					t.Errorf("QueueSpans = %d, want 0", got)
				}
			})
		})
	}
}

func TestShutdownReleasesBlockedExport(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fc := &fakeClient{hold: make(chan struct{})}
		e, _ := startFake(t, testConfig("127.0.0.1:1"), fc)
		var gen spanGen
		req, _ := gen.request(t, 100)
		if err := e.Export(t.Context(), req, 100); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() {
			req, _ := gen.request(t, 10)
			done <- e.Export(context.Background(), req, 10)
		}()
		synctest.Wait()
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		_ = e.Shutdown(ctx)
		if err := <-done; !errors.Is(err, ErrClosed) {
			t.Errorf("blocked Export after Shutdown = %v, want ErrClosed", err)
		}
	})
}

func TestShutdownWithoutStartDropsQueued(t *testing.T) {
	reg := prometheus.NewRegistry()
	e, err := New(testConfig("127.0.0.1:1"), Settings{Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	var gen spanGen
	req, _ := gen.request(t, 10)
	if err := e.Export(t.Context(), req, 10); err != nil {
		t.Fatal(err)
	}
	if err := e.Shutdown(t.Context()); err == nil || !strings.Contains(err.Error(), "10 spans dropped") {
		t.Errorf("Shutdown = %v, want 10 spans dropped", err)
	}
	if diff := cmp.Diff(counts{Dropped: 10}, readCounts(t, reg, KindOTLPGRPC)); diff != "" {
		t.Errorf("counters (-want +got):\n%s", diff)
	}
}

func TestExportArguments(t *testing.T) {
	e, err := New(testConfig("127.0.0.1:1"), Settings{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Shutdown(t.Context())
	if e.Discards() {
		t.Error("an OTLP exporter says it discards: kept spans would never be encoded for it")
	}
	if err := e.Export(t.Context(), nil, -1); err == nil {
		t.Error("Export with -1 spans succeeded")
	}
	if err := e.Export(t.Context(), []byte{}, 0); err != nil {
		t.Errorf("Export of 0 spans = %v, want nil", err)
	}
	if got := e.QueueSpans(); got != 0 {
		t.Errorf("QueueSpans after an empty export = %d, want 0", got)
	}
}

func TestNoneExporter(t *testing.T) {
	var logs bytes.Buffer
	reg := prometheus.NewRegistry()
	e, err := New(DefaultConfig(), Settings{Logger: slog.New(slog.NewTextHandler(&logs, nil)), Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	if e.Kind() != KindNone {
		t.Fatalf("Kind = %q, want none", e.Kind())
	}
	if !e.Discards() {
		t.Error("a none exporter does not say it discards: the sampler would encode for nothing")
	}
	if err := e.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "discarded") {
		t.Errorf("no warning at start; log:\n%s", logs.String())
	}
	var gen spanGen
	// More than the queue holds: the none exporter never blocks. (The
	// span count is taken on trust, so a small request stands for many.)
	for range 3 {
		req, _ := gen.request(t, 1)
		if err := e.Export(t.Context(), req, 150_000); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(counts{Sent: 450_000}, readCounts(t, reg, KindNone)); diff != "" {
		t.Errorf("counters (-want +got):\n%s", diff)
	}
}

func TestNewRejectsInvalidConfig(t *testing.T) {
	cfg := testConfig("")
	if _, err := New(cfg, Settings{}); err == nil || !strings.Contains(err.Error(), "otlp.endpoint") {
		t.Errorf("New with no endpoint = %v, want an otlp.endpoint error", err)
	}
}

func TestNewRejectsDuplicateRegistration(t *testing.T) {
	reg := prometheus.NewRegistry()
	if _, err := New(testConfig("127.0.0.1:1"), Settings{Registerer: reg}); err != nil {
		t.Fatal(err)
	}
	if _, err := New(testConfig("127.0.0.1:1"), Settings{Registerer: reg}); err == nil {
		t.Error("second New on the same registry succeeded, want a registration error")
	}
}
