package flags

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"regexp"
	"slices"
	"strings"

	"github.com/tailgate-sre/tailgate/internal/gate"
	"github.com/tailgate-sre/tailgate/internal/units"
)

// Config is one entry of the top-level `flags:` list.
type Config struct {
	// Key names the flag in OFREP requests and the API.
	Key string `yaml:"key" json:"key"`
	// Description says what the flag turns on, for people.
	Description string `yaml:"description,omitempty" json:"description,omitempty"`
	// Variants maps variant names to values: booleans, strings, numbers
	// or objects.
	Variants map[string]any `yaml:"variants" json:"variants"`
	// DefaultVariant is served when no targeting rule decides.
	DefaultVariant string `yaml:"default_variant" json:"default_variant"`
	// Targeting rules are tried in order; the first whose condition holds
	// decides.
	Targeting []Rule `yaml:"targeting,omitempty" json:"targeting,omitempty"`
	// KillSwitch flips the flag when an SLO condition holds.
	KillSwitch *KillSwitch `yaml:"kill_switch,omitempty" json:"kill_switch,omitempty"`
	// Essential flags are never flipped automatically.
	Essential bool `yaml:"essential,omitempty" json:"essential,omitempty"`
}

// Rule is one targeting rule: an optional condition and either a variant
// or a rollout.
type Rule struct {
	// When must hold on the evaluation context; nil always holds.
	When *Condition `yaml:"when,omitempty" json:"when,omitempty"`
	// Variant is served when the condition holds.
	Variant string `yaml:"variant,omitempty" json:"variant,omitempty"`
	// Rollout splits the contexts the condition holds for between
	// variants, by weight (percent; the weights must add up to 100).
	Rollout map[string]float64 `yaml:"rollout,omitempty" json:"rollout,omitempty"`
}

// Condition tests one attribute of the evaluation context.
type Condition struct {
	// Attribute names a context property; "targetingKey" is the targeting key.
	Attribute string `yaml:"attribute" json:"attribute"`
	// In holds when the attribute equals one of these values.
	In []any `yaml:"in,omitempty" json:"in,omitempty"`
	// NotIn holds when the attribute is present and equals none of these.
	NotIn []any `yaml:"not_in,omitempty" json:"not_in,omitempty"`
}

// KillSwitch binds a flag to SLO state.
type KillSwitch struct {
	// SLOs whose state is watched; or Service for every SLO of a service.
	SLOs    []string `yaml:"slos,omitempty" json:"slos,omitempty"`
	Service string   `yaml:"service,omitempty" json:"service,omitempty"`
	// When is the condition, in the gate's vocabulary (alert_firing,
	// budget_exhausted, burn_rate_above, budget_remaining_below,
	// time_to_exhaustion_below); it holds when it holds for any of the
	// SLOs.
	When gate.Conditions `yaml:"when" json:"when"`
	// Variant is what the flag is flipped to.
	Variant string `yaml:"variant" json:"variant"`
	// Restore is after_recovery (default) or manual.
	Restore string `yaml:"restore,omitempty" json:"restore,omitempty"`
	// RecoverFor is how long the condition must stay clear before an
	// automatic restore; default 15m.
	RecoverFor units.Duration `yaml:"recover_for,omitempty" json:"recover_for,omitempty"`
}

// keyPattern is what a flag key may look like: it appears in URL paths.
var keyPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// Flag is a validated flag, ready to evaluate. It is immutable.
type Flag struct {
	cfg      Config
	variants map[string]any
	rules    []rule
}

type rule struct {
	when    *Condition
	variant string
	// split is the rollout as cumulative bounds in ten-thousandths:
	// a context whose bucket is below bounds[i] (and not below
	// bounds[i-1]) gets names[i].
	names  []string
	bounds []uint32
}

// rolloutScale is the resolution of rollouts: 0.01%.
const rolloutScale = 10000

// Key returns the flag's key.
func (f *Flag) Key() string { return f.cfg.Key }

// Config returns the definition the flag was built from.
func (f *Flag) Config() Config { return f.cfg }

// HasVariant reports whether the flag defines variant v.
func (f *Flag) HasVariant(v string) bool {
	_, ok := f.variants[v]
	return ok
}

// Variants returns the flag's variant names, sorted.
func (f *Flag) Variants() []string { return slices.Sorted(maps.Keys(f.variants)) }

