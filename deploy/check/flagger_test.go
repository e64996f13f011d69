package check

import (
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	flaggerv1 "github.com/fluxcd/flagger/pkg/apis/flagger/v1beta1"
	"sigs.k8s.io/yaml"
)

// TestFlaggerCanary decodes deploy/flagger/canary.yaml strictly into
// Flagger's own Canary type (flagger.app/v1beta1) and checks its
// webhooks against Flagger's hook semantics: the gate answers the
// confirm-* hooks (Flagger waits until a 200), tailgate's canary verdict
// answers a rollout hook (any status over 202 is a failed check, and
// threshold of them roll the canary back), and the traffic steps are
// explicit.
func TestFlaggerCanary(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(repoRoot, "deploy", "flagger", "canary.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var obj map[string]any
	if err := yaml.Unmarshal(b, &obj); err != nil {
		t.Fatal(err)
	}
	var c flaggerv1.Canary
	strict(t, obj, &c)
	a := c.GetAnalysis()
	if a == nil {
		t.Fatal("no analysis")
	}
	if !slices.Equal(a.StepWeights, []int{1, 5, 25, 50}) || a.StepWeight != 0 || a.MaxWeight != 0 {
		t.Errorf("steps: stepWeights %v, stepWeight %d, maxWeight %d; want stepWeights [1 5 25 50] alone", a.StepWeights, a.StepWeight, a.MaxWeight)
	}
	if a.Threshold < 1 {
		t.Errorf("threshold %d: the failed checks before a rollback must be at least 1", a.Threshold)
	}
	paths := map[flaggerv1.HookType]string{
		flaggerv1.ConfirmRolloutHook:         "/api/v1/gate/flagger/confirm-rollout",
		flaggerv1.ConfirmTrafficIncreaseHook: "/api/v1/gate/flagger/confirm-traffic-increase",
		flaggerv1.RolloutHook:                "/api/v1/canary/flagger/rollout",
		flaggerv1.ConfirmPromotionHook:       "/api/v1/gate/flagger/confirm-promotion",
	}
	seen := map[flaggerv1.HookType]bool{}
	for _, w := range a.Webhooks {
		want, ok := paths[w.Type]
		if !ok {
			t.Errorf("webhook %s: type %q is not one tailgate answers", w.Name, w.Type)
			continue
		}
		seen[w.Type] = true
		u, err := url.Parse(w.URL)
		if err != nil || u.Path != want {
			t.Errorf("webhook %s (%s) calls %s, want the path %s", w.Name, w.Type, w.URL, want)
		}
		md := map[string]string{}
		if w.Metadata != nil {
			md = *w.Metadata
		}
		if md["service"] == "" || md["token"] == "" {
			t.Errorf("webhook %s: metadata %v lacks service or token", w.Name, md)
		}
		if w.Type == flaggerv1.RolloutHook && md["canary"] == "" {
			t.Errorf("the rollout hook names no canary version: Flagger's payload carries none")
		}
		if strings.HasPrefix(string(w.Type), "confirm-") && md["change_class"] == "" {
			t.Errorf("webhook %s: no change_class", w.Name)
		}
	}
	for typ := range paths {
		if !seen[typ] {
			t.Errorf("no %s webhook", typ)
		}
	}
}
