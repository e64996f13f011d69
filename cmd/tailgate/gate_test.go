package main

import (
	"bytes"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tailgate-sre/tailgate/internal/api"
	"github.com/tailgate-sre/tailgate/internal/auth"
	"github.com/tailgate-sre/tailgate/internal/gate"
)

// cliBudget serves one availability SLO for checkout with a settable budget.
type cliBudget struct {
	mu     sync.Mutex
	budget float64
}

func (b *cliBudget) set(v float64) { b.mu.Lock(); b.budget = v; b.mu.Unlock() }

func (b *cliBudget) SLOStates(service string, now time.Time) []gate.SLOState {
	if service != "checkout" {
		return nil
	}
	b.mu.Lock()
	v := b.budget
	b.mu.Unlock()
	burn, tte := 3.0, 50*time.Hour
	events := (1 - v) * 1000 // of 1000 allowed bad in 1,000,000
	return []gate.SLOState{{
		Name: "checkout-availability", Service: "checkout", Objective: 99.9, Window: 30 * 24 * time.Hour,
		BudgetRemaining: &v, BudgetRemainingEvents: ptrTo(1000 - events),
		BurnRates: map[string]*float64{"5m": ptrTo(4.0), "1h": &burn, "6h": nil},
		Coverage:  1, TimeToExhaustion: &tte, Good: 1_000_000 - events, Total: 1_000_000, UpdatedAt: now,
	}}
}

func ptrTo[T any](v T) *T { return &v }

type cliEnv struct {
	url, tokenFile, opsTokenFile string
	budget                       *cliBudget
	g                            *gate.Gate
}

func newCLIEnv(t *testing.T) *cliEnv {
	t.Helper()
	dir := t.TempDir()
	e := &cliEnv{budget: &cliBudget{budget: 0.8}, tokenFile: filepath.Join(dir, "ci"), opsTokenFile: filepath.Join(dir, "ops")}
	os.WriteFile(e.tokenFile, []byte("ci-secret\n"), 0o600)
	os.WriteFile(e.opsTokenFile, []byte("ops-secret"), 0o600)
	var err error
	e.g, err = gate.New([]gate.PolicySpec{{Service: "checkout", Business: gate.Business{RevenuePerHour: 12000}}}, gate.Settings{States: e.budget, Store: gate.NewMemoryStore()})
	if err != nil {
		t.Fatal(err)
	}
	a, err := auth.New(auth.Config{Tokens: []auth.Token{
		{Name: "ci", SHA256: auth.HashToken("ci-secret"), Scopes: []auth.Scope{auth.ScopeGateCheck, auth.ScopeRead}},
		{Name: "ops", SHA256: auth.HashToken("ops-secret"), Scopes: []auth.Scope{auth.ScopeAdmin}},
	}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api.New(api.Deps{Gate: e.g, Auth: a}))
	t.Cleanup(srv.Close)
	e.url = srv.URL
	t.Setenv("TAILGATE_TOKEN", "")
	t.Setenv("TAILGATE_TOKEN_FILE", "")
	t.Setenv("TAILGATE_SERVER", "")
	return e
}

func (e *cliEnv) run(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(t.Context(), append([]string{"tailgate", "gate"}, args...), strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

// TestGateCheckCLI follows the end-to-end story on the CLI: the
// budget burns and a feature check flips from 0 to 1 while a rollback stays
// 0; an override flips it back; every decision is in the audit log.
func TestGateCheckCLI(t *testing.T) {
	e := newCLIEnv(t)
	check := func(class string, extra ...string) (int, string, string) {
		return e.run(t, append([]string{"check", "--service", "checkout", "--change", class, "--server", e.url, "--token-file", e.tokenFile, "--version", "v7", "--environment", "production"}, extra...)...)
	}
	code, out, _ := check("feature")
	if code != 0 {
		t.Fatalf("healthy feature: exit %d\n%s", code, out)
	}
	for _, want := range []string{
		"ALLOW   feature change to checkout (v7, production)",
		"rule:   within-budget (policy checkout)",
		"checkout-availability  99.9%      30d     [################....] 80.0%",
		"burn 5m  burn 1h  burn 6h  exhausted in",
		"4.00x    3.00x        -  2d2h",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}

	e.budget.set(0.1)
	if code, out, _ := check("feature"); code != exitCanary || !strings.Contains(out, "CANARY  feature change to checkout (v7, production): allowed only as a canary, at 1% of traffic") {
		t.Errorf("low budget feature: exit %d\n%s", code, out)
	}
	if code, _, _ := check("feature", "--accept-canary"); code != 0 {
		t.Errorf("--accept-canary: exit %d", code)
	}

	e.budget.set(-0.3)
	code, out, _ = check("feature")
	if code != 1 || !strings.Contains(out, "DENY    feature change") || !strings.Contains(out, "[....................] -30.0% overspent") || !strings.Contains(out, "rule:   budget-exhausted") {
		t.Errorf("spent feature: exit %d\n%s", code, out)
	}
	if code, _, _ := check("rollback"); code != 0 {
		t.Errorf("spent rollback: exit %d", code)
	}
	code, out, _ = check("feature", "--output", "json")
	if code != 1 || !strings.Contains(out, `"decision": "deny"`) || !strings.Contains(out, `"policy_rule": "budget-exhausted"`) {
		t.Errorf("json output: exit %d\n%s", code, out)
	}

	// An override flips it back.
	code, out, errOut := e.run(t, "override", "create", "--service", "checkout", "--change", "feature", "--reason", "launch day", "--approved-by", "cto", "--for", "1h", "--server", e.url, "--token-file", e.opsTokenFile)
	if code != 0 || !strings.Contains(out, "active") {
		t.Fatalf("override create: exit %d\n%s%s", code, out, errOut)
	}
	id := strings.Fields(out)[1]
	code, out, _ = check("feature")
	if code != 0 || !strings.Contains(out, "rule:   override") || !strings.Contains(out, "override "+id+" approved by cto (created by ops)") {
		t.Errorf("feature with override: exit %d\n%s", code, out)
	}
	if code, out, _ := e.run(t, "override", "list", "--server", e.url, "--token-file", e.tokenFile); code != 0 || !strings.Contains(out, id) {
		t.Errorf("override list: %d\n%s", code, out)
	}
	if code, out, _ := e.run(t, "override", "revoke", id, "--server", e.url, "--token-file", e.opsTokenFile); code != 0 || !strings.Contains(out, "revoked by ops") {
		t.Errorf("override revoke: %d\n%s", code, out)
	}
	if code, _, _ := check("feature"); code != 1 {
		t.Errorf("feature after revoke: exit %d", code)
	}

	code, out, _ = e.run(t, "decisions", "--service", "checkout", "--server", e.url, "--token-file", e.tokenFile)
	if code != 0 || strings.Count(out, "\n") != 8 || strings.Count(out, "deny") != 3 {
		t.Errorf("decisions: exit %d\n%s", code, out)
	}
}

func TestGateCLIErrors(t *testing.T) {
	e := newCLIEnv(t)
	wrongTok := filepath.Join(t.TempDir(), "wrong")
	os.WriteFile(wrongTok, []byte("nope"), 0o600)
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"no subcommand", nil, "tailgate gate: missing command"},
		{"unknown subcommand", []string{"nope"}, `tailgate gate: unknown command "nope"`},
		{"missing flags", []string{"check", "--server", e.url}, "missing --service and --change (required)\nRun 'tailgate gate check --help' for usage."},
		{"bad output", []string{"check", "--service", "a", "--change", "fix", "--output", "xml"}, "--output must be text or json"},
		{"positional", []string{"check", "extra"}, `unexpected argument "extra"`},
		{"unknown class", []string{"check", "--service", "checkout", "--change", "yolo", "--server", e.url, "--token-file", e.tokenFile}, `unknown change_class "yolo"`},
		{"unreachable", []string{"check", "--service", "checkout", "--change", "fix", "--server", "http://127.0.0.1:1", "--timeout", "2s"}, "reach tailgate at http://127.0.0.1:1"},
		{"no token", []string{"check", "--service", "checkout", "--change", "fix", "--server", e.url}, "unauthorized (HTTP 401)"},
		{"wrong token", []string{"check", "--service", "checkout", "--change", "fix", "--server", e.url, "--token-file", wrongTok}, "unknown bearer token"},
		{"missing token file", []string{"check", "--service", "checkout", "--change", "fix", "--server", e.url, "--token-file", "/nonexistent/tok"}, "read token file"},
		{"override without end", []string{"override", "create", "--service", "a", "--change", "feature", "--reason", "r", "--approved-by", "b"}, "time-boxed"},
		{"override forbidden", []string{"override", "create", "--service", "checkout", "--change", "feature", "--reason", "r", "--approved-by", "b", "--for", "1h", "--server", e.url, "--token-file", e.tokenFile}, "lacks the gate:override scope"},
		{"revoke without id", []string{"override", "revoke"}, "tailgate gate override revoke: missing argument ID"},
		{"deploy without version", []string{"deploy", "--service", "a"}, "missing --version (required)"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := e.run(t, tc.args...)
			if code != exitUsage || !strings.Contains(errOut, tc.want) {
				t.Errorf("exit %d, stderr %q (stdout %q); want 2 with %q", code, errOut, out, tc.want)
			}
		})
	}
}

