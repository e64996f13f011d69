package api

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"

	"github.com/tailgate-sre/tailgate/internal/auth"
	"github.com/tailgate-sre/tailgate/internal/gate"
)

var gt0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// The plaintext tokens of the test config; the config holds their hashes.
const (
	readerToken = "reader-token-1"
	ciToken     = "ci-token-2"
	opsToken    = "ops-token-3"
	adminToken  = "admin-token-4"
)

func testTokens() []auth.Token {
	return []auth.Token{
		{Name: "dashboard", SHA256: auth.HashToken(readerToken), Scopes: []auth.Scope{auth.ScopeRead}},
		{Name: "ci", SHA256: auth.HashToken(ciToken), Scopes: []auth.Scope{auth.ScopeGateCheck}},
		{Name: "release-manager", SHA256: auth.HashToken(opsToken), Scopes: []auth.Scope{auth.ScopeGateOverride, auth.ScopeRead}},
		{Name: "root", SHA256: auth.HashToken(adminToken), Scopes: []auth.Scope{auth.ScopeAdmin}},
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *testClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// budgets serves one availability SLO per service with a settable budget,
// always fresh.
type budgets struct {
	mu     sync.Mutex
	budget map[string]float64
	paging map[string]bool
}

func (b *budgets) SLOStates(service string, now time.Time) []gate.SLOState {
	b.mu.Lock()
	defer b.mu.Unlock()
	v, ok := b.budget[service]
	if !ok {
		return nil
	}
	burn := 0.7
	st := gate.SLOState{
		Name: service + "-availability", Service: service, Objective: 99.9, Window: 30 * 24 * time.Hour,
		BudgetRemaining: &v, BurnRates: map[string]*float64{"1h": &burn, "5m": nil}, Coverage: 1,
		Good: 999_000, Total: 1_000_000, UpdatedAt: now,
	}
	if b.paging[service] {
		st.AlertsFiring = []gate.FiringAlert{{Name: "fast-burn", Severity: gate.SeverityPage, Since: now.Add(-time.Minute)}}
	}
	return []gate.SLOState{st}
}

func (b *budgets) set(service string, v float64) {
	b.mu.Lock()
	b.budget[service] = v
	b.mu.Unlock()
}

type gateEnv struct {
	srv    *httptest.Server
	g      *gate.Gate
	clk    *testClock
	states *budgets
	logs   *syncBuffer
}

func newGateEnv(t *testing.T, cfg auth.Config) *gateEnv {
	t.Helper()
	e := &gateEnv{clk: &testClock{t: gt0}, states: &budgets{budget: map[string]float64{"checkout": 0.8}, paging: map[string]bool{}}, logs: &syncBuffer{}}
	log := slog.New(slog.NewTextHandler(e.logs, nil))
	var err error
	e.g, err = gate.New(nil, gate.Settings{Logger: log, States: e.states, Store: gate.NewMemoryStore(), Now: e.clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.g.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	a, err := auth.New(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	e.srv = httptest.NewServer(New(Deps{Logger: log, Gate: e.g, Auth: a}))
	t.Cleanup(func() {
		e.srv.Close()
		if err := e.g.Shutdown(context.Background()); err != nil {
			t.Error(err)
		}
		goleak.VerifyNone(t)
	})
	return e
}

type answer struct {
	status int
	header http.Header
	body   []byte
}

func (e *gateEnv) do(t *testing.T, method, path, body, token string) answer {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, e.srv.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, resp.Header, b}
}

func decode[T any](t *testing.T, a answer) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(a.body, &v); err != nil {
		t.Fatalf("decode %T from %s: %v", v, a.body, err)
	}
	return v
}

type endpoint struct {
	method, path, body string
	scope              auth.Scope
	ok                 int
	write              bool // a write: refused without a token unless anonymous writes are on
}

// gateEndpoints lists every gate endpoint with a request that succeeds and
// the scope it needs. overrideID names an existing override.
func gateEndpoints(overrideID string) []endpoint {
	expires := gt0.Add(time.Hour).Format(time.RFC3339)
	return []endpoint{
		{"POST", "/api/v1/gate/check", `{"service":"checkout","change_class":"feature","version":"v2","environment":"production","requested_by":"pipeline"}`, auth.ScopeGateCheck, 200, false},
		{"GET", "/api/v1/gate/argo?service=checkout&change_class=rollback", "", auth.ScopeGateCheck, 200, false},
		{"POST", "/api/v1/gate/flagger/confirm-rollout", `{"name":"checkout","namespace":"shop","phase":"Progressing","metadata":{"change_class":"rollback"}}`, auth.ScopeGateCheck, 200, false},
		{"GET", "/api/v1/gate/decisions?service=checkout", "", auth.ScopeRead, 200, false},
		{"POST", "/api/v1/gate/overrides", `{"service":"checkout","change_classes":["feature"],"reason":"launch","approved_by":"cto","expires_at":"` + expires + `"}`, auth.ScopeGateOverride, 201, true},
		{"GET", "/api/v1/gate/overrides?all=true", "", auth.ScopeRead, 200, false},
		{"DELETE", "/api/v1/gate/overrides/" + overrideID, "", auth.ScopeGateOverride, 200, true},
		{"POST", "/api/v1/deploys", `{"service":"checkout","version":"v2","time":"2026-03-01T11:00:00Z"}`, auth.ScopeGateCheck, 201, true},
		{"GET", "/api/v1/deploys?service=checkout", "", auth.ScopeRead, 200, false},
		{"GET", "/api/v1/services/checkout/risk", "", auth.ScopeRead, 200, false},
	}
}

// wrongScope returns a valid token that lacks scope.
func wrongScope(s auth.Scope) string {
	switch s {
	case auth.ScopeRead, auth.ScopeGateOverride:
		return ciToken
	default:
		return readerToken
	}
}

func rightScope(s auth.Scope) string {
	switch s {
	case auth.ScopeRead:
		return readerToken
	case auth.ScopeGateCheck:
		return ciToken
	default:
		return opsToken
	}
}

func TestGateEndpointsAuth(t *testing.T) {
	e := newGateEnv(t, auth.Config{Tokens: testTokens()})
	o, err := e.g.CreateOverride(t.Context(), gate.OverrideRequest{Service: "checkout", ChangeClasses: []gate.ChangeClass{gate.Config}, Reason: "r", ApprovedBy: "a", ExpiresAt: gt0.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	for _, ep := range gateEndpoints(o.ID) {
		cases := []struct {
			name   string
			token  string
			status int
		}{
			{"no token", "", http.StatusUnauthorized},
			{"wrong token", "not-a-token", http.StatusUnauthorized},
			{"token of another scope", wrongScope(ep.scope), http.StatusForbidden},
			{"right scope", rightScope(ep.scope), ep.ok},
			{"admin", adminToken, ep.ok},
		}
		for _, tc := range cases {
			t.Run(ep.method+" "+ep.path+"/"+tc.name, func(t *testing.T) {
				a := e.do(t, ep.method, ep.path, ep.body, tc.token)
				if a.status != tc.status {
					t.Fatalf("status %d, want %d: %s", a.status, tc.status, a.body)
				}
				if a.status == http.StatusUnauthorized && a.header.Get("WWW-Authenticate") != `Bearer realm="tailgate"` {
					t.Errorf("401 without WWW-Authenticate: %v", a.header)
				}
				if a.status >= 400 {
					eb := decode[ErrorBody](t, a)
					if eb.Error == "" || eb.Detail == "" {
						t.Errorf("error body %s", a.body)
					}
				}
			})
		}
	}
	logs := e.logs.String()
	for _, tok := range []string{readerToken, ciToken, opsToken, adminToken, "not-a-token"} {
		if strings.Contains(logs, tok) {
			t.Errorf("a token is in the logs: %s", tok)
		}
	}
	for _, want := range []string{"reason=\"unknown bearer token\"", "reason=\"missing bearer token\"", "token=dashboard reason=\"missing scope gate:check\"", "status=403", "status=401"} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs lack %q", want)
		}
	}
}

func TestGateEndpointsPublicReadAndOpen(t *testing.T) {
	t.Run("public read", func(t *testing.T) {
		e := newGateEnv(t, auth.Config{Tokens: testTokens(), PublicRead: true})
		for _, ep := range gateEndpoints("ovr_unknown") {
			a := e.do(t, ep.method, ep.path, ep.body, "")
			want := http.StatusUnauthorized
			if ep.scope == auth.ScopeRead {
				want = ep.ok
			}
			if a.status != want {
				t.Errorf("%s %s without token: %d, want %d: %s", ep.method, ep.path, a.status, want, a.body)
			}
		}
		// A valid token still names the caller on a public endpoint; a wrong
		// one is ignored there.
		if a := e.do(t, "GET", "/api/v1/gate/decisions", "", "garbage"); a.status != 200 {
			t.Errorf("public read with a wrong token: %d", a.status)
		}
	})
	t.Run("no tokens configured", func(t *testing.T) {
		// Reads and questions are open; writes are refused, naming the fix.
		e := newGateEnv(t, auth.Config{})
		o, _ := e.g.CreateOverride(t.Context(), gate.OverrideRequest{Service: "checkout", ChangeClasses: []gate.ChangeClass{gate.Config}, Reason: "r", ApprovedBy: "a", ExpiresAt: gt0.Add(time.Hour)})
		for _, ep := range gateEndpoints(o.ID) {
			a := e.do(t, ep.method, ep.path, ep.body, "")
			want := ep.ok
			if ep.write {
				want = http.StatusForbidden
			}
			if a.status != want {
				t.Errorf("%s %s: %d, want %d: %s", ep.method, ep.path, a.status, want, a.body)
			}
			if ep.write && !strings.Contains(string(a.body), "auth.allow_anonymous_writes: true") {
				t.Errorf("%s %s: the refusal does not name the fix: %s", ep.method, ep.path, a.body)
			}
		}
		if !strings.Contains(e.logs.String(), "no API tokens configured") {
			t.Error("no warning that the API is open")
		}
	})
	t.Run("no tokens, anonymous writes allowed", func(t *testing.T) {
		e := newGateEnv(t, auth.Config{AllowAnonymousWrites: true})
		o, _ := e.g.CreateOverride(t.Context(), gate.OverrideRequest{Service: "checkout", ChangeClasses: []gate.ChangeClass{gate.Config}, Reason: "r", ApprovedBy: "a", ExpiresAt: gt0.Add(time.Hour)})
		for _, ep := range gateEndpoints(o.ID) {
			if a := e.do(t, ep.method, ep.path, ep.body, ""); a.status != ep.ok {
				t.Errorf("%s %s: %d, want %d: %s", ep.method, ep.path, a.status, ep.ok, a.body)
			}
		}
	})
}

func TestGateCheckResponse(t *testing.T) {
	e := newGateEnv(t, auth.Config{Tokens: testTokens()})
	e.states.set("checkout", -0.25)
	a := e.do(t, "POST", "/api/v1/gate/check", `{"service":"checkout","change_class":"feature","version":"v2","environment":"production","requested_by":"pipeline-7"}`, ciToken)
	if a.status != 200 {
		t.Fatalf("status %d: %s", a.status, a.body)
	}
	var raw map[string]json.RawMessage
	json.Unmarshal(a.body, &raw)
	var keys []string
	for k := range raw {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	want := []string{"change_class", "decision", "environment", "evaluated_at", "id", "override", "policy", "policy_rule", "principal", "reasons", "requested_by", "service", "slos", "source", "stale_data", "ttl_seconds", "version"}
	if diff := cmp.Diff(want, keys); diff != "" {
		t.Errorf("response keys (-want +got)\n%s", diff)
	}
	var body struct {
		Decision   string   `json:"decision"`
		PolicyRule string   `json:"policy_rule"`
		Principal  string   `json:"principal"`
		Override   any      `json:"override"`
		TTL        int      `json:"ttl_seconds"`
		Reasons    []string `json:"reasons"`
		SLOs       []struct {
			Name            string              `json:"name"`
			Objective       float64             `json:"objective"`
			BudgetRemaining *float64            `json:"budget_remaining"`
			BurnRates       map[string]*float64 `json:"burn_rates"`
			AlertsFiring    []any               `json:"alerts_firing"`
			Coverage        float64             `json:"coverage"`
		} `json:"slos"`
	}
	json.Unmarshal(a.body, &body)
	if body.Decision != "deny" || body.PolicyRule != "budget-exhausted" || body.Principal != "ci" || body.Override != nil || body.TTL != 60 || len(body.Reasons) < 2 {
		t.Errorf("body: %+v", body)
	}
	if len(body.SLOs) != 1 || body.SLOs[0].Name != "checkout-availability" || body.SLOs[0].Objective != 99.9 ||
		*body.SLOs[0].BudgetRemaining != -0.25 || *body.SLOs[0].BurnRates["1h"] != 0.7 || body.SLOs[0].BurnRates["5m"] != nil ||
		body.SLOs[0].AlertsFiring == nil || body.SLOs[0].Coverage != 1 {
		t.Errorf("slos: %s", raw["slos"])
	}
}

func TestGateOverrideFlowHTTP(t *testing.T) {
	e := newGateEnv(t, auth.Config{Tokens: testTokens()})
	e.states.set("checkout", -0.1)
	check := func(class string) string {
		t.Helper()
		a := e.do(t, "POST", "/api/v1/gate/check", `{"service":"checkout","change_class":"`+class+`"}`, ciToken)
		return decode[gate.Decision](t, a).Verdict.String()
	}
	if got := check("feature"); got != "deny" {
		t.Fatalf("feature: %s", got)
	}
	if got := check("rollback"); got != "allow" {
		t.Fatalf("rollback: %s", got)
	}
	a := e.do(t, "POST", "/api/v1/gate/overrides", `{"service":"checkout","change_classes":["feature"],"reason":"regulatory deadline","approved_by":"cto","expires_at":"`+gt0.Add(30*time.Minute).Format(time.RFC3339)+`"}`, opsToken)
	if a.status != 201 {
		t.Fatalf("create override: %d %s", a.status, a.body)
	}
	o := decode[gate.Override](t, a)
	if o.CreatedBy != "release-manager" || o.Status != gate.OverrideActive || a.header.Get("Location") != "/api/v1/gate/overrides/"+o.ID {
		t.Errorf("override: %+v, location %q", o, a.header.Get("Location"))
	}
	if got := check("feature"); got != "allow" {
		t.Fatalf("feature with override: %s", got)
	}
	list := decode[struct{ Overrides []gate.Override }](t, e.do(t, "GET", "/api/v1/gate/overrides?service=checkout", "", readerToken))
	if len(list.Overrides) != 1 || list.Overrides[0].ID != o.ID {
		t.Errorf("active overrides: %+v", list)
	}
	e.clk.Add(31 * time.Minute)
	if got := check("feature"); got != "deny" {
		t.Fatalf("feature after expiry: %s", got)
	}
	list = decode[struct{ Overrides []gate.Override }](t, e.do(t, "GET", "/api/v1/gate/overrides?service=checkout", "", readerToken))
	if len(list.Overrides) != 0 {
		t.Errorf("expired override still listed as active: %+v", list)
	}
	list = decode[struct{ Overrides []gate.Override }](t, e.do(t, "GET", "/api/v1/gate/overrides?all=true", "", readerToken))
	if len(list.Overrides) != 1 || list.Overrides[0].Status != gate.OverrideExpired {
		t.Errorf("all overrides: %+v", list)
	}
	a = e.do(t, "DELETE", "/api/v1/gate/overrides/"+o.ID, "", adminToken)
	if r := decode[gate.Override](t, a); a.status != 200 || r.Status != gate.OverrideRevoked || r.RevokedBy != "root" {
		t.Errorf("revoke: %d %s", a.status, a.body)
	}
	ds := decode[struct{ Decisions []gate.Decision }](t, e.do(t, "GET", "/api/v1/gate/decisions?service=checkout&from="+gt0.Format(time.RFC3339), "", readerToken))
	var trail []string
	for _, d := range ds.Decisions {
		trail = append(trail, string(d.ChangeClass)+":"+d.Verdict.String())
	}
	if diff := cmp.Diff([]string{"feature:deny", "feature:allow", "rollback:allow", "feature:deny"}, trail); diff != "" {
		t.Errorf("audit (-want +got)\n%s", diff)
	}
}

func TestGateBadRequests(t *testing.T) {
	e := newGateEnv(t, auth.Config{Tokens: testTokens()})
	cases := []struct {
		method, path, body string
		status             int
		detail             string
	}{
		{"POST", "/api/v1/gate/check", `{"service":"checkout","change-class":"feature"}`, 400, `unknown field "change-class"`},
		{"POST", "/api/v1/gate/check", `{"service":"checkout","change_class":"yolo"}`, 400, `unknown change_class "yolo"`},
		{"POST", "/api/v1/gate/check", `{"change_class":"feature"}`, 400, "service is required"},
		{"POST", "/api/v1/gate/check", `{"service":"a","change_class":"fix"} {}`, 400, "trailing data"},
		{"POST", "/api/v1/gate/check", `not json`, 400, "decode JSON body"},
		{"GET", "/api/v1/gate/argo?change_class=feature", "", 400, "service is required"},
		{"GET", "/api/v1/gate/decisions?from=yesterday", "", 400, "from: must be an RFC 3339 time"},
		{"GET", "/api/v1/gate/decisions?limit=0", "", 400, "limit: must be an integer from 1 to 10000"},
		{"GET", "/api/v1/gate/overrides?all=maybe", "", 400, "all: must be true or false"},
		{"DELETE", "/api/v1/gate/overrides/ovr_nope", "", 404, "not found"},
		{"POST", "/api/v1/gate/overrides", `{"service":"checkout","change_classes":["feature"],"reason":"r","approved_by":"a","expires_at":"2020-01-01T00:00:00Z"}`, 400, "is not in the future"},
		{"POST", "/api/v1/deploys", `{"service":"checkout","version":"1","id":"mine"}`, 400, "id and principal are set by the server"},
		{"POST", "/api/v1/gate/flagger/post-rollout", `{}`, 404, `unknown Flagger hook "post-rollout"`},
		{"POST", "/api/v1/gate/flagger/confirm-rollout", `{"name":`, 400, "decode Flagger payload"},
	}
	for _, tc := range cases {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			a := e.do(t, tc.method, tc.path, tc.body, adminToken)
			eb := decode[ErrorBody](t, a)
			if a.status != tc.status || !strings.Contains(eb.Detail, tc.detail) {
				t.Errorf("got %d %+v, want %d with %q", a.status, eb, tc.status, tc.detail)
			}
		})
	}
	// Relative from: the last 24 hours.
	if a := e.do(t, "GET", "/api/v1/gate/decisions?from=24h&to=2099-01-01T00:00:00Z", "", readerToken); a.status != 200 {
		t.Errorf("relative from: %d %s", a.status, a.body)
	}
}

func TestFlaggerWebhooks(t *testing.T) {
	e := newGateEnv(t, auth.Config{Tokens: testTokens()})
	payload := func(class, token string) string {
		md := map[string]string{"change_class": class, "version": "1.2.3"}
		if token != "" {
			md["token"] = token
		}
		b, _ := json.Marshal(FlaggerPayload{Name: "checkout", Namespace: "shop", Phase: "Progressing", Checksum: "abc", Metadata: md})
		return string(b)
	}
	cases := []struct {
		name     string
		budget   float64
		hook     string
		class    string
		header   string // Authorization bearer
		metaTok  string // metadata token
		status   int
		decision string
	}{
		{"healthy: start", 0.8, "confirm-rollout", "feature", ciToken, "", 200, "allow"},
		{"healthy: promote", 0.8, "confirm-promotion", "feature", ciToken, "", 200, "allow"},
		{"low budget: a canary may start", 0.1, "confirm-rollout", "feature", ciToken, "", 200, "canary"},
		{"low budget: pre-rollout checks pass", 0.1, "pre-rollout", "feature", ciToken, "", 200, "canary"},
		{"low budget: no promotion", 0.1, "confirm-promotion", "feature", ciToken, "", 403, "canary"},
		// Flagger asks before each weight step; its payload carries no
		// weight, so a canary verdict lets the steps go on and
		// confirm-promotion holds it short of promotion.
		{"healthy: more traffic", 0.8, "confirm-traffic-increase", "feature", ciToken, "", 200, "allow"},
		{"low budget: the canary's steps go on", 0.1, "confirm-traffic-increase", "feature", ciToken, "", 200, "canary"},
		{"spent: traffic held", -0.1, "confirm-traffic-increase", "feature", ciToken, "", 403, "deny"},
		{"spent: halt", -0.1, "confirm-rollout", "feature", ciToken, "", 403, "deny"},
		{"spent: a rollback goes", -0.1, "rollout", "rollback", ciToken, "", 200, "allow"},
		{"token in metadata", -0.1, "confirm-promotion", "fix", "", ciToken, 200, "allow"},
		{"wrong token in metadata", 0.8, "confirm-rollout", "feature", "", "nope", 401, ""},
		{"metadata token without the scope", 0.8, "confirm-rollout", "feature", "", readerToken, 403, ""},
		{"no token at all", 0.8, "confirm-rollout", "feature", "", "", 401, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e.states.set("checkout", tc.budget)
			a := e.do(t, "POST", "/api/v1/gate/flagger/"+tc.hook, payload(tc.class, tc.metaTok), tc.header)
			if a.status != tc.status {
				t.Fatalf("status %d, want %d: %s", a.status, tc.status, a.body)
			}
			if tc.decision == "" {
				return
			}
			ans := decode[FlaggerAnswer](t, a)
			if ans.Decision.String() != tc.decision || ans.Advance != (tc.status == 200) || ans.Reason == "" || ans.DecisionID == "" {
				t.Errorf("answer %+v", ans)
			}
			if tc.status == 403 && tc.decision == "canary" && !strings.Contains(ans.Reason, "only as a canary (1% suggested): not promoting") {
				t.Errorf("canary refusal reason: %q", ans.Reason)
			}
		})
	}
	if strings.Contains(e.logs.String(), ciToken) {
		t.Error("the metadata token reached the logs")
	}
	ds, _ := e.g.Decisions(t.Context(), gate.DecisionQuery{Limit: 1})
	if d := ds[0]; d.Source != "flagger" || d.Environment != "shop" || d.Version != "1.2.3" || d.RequestedBy != "flagger/shop/checkout confirm-promotion" || d.Principal != "ci" {
		t.Errorf("audit record of a Flagger check: %+v", d)
	}
}
