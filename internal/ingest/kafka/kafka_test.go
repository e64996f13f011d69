package kafka

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"

	"github.com/tailgate-sre/tailgate/internal/otlp"
	"github.com/tailgate-sre/tailgate/internal/units"
)

const topic = "otlp_spans"

// handled is one record as the handler saw it.
type handled struct {
	partition int32
	offset    int64
	spans     int
	service   string
}

// fakeHandler records what it is given; it refuses the first refuse
// records it is offered and settles everything it took unless hold.
type fakeHandler struct {
	mu       sync.Mutex
	refuse   int
	refusals int
	hold     bool
	assigned []int32
	got      []handled
}

var errBusy = errors.New("busy")

func (h *fakeHandler) Assigned(_ context.Context, ps []int32) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.assigned = append(h.assigned, ps...)
	return nil
}

func (h *fakeHandler) Record(_ context.Context, req *otlp.Request, p int32, off int64) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.refuse > 0 {
		h.refuse--
		h.refusals++
		return errBusy
	}
	svc := ""
	if len(req.Spans) > 0 {
		svc = req.Resources[req.Scopes[req.Spans[0].Scope].Resource].ServiceName
	}
	h.got = append(h.got, handled{p, off, len(req.Spans), svc})
	return nil
}

func (h *fakeHandler) last(only []int32) map[int32]int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := map[int32]int64{}
	if h.hold {
		return out
	}
	for _, r := range h.got {
		if only == nil || slices.Contains(only, r.partition) {
			out[r.partition] = max(out[r.partition], r.offset)
		}
	}
	return out
}

func (h *fakeHandler) Revoked(_ context.Context, ps []int32) map[int32]int64 { return h.last(ps) }
func (h *fakeHandler) Lost([]int32)                                          {}
func (h *fakeHandler) Settled(context.Context) (map[int32]int64, error)      { return h.last(nil), nil }

func (h *fakeHandler) records() []handled {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.got)
}

// request encodes an export request of n SERVER spans of service, as the
// Collector's kafka exporter writes it (encoding otlp_proto).
func request(t testing.TB, service string, n int) []byte {
	t.Helper()
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", service)
	ss := rs.ScopeSpans().AppendEmpty()
	for i := range n {
		sp := ss.Spans().AppendEmpty()
		sp.SetTraceID(pcommon.TraceID{2, byte(i), 3})
		sp.SetSpanID(pcommon.SpanID{2, byte(i), 4})
		sp.SetName("GET /")
		sp.SetKind(ptrace.SpanKindServer)
	}
	b, err := ptraceotlp.NewExportRequestFromTraces(td).MarshalProto()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func newCluster(t testing.TB, partitions int32) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(partitions, topic))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// produce writes the values keyed by the given keys and returns where
