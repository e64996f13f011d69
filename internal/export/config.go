package export

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tailgate-sre/tailgate/internal/units"
)

// Protocols of the OTLP exporter.
const (
	ProtocolGRPC = "grpc"
	ProtocolHTTP = "http"
)

// Compression settings of the OTLP exporter.
const (
	CompressionGzip = "gzip"
	CompressionNone = "none"
)

// Defaults of the OTLP section. OTLPConfig is a pointer in Config (its
// presence selects the exporter), so these cannot be pre-filled by
// DefaultConfig: a zero field in OTLPConfig means its default.
const (
	DefaultProtocol    = ProtocolGRPC
	DefaultTimeout     = 10 * time.Second
	DefaultCompression = CompressionGzip
)

// Config is the export: section of the config file. At most one of OTLP and
// File is set; with neither, kept traces are discarded (the "none" exporter,
// which logs a warning at start).
type Config struct {
	// OTLP sends kept traces to a tracing backend over OTLP gRPC or HTTP.
	OTLP *OTLPConfig `yaml:"otlp"`
	// File appends kept traces to a file as OTLP JSON, one request per line.
	File *FileConfig `yaml:"file"`
	// Queue bounds what waits to be sent and shapes the batches.
	Queue QueueConfig `yaml:"queue"`
	// Retry shapes the exponential backoff on retryable errors.
	Retry RetryConfig `yaml:"retry"`
}

// OTLPConfig configures the OTLP exporter. Zero fields take their defaults.
type OTLPConfig struct {
	// Endpoint is where to send: host:port for either protocol, or a URL.
	// For http, a URL's path is used as is when it ends in /v1/traces and
	// gets /v1/traces appended otherwise; for grpc a URL may not have a path.
	// A URL's scheme (http or https) decides between plaintext and TLS.
	Endpoint string `yaml:"endpoint"`
	// Protocol is grpc (default) or http (OTLP/HTTP protobuf).
	Protocol string `yaml:"protocol"`
	// Headers are sent with every request (gRPC metadata or HTTP headers),
	// e.g. an API key of a hosted backend.
	Headers map[string]string `yaml:"headers"`
	// Timeout bounds one attempt of sending one batch (default 10s).
	Timeout units.Duration `yaml:"timeout"`
	// Compression is gzip (default, for both protocols) or none.
	Compression string `yaml:"compression"`
	// TLS configures transport security.
	TLS TLSConfig `yaml:"tls"`
}

