package ingest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
)

// writeCert writes a self-signed certificate for 127.0.0.1 and returns the
// file names and a pool trusting it.
func writeCert(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "tailgate test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
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
