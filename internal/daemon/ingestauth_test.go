package daemon

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tailgate-sre/tailgate/internal/auth"
	"github.com/tailgate-sre/tailgate/internal/otlptest"
	"github.com/tailgate-sre/tailgate/internal/tlstest"
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
	status := func(token string) int { return otlptest.HTTPStatus(t, client, d.HTTPAddr(), token) }
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

// TestReloadRotatesAPICertificate rotates the API's certificate and
// reloads: new connections get the new one.
func TestReloadRotatesAPICertificate(t *testing.T) {
	from, to := time.Now().Add(-time.Hour), time.Now().Add(time.Hour)
	oldCA := tlstest.Issue(t, "old CA", from, to, nil, true, x509.ExtKeyUsageAny)
	newCA := tlstest.Issue(t, "new CA", from, to, nil, true, x509.ExtKeyUsageAny)
	dir := t.TempDir()
	certFile, keyFile := tlstest.Issue(t, "api", from, to, oldCA, false, x509.ExtKeyUsageServerAuth).Write(t, dir, "api")
	cfg := testConfig(t, otlptest.NewSink(t), t.TempDir())
	cfg.Auth.TLS.CertFile, cfg.Auth.TLS.KeyFile = certFile, keyFile
	d := startDaemon(t, cfg)
	defer stopDaemon(t, d)
	get := func(roots *x509.CertPool) error {
		t.Helper()
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}}
		defer tr.CloseIdleConnections()
		resp, err := (&http.Client{Transport: tr}).Get("https://" + d.APIAddr() + "/healthz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		return nil
	}
	if err := get(oldCA.Pool()); err != nil {
		t.Fatalf("before the rotation: %v", err)
	}
	tlstest.Issue(t, "api", from, to, newCA, false, x509.ExtKeyUsageServerAuth).Write(t, dir, "api")
	if err := d.Reload(time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := get(newCA.Pool()); err != nil {
		t.Errorf("after the rotation, trusting the new CA: %v", err)
	}
	if err := get(oldCA.Pool()); err == nil {
		t.Error("after the rotation, the old certificate is still served")
	}
}
