package signals

import (
	"cmp"
	"context"
	"encoding/binary"
	"slices"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"

	"github.com/tailgate-sre/tailgate/internal/otlp"
	"github.com/tailgate-sre/tailgate/internal/otlptest"
)

// spanSpec describes a span for buildRequest.
type spanSpec struct {
	service    string
	resource   map[string]any
	trace      uint64
	id, parent uint64
	kind       ptrace.SpanKind
	name       string
	start, end time.Time
	status     ptrace.StatusCode
	attrs      map[string]any
}

func spanID(n uint64) pcommon.SpanID {
	var id pcommon.SpanID
	binary.BigEndian.PutUint64(id[:], n)
	return id
}

// buildRequest encodes spans as an ExportTraceServiceRequest with pdata, one
// resource per service (in order of first appearance).
func buildRequest(t testing.TB, spans ...spanSpec) []byte {
	t.Helper()
	td := ptrace.NewTraces()
	bySvc := map[string]ptrace.SpanSlice{}
	for i, sp := range spans {
		ss, ok := bySvc[sp.service]
		if !ok {
			rs := td.ResourceSpans().AppendEmpty()
			if sp.service != "" {
				rs.Resource().Attributes().PutStr("service.name", sp.service)
			}
			otlptest.PutAttrs(rs.Resource().Attributes(), sp.resource)
			ss = rs.ScopeSpans().AppendEmpty().Spans()
			bySvc[sp.service] = ss
		}
		s := ss.AppendEmpty()
		var tid pcommon.TraceID
		binary.BigEndian.PutUint64(tid[8:], max(sp.trace, 1))
		s.SetTraceID(tid)
		id := sp.id
		if id == 0 {
			id = uint64(i + 1)
		}
		s.SetSpanID(spanID(id))
		if sp.parent != 0 {
			s.SetParentSpanID(spanID(sp.parent))
		}
		s.SetKind(sp.kind)
		s.SetName(sp.name)
		s.SetStartTimestamp(pcommon.NewTimestampFromTime(sp.start))
		s.SetEndTimestamp(pcommon.NewTimestampFromTime(sp.end))
		s.Status().SetCode(sp.status)
		otlptest.PutAttrs(s.Attributes(), sp.attrs)
	}
	b, err := ptraceotlp.NewExportRequestFromTraces(td).MarshalProto()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func parseRequest(t testing.TB, b []byte) *otlp.Request {
	t.Helper()
	var req otlp.Request
	if err := otlp.Parse(b, otlp.Limits{}, &req); err != nil {
		t.Fatal(err)
	}
	if req.Rejected > 0 {
		t.Fatalf("parse rejected spans: %s", req.RejectReason)
	}
	return &req
}

// memStore is an in-memory Store for tests.
type memStore struct {
	mu       sync.Mutex
	buckets  []Bucket
	origins  []OriginRow
	failNext int // fail this many writes
	appends  int
}

var _ Store = (*memStore)(nil)

func (m *memStore) AppendSignalBuckets(_ context.Context, b []Bucket) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.failNext > 0 {
		m.failNext--
		return context.DeadlineExceeded
	}
	m.appends++
	m.buckets = append(m.buckets, b...)
	return nil
}

func (m *memStore) SignalBuckets(_ context.Context, f BucketFilter) ([]Bucket, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Bucket
	for _, b := range m.buckets {
		if (f.Service == "" || b.Service == f.Service) && !b.Start.Before(f.From) && b.Start.Before(f.To) && (f.Step == 0 || b.Step == f.Step) {
			out = append(out, b)
		}
	}
	return out, nil
}

func (m *memStore) OldestSignalBucket(_ context.Context, step time.Duration) (time.Time, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var oldest time.Time
	ok := false
	for _, b := range m.buckets {
		if b.Step == step && (!ok || b.Start.Before(oldest)) {
			oldest, ok = b.Start, true
		}
	}
	return oldest, ok, nil
}

func (m *memStore) ReplaceSignalBuckets(_ context.Context, from, to time.Time, b []Bucket) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.buckets = slices.DeleteFunc(m.buckets, func(x Bucket) bool {
		return x.Step == time.Minute && !x.Start.Before(from) && x.Start.Before(to)
	})
	m.buckets = append(m.buckets, b...)
	return nil
}

func (m *memStore) AppendErrorOrigins(_ context.Context, rows []OriginRow) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.failNext > 0 {
		m.failNext--
		return context.DeadlineExceeded
	}
	m.origins = append(m.origins, rows...)
	return nil
}

func (m *memStore) ErrorOrigins(_ context.Context, service string, from, to time.Time) ([]OriginRow, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []OriginRow
	for _, r := range m.origins {
		if (r.Service == service || r.OriginService == service) && !r.Start.Before(from) && r.Start.Before(to) {
			out = append(out, r)
		}
	}
	return out, nil
}

func (m *memStore) DeleteSignalsBefore(_ context.Context, t time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.buckets = slices.DeleteFunc(m.buckets, func(b Bucket) bool { return b.Start.Before(t) })
	m.origins = slices.DeleteFunc(m.origins, func(r OriginRow) bool { return r.Start.Before(t) })
	return nil
}

// storedBuckets returns the stored buckets sorted.
func (m *memStore) storedBuckets() []Bucket {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := slices.Clone(m.buckets)
	slices.SortFunc(out, func(a, b Bucket) int {
		return cmp.Or(a.Start.Compare(b.Start), cmp.Compare(a.Service, b.Service), cmp.Compare(a.Operation, b.Operation))
	})
	return out
}

func newTestSignals(t testing.TB, cfg Config, store Store) *Signals {
	t.Helper()
	if store == nil {
		store = &memStore{}
	}
	s, err := New(cfg, Settings{Store: store})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func pcommonTime(t time.Time) pcommon.Timestamp { return pcommon.NewTimestampFromTime(t) }

func marshalTraces(td ptrace.Traces) ([]byte, error) {
	return ptraceotlp.NewExportRequestFromTraces(td).MarshalProto()
}
