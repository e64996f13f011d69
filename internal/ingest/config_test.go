package ingest

import (
	"strings"
	"testing"

	"github.com/goccy/go-yaml"
	"github.com/google/go-cmp/cmp"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name   string
		modify func(*Config)
		want   []string // one line per problem; nil for valid
	}{
		{name: "defaults", modify: func(*Config) {}},
		{name: "disabled protocols", modify: func(c *Config) { c.OTLPGRPC, c.OTLPHTTP = "", "" }},
		{name: "free ports", modify: func(c *Config) { c.OTLPGRPC, c.OTLPHTTP = "127.0.0.1:0", "127.0.0.1:0" }},
		{name: "all interfaces and IPv6", modify: func(c *Config) { c.OTLPGRPC, c.OTLPHTTP = ":4317", "[::1]:4318" }},
		{name: "no limits on spans", modify: func(c *Config) { c.MaxAttributesPerSpan, c.MaxSpanSize = 0, 0 }},
		{name: "tls", modify: func(c *Config) { c.TLS = TLSConfig{CertFile: "c.pem", KeyFile: "k.pem"} }},
		{
			name:   "address without port",
			modify: func(c *Config) { c.OTLPGRPC = "localhost" },
			want:   []string{`otlp_grpc: must be host:port, got "localhost"`},
		},
		{
			name:   "bad ports",
			modify: func(c *Config) { c.OTLPGRPC, c.OTLPHTTP = "127.0.0.1:grpc", "127.0.0.1:70000" },
			want: []string{
				`otlp_grpc: port must be a number from 0 to 65535, got "grpc"`,
				`otlp_http: port must be a number from 0 to 65535, got "70000"`,
			},
		},
		{
			name:   "same address twice",
			modify: func(c *Config) { c.OTLPHTTP = c.OTLPGRPC },
			want:   []string{`otlp_http: must differ from otlp_grpc, both are "127.0.0.1:4317"`},
		},
		{
			name: "every number wrong",
			modify: func(c *Config) {
				c.MaxMessageSize, c.MaxAttributesPerSpan, c.MaxSpanSize, c.MaxConcurrentRequests = 0, -1, -5, 0
				c.MaxConcurrentJSONRequests, c.GRPCWindow = 0, 1000
			},
			want: []string{
				"max_message_size: must be between 1B and 2147483647B, got 0B",
				"max_attributes_per_span: must be 0 (no limit) or more, got -1",
				"max_span_size: must be between 0 (no limit) and 2147483647B, got -5B",
				"max_concurrent_requests: must be at least 1, got 0",
				"max_concurrent_json_requests: must be at least 1, got 0",
				"grpc_window: must be between 64KiB and 16MiB, got 1000B",
			},
		},
		{
			name:   "message size beyond gRPC framing",
			modify: func(c *Config) { c.MaxMessageSize = 2 << 30 },
			want:   []string{"max_message_size: must be between 1B and 2147483647B, got 2GiB"},
		},
		{
			name:   "negative span limit",
			modify: func(c *Config) { c.MaxSpansPerRequest = -1 },
			want:   []string{"max_spans_per_request: must be 0 (no limit) or more, got -1"},
		},
		{
			name:   "tls key without certificate",
			modify: func(c *Config) { c.TLS.KeyFile = "k.pem" },
			want:   []string{"tls.cert_file: required when tls.key_file is set"},
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

// TestConfigYAML decodes the section the way the config package does:
// defaults first, then a strict decode over them.
func TestConfigYAML(t *testing.T) {
	src := `
otlp_grpc: 0.0.0.0:4317
otlp_http: ""
max_message_size: 32MiB
max_attributes_per_span: 64
max_span_size: 512KiB
max_spans_per_request: 20000
max_concurrent_requests: 8
max_concurrent_json_requests: 2
grpc_window: 4MiB
tls: {cert_file: /etc/tailgate/cert.pem, key_file: /etc/tailgate/key.pem}
`
	cfg := DefaultConfig()
	if err := yaml.UnmarshalWithOptions([]byte(src), &cfg, yaml.Strict()); err != nil {
		t.Fatalf("decode: %v", err)
	}
	want := Config{
		OTLPGRPC:                  "0.0.0.0:4317",
		OTLPHTTP:                  "",
		MaxMessageSize:            32 << 20,
		MaxAttributesPerSpan:      64,
		MaxSpanSize:               512 << 10,
		MaxSpansPerRequest:        20_000,
		MaxConcurrentRequests:     8,
		MaxConcurrentJSONRequests: 2,
		GRPCWindow:                4 << 20,
		TLS:                       TLSConfig{CertFile: "/etc/tailgate/cert.pem", KeyFile: "/etc/tailgate/key.pem"},
	}
	if diff := cmp.Diff(want, cfg); diff != "" {
		t.Errorf("decoded config (-want +got):\n%s", diff)
	}
	if err := cfg.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}

	// Keys left out keep their defaults.
	cfg = DefaultConfig()
	if err := yaml.UnmarshalWithOptions([]byte("max_message_size: 1MiB\n"), &cfg, yaml.Strict()); err != nil {
		t.Fatalf("decode: %v", err)
	}
	want = DefaultConfig()
	want.MaxMessageSize = 1 << 20
	if diff := cmp.Diff(want, cfg); diff != "" {
		t.Errorf("partial config (-want +got):\n%s", diff)
	}
}
