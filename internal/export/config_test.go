package export

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/google/go-cmp/cmp"

	"github.com/tailgate-sre/tailgate/internal/units"
)

func TestDefaultConfigIsValid(t *testing.T) {
	cfg := DefaultConfig()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("DefaultConfig().Validate() = %v", err)
	}
	want := Config{
		Queue: QueueConfig{
			MaxSpans: 200000, MaxBatchSpans: 8192, MaxBatchBytes: units.Bytes(4 * 1024 * 1024),
			BatchTimeout: units.Duration(200 * time.Millisecond), Senders: 2,
			MaxBytes: units.Bytes(1024 * 1024 * 1024), FsyncInterval: units.Duration(time.Second),
		},
		Retry: RetryConfig{
			InitialInterval: units.Duration(time.Second),
			MaxInterval:     units.Duration(30 * time.Second),
			MaxElapsed:      units.Duration(5 * time.Minute),
		},
	}
	if diff := cmp.Diff(want, cfg); diff != "" {
		t.Errorf("DefaultConfig (-want +got):\n%s", diff)
	}
}

func ptr[T any](v T) *T { return &v }

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		modify func(*Config)
		want   []string // error lines; none for a valid config
	}{
		{"grpc host:port", func(c *Config) { c.OTLP = &OTLPConfig{Endpoint: "127.0.0.1:14317"} }, nil},
		{"http URL", func(c *Config) { c.OTLP = &OTLPConfig{Endpoint: "https://otlp.example.com/otlp", Protocol: "http"} }, nil},
		{"grpc URL", func(c *Config) { c.OTLP = &OTLPConfig{Endpoint: "http://collector:4317", Protocol: "grpc"} }, nil},
		{"file", func(c *Config) { c.File = &FileConfig{Path: "kept.jsonl"} }, nil},
		{"full otlp", func(c *Config) {
			c.OTLP = &OTLPConfig{
				Endpoint: "collector.internal:4317", Protocol: "grpc", Headers: map[string]string{"x-api-key": "k"},
				Timeout: units.Duration(5 * time.Second), Compression: "none",
				TLS: TLSConfig{Insecure: ptr(false), CAFile: "ca.pem", CertFile: "c.pem", KeyFile: "k.pem"},
			}
		}, nil},
		{"persistent queue", func(c *Config) {
			c.OTLP = &OTLPConfig{Endpoint: "127.0.0.1:4317"}
			c.Queue.Persistent = true
		}, nil},
		{
			"persistent queue without otlp, too small, negative fsync",
			func(c *Config) {
				c.File = &FileConfig{Path: "x"}
				c.Queue.Persistent = true
				c.Queue.MaxBytes = units.Bytes(1 << 20)
				c.Queue.FsyncInterval = units.Duration(-time.Second)
			},
			[]string{
				"queue.persistent: applies to the otlp exporter only",
				"queue.max_bytes: must not be less than queue.max_batch_bytes (4MiB), got 1MiB",
				"queue.fsync_interval: must not be negative (0 fsyncs every request), got -1s",
			},
		},
		{
			"persistent queue without max_bytes",
			func(c *Config) {
				c.OTLP = &OTLPConfig{Endpoint: "127.0.0.1:4317"}
				c.Queue.Persistent = true
				c.Queue.MaxBytes = 0
			},
			[]string{"queue.max_bytes: must be positive, got 0B"},
		},
		{
			"max_bytes is ignored without persistent",
			func(c *Config) { c.Queue.MaxBytes = 0 },
			nil,
		},
		{
			"both exporters",
			func(c *Config) {
				c.OTLP = &OTLPConfig{Endpoint: "127.0.0.1:4317"}
				c.File = &FileConfig{Path: "x"}
			},
			[]string{"file: cannot be set together with otlp (choose one exporter)"},
		},
		{
			"bad protocol",
			func(c *Config) { c.OTLP = &OTLPConfig{Endpoint: "127.0.0.1:4317", Protocol: "udp"} },
			[]string{`otlp.protocol: must be grpc or http, got "udp"`},
		},
		{
			"no endpoint",
			func(c *Config) { c.OTLP = &OTLPConfig{} },
			[]string{"otlp.endpoint: must not be empty (e.g. 127.0.0.1:4317)"},
		},
		{
			"endpoint without port",
			func(c *Config) { c.OTLP = &OTLPConfig{Endpoint: "collector"} },
			[]string{`otlp.endpoint: must be host:port or an http(s):// URL, got "collector"`},
		},
		{
			"endpoint with a bad port",
			func(c *Config) { c.OTLP = &OTLPConfig{Endpoint: "collector:99999"} },
			[]string{`otlp.endpoint: must be host:port or an http(s):// URL, got "collector:99999"`},
		},
		{
			"endpoint with another scheme",
			func(c *Config) { c.OTLP = &OTLPConfig{Endpoint: "ftp://collector:4317"} },
			[]string{`otlp.endpoint: URL scheme must be http or https, got "ftp"`},
		},
		{
			"grpc endpoint with a path",
			func(c *Config) { c.OTLP = &OTLPConfig{Endpoint: "http://collector:4317/v1/traces"} },
			[]string{`otlp.endpoint: a grpc endpoint has no path, got "http://collector:4317/v1/traces"`},
		},
		{
			"bad compression and timeout",
			func(c *Config) {
				c.OTLP = &OTLPConfig{Endpoint: "127.0.0.1:4317", Compression: "zstd", Timeout: units.Duration(-time.Second)}
			},
			[]string{
				"otlp.timeout: must not be negative, got -1s",
				`otlp.compression: must be gzip or none, got "zstd"`,
			},
		},
		{
			"bad headers",
			func(c *Config) {
				c.OTLP = &OTLPConfig{Endpoint: "127.0.0.1:4317", Headers: map[string]string{"X Key": "v"}}
			},
			[]string{`otlp.headers: invalid header name "X Key"`},
		},
		{
			"reserved header",
			func(c *Config) {
				c.OTLP = &OTLPConfig{Endpoint: "127.0.0.1:4317", Headers: map[string]string{"Content-Type": "text/plain"}}
			},
			[]string{`otlp.headers: header "Content-Type" is set by the exporter`},
		},
		{
			"header value with a line break",
			func(c *Config) {
				c.OTLP = &OTLPConfig{Endpoint: "127.0.0.1:4317", Headers: map[string]string{"x-key": "a\nb"}}
			},
			[]string{"otlp.headers.x-key: value must not contain line breaks or NUL"},
		},
		{
			"a header valid over http but not grpc",
			func(c *Config) {
				c.OTLP = &OTLPConfig{Endpoint: "127.0.0.1:4317", Headers: map[string]string{"x~key": "v"}}
			},
			[]string{`otlp.headers: invalid header name "x~key"`},
		},
		{
			"cert without key",
			func(c *Config) {
				c.OTLP = &OTLPConfig{Endpoint: "collector:4317", TLS: TLSConfig{CertFile: "c.pem"}}
			},
			[]string{"otlp.tls: cert_file and key_file must be set together"},
		},
		{
			"insecure with a CA",
			func(c *Config) {
				c.OTLP = &OTLPConfig{Endpoint: "collector:4317", TLS: TLSConfig{Insecure: ptr(true), CAFile: "ca.pem"}}
			},
			[]string{"otlp.tls.insecure: is true but ca_file, cert_file or key_file is set"},
		},
		{
			"insecure false with http://",
			func(c *Config) {
				c.OTLP = &OTLPConfig{Endpoint: "http://collector:4318", Protocol: "http", TLS: TLSConfig{Insecure: ptr(false)}}
			},
			[]string{"otlp.tls.insecure: is false but the endpoint is an http:// URL (use https://)"},
		},
		{
			"insecure true with https://",
			func(c *Config) {
				c.OTLP = &OTLPConfig{Endpoint: "https://collector", Protocol: "http", TLS: TLSConfig{Insecure: ptr(true)}}
			},
			[]string{"otlp.tls.insecure: is true but the endpoint is an https:// URL (use http://)"},
		},
		{
			"file without path",
			func(c *Config) { c.File = &FileConfig{Path: " "} },
			[]string{"file.path: must not be empty"},
		},
		{
			"queue and retry all wrong",
			func(c *Config) {
				c.Queue = QueueConfig{MaxSpans: 0, MaxBatchSpans: 0, BatchTimeout: units.Duration(-1), Senders: 0}
				c.Retry = RetryConfig{InitialInterval: 0, MaxInterval: 0, MaxElapsed: units.Duration(-time.Second)}
			},
			[]string{
				"queue.max_spans: must be positive, got 0",
				"queue.max_batch_spans: must be positive, got 0",
				"queue.max_batch_bytes: must be positive, got 0B",
				"queue.batch_timeout: must not be negative, got -1ns",
				"queue.senders: must be between 1 and 64, got 0",
				"retry.initial_interval: must be positive, got 0s",
				"retry.max_interval: must be positive, got 0s",
				"retry.max_elapsed: must not be negative (0 retries until shutdown), got -1s",
			},
		},
		{
			"batch larger than the queue, max below initial",
			func(c *Config) {
				c.Queue.MaxSpans = 1000
				c.Queue.MaxBatchSpans = 2000
				c.Retry.MaxInterval = units.Duration(500 * time.Millisecond)
			},
			[]string{
				"queue.max_batch_spans: must not exceed queue.max_spans (1000), got 2000",
				"retry.max_interval: must not be less than retry.initial_interval (1s), got 500ms",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			tt.modify(&cfg)
			var got []string
			if err := cfg.Validate(); err != nil {
				got = strings.Split(err.Error(), "\n")
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Validate (-want +got):\n%s", diff)
			}
		})
	}
}