// each landed.
func produce(t *testing.T, c *kfake.Cluster, keys []string, values [][]byte) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.DefaultProduceTopic(topic))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	recs := make([]*kgo.Record, len(values))
	for i := range values {
		recs[i] = &kgo.Record{Key: []byte(keys[i]), Value: values[i]}
	}
	if err := cl.ProduceSync(t.Context(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	return recs
}

func startIntake(t *testing.T, c *kfake.Cluster, h Handler) (*Intake, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	in, err := New(Config{Brokers: c.ListenAddrs(), Topic: topic, Group: "tailgate", CommitInterval: units.Duration(10 * time.Millisecond)},
		Settings{Handler: h, Registerer: reg, Retry: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := in.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	return in, reg
}

// waitRecords polls the handler, which the broker feeds from its own
// goroutines, until it holds n records.
func waitRecords(t *testing.T, h *fakeHandler, n int) []handled {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		got := h.records()
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("handler got %d records, want %d", len(got), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestIntake checks that every record reaches the handler once, in order
// per partition, that a refused record is offered again rather than
// lost, that a malformed one is skipped (offered empty) without wedging
// its partition, and that what the handler settled is committed: a new
// member of the group starts after it.
func TestIntake(t *testing.T) {
	c := newCluster(t, 3)
	var keys []string
	var values [][]byte
	for i := range 30 {
		keys = append(keys, fmt.Sprintf("trace-%02d", i))
		values = append(values, request(t, fmt.Sprintf("svc-%02d", i), 1+i%3))
	}
	keys = append(keys, "trace-bad")
	values = append(values, []byte{0x0a, 0xff, 0xff}) // truncated resource_spans
	recs := produce(t, c, keys, values)

	h := &fakeHandler{refuse: 5}
	in, reg := startIntake(t, c, h)
	got := waitRecords(t, h, len(recs))
	if err := in.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}

	want := map[[2]int64]handled{}
	for i, r := range recs {
		w := handled{r.Partition, r.Offset, 1 + i%3, fmt.Sprintf("svc-%02d", i)}
		if i == 30 {
			w.spans, w.service = 0, ""
		}
		want[[2]int64{int64(r.Partition), r.Offset}] = w
	}
	seen := map[[2]int64]bool{}
	next := map[int32]int64{}
	for _, g := range got {
		k := [2]int64{int64(g.partition), g.offset}
		if seen[k] {
			t.Errorf("record %d/%d handled twice", g.partition, g.offset)
		}
		seen[k] = true
		if w, ok := want[k]; !ok || w != g {
			t.Errorf("handled %+v, produced %+v", g, w)
		}
		if g.offset != next[g.partition] {
			t.Errorf("partition %d: offset %d after %d, want in order", g.partition, g.offset, next[g.partition]-1)
		}
		next[g.partition] = g.offset + 1
	}
	if len(got) != len(recs) {
		t.Errorf("handled %d records, produced %d", len(got), len(recs))
	}
	if h.refusals != 5 {
		t.Errorf("refusals = %d, want 5", h.refusals)
	}
	if v := testutil.ToFloat64(in.m.rejected.WithLabelValues("malformed")); v != 1 {
		t.Errorf("records_rejected_total{malformed} = %v, want 1", v)
	}
	if v := testutil.ToFloat64(in.m.refused); v != 5 {
		t.Errorf("backpressure_total = %v, want 5", v)
	}
	if n, err := testutil.GatherAndCount(reg, "tailgate_kafka_records_total"); err != nil || n != 1 {
		t.Errorf("tailgate_kafka_records_total series = %d, %v", n, err)
	}

	// Everything was settled and committed: a new member reads only what
	// is produced after.
	more := produce(t, c, []string{"trace-00", "trace-01"}, [][]byte{request(t, "later", 1), request(t, "later", 2)})
	h2 := &fakeHandler{}
	in2, _ := startIntake(t, c, h2)
	got2 := waitRecords(t, h2, len(more))
	if err := in2.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(got2) != len(more) {
		t.Fatalf("after the commit the group re-read %d records, want only the %d new ones: %+v", len(got2), len(more), got2)
	}
	for i, g := range got2 {
		if g.service != "later" {
			t.Errorf("record %d after the commit: %+v, want a new one", i, g)
		}
	}
}

// TestIntakeCommitsOnlySettled checks that the intake never commits on its
// own: records the handler does not settle are delivered again to the
// group's next member.
func TestIntakeCommitsOnlySettled(t *testing.T) {
	c := newCluster(t, 2)
	keys := []string{"a", "b", "c", "d"}
	values := [][]byte{request(t, "s", 1), request(t, "s", 1), request(t, "s", 1), request(t, "s", 1)}
	produce(t, c, keys, values)

	h := &fakeHandler{hold: true}
	in, _ := startIntake(t, c, h)
	waitRecords(t, h, 4)
	if err := in.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	h2 := &fakeHandler{}
	in2, _ := startIntake(t, c, h2)
	got := waitRecords(t, h2, 4)
	if err := in2.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(got) != 4 {
		t.Errorf("redelivered %d records, want all 4 (none was settled)", len(got))
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tt := range []struct {
		name string
		cfg  Config
		want []string
	}{
		{"ok", Config{Brokers: []string{"k:9092"}, Topic: "otlp_spans", Group: "g"}, nil},
		{"empty", Config{}, []string{"kafka.brokers: at least one", "kafka.topic: required", "kafka.group: required"}},
		{"bad broker", Config{Brokers: []string{"kafka"}, Topic: "t", Group: "g"}, []string{`kafka.brokers: "kafka" is not host:port`}},
		{"sasl", Config{Brokers: []string{"k:1"}, Topic: "t", Group: "g", SASL: &SASL{Mechanism: "GSSAPI"}},
			[]string{"kafka.sasl.mechanism: must be PLAIN", "kafka.sasl: username and password_file are required"}},
		{"negative", Config{Brokers: []string{"k:1"}, Topic: "t", Group: "g", SettleMargin: -1, CommitInterval: -1},
			[]string{"kafka.settle_margin: must not be negative", "kafka.commit_interval: must not be negative"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Validate = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate = nil, want %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate = %q, want it to contain %q", err, w)
				}
			}
		})
	}
}

// TestIntakeLimits checks that ingest's limits apply to records: a span
// over max_attributes_per_span is dropped alone, its record's other spans
// go on; a record over max_spans_per_request is skipped whole.
func TestIntakeLimits(t *testing.T) {
	c := newCluster(t, 1)
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", "checkout")
	ss := rs.ScopeSpans().AppendEmpty()
	for i := range 3 {
		sp := ss.Spans().AppendEmpty()
		sp.SetTraceID(pcommon.TraceID{9, 9})
		sp.SetSpanID(pcommon.SpanID{9, byte(i + 1)})
		sp.SetKind(ptrace.SpanKindServer)
		if i == 1 {
			sp.Attributes().PutStr("a", "1")
			sp.Attributes().PutStr("b", "2")
		}
	}
	b, err := ptraceotlp.NewExportRequestFromTraces(td).MarshalProto()
	if err != nil {
		t.Fatal(err)
	}
	produce(t, c, []string{"k", "k"}, [][]byte{b, request(t, "big", 4)})
	h := &fakeHandler{}
	in, err := New(Config{Brokers: c.ListenAddrs(), Topic: topic, Group: "tailgate"},
		Settings{Handler: h, Limits: otlp.Limits{MaxAttributes: 1, MaxSpans: 3}})
	if err != nil {
		t.Fatal(err)
	}
	if err := in.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	got := waitRecords(t, h, 2)
	if err := in.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got[1].spans != 0 {
		t.Errorf("a record over max_spans_per_request was handed over with %d spans, want skipped (0)", got[1].spans)
	}
	if v := testutil.ToFloat64(in.m.rejected.WithLabelValues("malformed")); v != 1 {
		t.Errorf("records_rejected_total{malformed} = %v, want 1", v)
	}
	if got[0].spans != 2 {
		t.Errorf("record handed over with %d spans, want 2 (the span with 2 attributes dropped)", got[0].spans)
	}
	if v := testutil.ToFloat64(in.m.spansRejected); v != 1 {
		t.Errorf("spans_rejected_total = %v, want 1", v)
	}
}