func TestReportRiskCLI(t *testing.T) {
	e := newCLIEnv(t)
	e.budget.set(0.4)
	for _, v := range []string{"v1", "v2"} {
		if code, out, errOut := e.run(t, "deploy", "--service", "checkout", "--version", v, "--server", e.url, "--token-file", e.tokenFile); code != 0 {
			t.Fatalf("deploy: %d %s %s", code, out, errOut)
		}
	}
	if code, out, errOut := e.run(t, "deploy", "--service", "checkout", "--version", "v1", "--change", "rollback", "--server", e.url, "--token-file", e.tokenFile); code != 0 {
		t.Fatalf("deploy: %d %s %s", code, out, errOut)
	}
	var out, errb bytes.Buffer
	code := run(t.Context(), []string{"tailgate", "report", "risk", "--service", "checkout", "--server", e.url, "--token-file", e.tokenFile}, strings.NewReader(""), &out, &errb)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	// 1,000,000 requests over 720h: 1,388.9 an hour, the budget 1,000
	// events; an hour of outage burns 138.9% of it. 40% left is 400 events.
	for _, want := range []string{
		"Gate now: feature releases are ALLOWED (rule within-budget).",
		"checkout-availability (99.9% over 30d)",
		"Error budget: [########............] 40.0% left: 400 more failed requests allowed of 1,000 this window.",
		"Burning at 3.0x the sustainable rate (last 1h); at this pace the budget runs out in 2d2h.",
		"One hour of full outage would burn 138.9% of the budget; a failed release (100.0% of requests failing for 30m) 69.4%.",
		"Releases: 3 deploys in the window, 1 rolled back (change failure rate 50.0%).",
		"An hour of full outage costs about USD 12,000: USD 12,000 lost revenue.",
		"A failed release costs about USD 6,000: USD 6,000 lost revenue.",
		"Expected cost of the next release at the 50.0% change failure rate: USD 3,000.",
		"the budget cost of past releases is unknown: no SLI history source",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
	t.Log("\n" + out.String())
}
