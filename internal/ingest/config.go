package ingest

import (
	"errors"
	"fmt"
	"math"
	"net"
	"strconv"
	"strings"

	"github.com/tailgate-sre/tailgate/internal/ingest/kafka"
	"github.com/tailgate-sre/tailgate/internal/units"
)

// Config is the ingest: section of the config file.
type Config struct {
	// OTLPGRPC is the host:port the OTLP/gRPC receiver listens on; empty
	// disables it.
	OTLPGRPC string `yaml:"otlp_grpc"`
	// OTLPHTTP is the host:port the OTLP/HTTP receiver listens on; empty
	// disables it.
	OTLPHTTP string `yaml:"otlp_http"`
	// MaxMessageSize bounds one request, both as received and after
	// decompression.
	MaxMessageSize units.Bytes `yaml:"max_message_size"`
	// MaxAttributesPerSpan rejects (as a partial success) a span with more
	// attributes; 0 means no limit.
	MaxAttributesPerSpan int `yaml:"max_attributes_per_span"`
	// MaxSpanSize rejects (as a partial success) a span whose encoding is
	// larger; 0 means no limit.
	MaxSpanSize units.Bytes `yaml:"max_span_size"`
	// MaxSpansPerRequest rejects whole (InvalidArgument / HTTP 400) a
	// request holding more span messages, valid or not, before their
	// bookkeeping is allocated; 0 means no limit.
	MaxSpansPerRequest int `yaml:"max_spans_per_request"`
	// MaxConcurrentRequests bounds the requests being read, decoded or
	// consumed at once, per protocol; beyond it a request gets backpressure
	// (RESOURCE_EXHAUSTED / HTTP 429).
	MaxConcurrentRequests int `yaml:"max_concurrent_requests"`
	// MaxConcurrentJSONRequests bounds the OTLP/JSON requests being read or
	// decoded at once, within MaxConcurrentRequests: decoding JSON costs
	// several times the memory of protobuf. Beyond it a JSON request gets
	// backpressure (HTTP 429); protobuf requests are not affected.
	MaxConcurrentJSONRequests int `yaml:"max_concurrent_json_requests"`
	// GRPCWindow is the OTLP/gRPC receiver's HTTP/2 flow-control window,
	// per stream and per connection: what a client may send before the
	// receiver acknowledges it, and so what one connection can make the
	// receiver buffer. A fixed window replaces grpc-go's estimate from
	// pings, which on a fast network keeps it at 64KiB and acknowledges
	// every 16KiB frame.
	GRPCWindow units.Bytes `yaml:"grpc_window"`
	// TLS, when its files are set, serves both protocols over TLS.
	TLS TLSConfig `yaml:"tls"`
	// RequireToken makes both receivers require "Authorization: Bearer
	// <token>" (gRPC metadata authorization) of a token in auth.tokens
	// with the ingest scope: a missing or unknown token is refused with
	// UNAUTHENTICATED / 401, a token without the scope with
	// PERMISSION_DENIED / 403. Default false: anyone who can reach the
	// receivers may send spans.
	RequireToken bool `yaml:"require_token"`
	// Kafka, when set, also consumes OTLP requests from a Kafka topic
	// (docs/kafka.md).
	Kafka *kafka.Config `yaml:"kafka"`
}

// TLSConfig names a PEM certificate and key. Both empty means plain text.
type TLSConfig struct {
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ClientCAFile, when set, makes both receivers require a client
	// certificate signed by this PEM CA (mTLS); the handshake of a client
	// without one fails. Needs cert_file and key_file.
	ClientCAFile string `yaml:"client_ca_file"`
}

// Enabled reports whether TLS is configured.
func (t TLSConfig) Enabled() bool { return t.CertFile != "" || t.KeyFile != "" }

// maxMessageSizeLimit is the largest max_message_size: a gRPC message's
// length prefix is 32 bits.
const maxMessageSizeLimit = math.MaxUint32 >> 1

// The bounds of grpc_window: grpc-go ignores a window under 64KiB, and its
// own estimate never grows one past 16MiB.
const (
	minGRPCWindow = 64 << 10
	maxGRPCWindow = 16 << 20
)

