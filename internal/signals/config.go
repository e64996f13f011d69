package signals

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/tailgate-sre/tailgate/internal/units"
)

// Built-in metric label names. Any other name in Config.Labels is read as an
// attribute key of the entry span, then of its resource (dots become
// underscores in the label name).
const (
	LabelService     = "service"
	LabelOperation   = "operation"
	LabelStatusClass = "status_class"
	LabelSpanKind    = "span_kind"
)

// Config is the signals: section of the config file.
type Config struct {
	// Labels is the allow-list of /metrics label names of the RED metrics.
	Labels []string `yaml:"labels"`
	// SeriesLimit caps the label sets of each RED metric; new label sets
	// beyond it fold into one series labelled otel_metric_overflow="true".
	SeriesLimit int `yaml:"series_limit"`
	// HistogramBuckets are the upper bounds, in seconds, of
	// tailgate_service_request_duration_seconds.
	HistogramBuckets []float64 `yaml:"histogram_buckets"`
	// MaxServices caps the services tracked; spans of further services are
	// counted under the service "other".
	MaxServices int `yaml:"max_services"`
	// MaxOperationsPerService caps the operations of one service; further
	// operations are counted under "other".
	MaxOperationsPerService int `yaml:"max_operations_per_service"`
	// FlushInterval is how often closed minute buckets are written to the
	// store.
	FlushInterval units.Duration `yaml:"flush_interval"`
	// MaxLateness is how long after a minute ends its spans are still counted
	// in it; a minute is written once it is this old. A span that arrives
	// later, or ends in a minute that has not begun, is counted in the
	// minute it arrived (units.EventClock) and in
	// tailgate_signals_late_spans_total.
	MaxLateness units.Duration `yaml:"max_lateness"`
	// Retention is how long buckets and error origins are kept.
	Retention units.Duration `yaml:"retention"`
	// RollupAfter is the age at which minute buckets are merged into hourly
	// ones; 0 keeps minute buckets for the whole retention.
	RollupAfter units.Duration `yaml:"rollup_after"`
	// Cardinality configures the cardinality report.
	Cardinality CardinalityConfig `yaml:"cardinality"`
}

// CardinalityConfig is the signals.cardinality: section.
type CardinalityConfig struct {
	// FlagThreshold is the distinct-value count at which a key is flagged.
	FlagThreshold int `yaml:"flag_threshold"`
	// MaxKeysPerService caps the attribute keys tracked per service and
	// source (span, resource); further keys are counted as untracked.
	MaxKeysPerService int `yaml:"max_keys_per_service"`
	// Window is how long distinct values accumulate before the report starts
	// over (the previous window's counts stay in the report).
	Window units.Duration `yaml:"window"`
	// MaxMemory caps the memory of the dense HyperLogLog sketches (16KiB
	// each); keys that need one beyond it report a lower bound.
	MaxMemory units.Bytes `yaml:"max_memory"`
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		Labels:                  []string{LabelService, LabelOperation, LabelStatusClass},
		SeriesLimit:             2000,
		HistogramBuckets:        []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10},
		MaxServices:             1000,
		MaxOperationsPerService: 200,
		FlushInterval:           units.Duration(10 * time.Second),
		MaxLateness:             units.Duration(time.Minute),
		Retention:               units.Duration(35 * 24 * time.Hour),
		RollupAfter:             units.Duration(48 * time.Hour),
		Cardinality: CardinalityConfig{
			FlagThreshold:     1000,
			MaxKeysPerService: 256,
			Window:            units.Duration(time.Hour),
			MaxMemory:         units.Bytes(64 << 20),
		},
	}
}

// Validate reports every problem, each naming its key relative to signals:.
func (c *Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}
	if len(c.Labels) == 0 {
		bad("labels", "must name at least one label (e.g. service)")
	}
	seen := map[string]bool{}
	for i, l := range c.Labels {
		name := labelName(l)
		switch {
		case l == "":
			bad(fmt.Sprintf("labels[%d]", i), "must not be empty")
		case !validLabelName(name):
			bad(fmt.Sprintf("labels[%d]", i), "%q does not make a valid Prometheus label name", l)
		case name == overflowLabel || strings.HasPrefix(name, "__"):
			bad(fmt.Sprintf("labels[%d]", i), "%q is reserved", l)
		case l == serviceLabelName:
			bad(fmt.Sprintf("labels[%d]", i), "%q is the label of the built-in entry %q; list %q", l, LabelService, LabelService)
		case seen[name]:
			bad(fmt.Sprintf("labels[%d]", i), "%q is listed twice", l)
		}
		seen[name] = true
	}
	if c.SeriesLimit < 2 {
		bad("series_limit", "must be at least 2 (one series is kept for the overflow), got %d", c.SeriesLimit)
	}
	if len(c.HistogramBuckets) == 0 {
		bad("histogram_buckets", "must list at least one bound")
	}
	for i, b := range c.HistogramBuckets {
		if b <= 0 || b != b {
			bad(fmt.Sprintf("histogram_buckets[%d]", i), "must be a positive number of seconds, got %v", b)
		} else if i > 0 && b <= c.HistogramBuckets[i-1] {
			bad(fmt.Sprintf("histogram_buckets[%d]", i), "must be greater than the bound before it, got %v after %v", b, c.HistogramBuckets[i-1])
		}
	}
	if c.MaxServices < 1 {
		bad("max_services", "must be at least 1, got %d", c.MaxServices)
	}
	if c.MaxOperationsPerService < 1 {
		bad("max_operations_per_service", "must be at least 1, got %d", c.MaxOperationsPerService)
	}
	if c.FlushInterval.Std() <= 0 {
		bad("flush_interval", "must be positive, got %s", c.FlushInterval)
	}
	if c.MaxLateness.Std() < 0 || c.MaxLateness.Std() > time.Hour {
		bad("max_lateness", "must be between 0 and 1h, got %s", c.MaxLateness)
	}
	if c.Retention.Std() < time.Hour {
		bad("retention", "must be at least 1h, got %s", c.Retention)
	}
	if r := c.RollupAfter.Std(); r != 0 && (r < time.Hour || r%time.Hour != 0) {
		bad("rollup_after", "must be 0 (never) or a whole number of hours of at least 1h, got %s", c.RollupAfter)
	}
	cc := &c.Cardinality
	if cc.FlagThreshold < 1 {
		bad("cardinality.flag_threshold", "must be at least 1, got %d", cc.FlagThreshold)
	}
	if cc.MaxKeysPerService < 1 || cc.MaxKeysPerService > maxKeysLimit {
		bad("cardinality.max_keys_per_service", "must be between 1 and %d, got %d", maxKeysLimit, cc.MaxKeysPerService)
	}
	if cc.Window.Std() < time.Minute {
		bad("cardinality.window", "must be at least 1m, got %s", cc.Window)
	}
	if cc.MaxMemory < 0 {
		bad("cardinality.max_memory", "must not be negative, got %s", cc.MaxMemory)
	}
	return errors.Join(errs...)
}

// labelName is the Prometheus label name of an allow-list entry: the
// built-in service label is service_name (see serviceLabelName).
func labelName(l string) string {
	if l == LabelService {
		return serviceLabelName
	}
	return strings.ReplaceAll(l, ".", "_")
}

func validLabelName(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		if !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || i > 0 && r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

// isBuiltinLabel reports whether l is computed by tailgate rather than read
// from an attribute.
func isBuiltinLabel(l string) bool {
	return slices.Contains([]string{LabelService, LabelOperation, LabelStatusClass, LabelSpanKind}, l)
}