func TestEndpoint(t *testing.T) {
	tests := []struct {
		endpoint  string
		protocol  string
		tls       TLSConfig
		plaintext bool
		target    string // gRPC target or HTTP URL
	}{
		{"127.0.0.1:4317", "grpc", TLSConfig{}, true, "127.0.0.1:4317"},
		{"[::1]:4317", "grpc", TLSConfig{}, true, "[::1]:4317"},
		{"localhost:4317", "grpc", TLSConfig{}, true, "localhost:4317"},
		{"collector:4317", "grpc", TLSConfig{}, false, "collector:4317"},
		{"collector:4317", "grpc", TLSConfig{Insecure: ptr(true)}, true, "collector:4317"},
		{"127.0.0.1:4317", "grpc", TLSConfig{CAFile: "ca.pem"}, false, "127.0.0.1:4317"},
		{"http://collector:4317", "grpc", TLSConfig{}, true, "collector:4317"},
		{"https://otlp.example.com", "grpc", TLSConfig{}, false, "otlp.example.com"},
		{"127.0.0.1:4318", "http", TLSConfig{}, true, "http://127.0.0.1:4318/v1/traces"},
		{"collector:4318", "http", TLSConfig{}, false, "https://collector:4318/v1/traces"},
		{"http://collector:4318", "http", TLSConfig{}, true, "http://collector:4318/v1/traces"},
		{"http://collector:4318/", "http", TLSConfig{}, true, "http://collector:4318/v1/traces"},
		{"https://otlp.example.com/otlp", "http", TLSConfig{}, false, "https://otlp.example.com/otlp/v1/traces"},
		{"https://otlp.example.com/v1/traces", "http", TLSConfig{}, false, "https://otlp.example.com/v1/traces"},
		{"http://[::1]:4318", "http", TLSConfig{}, true, "http://[::1]:4318/v1/traces"},
	}
	for _, tt := range tests {
		t.Run(tt.protocol+" "+tt.endpoint, func(t *testing.T) {
			o := &OTLPConfig{Endpoint: tt.endpoint, Protocol: tt.protocol, TLS: tt.tls}
			ep, err := parseEndpoint(o.Endpoint, o.protocol())
			if err != nil {
				t.Fatal(err)
			}
			plain := o.plaintext(ep)
			if plain != tt.plaintext {
				t.Errorf("plaintext = %v, want %v", plain, tt.plaintext)
			}
			target := ep.hostPort
			if tt.protocol == ProtocolHTTP {
				target = ep.traceURL(plain)
			}
			if target != tt.target {
				t.Errorf("target = %q, want %q", target, tt.target)
			}
		})
	}
}