// DefaultConfig returns the defaults of DESIGN.md.
func DefaultConfig() Config {
	return Config{
		OTLPGRPC:             "127.0.0.1:4317",
		OTLPHTTP:             "127.0.0.1:4318",
		MaxMessageSize:       16 << 20,
		MaxAttributesPerSpan: 128,
		MaxSpanSize:          1 << 20,
		// 12x the largest batch the Collector's batch processor sends by
		// default (8192); 16MiB of empty spans would be 8M of them.
		MaxSpansPerRequest:    100_000,
		MaxConcurrentRequests: 64,
		// 4 bodies of 16MiB decode in well under 1GiB.
		MaxConcurrentJSONRequests: 4,
		GRPCWindow:                1 << 20,
	}
}

// Validate reports every problem, each naming its key relative to ingest:.
func (c *Config) Validate() error {
	var errs []error
	if err := validateAddr(c.OTLPGRPC); err != nil {
		errs = append(errs, fmt.Errorf("otlp_grpc: %w", err))
	}
	if err := validateAddr(c.OTLPHTTP); err != nil {
		errs = append(errs, fmt.Errorf("otlp_http: %w", err))
	}
	if c.OTLPGRPC != "" && c.OTLPGRPC == c.OTLPHTTP && !strings.HasSuffix(c.OTLPGRPC, ":0") {
		errs = append(errs, fmt.Errorf("otlp_http: must differ from otlp_grpc, both are %q", c.OTLPHTTP))
	}
	if c.MaxMessageSize <= 0 || c.MaxMessageSize > maxMessageSizeLimit {
		errs = append(errs, fmt.Errorf("max_message_size: must be between 1B and %s, got %s",
			units.Bytes(maxMessageSizeLimit), c.MaxMessageSize))
	}
	if c.MaxAttributesPerSpan < 0 {
		errs = append(errs, fmt.Errorf("max_attributes_per_span: must be 0 (no limit) or more, got %d", c.MaxAttributesPerSpan))
	}
	if c.MaxSpanSize < 0 || c.MaxSpanSize > maxMessageSizeLimit {
		errs = append(errs, fmt.Errorf("max_span_size: must be between 0 (no limit) and %s, got %s",
			units.Bytes(maxMessageSizeLimit), c.MaxSpanSize))
	}
	if c.MaxSpansPerRequest < 0 {
		errs = append(errs, fmt.Errorf("max_spans_per_request: must be 0 (no limit) or more, got %d", c.MaxSpansPerRequest))
	}
	if c.MaxConcurrentRequests <= 0 {
		errs = append(errs, fmt.Errorf("max_concurrent_requests: must be at least 1, got %d", c.MaxConcurrentRequests))
	}
	if c.MaxConcurrentJSONRequests <= 0 {
		errs = append(errs, fmt.Errorf("max_concurrent_json_requests: must be at least 1, got %d", c.MaxConcurrentJSONRequests))
	}
	if c.GRPCWindow < minGRPCWindow || c.GRPCWindow > maxGRPCWindow {
		errs = append(errs, fmt.Errorf("grpc_window: must be between %s and %s, got %s",
			units.Bytes(minGRPCWindow), units.Bytes(maxGRPCWindow), c.GRPCWindow))
	}
	if c.TLS.Enabled() {
		if c.TLS.CertFile == "" {
			errs = append(errs, errors.New("tls.cert_file: required when tls.key_file is set"))
		}
		if c.TLS.KeyFile == "" {
			errs = append(errs, errors.New("tls.key_file: required when tls.cert_file is set"))
		}
	} else if c.TLS.ClientCAFile != "" {
		errs = append(errs, errors.New("tls.client_ca_file: needs tls.cert_file and tls.key_file (mTLS is on top of TLS)"))
	}
	if c.Kafka != nil {
		errs = append(errs, c.Kafka.Validate())
	}
	return errors.Join(errs...)
}

// validateAddr accepts "" (disabled) or host:port with a numeric port
// (0 picks a free port).
func validateAddr(addr string) error {
	if addr == "" {
		return nil
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("must be host:port, got %q", addr)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Errorf("port must be a number from 0 to 65535, got %q", port)
	}
	return nil
}
