package check

import (
	"os"
	"path/filepath"
	"testing"

	"sigs.k8s.io/yaml"
)

// TestArgoRolloutExample checks the Rollout example's wiring (Argo
// Rollouts' own Go types need a newer Go than this module builds with, so
// the fields are read by name): weights routed by a traffic provider, not
// approximated by pod counts; tailgate's canary verdict as a background
// analysis from the ClusterAnalysisTemplate; the gate before the first
// traffic and before promotion.
func TestArgoRolloutExample(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(repoRoot, "deploy", "argo-rollouts", "rollout-example.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var r struct {
		Kind string `json:"kind"`
		Spec struct {
			Strategy struct {
				Canary struct {
					CanaryService  string         `json:"canaryService"`
					StableService  string         `json:"stableService"`
					TrafficRouting map[string]any `json:"trafficRouting"`
					Analysis       *struct {
						Templates []struct {
							TemplateName string `json:"templateName"`
							ClusterScope bool   `json:"clusterScope"`
						} `json:"templates"`
						StartingStep int `json:"startingStep"`
						Args         []struct {
							Name, Value string
						} `json:"args"`
					} `json:"analysis"`
					Steps []map[string]any `json:"steps"`
				} `json:"canary"`
			} `json:"strategy"`
		} `json:"spec"`
	}
	if err := yaml.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	c := r.Spec.Strategy.Canary
	if r.Kind != "Rollout" || len(c.TrafficRouting) == 0 || c.CanaryService == "" || c.StableService == "" {
		t.Errorf("kind %s, trafficRouting %v, services %q/%q: want routed weights", r.Kind, c.TrafficRouting, c.CanaryService, c.StableService)
	}
	if c.Analysis == nil || len(c.Analysis.Templates) != 1 || c.Analysis.Templates[0].TemplateName != "tailgate-canary" || !c.Analysis.Templates[0].ClusterScope {
		t.Fatalf("background analysis %+v, want the tailgate-canary ClusterAnalysisTemplate", c.Analysis)
	}
	// It starts once the canary takes traffic: at or after the first
	// setWeight step.
	firstWeight := -1
	var gates []int
	for i, s := range c.Steps {
		if _, ok := s["setWeight"]; ok && firstWeight < 0 {
			firstWeight = i
		}
		if a, ok := s["analysis"].(map[string]any); ok {
			if ts, _ := a["templates"].([]any); len(ts) == 1 && ts[0].(map[string]any)["templateName"] == "tailgate-error-budget-gate" {
				gates = append(gates, i)
			}
		}
	}
	if firstWeight < 0 || c.Analysis.StartingStep <= firstWeight {
		t.Errorf("background analysis starts at step %d, the first setWeight is step %d: start after it", c.Analysis.StartingStep, firstWeight)
	}
	if len(gates) != 2 || gates[0] != 0 || gates[1] != len(c.Steps)-1 {
		t.Errorf("the gate runs at steps %v, want the first and the last", gates)
	}
	names := map[string]string{}
	for _, a := range c.Analysis.Args {
		names[a.Name] = a.Value
	}
	if names["service"] == "" || names["canary"] == "" {
		t.Errorf("background analysis args %v: want service and canary", names)
	}
}
