package export

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

func TestParsePartialSuccess(t *testing.T) {
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

	tests := []struct {
		name    string
		in      []byte
		want    partialSuccess
		wantErr bool
	}{
		{"empty response is full success", nil, partialSuccess{}, false},
		{"rejected and message", response(5, "5 spans lacked a trace ID"), partialSuccess{5, "5 spans lacked a trace ID"}, false},
		{"message only", response(0, "warning"), partialSuccess{0, "warning"}, false},
		{"unknown fields are skipped", withUnknown, partialSuccess{2, "x"}, false},
		{"truncated", response(5, "abc")[:4], partialSuccess{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parsePartialSuccess(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if tt.wantErr {
				return
			}
			if diff := cmp.Diff(tt.want, got, cmp.AllowUnexported(partialSuccess{})); diff != "" {
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
	if got, ok := parseStatusMessage(b); !ok || got != "span 7 has no trace ID" {
		t.Errorf("parseStatusMessage = %q, %v", got, ok)
	}
	if _, ok := parseStatusMessage([]byte("<html>bad gateway</html>")); ok {
		t.Error("parseStatusMessage accepted HTML")
	}
}

func TestTruncate(t *testing.T) {
	tests := []struct {
		in   string
		n    int
		want string
	}{
		{"short", 10, "short"},
		{strings.Repeat("a", 12), 10, strings.Repeat("a", 10) + "…"},
		{"héllo", 2, "h…"}, // é is two bytes: not split
		{"a\xffb", 10, "a\uFFFDb"},
	}
	for _, tt := range tests {
		if got := truncate(tt.in, tt.n); got != tt.want {
			t.Errorf("truncate(%q, %d) = %q, want %q", tt.in, tt.n, got, tt.want)
		}
	}
}
