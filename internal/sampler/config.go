package sampler

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/tailgate-sre/tailgate/internal/units"
)

// Config is the sampling: section of the config file.
//
// Keys added beyond DESIGN.md (shards, tick, intake_spans, retry_after,
// export_batch_spans and the decision_cache sizes) treat 0 as "use the
// default", so a config that leaves them out behaves the same however it
// was decoded.
type Config struct {
	// DecisionWait bounds how long a trace is buffered after its first span.
	DecisionWait units.Duration `yaml:"decision_wait"`
	// RootGrace is how long to wait for more spans once the root span came.
	RootGrace units.Duration `yaml:"root_grace"`
	// MaxBufferedSpans and MaxBufferedBytes bound the trace buffer; what
	// happens beyond them is Overload's policy.
	MaxBufferedSpans int         `yaml:"max_buffered_spans"`
	MaxBufferedBytes units.Bytes `yaml:"max_buffered_bytes"`
	// Overload says what the sampler does when the buffer is over its
	// limits.
	Overload OverloadConfig `yaml:"overload"`
	// DecisionCache remembers decided trace IDs for late spans.
	DecisionCache CacheConfig `yaml:"decision_cache"`
	// Rules are evaluated in order; the first match decides.
	Rules []RuleConfig `yaml:"rules"`

	// Shards is the number of shard goroutines; 0 means GOMAXPROCS.
	Shards int `yaml:"shards"`
	// Tick is the resolution of decision deadlines; 0 means 100ms.
	Tick units.Duration `yaml:"tick"`
	// IntakeSpans bounds the spans accepted by Consume but not yet buffered
	// by their shard; beyond it Consume pushes back. 0 means 65536.
	IntakeSpans int `yaml:"intake_spans"`
	// RetryAfter is the delay suggested to clients on backpressure; 0 means 1s.
	RetryAfter units.Duration `yaml:"retry_after"`
	// ExportBatchSpans is how many kept spans a shard collects before it
	// calls the exporter (it also flushes every tick); 0 means 8192.
	ExportBatchSpans int `yaml:"export_batch_spans"`
}

// Overload policies (OverloadConfig.Policy).
const (
	// PolicyPushBack decides early only the traces whose decision more
	// spans cannot change and refuses new requests (backpressure) while the
	// buffer stays over its limits. The default.
	PolicyPushBack = "push_back"
	// PolicyDecideEarly decides the traces nearest their deadline early,
	// whatever their rules say (stress relief), and never refuses for the
	// buffer.
	PolicyDecideEarly = "decide_early"
)

// OverloadConfig is the sampling.overload section.
type OverloadConfig struct {
	// Policy is push_back (the default, also for "") or decide_early.
	Policy string `yaml:"policy"`
}

// CacheConfig configures the decision cache.
type CacheConfig struct {
	// TTL is how long a decision is remembered (at least; dropped IDs may be
	// remembered up to twice as long).
	TTL units.Duration `yaml:"ttl"`
	// MaxKeptTraces bounds the exact set of kept trace IDs; the oldest are
	// forgotten first. 0 means 1000000.
	MaxKeptTraces int `yaml:"max_kept_traces"`
	// MaxDroppedTraces is the number of dropped trace IDs per TTL the Bloom
	// filters are sized for; beyond it they rotate sooner, shortening the
	// TTL of dropped IDs. 0 means 10000000.
	MaxDroppedTraces int `yaml:"max_dropped_traces"`
	// FalsePositiveRate is the Bloom filters' design false-positive rate
	// at MaxDroppedTraces; 0 means 0.001.
	FalsePositiveRate float64 `yaml:"false_positive_rate"`
	// SnapshotInterval is how often the cache is saved to its file while
	// running, when something was decided since it was last saved (it is
	// also saved on shutdown), so a crash loses at most this much of the
	// decisions; 0 means 10s.
	SnapshotInterval units.Duration `yaml:"snapshot_interval"`
}

// RuleConfig is one sampling rule: a name, optional conditions (all must
// hold; none means every trace matches) and exactly one action.
type RuleConfig struct {
	Name string      `yaml:"name"`
	When *WhenConfig `yaml:"when,omitempty"`

	// Keep keeps the trace (sampling.rate 1).
	Keep bool `yaml:"keep,omitempty"`
	// Drop drops the trace.
	Drop bool `yaml:"drop,omitempty"`
	// SamplePercent keeps this percentage of traces, deterministically in
	// the trace ID.
	SamplePercent *float64 `yaml:"sample_percent,omitempty"`
	// RateLimit keeps at most PerSecond traces per second per key.
	RateLimit *RateLimitConfig `yaml:"rate_limit,omitempty"`
}

