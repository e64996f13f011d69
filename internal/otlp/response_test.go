package otlp

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

func TestParseExportResponse(t *testing.T) {
	// Responses encoded by pdata, independently of the parser.
	response := func(rejected int64, msg string) []byte {
		r := ptraceotlp.NewExportResponse()
		r.PartialSuccess().SetRejectedSpans(rejected)
		r.PartialSuccess().SetErrorMessage(msg)
		b, err := r.MarshalProto()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	withUnknown := protowire.AppendTag(response(2, "x"), 99, protowire.BytesType)
	withUnknown = protowire.AppendString(withUnknown, "future field")
	// An unknown varint field inside partial_success, before the known ones.
	inner := field(7, protowire.VarintType, protowire.AppendVarint(nil, 300))
	inner = append(inner, field(fieldPartialRejectedSpans, protowire.VarintType, protowire.AppendVarint(nil, 9))...)
	inner = append(inner, field(fieldPartialErrorMessage, protowire.BytesType, []byte("nine"))...)
	unknownInside := field(fieldResponsePartialSuccess, protowire.BytesType, inner)
	// partial_success with a wrong wire type is an unknown field, as in
	// any protobuf decoder that skips what it cannot read.
	wrongType := field(fieldResponsePartialSuccess, protowire.VarintType, protowire.AppendVarint(nil, 5))

	tests := []struct {
		name    string
		in      []byte
		want    ExportResponse
		wantErr bool
	}{
		{"empty response is full success", nil, ExportResponse{}, false},
		{"rejected and message", response(5, "5 spans lacked a trace ID"), ExportResponse{5, []byte("5 spans lacked a trace ID")}, false},
		{"message only", response(0, "warning"), ExportResponse{0, []byte("warning")}, false},
		{"unknown fields are skipped", withUnknown, ExportResponse{2, []byte("x")}, false},
		{"unknown field inside partial_success", unknownInside, ExportResponse{9, []byte("nine")}, false},
		{"partial_success of the wrong wire type", wrongType, ExportResponse{}, false},
		{"truncated", response(5, "abc")[:4], ExportResponse{}, true},
		{"bad tag", []byte{0xff}, ExportResponse{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseExportResponse(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if tt.wantErr {
				if !errors.Is(err, ErrMalformed) {
					t.Errorf("err = %v, want ErrMalformed", err)
				}
				return
			}
			if diff := cmp.Diff(tt.want, got, cmp.Comparer(func(a, b []byte) bool { return string(a) == string(b) })); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseStatusMessage(t *testing.T) {
	b, err := proto.Marshal(&spb.Status{Code: 3, Message: "span 7 has no trace ID"})
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := ParseStatusMessage(b); !ok || string(got) != "span 7 has no trace ID" {
		t.Errorf("ParseStatusMessage = %q, %v", got, ok)
	}
	noMessage, err := proto.Marshal(&spb.Status{Code: 3})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := ParseStatusMessage(noMessage); ok {
		t.Error("ParseStatusMessage found a message in a status without one")
	}
	if _, ok := ParseStatusMessage([]byte("<html>bad gateway</html>")); ok {
		t.Error("ParseStatusMessage accepted HTML")
	}
}
