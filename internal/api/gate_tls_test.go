package api

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"log"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tailgate-sre/tailgate/internal/auth"
	"github.com/tailgate-sre/tailgate/internal/gate"
	"github.com/tailgate-sre/tailgate/internal/tlstest"
)

// TestGateEndpointsOverMutualTLS serves the API the way the daemon will
// (auth.TLSConfig.ServerConfig on the listener) and calls every gate
// endpoint: without a client certificate the handshake fails, with one the
// bearer token still decides. Bad certificate paths and an expired
// certificate never get a listener.
func TestGateEndpointsOverMutualTLS(t *testing.T) {
	dir := t.TempDir()
	later := time.Now().Add(time.Hour)
	ca := tlstest.Issue(t, "ca", time.Now().Add(-2*time.Hour), later, nil, true, x509.ExtKeyUsageAny)
	caFile, _ := ca.Write(t, dir, "ca")
	srvCert, srvKey := tlstest.Issue(t, "tailgate", time.Now().Add(-2*time.Hour), later, ca, false, x509.ExtKeyUsageServerAuth).Write(t, dir, "srv")
	expCert, expKey := tlstest.Issue(t, "tailgate-old", time.Now().Add(-2*time.Hour), time.Now().Add(-time.Hour), ca, false, x509.ExtKeyUsageServerAuth).Write(t, dir, "old")
	client := tlstest.Issue(t, "ci", time.Now().Add(-2*time.Hour), later, ca, false, x509.ExtKeyUsageClientAuth)

	for name, bad := range map[string]auth.TLSConfig{
		"missing cert file": {CertFile: filepath.Join(dir, "missing.crt"), KeyFile: srvKey},
		"missing key file":  {CertFile: srvCert, KeyFile: filepath.Join(dir, "missing.key")},
		"missing client CA": {CertFile: srvCert, KeyFile: srvKey, ClientCAFile: filepath.Join(dir, "missing-ca.pem")},
		"expired cert":      {CertFile: expCert, KeyFile: expKey},
	} {
		if cfg, err := bad.ServerConfig(time.Now()); err == nil || cfg != nil {
			t.Errorf("%s: got a TLS config (%v)", name, err)
		}
	}

	cfg, err := auth.TLSConfig{CertFile: srvCert, KeyFile: srvKey, ClientCAFile: caFile}.ServerConfig(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	e := newGateEnv(t, auth.Config{Tokens: testTokens()}) // builds the handler; its plain listener is unused here
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: e.srv.Config.Handler, ErrorLog: log.New(io.Discard, "", 0)}
	done := make(chan struct{})
	go func() { hs.Serve(ln); close(done) }()
	defer func() { hs.Close(); <-done }()

	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	withCert := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots,
		Certificates: []tls.Certificate{client.TLSCertificate()}}}}
	noCert := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	defer withCert.CloseIdleConnections()
	defer noCert.CloseIdleConnections()

	o, _ := e.g.CreateOverride(t.Context(), gate.OverrideRequest{Service: "checkout", ChangeClasses: []gate.ChangeClass{gate.Config}, Reason: "r", ApprovedBy: "a", ExpiresAt: gt0.Add(time.Hour)})
	call := func(c *http.Client, ep endpoint, token string) (int, error) {
		var body io.Reader
		if ep.body != "" {
			body = strings.NewReader(ep.body)
		}
		req, _ := http.NewRequestWithContext(t.Context(), ep.method, "https://"+ln.Addr().String()+ep.path, body)
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := c.Do(req)
		if err != nil {
			return 0, err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	for _, ep := range gateEndpoints(o.ID) {
		if _, err := call(noCert, ep, adminToken); err == nil {
			t.Errorf("%s %s: reached without a client certificate", ep.method, ep.path)
		}
		if st, err := call(withCert, ep, ""); err != nil || st != http.StatusUnauthorized {
			t.Errorf("%s %s with a client certificate, no token: %d %v", ep.method, ep.path, st, err)
		}
		if st, err := call(withCert, ep, rightScope(ep.scope)); err != nil || st != ep.ok {
			t.Errorf("%s %s with certificate and token: %d %v", ep.method, ep.path, st, err)
		}
	}
}
