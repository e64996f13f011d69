package sampler

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/google/go-cmp/cmp"
	"github.com/tailgate-sre/tailgate/internal/units"
)

func TestDefaultConfigIsValid(t *testing.T) {
	c := DefaultConfig()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.DecisionWait.Std() != 30*time.Second || c.RootGrace.Std() != 2*time.Second ||
		c.MaxBufferedSpans != 1000000 || c.MaxBufferedBytes != 512<<20 || c.DecisionCache.TTL.Std() != 10*time.Minute {
		t.Errorf("defaults differ from DESIGN.md: %+v", c)
	}
	var names []string
	for _, r := range c.Rules {
		names = append(names, r.Name)
	}
	if diff := cmp.Diff([]string{"errors", "slow", "rest"}, names); diff != "" {
		t.Errorf("default rules (-want +got):\n%s", diff)
	}
}

// decode reads a sampling: section the way internal/config does: defaults
// first, then a strict decode.
func decode(t *testing.T, src string) (Config, error) {
	t.Helper()
	c := DefaultConfig()
	err := yaml.UnmarshalWithOptions([]byte(src), &c, yaml.Strict())
	return c, err
}

func TestDecodeDesignShape(t *testing.T) {
	c, err := decode(t, `
decision_wait: 20s
root_grace: 1s
max_buffered_spans: 5000
max_buffered_bytes: 64MiB
decision_cache: {ttl: 5m}
rules:
  - {name: errors, when: {error: true}, keep: true}
  - {name: slow, when: {duration_over: 1s}, keep: true}
  - {name: checkout, when: {service: checkout, span_name: [a, b], attribute: {key: http.response.status_code, in: [500, "503"], on: span}}, keep: true}
  - {name: health, when: {attribute: {key: http.route, regex: "/health.*"}}, drop: true}
  - {name: hot, rate_limit: {per_second: 10, key: [service.name, http.route]}}
  - {name: rest, sample_percent: 5}
`)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.DecisionWait.Std() != 20*time.Second || c.MaxBufferedBytes != 64<<20 || c.DecisionCache.TTL.Std() != 5*time.Minute {
		t.Errorf("decoded %+v", c)
	}
	if c.DecisionCache.MaxKeptTraces != 1_000_000 {
		t.Errorf("max_kept_traces = %d, want the default 1000000", c.DecisionCache.MaxKeptTraces)
	}
	want := RuleConfig{Name: "checkout", Keep: true, When: &WhenConfig{
		Service:   StringList{"checkout"},
		SpanName:  StringList{"a", "b"},
		Attribute: &AttributeConfig{Key: "http.response.status_code", In: []Scalar{"500", "503"}, On: "span"},
	}}
	if diff := cmp.Diff(want, c.Rules[2]); diff != "" {
		t.Errorf("rules[2] (-want +got):\n%s", diff)
	}
	if got := c.Rules[4].RateLimit; got == nil || got.PerSecond != 10 || !slices.Equal(got.Key, []string{"service.name", "http.route"}) {
		t.Errorf("rules[4].rate_limit = %+v", got)
	}
}

func TestDecodeUnknownKey(t *testing.T) {
	if _, err := decode(t, "rules: [{name: x, keep: true, sample: 5}]"); err == nil {
		t.Error("unknown rule key accepted")
	}
	if _, err := decode(t, "rules: [{name: x, when: {errors: true}, keep: true}]"); err == nil {
		t.Error("unknown when key accepted")
	}
}

