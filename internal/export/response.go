package export

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
)

// partialSuccess is ExportTraceServiceResponse.partial_success.
type partialSuccess struct {
	rejected int64
	message  string
}

// parsePartialSuccess reads an encoded ExportTraceServiceResponse
// (partial_success = 1 {rejected_spans = 1, error_message = 2}).
func parsePartialSuccess(b []byte) (partialSuccess, error) {
	var ps partialSuccess
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return ps, fmt.Errorf("read export response: %w", protowire.ParseError(n))
		}
		b = b[n:]
		if num == 1 && typ == protowire.BytesType {
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return ps, fmt.Errorf("read export response: %w", protowire.ParseError(n))
			}
			b = b[n:]
			if err := ps.read(v); err != nil {
				return ps, err
			}
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return ps, fmt.Errorf("read export response: %w", protowire.ParseError(n))
		}
		b = b[n:]
	}
	return ps, nil
}

func (ps *partialSuccess) read(b []byte) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return fmt.Errorf("read partial success: %w", protowire.ParseError(n))
		}
		b = b[n:]
		switch {
		case num == 1 && typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return fmt.Errorf("read partial success: %w", protowire.ParseError(n))
			}
			ps.rejected = int64(v)
			b = b[n:]
		case num == 2 && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return fmt.Errorf("read partial success: %w", protowire.ParseError(n))
			}
			ps.message = truncate(string(v), maxMessageLen)
			b = b[n:]
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return fmt.Errorf("read partial success: %w", protowire.ParseError(n))
			}
			b = b[n:]
		}
	}
	return nil
}

// parseStatusMessage reads google.rpc.Status.message (field 2), the body
// of an OTLP/HTTP error response in protobuf.
func parseStatusMessage(b []byte) (string, bool) {
	msg, found := "", false
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return "", false
		}
		b = b[n:]
		if num == 2 && typ == protowire.BytesType {
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return "", false
			}
			msg, found = string(v), true
			b = b[n:]
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return "", false
		}
		b = b[n:]
	}
	return msg, found && utf8.ValidString(msg)
}

// maxMessageLen bounds server messages quoted in logs and errors.
const maxMessageLen = 256

// truncate shortens s to at most n bytes without splitting a rune, and
// replaces invalid UTF-8, so a server cannot flood or corrupt the log.
func truncate(s string, n int) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
