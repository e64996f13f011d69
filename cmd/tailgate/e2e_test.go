package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/tailgate-sre/tailgate/internal/config"
	"github.com/tailgate-sre/tailgate/internal/daemon"
	"github.com/tailgate-sre/tailgate/internal/daemon/daemontest"
	"github.com/tailgate-sre/tailgate/internal/otlptest"
)

// e2eConfig is a loopback-only daemon with one availability SLO for
// checkout: 99% over 1h, evaluated every second.
func e2eConfig(t *testing.T) config.Config {
	t.Helper()
	cfg, err := config.Parse([]byte(fmt.Sprintf(`
server: {api: "127.0.0.1:0"}
ingest: {otlp_grpc: "127.0.0.1:0", otlp_http: "127.0.0.1:0"}
sampling: {root_grace: 200ms}
storage: {path: %q}
slo_engine: {eval_interval: 1s}
# No tokens: the override these tests create is an anonymous write.
auth: {allow_anonymous_writes: true}
slos:
  - name: checkout-availability
    service: checkout
    objective: 99
    window: 1h
    sli: {kind: availability}
`, t.TempDir())))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func startE2E(t *testing.T, cfg config.Config) (*daemon.Daemon, string) {
	t.Helper()
	d := daemontest.Start(t, cfg)
	t.Setenv("TAILGATE_TOKEN", "")
	t.Setenv("TAILGATE_TOKEN_FILE", "")
	return d, "http://" + d.APIAddr()
}

// sendRequests sends n checkout requests (SERVER spans) through the OTel
// SDK over OTLP gRPC, bad of them with status ERROR.
func sendRequests(t *testing.T, d *daemon.Daemon, n, bad int) {
	t.Helper()
	tp := otlptest.Provider(t, d.GRPCAddr(), "checkout", false)
	tr := tp.Tracer("e2e")
	for i := range n {
		_, s := tr.Start(t.Context(), "POST /api/checkout", trace.WithSpanKind(trace.SpanKindServer),
			trace.WithAttributes(attribute.String("http.route", "/api/checkout")))
		if i < bad {
			s.SetStatus(codes.Error, "payment declined by timeout")
		}
		s.End()
	}
	if err := tp.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
}

// sloTotal waits until the SLO has counted at least n events and has been
// evaluated after that, and returns its state.
func waitSLO(t *testing.T, api string, n float64) map[string]any {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var st map[string]any
		getJSON(t, api+"/api/v1/slos/checkout-availability", &st)
		if total, _ := st["total"].(float64); total >= n {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("SLO never reached %v events: %v", n, st)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func getJSON(t *testing.T, url string, out any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, b)
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		t.Fatal(err)
	}
}

func gateCheck(t *testing.T, api, change string) (int, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(t.Context(), []string{"tailgate", "gate", "check", "--service", "checkout", "--change", change, "--server", api}, strings.NewReader(""), &out, &errb)
	return code, out.String() + errb.String()
}

// TestGateFollowsTheBudget is issue 4's end-to-end check: OTLP traffic
// burns checkout's budget, the CLI's answer for a feature flips from allow
// (exit 0) to deny (exit 1) while rollbacks stay allowed, an override flips
// it back until it expires, and every check is in the audit log.
func TestGateFollowsTheBudget(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	d, api := startE2E(t, e2eConfig(t))

	// 400 good requests: within budget.
	sendRequests(t, d, 400, 0)
	st := waitSLO(t, api, 400)
	if br, _ := st["budget_remaining"].(float64); br != 1 {
		t.Fatalf("budget_remaining = %v after only good traffic, want 1", st["budget_remaining"])
	}
	if code, out := gateCheck(t, api, "feature"); code != exitOK {
		t.Fatalf("healthy budget: feature check exit %d, want 0\n%s", code, out)
	}

	// 100 bad of 500 more: 100 bad of 900 is 11%, over ten times the 1%
	// the objective allows, so the budget is spent (remaining 1 - 11.1).
	sendRequests(t, d, 500, 100)
	st = waitSLO(t, api, 900)
	wantRemaining := 1 - (100.0/900)/0.01
	if br, _ := st["budget_remaining"].(float64); abs(br-wantRemaining) > 1e-9 {
		t.Fatalf("budget_remaining = %v, want %v", st["budget_remaining"], wantRemaining)
	}
	code, out := gateCheck(t, api, "feature")
	if code != exitFail || !strings.Contains(strings.ToLower(out), "deny") {
		t.Fatalf("spent budget: feature check exit %d, want 1\n%s", code, out)
	}
	if code, out := gateCheck(t, api, "rollback"); code != exitOK {
		t.Fatalf("spent budget: rollback check exit %d, want 0\n%s", code, out)
	}

	// An override lets features through until it ends. It ends here by
	// revocation, an event the test controls; expiry at its deadline is
	// internal/gate's business, tested there with a fake clock.
	var created bytes.Buffer
	if code := run(t.Context(), []string{"tailgate", "gate", "override", "create", "--service", "checkout", "--change", "feature",
		"--reason", "hotfix bundled with feature flag off", "--approved-by", "vp-eng", "--for", "1h", "--output", "json", "--server", api},
		strings.NewReader(""), &created, io.Discard); code != exitOK {
		t.Fatalf("create override: exit %d\n%s", code, created.String())
	}
	var override struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(created.Bytes(), &override); err != nil || override.ID == "" {
		t.Fatalf("create override: no id in %s (%v)", created.String(), err)
	}
	if code, out := gateCheck(t, api, "feature"); code != exitOK || !strings.Contains(strings.ToLower(out), "override") {
		t.Fatalf("with override: feature check exit %d, want 0 naming the override\n%s", code, out)
	}
	var revoked bytes.Buffer
	if code := run(t.Context(), []string{"tailgate", "gate", "override", "revoke", override.ID, "--server", api},
		strings.NewReader(""), &revoked, &revoked); code != exitOK {
		t.Fatalf("revoke override: exit %d\n%s", code, revoked.String())
	}
	if code, out := gateCheck(t, api, "feature"); code != exitFail {
		t.Fatalf("after the override was revoked: feature check exit %d, want 1\n%s", code, out)
	}

	var audit struct {
		Decisions []struct {
			ChangeClass string `json:"change_class"`
			Decision    string `json:"decision"`
		} `json:"decisions"`
	}
	getJSON(t, api+"/api/v1/gate/decisions?service=checkout", &audit)
	got := map[string]int{}
	for _, dcs := range audit.Decisions {
		got[dcs.ChangeClass+":"+dcs.Decision]++
	}
	want := map[string]int{"feature:allow": 2, "feature:deny": 2, "rollback:allow": 1}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("audit log = %v, want %v", got, want)
	}
}

func abs(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}
