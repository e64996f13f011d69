package export

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/proto"
)

// TestParsePartialSuccess checks what export adds to otlp's parser (whose
// own tests cover the wire format): a long server message is truncated
// for the log, and a broken response is an error naming the response.
func TestParsePartialSuccess(t *testing.T) {
	r := ptraceotlp.NewExportResponse()
	r.PartialSuccess().SetRejectedSpans(5)
	r.PartialSuccess().SetErrorMessage(strings.Repeat("x", 300))
	b, err := r.MarshalProto()
	if err != nil {
		t.Fatal(err)
	}
	got, err := parsePartialSuccess(b)
	if err != nil {
		t.Fatal(err)
	}
	want := partialSuccess{rejected: 5, message: strings.Repeat("x", maxMessageLen) + "…"}
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(partialSuccess{})); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if _, err := parsePartialSuccess(b[:4]); err == nil || !strings.Contains(err.Error(), "export response") {
		t.Errorf("truncated response: err = %v, want one naming the export response", err)
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
