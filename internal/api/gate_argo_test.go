package api

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/expr-lang/expr"
	"github.com/goccy/go-yaml"

	"github.com/tailgate-sre/tailgate/internal/auth"
	"github.com/tailgate-sre/tailgate/internal/canary"
)

// analysisTemplate is the part of an Argo Rollouts AnalysisTemplate the
// test reads.
type analysisTemplate struct {
	Kind string `yaml:"kind"`
	Spec struct {
		Args []struct {
			Name  string  `yaml:"name"`
			Value *string `yaml:"value"`
		} `yaml:"args"`
		Metrics []argoMetric `yaml:"metrics"`
	} `yaml:"spec"`
}

// argoMetric is one metric of an analysis template.
type argoMetric struct {
	Name             string `yaml:"name"`
	SuccessCondition string `yaml:"successCondition"`
	FailureCondition string `yaml:"failureCondition"`
	Provider         struct {
		Web struct {
			URL     string `yaml:"url"`
			Headers []struct {
				Key   string `yaml:"key"`
				Value string `yaml:"value"`
			} `yaml:"headers"`
			JSONPath string `yaml:"jsonPath"`
		} `yaml:"web"`
	} `yaml:"provider"`
}

// argoRender substitutes {{args.NAME}} as Argo does; a placeholder left
// over fails the test.
func argoRender(t *testing.T, args map[string]string) func(string) string {
	return func(s string) string {
		for k, v := range args {
			s = strings.ReplaceAll(s, "{{args."+k+"}}", v)
		}
		if strings.Contains(s, "{{") {
			t.Fatalf("unrendered placeholder in %q", s)
		}
		return s
	}
}

// argoMeasure makes m's web request as Argo does and returns the decoded
// body (the whole of it: the templates' jsonPath is {$}). Argo marks any
// non-2xx as a measurement error, so that fails the test.
func argoMeasure(t *testing.T, client *http.Client, m argoMetric, render func(string) string) any {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), "GET", render(m.Provider.Web.URL), nil)
	for _, h := range m.Provider.Web.Headers {
		req.Header.Set(h.Key, render(h.Value))
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	var data any
	if err := json.Unmarshal(body, &data); err != nil {
		t.Fatal(err)
	}
	return data
}

// argoEvaluate is Argo Rollouts' evaluate.EvaluateResult: both conditions
// are expr expressions over `result`; failure wins, neither true is
// Inconclusive.
func argoEvaluate(t *testing.T, result any, success, failure string) string {
	t.Helper()
	env := map[string]any{
		"result":  result,
		"asInt":   func(in any) int64 { return 0 },
		"asFloat": func(in any) float64 { return 0 },
		"isNil":   func(any) bool { return result == nil },
		"default": func(_, def any) any { return def },
	}
	eval := func(cond string) bool {
		prog, err := expr.Compile(cond, expr.Env(env))
		if err != nil {
			t.Fatalf("compile %q: %v", cond, err)
		}
		out, err := expr.Run(prog, env)
		if err != nil {
			t.Fatalf("run %q: %v", cond, err)
		}
		b, ok := out.(bool)
		if !ok {
			t.Fatalf("%q gave %T, want bool", cond, out)
		}
		return b
	}
	s, f := eval(success), eval(failure)
	switch {
	case f:
		return "Failed"
	case s:
		return "Successful"
	default:
		return "Inconclusive"
	}
}

