package ingest

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/tailgate-sre/tailgate/internal/tlstest"
)

// writeCert writes a self-signed certificate for 127.0.0.1 and returns the
// file names and a pool trusting it.
func writeCert(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	kp := tlstest.Issue(t, "tailgate test", time.Now().Add(-time.Hour), time.Now().Add(time.Hour), nil, false, x509.ExtKeyUsageServerAuth)
	certFile, keyFile = kp.Write(t, t.TempDir(), "cert")
	return certFile, keyFile, kp.Pool()
}

func TestTLS(t *testing.T) {
	certFile, keyFile, pool := writeCert(t)
	cfg := testConfig()
	cfg.TLS = TLSConfig{CertFile: certFile, KeyFile: keyFile}
	rec := &recorder{}
	r, _ := startReceiver(t, cfg, rec)
	clientTLS := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}

	cc := dialRaw(t, r.GRPCAddr(), grpc.WithTransportCredentials(credentials.NewTLS(clientTLS)))
	if _, err := export(t.Context(), cc, validRequest()); err != nil {
		t.Fatalf("gRPC over TLS: %v", err)
	}

	tr := &http.Transport{TLSClientConfig: clientTLS}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequest(http.MethodPost, "https://"+r.HTTPAddr()+tracesPath, bytes.NewReader(validRequest()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentTypeProtobuf)
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatalf("HTTP over TLS: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("HTTP over TLS: status %d", resp.StatusCode)
	}

	if diff := cmp.Diff(append(validSpans(), validSpans()...), rec.take()); diff != "" {
		t.Errorf("spans over TLS (-want +got):\n%s", diff)
	}
}

func TestTLSMissingFiles(t *testing.T) {
	cfg := testConfig()
	cfg.TLS = TLSConfig{CertFile: filepath.Join(t.TempDir(), "none.pem"), KeyFile: filepath.Join(t.TempDir(), "none.key")}
	_, err := New(cfg, Settings{Consumer: &recorder{}})
	if err == nil || !strings.Contains(err.Error(), "load tls certificate") {
		t.Errorf("New with missing certificate files = %v, want a load error", err)
	}
}
