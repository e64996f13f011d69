package flags

import (
	"errors"

	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/tailgate-sre/tailgate/internal/gate"
)

func mustFlag(t *testing.T, c Config) *Flag {
	t.Helper()
	f, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// recommendations is the flag of issue 13's example.
func recommendations() Config {
	return Config{
		Key:            "recommendations",
		Variants:       map[string]any{"enabled": true, "disabled": false},
		DefaultVariant: "enabled",
		Targeting: []Rule{
			{When: &Condition{Attribute: "plan", In: []any{"enterprise"}}, Variant: "enabled"},
			{Rollout: map[string]float64{"enabled": 10, "disabled": 90}},
		},
	}
}

func TestEvaluateTargeting(t *testing.T) {
	f := mustFlag(t, recommendations())
	res, err := f.Evaluate(Context{TargetingKey: "u1", Attributes: map[string]any{"plan": "enterprise"}}, nil)
	if err != nil || res.Variant != "enabled" || res.Value != true || res.Reason != ReasonTargetingMatch {
		t.Errorf("enterprise user: %+v, %v; want enabled by TARGETING_MATCH", res, err)
	}
	res, err = f.Evaluate(Context{TargetingKey: "u1", Attributes: map[string]any{"plan": "free"}}, nil)
	if err != nil || res.Reason != ReasonSplit {
		t.Errorf("free user: %+v, %v; want a SPLIT", res, err)
	}
	_, err = f.Evaluate(Context{Attributes: map[string]any{"plan": "free"}}, nil)
	var ee *EvalError
	if !errors.As(err, &ee) || ee.Code != ErrTargetingKeyMissing {
		t.Errorf("rollout without a targeting key: %v, want TARGETING_KEY_MISSING", err)
	}
	// A forced variant wins over every rule, and says who forced it.
	res, err = f.Evaluate(Context{TargetingKey: "u1", Attributes: map[string]any{"plan": "enterprise"}}, &Forced{Variant: "disabled", By: "kill_switch"})
	if err != nil || res.Variant != "disabled" || res.Value != false || res.Reason != ReasonStatic || res.ForcedBy != "kill_switch" {
		t.Errorf("forced: %+v, %v; want disabled, STATIC, forced by kill_switch", res, err)
	}
}

func TestEvaluateStaticDefault(t *testing.T) {
	f := mustFlag(t, Config{Key: "color", Variants: map[string]any{"red": "#f00", "blue": "#00f"}, DefaultVariant: "blue",
		Targeting: []Rule{{When: &Condition{Attribute: "country", In: []any{"CA"}}, Variant: "red"}}})
	res, err := f.Evaluate(Context{}, nil)
	if err != nil || res.Value != "#00f" || res.Reason != ReasonStatic {
		t.Errorf("no rule matches: %+v, %v; want the default #00f, STATIC", res, err)
	}
}

// TestRolloutShares checks the split against the configured weights over
// many targeting keys: with n keys, the count of a 10% variant is
// binomial(n, 0.1), whose standard deviation is sqrt(n*0.1*0.9).
func TestRolloutShares(t *testing.T) {
	f := mustFlag(t, Config{Key: "exp", Variants: map[string]any{"a": "a", "b": "b", "c": "c", "z": "z"}, DefaultVariant: "a",
		Targeting: []Rule{{Rollout: map[string]float64{"a": 10, "b": 30, "c": 60, "z": 0}}}})
	const n = 100000
	counts := map[string]int{}
	for i := range n {
		res, err := f.Evaluate(Context{TargetingKey: fmt.Sprintf("user-%d", i)}, nil)
		if err != nil {
			t.Fatal(err)
		}
		counts[res.Variant]++
	}
	for v, p := range map[string]float64{"a": 0.1, "b": 0.3, "c": 0.6} {
		sd := math.Sqrt(n * p * (1 - p))
		if d := math.Abs(float64(counts[v]) - n*p); d > 5*sd {
			t.Errorf("variant %s: %d of %d, want %v ± %.0f (5 sd)", v, counts[v], n, n*p, 5*sd)
		}
	}
	if counts["z"] != 0 {
		t.Errorf("a 0%% variant was served %d times", counts["z"])
	}
	// The same key always gets the same variant; another flag splits the
	// same keys independently.
	g := mustFlag(t, Config{Key: "exp2", Variants: map[string]any{"a": "a", "b": "b"}, DefaultVariant: "a",
		Targeting: []Rule{{Rollout: map[string]float64{"a": 50, "b": 50}}}})
	same, both := 0, 0
	for i := range 2000 {
		c := Context{TargetingKey: fmt.Sprintf("user-%d", i)}
		r1, _ := g.Evaluate(c, nil)
		r2, _ := g.Evaluate(c, nil)
		if r1.Variant != r2.Variant {
			t.Fatalf("key %s: %s then %s", c.TargetingKey, r1.Variant, r2.Variant)
		}
		rf, _ := f.Evaluate(c, nil)
		if rf.Variant == "c" {
			both++
			if r1.Variant == "b" {
				same++
			}
		}
	}
	// Independence: among the keys exp gives c, exp2 gives b about half
	// the time (not all or none).
	if frac := float64(same) / float64(both); frac < 0.4 || frac > 0.6 {
		t.Errorf("among %d keys in exp's c, %.2f are in exp2's b; want about 0.5 (independent splits)", both, frac)
	}
}

func TestConditionNumbersAcrossDecoders(t *testing.T) {
	// YAML decodes `in: [3]` as uint64, JSON a context's 3 as float64.
	f := mustFlag(t, Config{Key: "tier", Variants: map[string]any{"on": true, "off": false}, DefaultVariant: "off",
		Targeting: []Rule{{When: &Condition{Attribute: "tier", In: []any{uint64(3)}, NotIn: nil}, Variant: "on"}}})
	for _, tc := range []struct {
		v    any
		want string
	}{{float64(3), "on"}, {float64(2), "off"}, {"3", "off"}, {true, "off"}} {
		res, _ := f.Evaluate(Context{Attributes: map[string]any{"tier": tc.v}}, nil)
		if res.Variant != tc.want {
			t.Errorf("tier %#v: %s, want %s", tc.v, res.Variant, tc.want)
		}
	}
	g := mustFlag(t, Config{Key: "not", Variants: map[string]any{"on": true, "off": false}, DefaultVariant: "off",
		Targeting: []Rule{{When: &Condition{Attribute: "country", NotIn: []any{"US", "CA"}}, Variant: "on"}}})
	for c, want := range map[string]string{"DE": "on", "US": "off"} {
		res, _ := g.Evaluate(Context{Attributes: map[string]any{"country": c}}, nil)
		if res.Variant != want {
			t.Errorf("country %s: %s, want %s", c, res.Variant, want)
		}
	}
	if res, _ := g.Evaluate(Context{}, nil); res.Variant != "off" {
		t.Errorf("not_in with the attribute absent: %s, want the default", res.Variant)
	}
}

func TestNewRefusesBadDefinitions(t *testing.T) {
	base := recommendations
	for _, tc := range []struct {
		name string
		edit func(*Config)
		want string
	}{
		{"bad key", func(c *Config) { c.Key = "no spaces" }, `key "no spaces"`},
		{"no variants", func(c *Config) { c.Variants = nil }, "variants: at least one"},
		{"unknown default", func(c *Config) { c.DefaultVariant = "maybe" }, `default_variant: "maybe" is not one of the variants (disabled, enabled)`},
		{"mixed types", func(c *Config) { c.Variants = map[string]any{"enabled": true, "disabled": "no"} }, "mixed types"},
		{"null value", func(c *Config) { c.Variants["enabled"] = nil }, "variants.enabled: a value is required"},
		{"rollout sum", func(c *Config) { c.Targeting[1].Rollout = map[string]float64{"enabled": 10, "disabled": 80} }, "targeting[1]: rollout: weights add up to 90"},
		{"rollout unknown", func(c *Config) { c.Targeting[1].Rollout = map[string]float64{"enabled": 10, "nope": 90} }, `targeting[1]: rollout: "nope"`},
		{"both", func(c *Config) { c.Targeting[0].Rollout = map[string]float64{"enabled": 100} }, "targeting[0]: give variant or rollout, not both"},
		{"when without test", func(c *Config) { c.Targeting[0].When.In = nil }, "targeting[0]: when: give in or not_in"},
		{"kill switch variant", func(c *Config) {
			c.KillSwitch = &KillSwitch{SLOs: []string{"x"}, When: gate.Conditions{AlertFiring: gate.SeverityPage}, Variant: "off"}
		}, `kill_switch.variant: "off"`},
		{"essential kill switch", func(c *Config) {
			c.Essential = true
			c.KillSwitch = &KillSwitch{SLOs: []string{"x"}, When: gate.Conditions{AlertFiring: gate.SeverityPage}, Variant: "disabled"}
		}, "an essential flag is never flipped automatically"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := base()
			tc.edit(&c)
			_, err := New(c)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New: %v, want an error containing %q", err, tc.want)
			}
			if !strings.HasPrefix(err.Error(), `flag "`+c.Key+`"`) {
				t.Errorf("error %q does not start with the flag's key", err)
			}
		})
	}
}