// New validates c and returns the flag, or an error naming every problem
// (prefixed with the flag's key).
func New(c Config) (*Flag, error) {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if !keyPattern.MatchString(c.Key) {
		bad("key %q: must be 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit", c.Key)
	}
	f := &Flag{cfg: c, variants: make(map[string]any, len(c.Variants))}
	if len(c.Variants) == 0 {
		bad("variants: at least one is required")
	}
	for _, name := range slices.Sorted(maps.Keys(c.Variants)) {
		v, err := normalize(c.Variants[name])
		if err != nil {
			bad("variants.%s: %v", name, err)
			continue
		}
		if _, isList := v.([]any); isList {
			bad("variants.%s: a list is not a flag value; use an object", name)
			continue
		}
		f.variants[name] = v
	}
	if err := sameKind(f.variants); err != nil {
		bad("variants: %v", err)
	}
	has := func(v string) bool { _, ok := c.Variants[v]; return ok }
	if c.DefaultVariant == "" {
		bad("default_variant: required")
	} else if !has(c.DefaultVariant) {
		bad("default_variant: %q is not one of the variants (%s)", c.DefaultVariant, strings.Join(f.Variants(), ", "))
	}
	for i, r := range c.Targeting {
		where := fmt.Sprintf("targeting[%d]", i)
		compiled, err := compileRule(r, has)
		if err != nil {
			bad("%s: %v", where, err)
			continue
		}
		f.rules = append(f.rules, compiled)
	}
	if ks := c.KillSwitch; ks != nil {
		if ks.Variant == "" || !has(ks.Variant) {
			bad("kill_switch.variant: %q is not one of the variants", ks.Variant)
		}
		if len(ks.SLOs) == 0 && ks.Service == "" {
			bad("kill_switch: name slos or a service")
		}
		if ks.When.IsZero() {
			bad("kill_switch.when: a condition is required, e.g. {alert_firing: page}")
		}
		errs = append(errs, ks.When.Validate("kill_switch.when")...)
		if ks.RecoverFor < 0 {
			bad("kill_switch.recover_for: must not be negative, got %s", ks.RecoverFor)
		}
		switch ks.Restore {
		case "", "after_recovery", "manual":
		default:
			bad("kill_switch.restore: %q, want after_recovery or manual", ks.Restore)
		}
		if c.Essential {
			bad("kill_switch: an essential flag is never flipped automatically; remove the kill switch or essential")
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("flag %q: %w", c.Key, err)
	}
	return f, nil
}

func compileRule(r Rule, has func(string) bool) (rule, error) {
	out := rule{when: r.When}
	if w := r.When; w != nil {
		if w.Attribute == "" {
			return out, errors.New("when.attribute: required")
		}
		if len(w.In) == 0 && len(w.NotIn) == 0 {
			return out, errors.New("when: give in or not_in")
		}
	}
	switch {
	case r.Variant != "" && len(r.Rollout) > 0:
		return out, errors.New("give variant or rollout, not both")
	case r.Variant != "":
		if !has(r.Variant) {
			return out, fmt.Errorf("variant %q is not one of the variants", r.Variant)
		}
		out.variant = r.Variant
	case len(r.Rollout) > 0:
		var sum float64
		for _, name := range slices.Sorted(maps.Keys(r.Rollout)) {
			w := r.Rollout[name]
			if !has(name) {
				return out, fmt.Errorf("rollout: %q is not one of the variants", name)
			}
			if w < 0 || math.IsNaN(w) {
				return out, fmt.Errorf("rollout.%s: weight %v must be 0 or more", name, w)
			}
			sum += w
			out.names = append(out.names, name)
			out.bounds = append(out.bounds, uint32(math.Round(sum*rolloutScale/100)))
		}
		if math.Abs(sum-100) > 1e-9 {
			return out, fmt.Errorf("rollout: weights add up to %v, want 100", sum)
		}
		out.bounds[len(out.bounds)-1] = rolloutScale
	default:
		return out, errors.New("give a variant or a rollout")
	}
	return out, nil
}

// normalize turns a decoded YAML or JSON value into the JSON shapes OFREP
// serves: bool, string, float64 or int64, map[string]any, []any.
func normalize(v any) (any, error) {
	switch x := v.(type) {
	case bool, string, float64:
		return x, nil
	case float32:
		return float64(x), nil
	case int:
		return int64(x), nil
	case int64:
		return x, nil
	case uint64:
		if x > math.MaxInt64 {
			return nil, fmt.Errorf("number %d is too large", x)
		}
		return int64(x), nil
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			n, err := normalize(e)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", k, err)
			}
			out[k] = n
		}
		return out, nil
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			n, err := normalize(e)
			if err != nil {
				return nil, fmt.Errorf("[%d]: %w", i, err)
			}
			out[i] = n
		}
		return out, nil
	case nil:
		return nil, errors.New("a value is required (null is not a flag value)")
	default:
		return nil, fmt.Errorf("unsupported value of type %T", v)
	}
}

// kind names the OFREP type of a normalized value.
func kind(v any) string {
	switch v.(type) {
	case bool:
		return "boolean"
	case string:
		return "string"
	case int64, float64:
		return "number"
	default:
		return "object"
	}
}

// sameKind requires every variant to have the same type, as OpenFeature's
// typed evaluation calls (BooleanValue, StringValue, ...) expect.
func sameKind(vs map[string]any) error {
	var first, firstName string
	for _, name := range slices.Sorted(maps.Keys(vs)) {
		k := kind(vs[name])
		if first == "" {
			first, firstName = k, name
			continue
		}
		if k != first {
			return fmt.Errorf("mixed types: %s is a %s, %s a %s", firstName, first, name, k)
		}
	}
	return nil
}
