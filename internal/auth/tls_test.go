package auth

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"log"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tailgate-sre/tailgate/internal/tlstest"
)

var now0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func TestServerConfigErrors(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.Issue(t, "test-ca", now0.Add(-time.Hour), now0.Add(24*time.Hour), nil, true, x509.ExtKeyUsageAny)
	caFile, _ := ca.Write(t, dir, "ca")
	good := tlstest.Issue(t, "api", now0.Add(-time.Hour), now0.Add(24*time.Hour), ca, false, x509.ExtKeyUsageServerAuth)
	goodCert, goodKey := good.Write(t, dir, "good")
	expired := tlstest.Issue(t, "old-api", now0.Add(-48*time.Hour), now0.Add(-time.Hour), ca, false, x509.ExtKeyUsageServerAuth)
	expCert, expKey := expired.Write(t, dir, "expired")
	future := tlstest.Issue(t, "new-api", now0.Add(time.Hour), now0.Add(48*time.Hour), ca, false, x509.ExtKeyUsageServerAuth)
	futCert, futKey := future.Write(t, dir, "future")
	notPEM := filepath.Join(dir, "garbage.pem")
	os.WriteFile(notPEM, []byte("hello"), 0o600)

	cases := []struct {
		name string
		cfg  TLSConfig
		want string // error substring; empty: success
	}{
		{"disabled", TLSConfig{}, ""},
		{"valid", TLSConfig{CertFile: goodCert, KeyFile: goodKey}, ""},
		{"valid mTLS", TLSConfig{CertFile: goodCert, KeyFile: goodKey, ClientCAFile: caFile, MinVersion: "1.3"}, ""},
		{"missing cert path", TLSConfig{CertFile: filepath.Join(dir, "nope.crt"), KeyFile: goodKey}, "tls: load cert_file"},
		{"missing key path", TLSConfig{CertFile: goodCert, KeyFile: filepath.Join(dir, "nope.key")}, "tls: load cert_file"},
		{"key of another cert", TLSConfig{CertFile: goodCert, KeyFile: expKey}, "tls: load cert_file"},
		{"expired", TLSConfig{CertFile: expCert, KeyFile: expKey}, "tls: certificate " + `"` + expCert + `"` + " (old-api) expired at"},
		{"not yet valid", TLSConfig{CertFile: futCert, KeyFile: futKey}, "is not valid before"},
		{"missing client CA", TLSConfig{CertFile: goodCert, KeyFile: goodKey, ClientCAFile: filepath.Join(dir, "nope.pem")}, "tls: read client_ca_file"},
		{"client CA not PEM", TLSConfig{CertFile: goodCert, KeyFile: goodKey, ClientCAFile: notPEM}, "holds no PEM certificate"},
		{"half configured", TLSConfig{CertFile: goodCert}, "set both cert_file and key_file"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := tc.cfg.ServerConfig(now0)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if tc.cfg.Enabled() != (cfg != nil) {
					t.Errorf("config %v for enabled=%v", cfg, tc.cfg.Enabled())
				}
				if tc.cfg.ClientCAFile != "" && (cfg.ClientAuth != tls.RequireAndVerifyClientCert || cfg.MinVersion != tls.VersionTLS13) {
					t.Errorf("mTLS config: auth %v min %x", cfg.ClientAuth, cfg.MinVersion)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

// TestMutualTLS serves HTTPS on loopback with a client CA and checks that
// only a client with a valid certificate from that CA gets through.
func TestMutualTLS(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	ca := tlstest.Issue(t, "test-ca", now.Add(-time.Hour), now.Add(time.Hour), nil, true, x509.ExtKeyUsageAny)
	caFile, _ := ca.Write(t, dir, "ca")
	srv := tlstest.Issue(t, "api", now.Add(-time.Hour), now.Add(time.Hour), ca, false, x509.ExtKeyUsageServerAuth)
	srvCert, srvKey := srv.Write(t, dir, "srv")
	client := tlstest.Issue(t, "ci", now.Add(-time.Hour), now.Add(time.Hour), ca, false, x509.ExtKeyUsageClientAuth)
	expiredClient := tlstest.Issue(t, "old-ci", now.Add(-3*time.Hour), now.Add(-2*time.Hour), ca, false, x509.ExtKeyUsageClientAuth)
	otherCA := tlstest.Issue(t, "other-ca", now.Add(-time.Hour), now.Add(time.Hour), nil, true, x509.ExtKeyUsageAny)
	stranger := tlstest.Issue(t, "stranger", now.Add(-time.Hour), now.Add(time.Hour), otherCA, false, x509.ExtKeyUsageClientAuth)

	cfg, err := TLSConfig{CertFile: srvCert, KeyFile: srvKey, ClientCAFile: caFile}.ServerConfig(now)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(r.TLS.PeerCertificates[0].Subject.CommonName))
	}), ErrorLog: log.New(io.Discard, "", 0)} // failed handshakes are the point
	done := make(chan struct{})
	go func() { hs.Serve(ln); close(done) }()
	defer func() { hs.Close(); <-done }()

	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	get := func(kp *tlstest.KeyPair) (string, error) {
		tc := &tls.Config{RootCAs: roots}
		if kp != nil {
			tc.Certificates = []tls.Certificate{kp.TLSCertificate()}
		}
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: tc}, Timeout: 5 * time.Second}
		defer c.CloseIdleConnections()
		resp, err := c.Get("https://" + ln.Addr().String() + "/")
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return string(b), err
	}
	if got, err := get(client); err != nil || got != "ci" {
		t.Errorf("valid client certificate: %q, %v", got, err)
	}
	for name, kp := range map[string]*tlstest.KeyPair{"no client certificate": nil, "expired client certificate": expiredClient, "certificate of another CA": stranger} {
		if _, err := get(kp); err == nil {
			t.Errorf("%s: request succeeded", name)
		}
	}
}
