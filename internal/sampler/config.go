package sampler

import "github.com/tailgate-sre/tailgate/internal/units"

// Config is the sampling: section of the config file.
type Config struct {
	DecisionWait     units.Duration `yaml:"decision_wait"`
	RootGrace        units.Duration `yaml:"root_grace"`
	MaxBufferedSpans int            `yaml:"max_buffered_spans"`
	MaxBufferedBytes units.Bytes    `yaml:"max_buffered_bytes"`
	DecisionCache    CacheConfig    `yaml:"decision_cache"`
	Rules            []RuleConfig   `yaml:"rules"`
}

// CacheConfig configures the decision cache.
type CacheConfig struct {
	TTL units.Duration `yaml:"ttl"`
}

// RuleConfig is one sampling rule.
type RuleConfig struct {
	Name          string   `yaml:"name"`
	Keep          bool     `yaml:"keep"`
	SamplePercent *float64 `yaml:"sample_percent"`
}

// DefaultConfig returns the defaults of DESIGN.md.
func DefaultConfig() Config { return Config{} }

// Validate reports every problem, each naming its key relative to sampling:.
func (c *Config) Validate() error { return nil }
