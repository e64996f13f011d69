package daemon

import (
	"context"
	"crypto/rand"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/tailgate-sre/tailgate/internal/otlptest"
	"github.com/tailgate-sre/tailgate/internal/sampler"
	"github.com/tailgate-sre/tailgate/internal/units"
)

// floodRequest builds a request of traces whose root span never comes
// (children of a parent that is not sent), so only decision_wait or stress
// relief can decide them. Every tenth trace has an error.
func floodRequest(traces, spansPerTrace int) (ptraceotlp.ExportRequest, []pcommon.TraceID) {
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", "flood")
	ss := rs.ScopeSpans().AppendEmpty()
	var errorTraces []pcommon.TraceID
	now := time.Now()
	for i := range traces {
		var tid pcommon.TraceID
		var parent pcommon.SpanID
		rand.Read(tid[:])
		rand.Read(parent[:])
		if i%10 == 0 {
			errorTraces = append(errorTraces, tid)
		}
		for j := range spansPerTrace {
			s := ss.Spans().AppendEmpty()
			s.SetTraceID(tid)
			var sid pcommon.SpanID
			rand.Read(sid[:])
			s.SetSpanID(sid)
			s.SetParentSpanID(parent)
			s.SetName("work")
			s.SetKind(ptrace.SpanKindInternal)
			s.SetStartTimestamp(pcommon.NewTimestampFromTime(now))
			s.SetEndTimestamp(pcommon.NewTimestampFromTime(now.Add(time.Millisecond)))
			s.Attributes().PutStr("http.route", "/flood")
			if i%10 == 0 && j == 0 {
				s.Status().SetCode(ptrace.StatusCodeError)
			}
		}
	}
	return ptraceotlp.NewExportRequestFromTraces(td), errorTraces
}

func gauge(t *testing.T, d *Daemon, name string) float64 {
	t.Helper()
	mfs, err := d.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			sum += metricValue(m)
		}
	}
	return sum
}

func metricValue(m *dto.Metric) float64 {
	switch {
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Counter != nil:
		return m.Counter.GetValue()
	}
	return 0
}

// TestOverload floods the daemon (overload policy decide_early) beyond
// max_buffered_spans and then stalls
// its backend: buffered spans stay bounded (stress relief decides the
// oldest traces early), clients are told to back off instead of losing
// data, and every error trace in an accepted request is exported whole.
func TestOverload(t *testing.T) {
	if testing.Short() {
		t.Skip("floods the daemon")
	}
	sink := otlptest.NewSink(t)
	cfg := testConfig(t, sink, t.TempDir())
	const maxBuffered = 2000
	cfg.Sampling.MaxBufferedSpans = maxBuffered
	cfg.Sampling.Overload.Policy = sampler.PolicyDecideEarly // this test is about stress relief
	cfg.Sampling.DecisionWait = units.Duration(time.Minute)
	cfg.Sampling.IntakeSpans = 4096
	cfg.Export.Queue.MaxSpans = 4000
	cfg.Export.Queue.MaxBatchSpans = 1000
	d := startDaemon(t, cfg)

	conn, err := grpc.NewClient(d.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := ptraceotlp.NewGRPCClient(conn)

	const tracesPerReq, spansPerTrace = 50, 5
	accepted := map[pcommon.TraceID]bool{} // error traces in accepted requests
	send := func() (backpressure bool) {
		req, errs := floodRequest(tracesPerReq, spansPerTrace)
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		_, err := client.Export(ctx, req)
		switch status.Code(err) {
		case codes.OK:
			for _, id := range errs {
				accepted[id] = true
			}
			return false
		case codes.ResourceExhausted, codes.Unavailable:
			return true
		default:
			t.Fatalf("export: %v", err)
			return false
		}
	}

	// Phase 1: ten times max_buffered_spans of traces that cannot be decided
	// by their root. The buffer must stay near its bound.
	peak := 0.0
	for range 10 * maxBuffered / (tracesPerReq * spansPerTrace) {
		if send() {
			t.Fatal("backpressure while the backend was healthy")
		}
		peak = max(peak, gauge(t, d, "tailgate_sampler_buffered_spans"))
	}
	if peak > maxBuffered+tracesPerReq*spansPerTrace {
		t.Errorf("buffered spans peaked at %v, bound is %d (+ one request)", peak, maxBuffered)
	}
	if n := gauge(t, d, "tailgate_sampler_stress_relief_traces_total"); n == 0 {
		t.Error("no stress relief counted")
	}

	// Phase 2: the backend hangs. Kept traces fill the export queue, the
	// sampler waits on it, and ingest must push back: a bounded loop until
	// the client sees it.
	sink.Pause()
	pushedBack := 0
	for i := 0; i < 2000 && pushedBack < 3; i++ {
		if send() {
			pushedBack++
		}
	}
	if pushedBack == 0 {
		t.Fatal("no backpressure with the backend stalled and the export queue full")
	}
	sink.Resume()
	stopDaemon(t, d) // decides everything buffered and flushes

	byTrace := sink.SpansByTrace()
	lost := 0
	for id := range accepted {
		if len(byTrace[id]) != spansPerTrace {
			lost++
		}
	}
	if lost > 0 {
		t.Errorf("%d of %d accepted error traces were not exported whole", lost, len(accepted))
	}
	t.Logf("buffer peak %v spans (bound %d); %d accepted error traces all exported; backpressure seen %d times",
		peak, maxBuffered, len(accepted), pushedBack)
}
