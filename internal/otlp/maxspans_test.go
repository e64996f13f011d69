package otlp

import (
	"errors"
	"runtime"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
)

// emptySpans encodes one resource with one scope holding n empty span
// messages: two bytes each, the cheapest hostile request.
func emptySpans(n int) []byte {
	var ss []byte
	for range n {
		ss = protowire.AppendTag(ss, fieldSSSpans, protowire.BytesType)
		ss = protowire.AppendVarint(ss, 0)
	}
	var rs []byte
	rs = protowire.AppendTag(rs, fieldRSScopeSpans, protowire.BytesType)
	rs = protowire.AppendBytes(rs, ss)
	var req []byte
	req = protowire.AppendTag(req, fieldRequestResourceSpans, protowire.BytesType)
	return protowire.AppendBytes(req, rs)
}

func TestMaxSpans(t *testing.T) {
	lim := Limits{MaxSpans: 10}
	var req Request
	// At the limit: parsed, and each empty span (no trace ID) rejected on
	// its own.
	if err := Parse(emptySpans(10), lim, &req); err != nil {
		t.Fatalf("10 spans with MaxSpans 10: %v", err)
	}
	if req.Rejected != 10 || len(req.Spans) != 0 {
		t.Errorf("rejected %d, kept %d; want 10 and 0", req.Rejected, len(req.Spans))
	}
	req.Reset()
	err := Parse(emptySpans(11), lim, &req)
	if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "more than 10 spans") {
		t.Errorf("11 spans with MaxSpans 10: err = %v, want a malformed request naming the limit", err)
	}
	// Reset starts the count again.
	req.Reset()
	if err := Parse(emptySpans(10), lim, &req); err != nil {
		t.Errorf("after Reset: %v", err)
	}
}

// TestMaxSpansBoundsMemory parses 16 MiB of empty spans (8M of them), the
// request that cost 1.4 GiB before the limit: refused after 100,000 spans,
// it must allocate a small fraction of that.
func TestMaxSpansBoundsMemory(t *testing.T) {
	body := emptySpans(8 << 20)
	var req Request
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	err := Parse(body, Limits{MaxSpans: 100_000}, &req)
	runtime.ReadMemStats(&after)
	if !errors.Is(err, ErrMalformed) {
		t.Fatalf("err = %v, want malformed", err)
	}
	// 100,000 span views of 24 bytes, grown by doubling: under 8 MiB.
	if got := after.TotalAlloc - before.TotalAlloc; got > 16<<20 {
		t.Errorf("Parse allocated %d MiB before refusing, want under 16 MiB", got>>20)
	}
}

func TestTraceIDField(t *testing.T) {
	id := []byte("0123456789abcdef")
	sid := []byte("spanid01")
	field := func(b []byte, num protowire.Number, v []byte) []byte {
		return protowire.AppendBytes(protowire.AppendTag(b, num, protowire.BytesType), v)
	}
	first := field(field(nil, fieldSpanTraceID, id), fieldSpanSpanID, sid)
	after := field(field(nil, fieldSpanSpanID, sid), fieldSpanTraceID, id)
	for _, tt := range []struct {
		name string
		raw  []byte
		want int // by hand: a span_id field is 1 + 1 + 8 = 10 bytes
	}{
		{"first", first, 0},
		{"after the span ID", after, 10},
	} {
		sp, err := ParseSpan(tt.raw)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if off, ok := sp.TraceIDField(); !ok || off != tt.want {
			t.Errorf("%s: TraceIDField = %d, %v; want %d, true", tt.name, off, ok, tt.want)
		}
	}
	// A length written in two bytes is valid protobuf but not the usual
	// 18 bytes: no offset, so nobody strips it.
	long := append([]byte{0x0a, 0x90, 0x00}, id...)
	long = field(long, fieldSpanSpanID, sid)
	sp, err := ParseSpan(long)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := sp.TraceIDField(); ok {
		t.Error("TraceIDField reported a non-canonical trace_id field")
	}
}
