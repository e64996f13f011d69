package signals

import (
	"testing"
	"time"
)

// TestValueHash checks that distinct-value counting sees values, not their
// kinds' encodings: equal values hash equal, and the string "1", the int 1,
// the double 1 and the bool true all count apart.
func TestValueHash(t *testing.T) {
	req := parseRequest(t, buildRequest(t, spanSpec{
		service: "svc", name: "op", start: t0, end: t0.Add(time.Millisecond),
		attrs: map[string]any{"s1": "1", "s1b": "1", "s2": "2", "i1": 1, "i1b": 1, "d1": 1.0, "b": true, "empty": ""},
	}))
	attrs := req.SpanAttrs(&req.Spans[0])
	h := map[string]uint64{}
	for i := range attrs {
		h[string(attrs[i].Key)] = valueHash(&attrs[i].Value)
	}
	if len(h) != 8 {
		t.Fatalf("got %d attributes, want 8", len(h))
	}
	for _, same := range [][2]string{{"s1", "s1b"}, {"i1", "i1b"}} {
		if h[same[0]] != h[same[1]] {
			t.Errorf("%s and %s hold equal values but hash apart", same[0], same[1])
		}
	}
	distinct := []string{"s1", "s2", "i1", "d1", "b", "empty"}
	for i, a := range distinct {
		for _, b := range distinct[i+1:] {
			if h[a] == h[b] {
				t.Errorf("%s and %s hold different values but hash equal", a, b)
			}
		}
	}
}