// TestArgoAnalysisTemplate loads the shipped AnalysisTemplate, renders its
// web provider request against a live gate, and evaluates its conditions
// on the real responses with expr, as Argo Rollouts does.
func TestArgoAnalysisTemplate(t *testing.T) {
	raw, err := os.ReadFile("../../deploy/argo-rollouts/analysistemplate.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var tmpl analysisTemplate
	if err := yaml.Unmarshal(raw, &tmpl); err != nil {
		t.Fatal(err)
	}
	if tmpl.Kind != "AnalysisTemplate" || len(tmpl.Spec.Metrics) != 1 {
		t.Fatalf("template: %+v", tmpl)
	}
	m := tmpl.Spec.Metrics[0]
	if m.SuccessCondition != `result.decision == "allow"` || m.FailureCondition != `result.decision == "deny"` {
		t.Errorf("conditions: %q / %q", m.SuccessCondition, m.FailureCondition)
	}
	if m.Provider.Web.JSONPath != "{$}" {
		t.Fatalf("jsonPath %q: the test evaluates the whole body as Argo does for {$}", m.Provider.Web.JSONPath)
	}

	e := newGateEnv(t, auth.Config{Tokens: testTokens()})
	args := map[string]string{}
	for _, a := range tmpl.Spec.Args {
		if a.Value != nil {
			args[a.Name] = *a.Value
		}
	}
	args["service"], args["version"], args["tailgate-url"], args["tailgate-token"] = "checkout", "1.42.0", e.srv.URL, ciToken
	render := argoRender(t, args)

	cases := []struct {
		name   string
		budget float64
		paging bool
		class  string
		want   string
	}{
		{"healthy feature", 0.8, false, "feature", "Successful"},
		{"spent budget feature", -0.2, false, "feature", "Failed"},
		{"low budget feature", 0.1, false, "feature", "Inconclusive"},
		{"spent budget rollback", -0.2, false, "rollback", "Successful"},
		{"paging security", 0.6, true, "security", "Failed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e.states.set("checkout", tc.budget)
			e.states.mu.Lock()
			e.states.paging["checkout"] = tc.paging
			e.states.mu.Unlock()
			args["change-class"] = tc.class
			data := argoMeasure(t, e.srv.Client(), m, render)
			if got := argoEvaluate(t, data, m.SuccessCondition, m.FailureCondition); got != tc.want {
				t.Errorf("phase %s, want %s (decision %v)", got, tc.want, data.(map[string]any)["decision"])
			}
		})
	}
	ds := decode[struct {
		Decisions []struct {
			Source, Version, Environment string
			RequestedBy                  string `json:"requested_by"`
		}
	}](t, e.do(t, "GET", "/api/v1/gate/decisions?limit=1", "", readerToken))
	if got := fmt.Sprint(ds.Decisions); got != "[{argo-rollouts 1.42.0 production argo-rollouts}]" {
		t.Errorf("audit of an Argo measurement: %s", got)
	}
}

// fixedCanary answers every canary check with one verdict.
type fixedCanary struct {
	verdict       canary.Outcome
	asked         canary.CheckRequest
	before, after uint64 // requests of a regression's sides
}

func (f *fixedCanary) Regression(m canary.Marker) canary.Regression {
	return canary.Regression{Verdict: f.verdict, RollbackCommand: m.RollbackCommand, RequestsBefore: f.before, RequestsAfter: f.after}
}

func (f *fixedCanary) Series(req canary.CheckRequest) (canary.SeriesResult, error) {
	res, err := f.Check(req)
	return canary.SeriesResult{CheckResult: res}, err
}

func (f *fixedCanary) Versions(time.Duration) []canary.ServiceVersions { return nil }

func (f *fixedCanary) Check(req canary.CheckRequest) (canary.CheckResult, error) {
	f.asked = req
	return canary.CheckResult{Service: req.Service, CanaryVersion: req.Canary, Verdict: canary.Verdict{Verdict: f.verdict, Rule: "test"}}, nil
}

// TestArgoCanaryTemplate loads the shipped ClusterAnalysisTemplate, renders
// its web provider request against the canary endpoint and evaluates its
// conditions on the real answers with expr, as Argo Rollouts does: a fail
// verdict fails the measurement (the rollout aborts), pass and
// inconclusive keep the background analysis running.
func TestArgoCanaryTemplate(t *testing.T) {
	raw, err := os.ReadFile("../../deploy/argo-rollouts/canary-analysis.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var tmpl analysisTemplate
	if err := yaml.Unmarshal(raw, &tmpl); err != nil {
		t.Fatal(err)
	}
	if tmpl.Kind != "ClusterAnalysisTemplate" || len(tmpl.Spec.Metrics) != 1 {
		t.Fatalf("template: %+v", tmpl)
	}
	m := tmpl.Spec.Metrics[0]
	if m.Provider.Web.JSONPath != "{$}" {
		t.Fatalf("jsonPath %q: the test evaluates the whole body as Argo does for {$}", m.Provider.Web.JSONPath)
	}
	a, err := auth.New(auth.Config{Tokens: testTokens()}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	fc := &fixedCanary{}
	srv := httptest.NewServer(New(Deps{Canary: fc, Auth: a}))
	defer srv.Close()
	render := argoRender(t, map[string]string{"service": "checkout", "canary": "1.42.0", "baseline": "", "tailgate-url": srv.URL, "tailgate-token": ciToken})
	for verdict, want := range map[canary.Outcome]string{canary.Fail: "Failed", canary.Pass: "Successful", canary.Inconclusive: "Successful"} {
		fc.verdict = verdict
		data := argoMeasure(t, srv.Client(), m, render)
		if got := argoEvaluate(t, data, m.SuccessCondition, m.FailureCondition); got != want {
			t.Errorf("verdict %s: phase %s, want %s", verdict, got, want)
		}
	}
	if fc.asked.Service != "checkout" || fc.asked.Canary != "1.42.0" || fc.asked.Baseline != "" {
		t.Errorf("the template asked for %+v", fc.asked)
	}
}
