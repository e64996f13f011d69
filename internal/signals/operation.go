package signals

import "unicode/utf8"

// Placeholders that replace identifier path segments in operation names.
const (
	placeholderID    = "{id}"
	placeholderUUID  = "{uuid}"
	placeholderHex   = "{hex}"
	placeholderToken = "{token}"
)

// OtherOperation is the operation that collects the requests of a service
// beyond its operation limit; OtherService collects services beyond the
// service limit.
const (
	OtherOperation = "other"
	OtherService   = "other"
	// UnknownService names spans whose resource has no service.name.
	UnknownService = "unknown_service"
	// unknownOperation names spans with neither http.route nor a name.
	unknownOperation = "unknown"
)

// maxOperationLen bounds an operation name in bytes.
const maxOperationLen = 128

// NormalizeOperation returns the operation name of a span given its
// http.route (or, when absent, its name). Path segments that are
// identifiers become placeholders, so that /users/123 and /users/456 are one
// operation:
//
//   - all digits: {id} (/orders/42)
//   - a UUID (8-4-4-4-12 hex digits): {uuid}
//   - 8 or more hex digits with at least one digit, or 16 or more hex
//     digits: {hex} (/commits/9fceb02d)
//   - 16 or more letters, digits, '-' and '_' mixing letters and digits:
//     {token} (/share/aZ3kQ9xY7mB2pL4w)
//   - any other segment keeps its text, except that runs of 4 or more
//     digits become {id} (/orders/ord-20240611 → /orders/ord-{id})
//
// The query string and fragment are dropped, templates such as {id} or :id
// are kept, text before the first '/' (a method, "GET ") is kept, and the
// result is cut to 128 bytes. An empty input gives "unknown".
func NormalizeOperation(raw string) string {
	return string(appendNormalized(nil, []byte(raw)))
}

// appendNormalized appends the normalised form of raw to dst.
func appendNormalized(dst, raw []byte) []byte {
	start := len(dst)
	for i, c := range raw {
		if c == '?' || c == '#' {
			raw = raw[:i]
			break
		}
	}
	if len(raw) == 0 {
		return append(dst, unknownOperation...)
	}
	slash := -1
	for i, c := range raw {
		if c == '/' {
			slash = i
			break
		}
	}
	if slash < 0 {
		dst = append(dst, raw...)
		return truncateOperation(dst, start)
	}
	dst = append(dst, raw[:slash]...)
	rest := raw[slash:]
	for len(rest) > 0 {
		// rest starts with '/'.
		dst = append(dst, '/')
		rest = rest[1:]
		end := len(rest)
		for i, c := range rest {
			if c == '/' {
				end = i
				break
			}
		}
		dst = appendSegment(dst, rest[:end])
		rest = rest[end:]
		if len(dst)-start > maxOperationLen {
			break
		}
	}
	return truncateOperation(dst, start)
}

func truncateOperation(dst []byte, start int) []byte {
	if len(dst)-start <= maxOperationLen {
		return dst
	}
	cut := start + maxOperationLen
	for cut > start && !utf8.RuneStart(dst[cut]) {
		cut--
	}
	return dst[:cut]
}

func appendSegment(dst, seg []byte) []byte {
	if len(seg) == 0 {
		return dst
	}
	digits, hex, word, letters := 0, 0, 0, 0
	for _, c := range seg {
		switch {
		case c >= '0' && c <= '9':
			digits++
			hex++
			word++
		case c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F':
			hex++
			word++
			letters++
		case c >= 'g' && c <= 'z' || c >= 'G' && c <= 'Z':
			word++
			letters++
		case c == '-' || c == '_':
			word++
		}
	}
	n := len(seg)
	switch {
	case digits == n:
		return append(dst, placeholderID...)
	case isUUID(seg):
		return append(dst, placeholderUUID...)
	case hex == n && (n >= 8 && digits > 0 || n >= 16):
		return append(dst, placeholderHex...)
	case word == n && n >= 16 && digits > 0 && letters > 0:
		return append(dst, placeholderToken...)
	}
	// Replace long digit runs inside an otherwise kept segment.
	for i := 0; i < n; {
		if seg[i] < '0' || seg[i] > '9' {
			dst = append(dst, seg[i])
			i++
			continue
		}
		j := i
		for j < n && seg[j] >= '0' && seg[j] <= '9' {
			j++
		}
		if j-i >= 4 {
			dst = append(dst, placeholderID...)
		} else {
			dst = append(dst, seg[i:j]...)
		}
		i = j
	}
	return dst
}

func isUUID(s []byte) bool {
	if len(s) != 36 {
		return false
	}
	for i, c := range s {
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
				return false
			}
		}
	}
	return true
}
