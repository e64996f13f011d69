package auth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var now0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

type keyPair struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	der  []byte
}

// issue makes a certificate valid over [from, to), signed by parent (self
// signed when nil).
func issue(t *testing.T, cn string, from, to time.Time, parent *keyPair, isCA bool, usage x509.ExtKeyUsage) *keyPair {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             from,
		NotAfter:              to,
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{usage},
		BasicConstraintsValid: true,
		IsCA:                  isCA,
	}
	signer, signerKey := tmpl, key
	if parent != nil {
		signer, signerKey = parent.cert, parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, &key.PublicKey, signerKey)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return &keyPair{cert: c, key: key, der: der}
}

func (k *keyPair) write(t *testing.T, dir, name string) (certFile, keyFile string) {
	t.Helper()
	certFile, keyFile = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	kb, _ := x509.MarshalECPrivateKey(k.key)
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: k.der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	return certFile, keyFile
}

func TestServerConfigErrors(t *testing.T) {
	dir := t.TempDir()
	ca := issue(t, "test-ca", now0.Add(-time.Hour), now0.Add(24*time.Hour), nil, true, x509.ExtKeyUsageAny)
	caFile, _ := ca.write(t, dir, "ca")
	good := issue(t, "api", now0.Add(-time.Hour), now0.Add(24*time.Hour), ca, false, x509.ExtKeyUsageServerAuth)
	goodCert, goodKey := good.write(t, dir, "good")
	expired := issue(t, "old-api", now0.Add(-48*time.Hour), now0.Add(-time.Hour), ca, false, x509.ExtKeyUsageServerAuth)
	expCert, expKey := expired.write(t, dir, "expired")
	future := issue(t, "new-api", now0.Add(time.Hour), now0.Add(48*time.Hour), ca, false, x509.ExtKeyUsageServerAuth)
	futCert, futKey := future.write(t, dir, "future")
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
	ca := issue(t, "test-ca", now.Add(-time.Hour), now.Add(time.Hour), nil, true, x509.ExtKeyUsageAny)
	caFile, _ := ca.write(t, dir, "ca")
	srv := issue(t, "api", now.Add(-time.Hour), now.Add(time.Hour), ca, false, x509.ExtKeyUsageServerAuth)
	srvCert, srvKey := srv.write(t, dir, "srv")
	client := issue(t, "ci", now.Add(-time.Hour), now.Add(time.Hour), ca, false, x509.ExtKeyUsageClientAuth)
	expiredClient := issue(t, "old-ci", now.Add(-3*time.Hour), now.Add(-2*time.Hour), ca, false, x509.ExtKeyUsageClientAuth)
	otherCA := issue(t, "other-ca", now.Add(-time.Hour), now.Add(time.Hour), nil, true, x509.ExtKeyUsageAny)
	stranger := issue(t, "stranger", now.Add(-time.Hour), now.Add(time.Hour), otherCA, false, x509.ExtKeyUsageClientAuth)

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
	roots.AddCert(ca.cert)
	get := func(kp *keyPair) (string, error) {
		tc := &tls.Config{RootCAs: roots}
		if kp != nil {
			tc.Certificates = []tls.Certificate{{Certificate: [][]byte{kp.der}, PrivateKey: kp.key}}
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
	for name, kp := range map[string]*keyPair{"no client certificate": nil, "expired client certificate": expiredClient, "certificate of another CA": stranger} {
		if _, err := get(kp); err == nil {
			t.Errorf("%s: request succeeded", name)
		}
	}
}
