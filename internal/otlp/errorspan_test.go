package otlp

import (
	"testing"

	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
)

// statusRequest encodes one resource with a span per id, each of status
// code, with pdata.
func statusRequest(t testing.TB, code ptrace.StatusCode, ids ...byte) []byte {
	t.Helper()
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", "checkout")
	ss := rs.ScopeSpans().AppendEmpty()
	for _, id := range ids {
		sp := ss.Spans().AppendEmpty()
		sp.SetTraceID([16]byte{id})
		sp.SetSpanID([8]byte{id})
		sp.SetName("GET /api/checkout")
		sp.SetKind(ptrace.SpanKindServer)
		sp.Status().SetCode(code)
	}
	b, err := ptraceotlp.NewExportRequestFromTraces(td).MarshalProto()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestHasErrorSpan(t *testing.T) {
	multi := func() []byte {
		td := ptrace.NewTraces()
		for _, code := range []ptrace.StatusCode{ptrace.StatusCodeOk, ptrace.StatusCodeUnset, ptrace.StatusCodeError} {
			sp := td.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty().Spans().AppendEmpty()
			sp.SetName("x")
			sp.Status().SetCode(code)
			sp.Status().SetMessage("m")
		}
		b, err := ptraceotlp.NewExportRequestFromTraces(td).MarshalProto()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}()
	tests := []struct {
		name string
		req  []byte
		want bool
	}{
		{"ok", statusRequest(t, ptrace.StatusCodeOk, 1, 2), false},
		{"unset", statusRequest(t, ptrace.StatusCodeUnset, 1), false},
		{"error", statusRequest(t, ptrace.StatusCodeError, 1), true},
		{"error in the third resource", multi, true},
		{"two requests concatenated", append(statusRequest(t, ptrace.StatusCodeOk, 1), statusRequest(t, ptrace.StatusCodeError, 2)...), true},
		{"empty", nil, false},
		{"garbage", []byte{0xff, 0xff, 0xff}, false},
	}
	for _, tc := range tests {
		if got := HasErrorSpan(tc.req); got != tc.want {
			t.Errorf("%s: HasErrorSpan = %v, want %v", tc.name, got, tc.want)
		}
	}
}
