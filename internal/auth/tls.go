package auth

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"time"
)

// TLSConfig serves the API over TLS. Setting ClientCAFile requires every
// client to present a certificate signed by that CA (mTLS); bearer tokens
// still decide the scopes.
type TLSConfig struct {
	CertFile     string `yaml:"cert_file"`
	KeyFile      string `yaml:"key_file"`
	ClientCAFile string `yaml:"client_ca_file"`
	// MinVersion is "1.2" (default) or "1.3".
	MinVersion string `yaml:"min_version"`
}

// Enabled reports whether TLS is configured.
func (c TLSConfig) Enabled() bool { return c.CertFile != "" || c.KeyFile != "" }

func (c TLSConfig) validate() []error {
	var errs []error
	if (c.CertFile == "") != (c.KeyFile == "") {
		errs = append(errs, errors.New("tls: set both cert_file and key_file, or neither"))
	}
	if c.ClientCAFile != "" && !c.Enabled() {
		errs = append(errs, errors.New("tls.client_ca_file: needs cert_file and key_file (mTLS is on top of TLS)"))
	}
	switch c.MinVersion {
	case "", "1.2", "1.3":
	default:
		errs = append(errs, fmt.Errorf("tls.min_version: must be 1.2 or 1.3, got %q", c.MinVersion))
	}
	return errs
}

// ServerConfig loads the certificate, key and client CA and returns the
// listener's TLS configuration, or nil when TLS is not configured. A
// certificate that has expired or is not yet valid is an error: better
// to refuse to start than to serve a handshake every client rejects.
func (c TLSConfig) ServerConfig(now time.Time) (*tls.Config, error) {
	if !c.Enabled() {
		return nil, nil
	}
	if errs := c.validate(); len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("tls: load cert_file %q and key_file %q: %w", c.CertFile, c.KeyFile, err)
	}
	leaf := cert.Leaf
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, fmt.Errorf("tls: parse cert_file %q: %w", c.CertFile, err)
		}
	}
	switch {
	case now.After(leaf.NotAfter):
		return nil, fmt.Errorf("tls: certificate %q (%s) expired at %s", c.CertFile, leaf.Subject.CommonName, leaf.NotAfter.UTC().Format(time.RFC3339))
	case now.Before(leaf.NotBefore):
		return nil, fmt.Errorf("tls: certificate %q (%s) is not valid before %s", c.CertFile, leaf.Subject.CommonName, leaf.NotBefore.UTC().Format(time.RFC3339))
	}
	cfg := &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   tls.VersionTLS12,
	}
	if c.MinVersion == "1.3" {
		cfg.MinVersion = tls.VersionTLS13
	}
	if c.ClientCAFile != "" {
		pem, err := os.ReadFile(c.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("tls: read client_ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls: client_ca_file %q holds no PEM certificate", c.ClientCAFile)
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}

// ReloadableTLS serves the TLS files of a TLSConfig and reads them again
// on Reload, so certificates rotate without a restart. It is safe for
// concurrent use.
type ReloadableTLS struct {
	cfg TLSConfig
	cur atomic.Pointer[tls.Config]
}

// NewReloadableTLS loads c's files as ServerConfig does, valid at now. It
// returns nil when TLS is not configured.
func NewReloadableTLS(c TLSConfig, now time.Time) (*ReloadableTLS, error) {
	if !c.Enabled() {
		return nil, nil
	}
	r := &ReloadableTLS{cfg: c}
	if err := r.Reload(now); err != nil {
		return nil, err
	}
	return r, nil
}

// Reload reads the certificate, key and client CA again; later
// handshakes use them, connections already open keep theirs. On an error
// (a file missing or broken, a certificate not valid at now) the current
// files stay in use.
func (r *ReloadableTLS) Reload(now time.Time) error {
	if r == nil {
		return nil
	}
	tc, err := r.cfg.ServerConfig(now)
	if err != nil {
		return err
	}
	r.cur.Store(tc)
	return nil
}

// ServerConfig returns a listener's TLS configuration offering protos
// (ALPN; none for plain HTTP/1.1), whose handshakes use the files loaded
// last.
func (r *ReloadableTLS) ServerConfig(protos ...string) *tls.Config {
	return &tls.Config{
		MinVersion: r.cur.Load().MinVersion,
		NextProtos: protos,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			c := r.cur.Load().Clone()
			c.NextProtos = protos
			return c, nil
		},
	}
}