// WhenConfig holds a rule's conditions; all that are set must hold.
type WhenConfig struct {
	// Error: true matches traces with a span bad for availability;
	// false matches traces with none.
	Error *bool `yaml:"error,omitempty"`
	// DurationOver matches traces whose latest end minus earliest start is
	// over this duration.
	DurationOver *units.Duration `yaml:"duration_over,omitempty"`
	// Service matches traces with a span whose resource service.name is one
	// of these.
	Service StringList `yaml:"service,omitempty"`
	// SpanName matches traces with a span whose name is exactly one of these.
	SpanName StringList `yaml:"span_name,omitempty"`
	// Attribute matches traces with a span (or resource) attribute as given.
	Attribute *AttributeConfig `yaml:"attribute,omitempty"`
	// SpanCountOver matches traces with more spans than this.
	SpanCountOver *int `yaml:"span_count_over,omitempty"`
}

// AttributeConfig matches an attribute by key and exactly one of equals,
// in, regex or exists. Values compare as text: strings as they are,
// numbers in decimal, booleans as true/false. Regular expressions (RE2)
// must match the whole value.
type AttributeConfig struct {
	Key    string   `yaml:"key"`
	Equals *Scalar  `yaml:"equals,omitempty"`
	In     []Scalar `yaml:"in,omitempty"`
	Regex  string   `yaml:"regex,omitempty"`
	Exists *bool    `yaml:"exists,omitempty"`
	// On is span, resource or any (the default).
	On string `yaml:"on,omitempty"`
}

// RateLimitConfig keeps at most PerSecond traces per second for each
// distinct key. The key is built from the values of the listed attributes
// (looked up on the span, then on its resource) of the root span, or of the
// first span when the root has not arrived.
type RateLimitConfig struct {
	PerSecond float64  `yaml:"per_second"`
	Key       []string `yaml:"key,omitempty"`
	// MaxKeys bounds the distinct keys tracked; traces of further keys share
	// one overflow key. 0 means 10000.
	MaxKeys int `yaml:"max_keys,omitempty"`
}

// StringList is a list of strings that may be written as a single string.
type StringList []string

// UnmarshalYAML accepts a string or a list of strings.
func (l *StringList) UnmarshalYAML(unmarshal func(any) error) error {
	var one string
	if err := unmarshal(&one); err == nil {
		*l = StringList{one}
		return nil
	}
	var many []string
	if err := unmarshal(&many); err != nil {
		return fmt.Errorf("want a string or a list of strings: %w", err)
	}
	*l = many
	return nil
}

// Scalar is an attribute value in the config, held as its text form (see
// AttributeConfig).
type Scalar string

// UnmarshalYAML accepts a string, number or boolean.
func (s *Scalar) UnmarshalYAML(unmarshal func(any) error) error {
	var v any
	if err := unmarshal(&v); err != nil {
		return err
	}
	switch x := v.(type) {
	case string:
		*s = Scalar(x)
	case bool:
		*s = Scalar(strconv.FormatBool(x))
	case int:
		*s = Scalar(strconv.Itoa(x))
	case int64:
		*s = Scalar(strconv.FormatInt(x, 10))
	case uint64:
		*s = Scalar(strconv.FormatUint(x, 10))
	case float64:
		*s = Scalar(strconv.FormatFloat(x, 'g', -1, 64))
	default:
		return fmt.Errorf("want a string, number or boolean, got %T", v)
	}
	return nil
}

// Defaults of the keys that treat 0 as "use the default".
const (
	defaultTick              = 100 * time.Millisecond
	defaultIntakeSpans       = 65536
	defaultRetryAfter        = time.Second
	defaultExportBatchSpans  = 8192
	defaultMaxKeptTraces     = 1_000_000
	defaultMaxDroppedTraces  = 10_000_000
	defaultFalsePositiveRate = 0.001
	defaultRateLimitMaxKeys  = 10_000
	defaultSnapshotInterval  = 10 * time.Second
)

// noRuleLabel is the rule label of traces that no rule matched; rule names
// may not take it.
const noRuleLabel = "none"

