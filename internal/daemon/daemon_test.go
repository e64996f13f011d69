package daemon

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/goleak"

	"github.com/tailgate-sre/tailgate/internal/config"
	"github.com/tailgate-sre/tailgate/internal/export"
	"github.com/tailgate-sre/tailgate/internal/otlptest"
	"github.com/tailgate-sre/tailgate/internal/units"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testConfig returns a config that binds only loopback ports chosen by the
// kernel and exports to sink.
func testConfig(t *testing.T, sink *otlptest.Sink, dir string) config.Config {
	t.Helper()
	cfg := config.Default()
	cfg.Server.API = "127.0.0.1:0"
	cfg.Ingest.OTLPGRPC = "127.0.0.1:0"
	cfg.Ingest.OTLPHTTP = "127.0.0.1:0"
	cfg.Storage.Path = dir
	cfg.Sampling.RootGrace = units.Duration(500 * time.Millisecond)
	cfg.Export.OTLP = &export.OTLPConfig{Endpoint: sink.GRPCAddr(), Protocol: export.ProtocolGRPC}
	cfg.Export.Queue.BatchTimeout = units.Duration(20 * time.Millisecond)
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return cfg
}

func startDaemon(t *testing.T, cfg config.Config) *Daemon {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	d, err := New(t.Context(), cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	return d
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func stopDaemon(t *testing.T, d *Daemon) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := d.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
}

// provider is an OpenTelemetry SDK tracer provider of one service sending
// to the daemon, over gRPC or HTTP.
func provider(t *testing.T, d *Daemon, service string, useHTTP bool) *sdktrace.TracerProvider {
	addr := d.GRPCAddr()
	if useHTTP {
		addr = d.HTTPAddr()
	}
	return otlptest.Provider(t, addr, service, useHTTP)
}

// keptBy5Percent computes independently of the sampler whether the
// OpenTelemetry consistent-probability rule keeps a trace at p = 5%: keep
// when the low 56 bits of the trace ID are at least (1 - p) * 2^56.
func keptBy5Percent(id trace.TraceID) bool {
	r := binary.BigEndian.Uint64(id[8:]) & (1<<56 - 1)
	return float64(r) >= 0.95*math.Exp2(56)
}

type sentTrace struct {
	id    trace.TraceID
	kind  string // "error", "slow" or "ok"
	spans int
	root  trace.SpanContext
}

// sendTraces sends n traces across three services, alternating gRPC and
// HTTP clients; every errEvery-th trace has a failing payments call and
// every slowEvery-th lasts 1.5s.
func sendTraces(t *testing.T, d *Daemon, n, errEvery, slowEvery int) []sentTrace {
	t.Helper()
	front := provider(t, d, "frontend", false)
	checkout := provider(t, d, "checkout", true)
	payments := provider(t, d, "payments", false)
	ft, ct, pt := front.Tracer("test"), checkout.Tracer("test"), payments.Tracer("test")
	base := time.Now().Add(-time.Minute)
	var sent []sentTrace
	for i := range n {
		start := base.Add(time.Duration(i) * time.Millisecond)
		dur := 20 * time.Millisecond
		kind := "ok"
		switch {
		case errEvery > 0 && i%errEvery == 0:
			kind = "error"
		case slowEvery > 0 && i%slowEvery == 1:
			kind = "slow"
			dur = 1500 * time.Millisecond
		}
		ctx, root := ft.Start(t.Context(), "GET /checkout", trace.WithSpanKind(trace.SpanKindServer), trace.WithTimestamp(start),
			trace.WithAttributes(attribute.String("http.route", "/checkout"), attribute.Int("http.response.status_code", 200)))
		cctx, call := ct.Start(ctx, "POST /api/checkout", trace.WithSpanKind(trace.SpanKindServer), trace.WithTimestamp(start.Add(time.Millisecond)),
			trace.WithAttributes(attribute.String("http.route", "/api/checkout")))
		_, pay := pt.Start(cctx, "charge", trace.WithSpanKind(trace.SpanKindServer), trace.WithTimestamp(start.Add(2*time.Millisecond)))
		if kind == "error" {
			pay.SetStatus(codes.Error, "card processor timeout")
		}
		pay.End(trace.WithTimestamp(start.Add(dur - 2*time.Millisecond)))
		call.End(trace.WithTimestamp(start.Add(dur - time.Millisecond)))
		root.End(trace.WithTimestamp(start.Add(dur)))
		sent = append(sent, sentTrace{id: root.SpanContext().TraceID(), kind: kind, spans: 3, root: root.SpanContext()})
	}
	// Leaf services first: their spans end before their callers', as in a
	// real system, so the root span arrives last and starts root_grace.
	for _, tp := range []*sdktrace.TracerProvider{payments, checkout, front} {
		if err := tp.Shutdown(t.Context()); err != nil {
			t.Fatalf("SDK export to tailgate failed: %v", err)
		}
	}
	return sent
}

// sendLateSpan sends one more child span of an already decided trace.
func sendLateSpan(t *testing.T, d *Daemon, parent trace.SpanContext, name string) {
	t.Helper()
	tp := provider(t, d, "inventory", false)
	ctx := trace.ContextWithRemoteSpanContext(t.Context(), parent)
	_, s := tp.Tracer("test").Start(ctx, name, trace.WithSpanKind(trace.SpanKindServer))
	s.End()
	if err := tp.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
}

func pcommonID(id trace.TraceID) pcommon.TraceID { return pcommon.TraceID(id) }

// TestServeKeepsWhatMatters is the end-to-end check of issue 2: real SDK
// clients send into a running daemon and a real OTLP sink receives the
// exports.
func TestServeKeepsWhatMatters(t *testing.T) {
	sink := otlptest.NewSink(t)
	dir := t.TempDir()
	d := startDaemon(t, testConfig(t, sink, dir))

	const n, errEvery, slowEvery = 3000, 20, 50
	sent := sendTraces(t, d, n, errEvery, slowEvery)

	wantSpans, okTotal, okKept := 0, 0, 0
	for _, s := range sent {
		switch {
		case s.kind != "ok":
			wantSpans += s.spans
		case keptBy5Percent(s.id):
			wantSpans += s.spans
			okKept++
		}
		if s.kind == "ok" {
			okTotal++
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	if err := sink.WaitSpans(ctx, wantSpans); err != nil {
		byTrace := sink.SpansByTrace()
		missing := map[string]int{}
		for _, s := range sent {
			if s.kind != "ok" || keptBy5Percent(s.id) {
				if n := len(byTrace[pcommonID(s.id)]); n < s.spans {
					missing[fmt.Sprintf("%s trace with %d of %d spans", s.kind, n, s.spans)]++
				}
			}
		}
		t.Fatalf("waiting for %d kept spans, got %d: %v; incomplete: %v", wantSpans, sink.SpanCount(), err, missing)
	}

	// The kept error traces are evidence for post-mortems: a few per
	// service and minute reach the store, each one the test sent as an
	// error trace of payments.
	if err := d.incData.flush(t.Context(), time.Now()); err != nil {
		t.Fatal(err)
	}
	evidence, err := d.store.FailedTraces(t.Context(), []string{"payments", "checkout", "frontend"}, time.Now().Add(-time.Hour), time.Now(), 1000)
	if err != nil {
		t.Fatal(err)
	}
	errorIDs := map[string]bool{}
	for _, s := range sent {
		if s.kind == "error" {
			id := pcommonID(s.id)
			errorIDs[hex.EncodeToString(id[:])] = true
		}
	}
	perMinute := map[time.Time]int{}
	for _, e := range evidence {
		perMinute[e.Minute]++
		if e.Service != "payments" || !errorIDs[e.TraceID] {
			t.Errorf("evidence %+v: not an error trace of payments the test sent", e)
		}
	}
	if len(evidence) == 0 {
		t.Error("no kept error trace recorded as evidence")
	}
	for m, n := range perMinute {
		if n > 5 {
			t.Errorf("%d traces recorded for the minute %s, want at most 5", n, m)
		}
	}

	// A late span follows its trace's decision: one for a kept OK trace,
	// one for a dropped one.
	var keptOK, droppedOK *sentTrace
	for i := range sent {
		if sent[i].kind != "ok" {
			continue
		}
		if keptBy5Percent(sent[i].id) && keptOK == nil {
			keptOK = &sent[i]
		}
		if !keptBy5Percent(sent[i].id) && droppedOK == nil {
			droppedOK = &sent[i]
		}
	}
	sendLateSpan(t, d, keptOK.root, "late-kept")
	sendLateSpan(t, d, droppedOK.root, "late-dropped")
	if err := sink.WaitSpans(ctx, wantSpans+1); err != nil {
		t.Fatalf("late span of a kept trace did not arrive: %v", err)
	}
	stopDaemon(t, d)

	byTrace := sink.SpansByTrace()
	for _, s := range sent {
		got := byTrace[pcommonID(s.id)]
		wantKept := s.kind != "ok" || keptBy5Percent(s.id)
		switch {
		case wantKept && len(got) < s.spans:
			t.Errorf("%s trace %s: %d of %d spans arrived; a kept trace must arrive whole", s.kind, s.id, len(got), s.spans)
		case !wantKept && len(got) > 0 && s.id != droppedOK.id:
			t.Errorf("dropped trace %s: %d spans arrived", s.id, len(got))
		}
		for _, sp := range got {
			rule, _ := sp.Span.Attributes().Get("sampling.rule")
			rate, _ := sp.Span.Attributes().Get("sampling.rate")
			wantRule, wantRate := map[string]string{"error": "errors", "slow": "slow", "ok": "rest"}[s.kind], map[string]float64{"error": 1, "slow": 1, "ok": 20}[s.kind]
			if rule.Str() != wantRule || math.Abs(rate.Double()-wantRate) > 1e-9 {
				t.Errorf("%s trace span %q: sampling.rule=%q sampling.rate=%v, want %q %v", s.kind, sp.Span.Name(), rule.Str(), rate.Double(), wantRule, wantRate)
			}
			if s.kind == "ok" && !strings.HasPrefix(sp.Span.TraceState().AsRaw(), "ot=th:f333") {
				t.Errorf("sampled span tracestate = %q, want ot=th:f333...", sp.Span.TraceState().AsRaw())
			}
		}
	}
	if got := byTrace[pcommonID(droppedOK.id)]; len(got) != 0 {
		t.Errorf("late span of a dropped trace was exported: %d spans", len(got))
	}
	if len(byTrace[pcommonID(keptOK.id)]) != keptOK.spans+1 {
		t.Errorf("kept trace with late span: %d spans, want %d", len(byTrace[pcommonID(keptOK.id)]), keptOK.spans+1)
	}
	// The kept share of OK traces is 5% within a binomial tolerance (4 sigma).
	p := 0.05
	sigma := math.Sqrt(float64(okTotal) * p * (1 - p))
	if diff := math.Abs(float64(okKept) - p*float64(okTotal)); diff > 4*sigma {
		t.Errorf("kept %d of %d OK traces; want %.0f ± %.0f", okKept, okTotal, p*float64(okTotal), 4*sigma)
	}
	t.Logf("sent %d traces; kept %d spans; OK traces kept %d/%d (%.2f%%)", n, sink.SpanCount(), okKept, okTotal, 100*float64(okKept)/float64(okTotal))
}

// TestRestartKeepsDecisions checks that the decision cache saved at
// shutdown lets a restarted daemon route a late span like its trace.
func TestRestartKeepsDecisions(t *testing.T) {
	sink := otlptest.NewSink(t)
	dir := t.TempDir()
	d := startDaemon(t, testConfig(t, sink, dir))
	sent := sendTraces(t, d, 200, 0, 0)
	stopDaemon(t, d) // decides everything buffered and saves the cache

	var kept, dropped *sentTrace
	for i := range sent {
		if keptBy5Percent(sent[i].id) && kept == nil {
			kept = &sent[i]
		} else if !keptBy5Percent(sent[i].id) && dropped == nil {
			dropped = &sent[i]
		}
	}
	if kept == nil || dropped == nil {
		t.Skip("the random trace IDs held no kept or no dropped trace")
	}
	before := sink.SpanCount()

	d2 := startDaemon(t, testConfig(t, sink, dir))
	sendLateSpan(t, d2, kept.root, "late-after-restart")
	sendLateSpan(t, d2, dropped.root, "late-dropped-after-restart")
	stopDaemon(t, d2)

	byTrace := sink.SpansByTrace()
	if got := len(byTrace[pcommonID(kept.id)]); got != kept.spans+1 {
		t.Errorf("kept trace after restart has %d spans, want %d (late span must follow the saved decision)", got, kept.spans+1)
	}
	if got := len(byTrace[pcommonID(dropped.id)]); got != 0 {
		t.Errorf("dropped trace after restart has %d spans, want 0", got)
	}
	if sink.SpanCount() != before+1 {
		t.Errorf("restart exported %d spans, want exactly the one late span of the kept trace", sink.SpanCount()-before)
	}
}

// syncBuffer is a log sink safe for the daemon's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// listeners records every listener a daemon binds, by the address it
// was asked for, so that a test can close one under its server.
type listeners struct {
	mu  sync.Mutex
	all map[string]net.Listener
}

// hook makes d bind through l; call it before Start.
func (l *listeners) hook(d *Daemon) {
	l.all = map[string]net.Listener{}
	listen := d.listen
	d.listen = func(ctx context.Context, network, address string) (net.Listener, error) {
		ln, err := listen(ctx, network, address)
		if err == nil {
			l.mu.Lock()
			l.all[ln.Addr().String()] = ln
			l.mu.Unlock()
		}
		return ln, err
	}
}

func (l *listeners) get(addr string) net.Listener {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.all[addr]
}

// waitResult waits for the result of d.Wait, run since errc was made.
func waitResult(t *testing.T, errc <-chan error) error {
	t.Helper()
	select {
	case err := <-errc:
		return err
	case <-time.After(2 * time.Minute): // a bound on a hang, not a measurement
		t.Fatal("the daemon did not stop after a listener died")
		return nil
	}
}

// TestListenerDeathEndsDaemon closes each listener under its running
// server, as a dying socket would: the daemon must log one error line
// naming the component and the cause, shut everything down (the other
// ports are free again, the store is flushed and closed) and Wait must
// return the cause, which is what makes `tailgate serve` exit non-zero.
func TestListenerDeathEndsDaemon(t *testing.T) {
	for _, tc := range []struct {
		name      string
		component string
		addr      func(*Daemon) string
		cause     string
	}{
		{"api", "api", (*Daemon).APIAddr, "API server on"},
		{"otlp grpc", "ingest", (*Daemon).GRPCAddr, "OTLP/gRPC receiver on"},
		{"otlp http", "ingest", (*Daemon).HTTPAddr, "OTLP/HTTP receiver on"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sink := otlptest.NewSink(t)
			cfg := testConfig(t, sink, t.TempDir())
			var logs syncBuffer
			d, err := New(t.Context(), cfg, slog.New(slog.NewTextHandler(&logs, nil)))
			if err != nil {
				t.Fatal(err)
			}
			var lns listeners
			lns.hook(d)
			if err := d.Start(t.Context()); err != nil {
				t.Fatal(err)
			}
			if d.Err() != nil {
				t.Fatalf("Err before any failure = %v", d.Err())
			}
			addrs := []string{d.APIAddr(), d.GRPCAddr(), d.HTTPAddr()}
			errc := make(chan error, 1)
			go func() { errc <- d.Wait(context.Background()) }() // only a failure can end it

			if err := lns.get(tc.addr(d)).Close(); err != nil {
				t.Fatal(err)
			}
			err = waitResult(t, errc)
			if err == nil || !errors.Is(err, net.ErrClosed) || !strings.Contains(err.Error(), tc.component+" stopped: "+tc.cause) {
				t.Errorf("Wait = %v, want %q wrapping net.ErrClosed", err, tc.component+" stopped: "+tc.cause+"...")
			}
			if d.readyErr() == nil {
				t.Error("still ready after a listener died")
			}
			for _, a := range addrs {
				ln, err := net.Listen("tcp", a)
				if err != nil {
					t.Errorf("port %s still bound after Wait returned: %v", a, err)
					continue
				}
				ln.Close()
			}
			var errLines []string
			for l := range strings.SplitSeq(logs.String(), "\n") {
				if strings.Contains(l, "level=ERROR") {
					errLines = append(errLines, l)
				}
			}
			if len(errLines) != 1 || !strings.Contains(errLines[0], "component="+tc.component) ||
				!strings.Contains(errLines[0], tc.cause) || !strings.Contains(errLines[0], "use of closed network connection") {
				t.Errorf("want one error line naming %s and the cause; log:\n%s", tc.component, logs.String())
			}
		})
	}
}

// TestWaitAfterCancelIsClean checks the ordinary way out: ctx ends, Wait
// shuts down and returns nil, and nothing is logged as an error.
func TestWaitAfterCancelIsClean(t *testing.T) {
	sink := otlptest.NewSink(t)
	var logs syncBuffer
	d, err := New(t.Context(), testConfig(t, sink, t.TempDir()), slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() { errc <- d.Wait(ctx) }()
	cancel()
	if err := waitResult(t, errc); err != nil {
		t.Errorf("Wait after cancel = %v, want nil", err)
	}
	select {
	case <-d.Failed():
		t.Error("Failed closed by a clean stop")
	default:
	}
	if strings.Contains(logs.String(), "level=ERROR") {
		t.Errorf("errors logged on a clean stop:\n%s", logs.String())
	}
}

// startOnTakenPort starts a daemon whose address chosen by take is already
// bound by another socket, and returns it with Start's error.
func startOnTakenPort(t *testing.T, take func(cfg *config.Config, addr string)) (*Daemon, error) {
	t.Helper()
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { taken.Close() })
	cfg := testConfig(t, otlptest.NewSink(t), t.TempDir())
	take(&cfg, taken.Addr().String())
	d, err := New(t.Context(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return d, d.Start(t.Context())
}

// TestAPIPortTakenStopsReceivers makes the API, bound last, fail on a taken
// port: Start must stop everything started before it, the OTLP receivers
// included (their ports are free again), and Shutdown is then a no-op.
// TestMain's goleak check fails if a started loop was left running.
func TestAPIPortTakenStopsReceivers(t *testing.T) {
	d, err := startOnTakenPort(t, func(cfg *config.Config, addr string) { cfg.Server.API = addr })
	if err == nil || !strings.Contains(err.Error(), "listen on server.api") {
		t.Fatalf("Start = %v, want a server.api listen error", err)
	}
	addrs := []string{d.GRPCAddr(), d.HTTPAddr()}
	if addrs[0] == "" || addrs[1] == "" {
		t.Fatalf("receivers were not started before the API: %q", addrs)
	}
	for _, a := range addrs {
		ln, err := net.Listen("tcp", a)
		if err != nil {
			t.Errorf("OTLP port %s not released after a failed start: %v", a, err)
			continue
		}
		ln.Close()
	}
	if err := d.Shutdown(t.Context()); err != nil {
		t.Errorf("Shutdown after a failed start = %v, want nil", err)
	}
}

// TestFailedStartStopsStartedComponents makes the OTLP receivers fail to
// start on a taken port: Start must stop the components it had started
// (and bind no API), and Shutdown is then a no-op. TestMain's goleak check
// fails if a started loop was left running.
func TestFailedStartStopsStartedComponents(t *testing.T) {
	d, err := startOnTakenPort(t, func(cfg *config.Config, addr string) { cfg.Ingest.OTLPGRPC = addr })
	if err == nil || !strings.Contains(err.Error(), "start ingest") {
		t.Fatalf("Start = %v, want an ingest start error", err)
	}
	if d.apiLn != nil {
		t.Errorf("API bound at %s although a component before it failed", d.apiLn.Addr())
	}
	if err := d.Shutdown(t.Context()); err != nil {
		t.Errorf("Shutdown after a failed start = %v, want nil", err)
	}
}