// TLSConfig configures transport security of the OTLP exporter.
type TLSConfig struct {
	// Insecure sends in plaintext. When unset it is true for an http://
	// URL and for a loopback host (127.0.0.1, ::1, localhost), and false
	// otherwise (TLS verified against the system roots or CAFile).
	Insecure *bool `yaml:"insecure"`
	// CAFile is a PEM bundle of the CAs that verify the server.
	CAFile string `yaml:"ca_file"`
	// CertFile and KeyFile are a PEM client certificate and its key, for
	// mutual TLS; both or neither.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// FileConfig configures the file exporter.
type FileConfig struct {
	// Path of the file kept traces are appended to; parent directories are
	// created.
	Path string `yaml:"path"`
}

// QueueConfig bounds the export queue and shapes batches.
type QueueConfig struct {
	// MaxSpans bounds the spans held by the exporter: queued plus being
	// sent or retried. When it is reached, Export blocks, which pushes back
	// on the sampler and from there on ingest.
	MaxSpans int `yaml:"max_spans"`
	// MaxBatchSpans is the most spans merged into one outgoing request. A
	// single request handed to Export is never split, so a request larger
	// than this is sent alone.
	MaxBatchSpans int `yaml:"max_batch_spans"`
	// MaxBatchBytes is the most bytes (uncompressed) merged into one
	// outgoing request; gRPC servers refuse messages over 4MiB by default.
	// Like MaxBatchSpans it never splits a request.
	MaxBatchBytes units.Bytes `yaml:"max_batch_bytes"`
	// BatchTimeout is how long the oldest queued request waits for more to
	// fill its batch before the batch is sent anyway; 0 sends at once.
	BatchTimeout units.Duration `yaml:"batch_timeout"`
	// Senders is how many batches may be in flight at once (OTLP only; the
	// file exporter writes with one).
	Senders int `yaml:"senders"`
	// Persistent keeps the queue in files under storage.path/export-queue/
	// (OTLP only): a request is written there before Export returns and
	// removed only when the backend accepted it (or refused it for good),
	// so kept traces survive a crash, and a backend outage longer than
	// the retry budget, and are sent again after a restart (at least once).
	// MaxSpans then does not bound the queue; MaxBytes does.
	Persistent bool `yaml:"persistent"`
	// MaxBytes bounds the files of the persistent queue. When it is
	// reached, Export blocks (see MaxSpans); past 90% of it only requests
	// holding an error span are taken.
	MaxBytes units.Bytes `yaml:"max_bytes"`
	// FsyncInterval is how often the persistent queue's writes are
	// flushed to the disk (group commit); 0 fsyncs every request before
	// Export returns. A power loss may lose what was written since the
	// last fsync; a crash of the process alone loses nothing.
	FsyncInterval units.Duration `yaml:"fsync_interval"`
}

// RetryConfig shapes the exponential backoff on retryable errors.
type RetryConfig struct {
	// InitialInterval is the first wait; each later wait is 1.5 times the
	// previous one, with ±50% jitter.
	InitialInterval units.Duration `yaml:"initial_interval"`
	// MaxInterval caps one wait.
	MaxInterval units.Duration `yaml:"max_interval"`
	// MaxElapsed is how long a batch is retried before its spans are
	// counted as failed; 0 retries until shutdown.
	MaxElapsed units.Duration `yaml:"max_elapsed"`
}

// DefaultConfig returns the defaults: no exporter (set otlp or file), a
// queue of 200000 spans sent in batches of up to 8192 spans and 4MiB or
// every 200ms by two senders, and retries from 1s up to 30s apart for at most 5m.
// The persistent queue is off; when turned on it holds up to 1GiB and
// fsyncs every second.
func DefaultConfig() Config {
	return Config{
		Queue: QueueConfig{
			MaxSpans:      200_000,
			MaxBatchSpans: 8192,
			MaxBatchBytes: units.Bytes(4 << 20),
			BatchTimeout:  units.Duration(200 * time.Millisecond),
			Senders:       2,
			MaxBytes:      units.Bytes(1 << 30),
			FsyncInterval: units.Duration(time.Second),
		},
		Retry: RetryConfig{
			InitialInterval: units.Duration(time.Second),
			MaxInterval:     units.Duration(30 * time.Second),
			MaxElapsed:      units.Duration(5 * time.Minute),
		},
	}
}

// Validate reports every problem at once, each naming its key relative to
// export:, e.g. `otlp.protocol: must be grpc or http, got "udp"`.
func (c *Config) Validate() error {
	var errs []error
	add := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: "+format, append([]any{key}, args...)...))
	}
	if c.OTLP != nil && c.File != nil {
		add("file", "cannot be set together with otlp (choose one exporter)")
	}
	if o := c.OTLP; o != nil {
		errs = append(errs, o.validate()...)
	}
	if f := c.File; f != nil && strings.TrimSpace(f.Path) == "" {
		add("file.path", "must not be empty")
	}

	q := c.Queue
	if q.MaxSpans <= 0 {
		add("queue.max_spans", "must be positive, got %d", q.MaxSpans)
	}
	if q.MaxBatchSpans <= 0 {
		add("queue.max_batch_spans", "must be positive, got %d", q.MaxBatchSpans)
	} else if q.MaxSpans > 0 && q.MaxBatchSpans > q.MaxSpans {
		add("queue.max_batch_spans", "must not exceed queue.max_spans (%d), got %d", q.MaxSpans, q.MaxBatchSpans)
	}
	if q.MaxBatchBytes <= 0 {
		add("queue.max_batch_bytes", "must be positive, got %s", q.MaxBatchBytes)
	}
	if q.BatchTimeout < 0 {
		add("queue.batch_timeout", "must not be negative, got %s", q.BatchTimeout)
	}
	if q.Senders < 1 || q.Senders > maxSenders {
		add("queue.senders", "must be between 1 and %d, got %d", maxSenders, q.Senders)
	}

	if q.Persistent {
		if c.OTLP == nil {
			add("queue.persistent", "applies to the otlp exporter only")
		}
		if q.MaxBytes <= 0 {
			add("queue.max_bytes", "must be positive, got %s", q.MaxBytes)
		} else if q.MaxBatchBytes > 0 && q.MaxBytes < q.MaxBatchBytes {
			add("queue.max_bytes", "must not be less than queue.max_batch_bytes (%s), got %s", q.MaxBatchBytes, q.MaxBytes)
		}
		if q.FsyncInterval < 0 {
			add("queue.fsync_interval", "must not be negative (0 fsyncs every request), got %s", q.FsyncInterval)
		}
	}

	r := c.Retry
	if r.InitialInterval <= 0 {
		add("retry.initial_interval", "must be positive, got %s", r.InitialInterval)
	}
	if r.MaxInterval <= 0 {
		add("retry.max_interval", "must be positive, got %s", r.MaxInterval)
	} else if r.InitialInterval > 0 && r.MaxInterval < r.InitialInterval {
		add("retry.max_interval", "must not be less than retry.initial_interval (%s), got %s", r.InitialInterval, r.MaxInterval)
	}
	if r.MaxElapsed < 0 {
		add("retry.max_elapsed", "must not be negative (0 retries until shutdown), got %s", r.MaxElapsed)
	}
	return errors.Join(errs...)
}

