package daemon

import (
	"bytes"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tailgate-sre/tailgate/internal/auth"
	"github.com/tailgate-sre/tailgate/internal/otlptest"
)

// TestIngestRequiresToken checks that the daemon hands auth.tokens to the
// receivers when ingest.require_token is on.
func TestIngestRequiresToken(t *testing.T) {
	cfg := testConfig(t, otlptest.NewSink(t), t.TempDir())
	cfg.Ingest.RequireToken = true
	cfg.Auth.Tokens = []auth.Token{
		{Name: "collector", SHA256: auth.HashToken("otlp-secret"), Scopes: []auth.Scope{auth.ScopeIngest}},
		{Name: "ci", SHA256: auth.HashToken("ci-secret"), Scopes: []auth.Scope{auth.ScopeGateCheck}},
	}
	d := startDaemon(t, cfg)
	defer stopDaemon(t, d)
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	for _, c := range []struct {
		token string
		want  int
	}{
		{"", http.StatusUnauthorized},
		{"ci-secret", http.StatusForbidden},
		{"otlp-secret", http.StatusOK},
	} {
		// An empty body is an ExportTraceServiceRequest without spans.
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, "http://"+d.HTTPAddr()+"/v1/traces", bytes.NewReader(nil))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/x-protobuf")
		if c.token != "" {
			req.Header.Set("Authorization", "Bearer "+c.token)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Errorf("token %q: status %d, want %d", c.token, resp.StatusCode, c.want)
		}
	}
}

// TestReloadRotatesIngestToken rotates a token file and reloads, as
// SIGHUP does.
func TestReloadRotatesIngestToken(t *testing.T) {
	file := filepath.Join(t.TempDir(), "otlp.token")
	if err := os.WriteFile(file, []byte("old-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t, otlptest.NewSink(t), t.TempDir())
	cfg.Ingest.RequireToken = true
	cfg.Auth.Tokens = []auth.Token{{Name: "collector", File: file, Scopes: []auth.Scope{auth.ScopeIngest}}}
	d := startDaemon(t, cfg)
	defer stopDaemon(t, d)
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	status := func(token string) int {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, "http://"+d.HTTPAddr()+"/v1/traces", bytes.NewReader(nil))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/x-protobuf")
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := status("old-secret"); got != http.StatusOK {
		t.Fatalf("old token before the rotation: %d, want 200", got)
	}
	if err := os.WriteFile(file, []byte("new-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := d.Reload(time.Now()); err != nil {
		t.Fatal(err)
	}
	if got, want := [2]int{status("old-secret"), status("new-secret")}, [2]int{http.StatusUnauthorized, http.StatusOK}; got != want {
		t.Errorf("after the rotation: old, new token = %d, want %d", got, want)
	}
}