// DefaultConfig returns the defaults of DESIGN.md: decide 2s after the root
// span or 30s after the first, keep error traces and traces over 1s, and
// keep 5% of the rest.
func DefaultConfig() Config {
	yes := true
	slow := units.Duration(time.Second)
	five := 5.0
	return Config{
		DecisionWait:     units.Duration(30 * time.Second),
		RootGrace:        units.Duration(2 * time.Second),
		MaxBufferedSpans: 1_000_000,
		MaxBufferedBytes: 512 << 20,
		DecisionCache: CacheConfig{
			TTL:               units.Duration(10 * time.Minute),
			MaxKeptTraces:     defaultMaxKeptTraces,
			MaxDroppedTraces:  defaultMaxDroppedTraces,
			FalsePositiveRate: defaultFalsePositiveRate,
			SnapshotInterval:  units.Duration(defaultSnapshotInterval),
		},
		Overload:         OverloadConfig{Policy: PolicyPushBack},
		Tick:             units.Duration(defaultTick),
		IntakeSpans:      defaultIntakeSpans,
		RetryAfter:       units.Duration(defaultRetryAfter),
		ExportBatchSpans: defaultExportBatchSpans,
		Rules: []RuleConfig{
			{Name: "errors", When: &WhenConfig{Error: &yes}, Keep: true},
			{Name: "slow", When: &WhenConfig{DurationOver: &slow}, Keep: true},
			{Name: "rest", SamplePercent: &five},
		},
	}
}

// Validate reports every problem at once, each naming its key relative to
// the sampling: section.
func (c *Config) Validate() error {
	var errs []error
	add := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}
	if c.DecisionWait <= 0 {
		add("decision_wait", "must be positive, got %s", c.DecisionWait)
	}
	if c.RootGrace < 0 {
		add("root_grace", "must not be negative, got %s", c.RootGrace)
	}
	if c.MaxBufferedSpans <= 0 {
		add("max_buffered_spans", "must be positive, got %d", c.MaxBufferedSpans)
	}
	if c.MaxBufferedBytes < 1<<20 {
		add("max_buffered_bytes", "must be at least 1MiB, got %s", c.MaxBufferedBytes)
	}
	if c.Shards < 0 || c.Shards > 1024 {
		add("shards", "must be between 0 (GOMAXPROCS) and 1024, got %d", c.Shards)
	}
	if c.Tick < 0 || c.Tick > units.Duration(time.Second) {
		add("tick", "must be between 0 (default 100ms) and 1s, got %s", c.Tick)
	}
	if c.IntakeSpans < 0 {
		add("intake_spans", "must not be negative, got %d", c.IntakeSpans)
	}
	if c.RetryAfter < 0 {
		add("retry_after", "must not be negative, got %s", c.RetryAfter)
	}
	if c.ExportBatchSpans < 0 {
		add("export_batch_spans", "must not be negative, got %d", c.ExportBatchSpans)
	}
	switch c.Overload.Policy {
	case "", PolicyPushBack, PolicyDecideEarly:
	default:
		add("overload.policy", "must be %s or %s, got %q", PolicyPushBack, PolicyDecideEarly, c.Overload.Policy)
	}
	dc := c.DecisionCache
	if dc.SnapshotInterval < 0 {
		add("decision_cache.snapshot_interval", "must not be negative, got %s", dc.SnapshotInterval)
	}
	if dc.TTL <= 0 {
		add("decision_cache.ttl", "must be positive, got %s", dc.TTL)
	}
	if dc.MaxKeptTraces < 0 {
		add("decision_cache.max_kept_traces", "must not be negative, got %d", dc.MaxKeptTraces)
	}
	if dc.MaxDroppedTraces < 0 {
		add("decision_cache.max_dropped_traces", "must not be negative, got %d", dc.MaxDroppedTraces)
	}
	if dc.FalsePositiveRate < 0 || dc.FalsePositiveRate >= 0.5 || math.IsNaN(dc.FalsePositiveRate) {
		add("decision_cache.false_positive_rate", "must be between 0 (default 0.001) and 0.5, got %g", dc.FalsePositiveRate)
	}
	if len(c.Rules) == 0 {
		add("rules", "at least one rule is needed (a trace that matches no rule is dropped)")
	}
	seen := make(map[string]int, len(c.Rules))
	for i := range c.Rules {
		errs = append(errs, c.Rules[i].validate(fmt.Sprintf("rules[%d]", i), seen, i)...)
	}
	return errors.Join(errs...)
}

