package otlp

import (
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
)

// Field numbers of the export response messages
// (opentelemetry/proto/collector/trace/v1/trace_service.proto and
// google/rpc/status.proto).
const (
	fieldResponsePartialSuccess = 1

	fieldPartialRejectedSpans = 1
	fieldPartialErrorMessage  = 2

	fieldRPCStatusMessage = 2
)

// ExportResponse is the content of an ExportTraceServiceResponse: the
// receiver's partial_success, all zero when it took every span.
type ExportResponse struct {
	// RejectedSpans is partial_success.rejected_spans.
	RejectedSpans int64
	// ErrorMessage is partial_success.error_message, a view of the bytes
	// given to ParseExportResponse. It is not checked for valid UTF-8: it
	// comes from a server and goes to a log, which must sanitise it.
	ErrorMessage []byte
}

// ParseExportResponse reads an encoded ExportTraceServiceResponse. Unknown
// fields are skipped, as protobuf requires; a truncated or otherwise
// malformed encoding returns an error wrapping ErrMalformed. A repeated
// field takes its last value.
func ParseExportResponse(b []byte) (ExportResponse, error) {
	var r ExportResponse
	err := walkFields(b, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
		if num != fieldResponsePartialSuccess || typ != protowire.BytesType {
			return nil
		}
		return walkFields(v, func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error {
			switch {
			case num == fieldPartialRejectedSpans && typ == protowire.VarintType:
				r.RejectedSpans = int64(x)
			case num == fieldPartialErrorMessage && typ == protowire.BytesType:
				r.ErrorMessage = v
			}
			return nil
		})
	})
	if err != nil {
		return ExportResponse{}, fmt.Errorf("%w: export response: %v", ErrMalformed, err)
	}
	return r, nil
}

// ParseStatusMessage reads google.rpc.Status.message, the body of an
// OTLP/HTTP error response in protobuf. ok is false when b is not such an
// encoding (an HTML error page from a proxy, say) or has no message.
func ParseStatusMessage(b []byte) (msg []byte, ok bool) {
	err := walkFields(b, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
		if num == fieldRPCStatusMessage && typ == protowire.BytesType {
			msg, ok = v, true
		}
		return nil
	})
	if err != nil {
		return nil, false
	}
	return msg, ok
}
