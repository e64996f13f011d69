package ingest

import (
	"bytes"
	"fmt"
)

const (
	// maxJSONDepth is the deepest nesting of objects and arrays an OTLP/JSON
	// request may have. A real export is at most about a dozen levels deep
	// (request, resource spans, scope spans, span, attributes, array and
	// kvlist values); pdata's decoder, run on a body nested hundreds of
	// thousands of levels deep, allocates hundreds of bytes per level.
	maxJSONDepth = 64
	// jsonContainerCost bounds what pdata's decoder and the re-encoding to
	// protobuf allocate per JSON object or array: measured at 88 to 262
	// bytes for empty objects in each OTLP list (a span is the largest),
	// with a margin.
	jsonContainerCost = 384
	// jsonDecodeBudget bounds the memory of the OTLP/JSON requests being
	// decoded at once, by the estimate of jsonDecodeCost. Empty objects
	// cost pdata a hundred times their 3 bytes, so a 16MiB body of them
	// would take gigabytes; a real 16MiB export (about 40 bytes per object)
	// is estimated at about 170MiB, and allocates a quarter of that.
	jsonDecodeBudget = 256 << 20
)

// depthError reports a JSON body nested deeper than its limit.
type depthError struct {
	limit  int
	offset int // of the bracket that went one level too deep
}

func (e *depthError) Error() string {
	return fmt.Sprintf("OTLP/JSON nested deeper than %d levels at byte offset %d", e.limit, e.offset)
}

// scanJSON counts the objects and arrays of b, and reports a *depthError
// as soon as they nest deeper than limit. It only looks at brackets outside
// strings (a string's end is found past backslash escapes) and validates
// nothing else: the decoder that runs after it does. It allocates nothing
// and reads each byte once, so it is cheap to run before the decoder,
// whatever b holds.
func scanJSON(b []byte, limit int) (containers int, err error) {
	depth := 0
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case '{', '[':
			containers++
			depth++
			if depth > limit {
				return containers, &depthError{limit: limit, offset: i}
			}
		case '}', ']':
			// Unbalanced closing brackets are the decoder's to reject;
			// never let them buy depth for later openings.
			depth = max(depth-1, 0)
		case '"':
			// Skip to the closing quote: the first one not escaped.
			for {
				if i+1 >= len(b) {
					return containers, nil // unterminated string: invalid, for the decoder to say
				}
				j := bytes.IndexAny(b[i+1:], `"\`)
				if j < 0 {
					return containers, nil
				}
				i += 1 + j
				if b[i] == '"' {
					break
				}
				i++ // a backslash escapes the next byte, whatever it is
			}
		}
	}
	return containers, nil
}

// jsonDecodeCost estimates the memory that decoding a JSON body of n bytes
// with the given number of objects and arrays takes, protobuf re-encoding
// included.
func jsonDecodeCost(n, containers int) int64 {
	return int64(n) + int64(containers)*jsonContainerCost
}
