package ingest

import (
	"errors"
	"strings"
	"testing"
)

func TestScanJSON(t *testing.T) {
	nested := func(open, close string, n int) string {
		return strings.Repeat(open, n) + strings.Repeat(close, n)
	}
	// objects builds {"a":{"a":...{}...}} with n objects.
	objects := func(n int) string {
		return strings.Repeat(`{"a":`, n-1) + "{}" + strings.Repeat("}", n-1)
	}
	tests := []struct {
		name   string
		body   string
		offset int // of the refused bracket; -1: accepted
		// containers counts the objects and arrays of an accepted body.
		containers int
	}{
		{"empty", ``, -1, 0},
		{"scalar", `"x"`, -1, 0},
		{"flat object", `{"a":1,"b":[1,2,3]}`, -1, 2},
		{"arrays 64 deep", nested("[", "]", 64), -1, 64},
		{"arrays 65 deep", nested("[", "]", 65), 64, 0},
		{"objects 64 deep", objects(64), -1, 64},
		// 64 openings of `{"a":` (5 bytes each) precede the 65th brace.
		{"objects 65 deep", objects(65), 64 * 5, 0},
		{"mixed 65 deep", strings.Repeat(`{"a":[`, 33), 32 * 6, 0}, // the 33rd `{` opens level 65
		{"siblings do not add up", strings.Repeat(nested("[", "]", 64), 3), -1, 3 * 64},
		{"brackets inside a string", `{"a":"` + strings.Repeat("[{", 100) + `"}`, -1, 1},
		{"escaped quote keeps the string open", `{"a":"\"` + strings.Repeat("[", 100) + `"}`, -1, 1},
		{"escaped backslash closes the string", `["\\"` + strings.Repeat(",[", 64) + `]`, 6 + 63*2, 0},
		{"key with brackets", `{"[[[[": {"}}}}": 1}}`, -1, 2},
		{"unicode escape", `["\u005b` + strings.Repeat("[", 63) + `"]`, -1, 1},
		{"unterminated string", `["abc`, -1, 1},
		{"trailing backslash", `["abc\`, -1, 1},
		{"extra closers buy no depth", strings.Repeat("]", 10) + nested("[", "]", 65), 10 + 64, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			containers, err := scanJSON([]byte(tt.body), 64)
			if tt.offset < 0 {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if containers != tt.containers {
					t.Errorf("%d objects and arrays, want %d", containers, tt.containers)
				}
				return
			}
			var de *depthError
			if !errors.As(err, &de) {
				t.Fatalf("got %v, want a depth error", err)
			}
			if de.offset != tt.offset || de.limit != 64 {
				t.Errorf("got limit %d offset %d, want 64 and %d", de.limit, de.offset, tt.offset)
			}
			if tt.body[de.offset] != '[' && tt.body[de.offset] != '{' {
				t.Errorf("offset %d points at %q, not a bracket", de.offset, tt.body[de.offset])
			}
			want := "nested deeper than 64 levels at byte offset "
			if !strings.Contains(err.Error(), want) {
				t.Errorf("message %q does not name the limit and offset", err)
			}
		})
	}
}

func BenchmarkScanJSON(b *testing.B) {
	body := []byte(strings.Repeat(`{"key":"http.route","value":{"stringValue":"/api/[id]/\"x\""}},`, 1<<14))
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := scanJSON(body, maxJSONDepth); err != nil {
			b.Fatal(err)
		}
	}
}
