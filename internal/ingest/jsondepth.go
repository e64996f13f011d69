package ingest

import (
	"bytes"
	"fmt"
)

// maxJSONDepth is the deepest nesting of objects and arrays an OTLP/JSON
// request may have. A real export is at most about a dozen levels deep
// (request, resource spans, scope spans, span, attributes, array and
// kvlist values); pdata's decoder, run on a body nested hundreds of
// thousands of levels deep, allocates hundreds of bytes per level.
const maxJSONDepth = 64

// depthError reports a JSON body nested deeper than its limit.
type depthError struct {
	limit  int
	offset int // of the bracket that went one level too deep
}

func (e *depthError) Error() string {
	return fmt.Sprintf("OTLP/JSON nested deeper than %d levels at byte offset %d", e.limit, e.offset)
}

// checkJSONDepth reports a *depthError when b nests objects and arrays
// deeper than limit. It only counts brackets outside strings (a string's
// end is found past backslash escapes) and validates nothing else: the
// decoder that runs after it does. It allocates nothing and reads each byte
// once, so it is cheap to run before the decoder, whatever b holds.
func checkJSONDepth(b []byte, limit int) error {
	depth := 0
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case '{', '[':
			depth++
			if depth > limit {
				return &depthError{limit: limit, offset: i}
			}
		case '}', ']':
			// Unbalanced closing brackets are the decoder's to reject;
			// never let them buy depth for later openings.
			depth = max(depth-1, 0)
		case '"':
			// Skip to the closing quote: the first one not escaped.
			for {
				if i+1 >= len(b) {
					return nil // unterminated string: not deeper, and invalid anyway
				}
				j := bytes.IndexAny(b[i+1:], `"\`)
				if j < 0 {
					return nil // unterminated string: not deeper, and invalid anyway
				}
				i += 1 + j
				if b[i] == '"' {
					break
				}
				i++ // a backslash escapes the next byte, whatever it is
			}
		}
	}
	return nil
}
