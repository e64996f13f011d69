package export

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/tailgate-sre/tailgate/internal/otlp"
)

// partialSuccess is ExportTraceServiceResponse.partial_success.
type partialSuccess struct {
	rejected int64
	message  string
}

// parsePartialSuccess reads an encoded ExportTraceServiceResponse.
func parsePartialSuccess(b []byte) (partialSuccess, error) {
	r, err := otlp.ParseExportResponse(b)
	if err != nil {
		return partialSuccess{}, fmt.Errorf("read export response: %w", err)
	}
	return partialSuccess{rejected: r.RejectedSpans, message: truncate(string(r.ErrorMessage), maxMessageLen)}, nil
}

// parseStatusMessage reads the message of a google.rpc.Status, the body
// of an OTLP/HTTP error response in protobuf; ok is false unless it is one
// with a valid UTF-8 message.
func parseStatusMessage(b []byte) (string, bool) {
	msg, ok := otlp.ParseStatusMessage(b)
	if !ok || !utf8.Valid(msg) {
		return "", false
	}
	return string(msg), true
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