func TestValidate(t *testing.T) {
	f := func(v float64) *float64 { return &v }
	i := func(v int) *int { return &v }
	yes := true
	tests := []struct {
		name   string
		mutate func(c *Config)
		want   []string
	}{
		{"defaults", func(*Config) {}, nil},
		{"bad top-level values", func(c *Config) {
			c.DecisionWait = 0
			c.RootGrace = -1
			c.MaxBufferedSpans = 0
			c.MaxBufferedBytes = 1000
			c.DecisionCache.TTL = 0
			c.DecisionCache.FalsePositiveRate = 0.7
			c.Shards = -1
			c.Tick = units.Duration(2 * time.Second)
		}, []string{
			"decision_wait: must be positive, got 0s",
			"root_grace: must not be negative, got -1ns",
			"max_buffered_spans: must be positive, got 0",
			"max_buffered_bytes: must be at least 1MiB, got 1000B",
			"shards: must be between 0 (GOMAXPROCS) and 1024, got -1",
			"tick: must be between 0 (default 100ms) and 1s, got 2s",
			"decision_cache.ttl: must be positive, got 0s",
			"decision_cache.false_positive_rate: must be between 0 (default 0.001) and 0.5, got 0.7",
		}},
		{"no rules", func(c *Config) { c.Rules = nil }, []string{
			"rules: at least one rule is needed (a trace that matches no rule is dropped)",
		}},
		{"rule problems", func(c *Config) {
			c.Rules = []RuleConfig{
				{Name: "a", Keep: true},
				{Name: "a", Keep: true},
				{Name: "", SamplePercent: f(120)},
				{Name: "none", Keep: true},
				{Name: "both", Keep: true, Drop: true},
				{Name: "nothing"},
				{Name: "has space", Keep: true},
				{Name: "rl", RateLimit: &RateLimitConfig{PerSecond: 0, Key: []string{""}}},
			}
		}, []string{
			`rules[1].name: "a" is already the name of rules[0]`,
			"rules[2].name: must not be empty",
			"rules[2].sample_percent: must be between 0 and 100, got 120",
			`rules[3].name: "none" is reserved for traces that match no rule`,
			"rules[4]: needs exactly one action of keep: true, drop: true, sample_percent or rate_limit, got 2 (keep, drop)",
			"rules[5]: needs exactly one action of keep: true, drop: true, sample_percent or rate_limit, got 0 ()",
			`rules[6].name: must be letters, digits, '_', '-' or '.', at most 64, got "has space"`,
			"rules[7].rate_limit.per_second: must be at least 1, got 0",
			"rules[7].rate_limit.key[0]: must not be empty",
		}},
		{"condition problems", func(c *Config) {
			eq := Scalar("x")
			c.Rules = []RuleConfig{
				{Name: "a", Keep: true, When: &WhenConfig{
					DurationOver:  dur(-time.Second),
					Service:       StringList{},
					SpanCountOver: i(-1),
					Attribute:     &AttributeConfig{Key: "", Equals: &eq, Regex: "(", On: "trace"},
				}},
				{Name: "b", Keep: true, When: &WhenConfig{Error: &yes, Attribute: &AttributeConfig{Key: "k"}}},
			}
		}, []string{
			"rules[0].when.duration_over: must not be negative, got -1s",
			"rules[0].when.service: must not be an empty list",
			"rules[0].when.span_count_over: must not be negative, got -1",
			"rules[0].when.attribute.key: must not be empty",
			"rules[0].when.attribute.regex: error parsing regexp: missing closing ): `(`",
			"rules[0].when.attribute: needs exactly one of equals, in, regex or exists, got 2 (equals, regex)",
			`rules[0].when.attribute.on: must be span, resource or any, got "trace"`,
			"rules[1].when.attribute: needs exactly one of equals, in, regex or exists, got 0 ()",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig()
			tt.mutate(&c)
			var got []string
			if err := c.Validate(); err != nil {
				got = strings.Split(err.Error(), "\n")
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Validate (-want +got):\n%s", diff)
			}
		})
	}
}

func TestNewRejectsInvalidConfig(t *testing.T) {
	c := DefaultConfig()
	c.Rules = nil
	_, err := New(c, Settings{Exporter: &fakeExporter{}})
	if err == nil || !strings.Contains(err.Error(), "rules: at least one rule") {
		t.Errorf("New = %v", err)
	}
	if _, err := New(DefaultConfig(), Settings{}); err == nil {
		t.Error("New without exporter succeeded")
	}
	var target *BackpressureError
	if errors.As(err, &target) {
		t.Error("config error is a BackpressureError")
	}
}