const maxSenders = 64

func (o *OTLPConfig) validate() []error {
	var errs []error
	add := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("otlp.%s: "+format, append([]any{key}, args...)...))
	}
	proto := o.protocol()
	switch proto {
	case ProtocolGRPC, ProtocolHTTP:
	default:
		add("protocol", "must be grpc or http, got %q", o.Protocol)
	}
	var ep endpoint
	if strings.TrimSpace(o.Endpoint) == "" {
		add("endpoint", "must not be empty (e.g. 127.0.0.1:4317)")
	} else if e, err := parseEndpoint(o.Endpoint, proto); err != nil {
		add("endpoint", "%v", err)
	} else {
		ep = e
	}
	if o.Timeout < 0 {
		add("timeout", "must not be negative, got %s", o.Timeout)
	}
	switch o.Compression {
	case "", CompressionGzip, CompressionNone:
	default:
		add("compression", "must be gzip or none, got %q", o.Compression)
	}
	for _, k := range slices.Sorted(maps.Keys(o.Headers)) {
		v := o.Headers[k]
		if err := checkHeaderName(k, proto); err != nil {
			add("headers", "%v", err)
		}
		if strings.ContainsAny(v, "\r\n\x00") {
			add("headers."+k, "value must not contain line breaks or NUL")
		}
	}
	t := o.TLS
	if (t.CertFile == "") != (t.KeyFile == "") {
		add("tls", "cert_file and key_file must be set together")
	}
	if t.Insecure != nil {
		if *t.Insecure && (t.CAFile != "" || t.CertFile != "") {
			add("tls.insecure", "is true but ca_file, cert_file or key_file is set")
		}
		if ep.scheme == "http" && !*t.Insecure {
			add("tls.insecure", "is false but the endpoint is an http:// URL (use https://)")
		}
		if ep.scheme == "https" && *t.Insecure {
			add("tls.insecure", "is true but the endpoint is an https:// URL (use http://)")
		}
	} else if ep.scheme == "http" && (t.CAFile != "" || t.CertFile != "") {
		add("tls", "ca_file, cert_file or key_file is set but the endpoint is an http:// URL (use https://)")
	}
	return errs
}

