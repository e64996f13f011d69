package signals

import (
	"encoding/binary"
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