func TestTLSLoad(t *testing.T) {
	dir := t.TempDir()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	certPEM := write("cert.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	keyPEM := write("key.pem", pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}))
	notPEM := write("junk.pem", []byte("not a certificate"))

	conf, err := TLSConfig{CAFile: certPEM, CertFile: certPEM, KeyFile: keyPEM}.load("collector")
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	if conf.RootCAs == nil || len(conf.Certificates) != 1 || conf.ServerName != "collector" || conf.MinVersion != tls.VersionTLS12 {
		t.Errorf("load gave %+v", conf)
	}
	for _, bad := range []TLSConfig{
		{CAFile: notPEM},
		{CAFile: filepath.Join(dir, "missing.pem")},
		{CertFile: certPEM, KeyFile: notPEM},
	} {
		if _, err := bad.load("collector"); err == nil {
			t.Errorf("load(%+v) succeeded, want an error", bad)
		}
	}
}

// TestDecodeYAML decodes the section as the config package does: strictly,
// over DefaultConfig.
func TestDecodeYAML(t *testing.T) {
	const doc = `
otlp:
  endpoint: https://otlp.example.com
  protocol: http
  headers: {x-api-key: secret}
  timeout: 5s
  compression: none
  tls: {insecure: false, ca_file: ca.pem}
queue:
  max_spans: 50000
  max_batch_bytes: 2MiB
  persistent: true
  max_bytes: 256MiB
  fsync_interval: 250ms
retry:
  max_elapsed: 0s
`
	cfg := DefaultConfig()
	if err := yaml.UnmarshalWithOptions([]byte(doc), &cfg, yaml.Strict()); err != nil {
		t.Fatal(err)
	}
	want := DefaultConfig()
	want.OTLP = &OTLPConfig{
		Endpoint: "https://otlp.example.com", Protocol: "http", Headers: map[string]string{"x-api-key": "secret"},
		Timeout: units.Duration(5 * time.Second), Compression: "none",
		TLS: TLSConfig{Insecure: ptr(false), CAFile: "ca.pem"},
	}
	want.Queue.MaxSpans = 50000
	want.Queue.MaxBatchBytes = units.Bytes(2 << 20)
	want.Queue.Persistent = true
	want.Queue.MaxBytes = units.Bytes(256 << 20)
	want.Queue.FsyncInterval = units.Duration(250 * time.Millisecond)
	want.Retry.MaxElapsed = 0
	if diff := cmp.Diff(want, cfg); diff != "" {
		t.Errorf("decoded (-want +got):\n%s", diff)
	}
	if err := cfg.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}

	// A file section alone leaves otlp unset: defaults never pre-select
	// an exporter.
	cfg = DefaultConfig()
	if err := yaml.UnmarshalWithOptions([]byte("file: {path: kept.jsonl}\n"), &cfg, yaml.Strict()); err != nil {
		t.Fatal(err)
	}
	if cfg.OTLP != nil || cfg.File == nil || cfg.Validate() != nil {
		t.Errorf("file-only config: otlp %v, file %v, validate %v", cfg.OTLP, cfg.File, cfg.Validate())
	}

	cfg = DefaultConfig()
	if err := yaml.UnmarshalWithOptions([]byte("otlp: {endpoint: a:1, bogus: 1}\n"), &cfg, yaml.Strict()); err == nil {
		t.Error("unknown key accepted")
	}
}