func (r *RuleConfig) validate(key string, seen map[string]int, idx int) []error {
	var errs []error
	add := func(sub, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s%s: %s", key, sub, fmt.Sprintf(format, args...)))
	}
	switch {
	case r.Name == "":
		add(".name", "must not be empty")
	case r.Name == noRuleLabel:
		add(".name", "%q is reserved for traces that match no rule", noRuleLabel)
	case !validRuleName(r.Name):
		add(".name", "must be letters, digits, '_', '-' or '.', at most 64, got %q", r.Name)
	default:
		if prev, dup := seen[r.Name]; dup {
			add(".name", "%q is already the name of rules[%d]", r.Name, prev)
		} else {
			seen[r.Name] = idx
		}
	}
	var actions []string
	if r.Keep {
		actions = append(actions, "keep")
	}
	if r.Drop {
		actions = append(actions, "drop")
	}
	if r.SamplePercent != nil {
		actions = append(actions, "sample_percent")
		if p := *r.SamplePercent; !(p >= 0 && p <= 100) {
			add(".sample_percent", "must be between 0 and 100, got %g", p)
		}
	}
	if rl := r.RateLimit; rl != nil {
		actions = append(actions, "rate_limit")
		if !(rl.PerSecond >= 1) || math.IsInf(rl.PerSecond, 0) {
			add(".rate_limit.per_second", "must be at least 1, got %g", rl.PerSecond)
		}
		for j, k := range rl.Key {
			if k == "" {
				add(fmt.Sprintf(".rate_limit.key[%d]", j), "must not be empty")
			}
		}
		if rl.MaxKeys < 0 {
			add(".rate_limit.max_keys", "must not be negative, got %d", rl.MaxKeys)
		}
	}
	if len(actions) != 1 {
		add("", "needs exactly one action of keep: true, drop: true, sample_percent or rate_limit, got %d (%s)",
			len(actions), strings.Join(actions, ", "))
	}
	if w := r.When; w != nil {
		if w.DurationOver != nil && *w.DurationOver < 0 {
			add(".when.duration_over", "must not be negative, got %s", *w.DurationOver)
		}
		if w.Service != nil && len(w.Service) == 0 {
			add(".when.service", "must not be an empty list")
		}
		if w.SpanName != nil && len(w.SpanName) == 0 {
			add(".when.span_name", "must not be an empty list")
		}
		if w.SpanCountOver != nil && *w.SpanCountOver < 0 {
			add(".when.span_count_over", "must not be negative, got %d", *w.SpanCountOver)
		}
		if a := w.Attribute; a != nil {
			if a.Key == "" {
				add(".when.attribute.key", "must not be empty")
			}
			var matchers []string
			if a.Equals != nil {
				matchers = append(matchers, "equals")
			}
			if a.In != nil {
				matchers = append(matchers, "in")
				if len(a.In) == 0 {
					add(".when.attribute.in", "must not be an empty list")
				}
			}
			if a.Regex != "" {
				matchers = append(matchers, "regex")
				if _, err := regexp.Compile(a.Regex); err != nil {
					add(".when.attribute.regex", "%v", err)
				}
			}
			if a.Exists != nil {
				matchers = append(matchers, "exists")
			}
			if len(matchers) != 1 {
				add(".when.attribute", "needs exactly one of equals, in, regex or exists, got %d (%s)",
					len(matchers), strings.Join(matchers, ", "))
			}
			switch a.On {
			case "", "any", "span", "resource":
			default:
				add(".when.attribute.on", "must be span, resource or any, got %q", a.On)
			}
		}
	}
	return errs
}

func validRuleName(s string) bool {
	if len(s) > 64 {
		return false
	}
	for _, c := range []byte(s) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// settled returns c with every "0 means default" key resolved.
func (c Config) settled(gomaxprocs int) Config {
	if c.Shards == 0 {
		c.Shards = max(gomaxprocs, 1)
	}
	if c.Tick == 0 {
		c.Tick = units.Duration(defaultTick)
	}
	if c.IntakeSpans == 0 {
		c.IntakeSpans = defaultIntakeSpans
	}
	if c.RetryAfter == 0 {
		c.RetryAfter = units.Duration(defaultRetryAfter)
	}
	if c.ExportBatchSpans == 0 {
		c.ExportBatchSpans = defaultExportBatchSpans
	}
	if c.DecisionCache.MaxKeptTraces == 0 {
		c.DecisionCache.MaxKeptTraces = defaultMaxKeptTraces
	}
	if c.DecisionCache.MaxDroppedTraces == 0 {
		c.DecisionCache.MaxDroppedTraces = defaultMaxDroppedTraces
	}
	if c.DecisionCache.FalsePositiveRate == 0 {
		c.DecisionCache.FalsePositiveRate = defaultFalsePositiveRate
	}
	if c.DecisionCache.SnapshotInterval == 0 {
		c.DecisionCache.SnapshotInterval = units.Duration(defaultSnapshotInterval)
	}
	if c.Overload.Policy == "" {
		c.Overload.Policy = PolicyPushBack
	}
	return c
}