func (o *OTLPConfig) protocol() string {
	if o.Protocol == "" {
		return DefaultProtocol
	}
	return o.Protocol
}

func (o *OTLPConfig) timeout() time.Duration {
	if o.Timeout == 0 {
		return DefaultTimeout
	}
	return o.Timeout.Std()
}

func (o *OTLPConfig) gzip() bool { return o.Compression != CompressionNone }

// endpoint is a parsed OTLPConfig.Endpoint.
type endpoint struct {
	scheme   string // "http", "https" or "" for host:port
	host     string // host without port or brackets
	hostPort string // host:port, or host alone for a URL without a port
	path     string // URL path, http only
}

// parseEndpoint reads host:port or a URL.
func parseEndpoint(s, proto string) (endpoint, error) {
	s = strings.TrimSpace(s)
	if !strings.Contains(s, "://") {
		host, port, err := net.SplitHostPort(s)
		if err != nil || host == "" || !validPort(port) {
			return endpoint{}, fmt.Errorf("must be host:port or an http(s):// URL, got %q", s)
		}
		return endpoint{host: host, hostPort: s}, nil
	}
	u, err := url.Parse(s)
	if err != nil {
		return endpoint{}, fmt.Errorf("invalid URL %q", s)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return endpoint{}, fmt.Errorf("URL scheme must be http or https, got %q", u.Scheme)
	}
	if u.Hostname() == "" {
		return endpoint{}, fmt.Errorf("URL %q has no host", s)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return endpoint{}, fmt.Errorf("URL %q must not have user info, query or fragment", s)
	}
	// Without a port the scheme's (80, 443) applies, as in a browser.
	if u.Port() != "" && !validPort(u.Port()) {
		return endpoint{}, fmt.Errorf("URL %q has an invalid port", s)
	}
	if proto == ProtocolGRPC && u.Path != "" && u.Path != "/" {
		return endpoint{}, fmt.Errorf("a grpc endpoint has no path, got %q", s)
	}
	return endpoint{scheme: u.Scheme, host: u.Hostname(), hostPort: u.Host, path: u.Path}, nil
}

func validPort(p string) bool {
	n, err := strconv.Atoi(p)
	return err == nil && n > 0 && n <= 65535
}

// plaintext decides between plaintext and TLS, per TLSConfig.Insecure.
func (o *OTLPConfig) plaintext(ep endpoint) bool {
	if o.TLS.Insecure != nil {
		return *o.TLS.Insecure
	}
	switch ep.scheme {
	case "http":
		return true
	case "https":
		return false
	}
	if o.TLS.CAFile != "" || o.TLS.CertFile != "" {
		return false
	}
	return isLoopback(ep.host)
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// traceURL returns the OTLP/HTTP traces URL of ep.
func (ep endpoint) traceURL(plaintext bool) string {
	scheme := "https"
	if plaintext {
		scheme = "http"
	}
	path := strings.TrimSuffix(ep.path, "/")
	if !strings.HasSuffix(path, "/v1/traces") {
		path += "/v1/traces"
	}
	return scheme + "://" + ep.hostPort + path
}

// checkHeaderName accepts an HTTP token (RFC 9110); for gRPC only the
// characters of a metadata key (letters, digits, '-', '_', '.'). Headers the
// exporter sets itself, and gRPC's reserved ones, are refused.
func checkHeaderName(s, proto string) error {
	if s == "" {
		return errors.New("empty header name")
	}
	lower := strings.ToLower(s)
	switch lower {
	case "content-type", "content-length", "content-encoding", "te", "host", "user-agent", "connection":
		return fmt.Errorf("header %q is set by the exporter", s)
	}
	if strings.HasPrefix(lower, "grpc-") {
		return fmt.Errorf("header %q is reserved by gRPC", s)
	}
	allowed := "!#$%&'*+-.^_`|~"
	if proto == ProtocolGRPC {
		allowed = "-_."
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte(allowed, c) >= 0:
		default:
			return fmt.Errorf("invalid header name %q", s)
		}
	}
	return nil
}
