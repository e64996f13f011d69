package config

import (
	"strings"
	"testing"

	"github.com/tailgate-sre/tailgate/internal/flags"
	"github.com/tailgate-sre/tailgate/internal/gate"
)

// issueFlagYAML is the flag of issue 13, as written there.
const issueFlagYAML = `
slos:
  - name: checkout-availability
    service: checkout
    objective: 99.9
    window: 30d
    sli: {kind: availability}
flags:
  - key: recommendations
    description: product recommendations on the checkout page
    variants: {enabled: true, disabled: false}   # boolean, string, number or object values
    default_variant: enabled
    targeting:                                   # optional: rules on the evaluation context, then a percentage rollout
      - {when: {attribute: plan, in: [enterprise]}, variant: enabled}
      - {rollout: {enabled: 10, disabled: 90}}   # deterministic in the targeting key
    kill_switch:
      slos: [checkout-availability]              # or service: checkout
      when: {alert_firing: page}                 # the gate's condition vocabulary: budget_exhausted, burn_rate_above, budget_remaining_below, ...
      variant: disabled
      restore: after_recovery                    # or manual
      recover_for: 15m
    essential: false                             # essential flags are never flipped automatically
kill_switches: {max_flips_per_hour: 10, dry_run: false, paused: false}
`

func TestIssueFlagYAMLLoads(t *testing.T) {
	cfg, err := Parse([]byte(issueFlagYAML))
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Flags) != 1 {
		t.Fatalf("flags: %d, want 1", len(cfg.Flags))
	}
	f, err := flags.New(cfg.Flags[0])
	if err != nil {
		t.Fatal(err)
	}
	ks := cfg.Flags[0].KillSwitch
	if ks == nil || ks.Variant != "disabled" || ks.When.AlertFiring != gate.SeverityPage || ks.RecoverFor.String() != "15m" || ks.Restore != "after_recovery" {
		t.Errorf("kill switch decoded as %+v", ks)
	}
	if cfg.KillSwitches.MaxFlipsPerHour != 10 || cfg.KillSwitches.DryRun {
		t.Errorf("kill_switches decoded as %+v", cfg.KillSwitches)
	}
	res, err := f.Evaluate(flags.Context{TargetingKey: "u", Attributes: map[string]any{"plan": "enterprise"}}, nil)
	if err != nil || res.Value != true || res.Reason != flags.ReasonTargetingMatch {
		t.Errorf("enterprise: %+v, %v", res, err)
	}
}

func TestFlagErrorsNameTheFlag(t *testing.T) {
	_, err := Parse([]byte(`
flags:
  - key: banner
    variants: {on: true, off: false}
    default_variant: maybe
`))
	if err == nil || !strings.Contains(err.Error(), `flags[0]: flag "banner": default_variant: "maybe" is not one of the variants`) {
		t.Errorf("bad default: %v", err)
	}
}
