package api

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"

	"github.com/tailgate-sre/tailgate/internal/auth"
	"github.com/tailgate-sre/tailgate/internal/gate"
	"github.com/tailgate-sre/tailgate/internal/otlptest"
	"github.com/tailgate-sre/tailgate/internal/slo"
	"github.com/tailgate-sre/tailgate/internal/units"
)

// writeEnv serves the gate and one SLO, checkout-availability (99% over
// 30 days), behind the given auth config.
type writeEnv struct {
	srv  *httptest.Server
	g    *gate.Gate
	slos *slo.Engine
	clk  *testClock
}

func newWriteEnv(t *testing.T, cfg auth.Config) *writeEnv {
	t.Helper()
	e := &writeEnv{clk: &testClock{t: sloNow}}
	var err error
	e.g, err = gate.New(nil, gate.Settings{States: &budgets{budget: map[string]float64{"checkout": 0.8}, paging: map[string]bool{}},
		Store: gate.NewMemoryStore(), Now: e.clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.g.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	e.slos, err = slo.NewEngine([]slo.Spec{
		{Name: "checkout-availability", Service: "checkout", Objective: 99, Window: units.Duration(30 * 24 * time.Hour), SLI: slo.SLISpec{Kind: slo.Availability}},
	}, slo.Settings{})
	if err != nil {
		t.Fatal(err)
	}
	a, err := auth.New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	e.srv = httptest.NewServer(New(Deps{Gate: e.g, SLOs: e.slos, Auth: a, Now: e.clk.Now}))
	t.Cleanup(func() {
		e.srv.Close()
		if err := e.g.Shutdown(context.Background()); err != nil {
			t.Error(err)
		}
		goleak.VerifyNone(t)
	})
	return e
}

// req is one request of the matrix: a body, and the headers that vary.
type req struct {
	method, path, body string
	contentType        string
	token              string
	origin             string // "self" for the server's own origin
	fetchSite          string // Sec-Fetch-Site
	host               string // overrides the Host header
}

func (e *writeEnv) do(t *testing.T, r req) answer {
	t.Helper()
	var rd io.Reader
	if r.body != "" {
		rd = strings.NewReader(r.body)
	}
	hr, err := http.NewRequestWithContext(t.Context(), r.method, e.srv.URL+r.path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if r.contentType != "" {
		hr.Header.Set("Content-Type", r.contentType)
	}
	if r.token != "" {
		hr.Header.Set("Authorization", "Bearer "+r.token)
	}
	switch r.origin {
	case "":
	case "self":
		hr.Header.Set("Origin", e.srv.URL)
	default:
		hr.Header.Set("Origin", r.origin)
	}
	if r.fetchSite != "" {
		hr.Header.Set("Sec-Fetch-Site", r.fetchSite)
	}
	if r.host != "" {
		hr.Host = r.host
	}
	resp, err := e.srv.Client().Do(hr)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, resp.Header, b}
}

// TestAPIAuthMatrix runs reads, questions and writes against the API in
// open mode (no tokens), open mode with anonymous writes, and token mode,
// with the headers a browser attack would send: a text/plain body, a
// foreign Origin, Sec-Fetch-Site: cross-site, a rebinding Host. Each case
// says which check refuses it and the status that check answers.
func TestAPIAuthMatrix(t *testing.T) {
	expires := sloNow.Add(time.Hour).Format(time.RFC3339)
	corr := `{"start":"2026-03-01T11:00:00Z","end":"2026-03-01T11:30:00Z","reason":"load test"}`
	writes := map[string]req{
		"override":   {method: "POST", path: "/api/v1/gate/overrides", body: `{"service":"checkout","change_classes":["feature"],"reason":"launch","approved_by":"cto","expires_at":"` + expires + `"}`},
		"deploy":     {method: "POST", path: "/api/v1/deploys", body: `{"service":"checkout","version":"v2","time":"2026-03-01T11:00:00Z"}`},
		"correction": {method: "POST", path: "/api/v1/slos/checkout-availability/corrections", body: corr},
	}
	reads := map[string]req{
		"SLO list":        {method: "GET", path: "/api/v1/slos"},
		"gate decisions":  {method: "GET", path: "/api/v1/gate/decisions"},
		"corrections":     {method: "GET", path: "/api/v1/slos/checkout-availability/corrections"},
		"gate check":      {method: "POST", path: "/api/v1/gate/check", contentType: "application/json", body: `{"service":"checkout","change_class":"feature"}`},
		"argo gate check": {method: "GET", path: "/api/v1/gate/argo?service=checkout"},
	}
	// variant changes a JSON write into the attack (or the legitimate
	// request) a case names.
	type variant struct {
		name string
		mod  func(r *req)
	}
	json := func(r *req) { r.contentType = "application/json" }
	variants := []variant{
		{"plain JSON, no browser headers", json},
		{"text/plain body", func(r *req) { r.contentType = "text/plain" }},
		{"form body", func(r *req) { r.contentType = "application/x-www-form-urlencoded" }},
		{"no content type", func(r *req) {}},
		{"foreign Origin", func(r *req) { json(r); r.origin = "https://evil.example" }},
		{"Sec-Fetch-Site cross-site", func(r *req) { json(r); r.origin = "https://evil.example"; r.fetchSite = "cross-site" }},
		{"Sec-Fetch-Site cross-site without Origin", func(r *req) { json(r); r.fetchSite = "cross-site" }},
		{"same-origin browser write", func(r *req) { json(r); r.origin = "self"; r.fetchSite = "same-origin" }},
		{"same-origin without Sec-Fetch-Site", func(r *req) { json(r); r.origin = "self" }},
		// DNS rebinding: the attacker's name now points at the API, so the
		// browser calls the request same-origin; only the Host betrays it.
		{"rebinding Host", func(r *req) {
			json(r)
			r.host = "rebind.evil.example"
			r.origin = "http://rebind.evil.example"
			r.fetchSite = "same-origin"
		}},
		{"text/plain, foreign Origin, rebinding Host", func(r *req) {
			r.contentType = "text/plain"
			r.host = "rebind.evil.example"
			r.origin = "http://evil.example"
		}},
	}
	type mode struct {
		name  string
		cfg   auth.Config
		token string // sent with every request
		// want gives a write variant's status; reads and questions want
		// readStatus.
		want       map[string]int
		readStatus int
	}
	const (
		ok        = http.StatusCreated
		forbidden = http.StatusForbidden
		badType   = http.StatusUnsupportedMediaType
	)
	// Cross-site refusals come first in every mode, then authorization,
	// then the body's type.
	crossSite := map[string]int{
		"foreign Origin": forbidden, "Sec-Fetch-Site cross-site": forbidden, "Sec-Fetch-Site cross-site without Origin": forbidden,
		"text/plain, foreign Origin, rebinding Host": forbidden,
	}
	with := func(base map[string]int, more map[string]int) map[string]int {
		out := map[string]int{}
		for k, v := range base {
			out[k] = v
		}
		for k, v := range more {
			out[k] = v
		}
		return out
	}
	modes := []mode{
		{
			name: "open", cfg: auth.Config{}, readStatus: http.StatusOK,
			// Every write is refused: no token exists and anonymous writes
			// are off.
			want: with(crossSite, map[string]int{
				"plain JSON, no browser headers": forbidden, "text/plain body": forbidden, "form body": forbidden, "no content type": forbidden,
				"same-origin browser write": forbidden, "same-origin without Sec-Fetch-Site": forbidden, "rebinding Host": forbidden,
			}),
		},
		{
			name: "open with anonymous writes", cfg: auth.Config{AllowAnonymousWrites: true}, readStatus: http.StatusOK,
			want: with(crossSite, map[string]int{
				"plain JSON, no browser headers": ok, "text/plain body": badType, "form body": badType, "no content type": badType,
				"same-origin browser write": ok, "same-origin without Sec-Fetch-Site": ok, "rebinding Host": forbidden,
			}),
		},
		{
			name: "token", cfg: auth.Config{Tokens: testTokens()}, token: adminToken, readStatus: http.StatusOK,
			// A token proves the caller, whatever the Host; the browser
			// checks still hold.
			want: with(crossSite, map[string]int{
				"plain JSON, no browser headers": ok, "text/plain body": badType, "form body": badType, "no content type": badType,
				"same-origin browser write": ok, "same-origin without Sec-Fetch-Site": ok, "rebinding Host": ok,
			}),
		},
		{
			name: "token mode without a token", cfg: auth.Config{Tokens: testTokens()}, readStatus: http.StatusUnauthorized,
			want: with(crossSite, map[string]int{
				"plain JSON, no browser headers": http.StatusUnauthorized, "text/plain body": http.StatusUnauthorized,
				"form body": http.StatusUnauthorized, "no content type": http.StatusUnauthorized,
				"same-origin browser write": http.StatusUnauthorized, "same-origin without Sec-Fetch-Site": http.StatusUnauthorized,
				"rebinding Host": http.StatusUnauthorized,
			}),
		},
	}
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			e := newWriteEnv(t, m.cfg)
			for name, r := range reads {
				r.token = m.token
				if a := e.do(t, r); a.status != m.readStatus {
					t.Errorf("%s: %d, want %d: %s", name, a.status, m.readStatus, a.body)
				}
			}
			if len(m.want) != len(variants) {
				t.Fatalf("mode %s states %d of %d variants", m.name, len(m.want), len(variants))
			}
			for name, w := range writes {
				for _, v := range variants {
					r := w
					r.token = m.token
					v.mod(&r)
					want, found := m.want[v.name]
					if !found {
						t.Fatalf("no expectation for %q", v.name)
					}
					a := e.do(t, r)
					if a.status != want {
						t.Errorf("%s, %s: %d, want %d: %s", name, v.name, a.status, want, a.body)
						continue
					}
					if a.status >= 400 {
						if eb := decode[ErrorBody](t, a); eb.Error == "" || eb.Detail == "" {
							t.Errorf("%s, %s: error body %s", name, v.name, a.body)
						}
					}
				}
			}
		})
	}
}

// TestWriteRefusalsNameTheFix: each refusal of a write says what to do.
func TestWriteRefusalsNameTheFix(t *testing.T) {
	body := `{"service":"checkout","version":"v2","time":"2026-03-01T11:00:00Z"}`
	for _, tc := range []struct {
		name string
		cfg  auth.Config
		r    req
		want []string
	}{
		{"anonymous writes off", auth.Config{}, req{contentType: "application/json"}, []string{"auth.tokens", "auth.allow_anonymous_writes: true", "gate:check"}},
		{"text/plain", auth.Config{AllowAnonymousWrites: true}, req{contentType: "text/plain"}, []string{"Content-Type: application/json", `"text/plain"`}},
		{"cross-site", auth.Config{AllowAnonymousWrites: true}, req{contentType: "application/json", origin: "https://evil.example"}, []string{"another site", `"https://evil.example"`}},
		{"rebinding", auth.Config{AllowAnonymousWrites: true}, req{contentType: "application/json", host: "evil.example"}, []string{"auth.allowed_hosts", `"evil.example"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newWriteEnv(t, tc.cfg)
			r := tc.r
			r.method, r.path, r.body = "POST", "/api/v1/deploys", body
			a := e.do(t, r)
			eb := decode[ErrorBody](t, a)
			for _, w := range tc.want {
				if !strings.Contains(eb.Detail, w) {
					t.Errorf("detail %q lacks %q", eb.Detail, w)
				}
			}
		})
	}
	// A name in auth.allowed_hosts may be used by anonymous writes.
	e := newWriteEnv(t, auth.Config{AllowAnonymousWrites: true, AllowedHosts: []string{"tailgate.lan"}})
	if a := e.do(t, req{method: "POST", path: "/api/v1/deploys", body: body, contentType: "application/json", host: "tailgate.lan:8080"}); a.status != http.StatusCreated {
		t.Errorf("allowed host: %d %s", a.status, a.body)
	}
}

// TestCorrectionPrincipalAndSoftDelete: a correction records the token's
// name as its author; deleting keeps it, marked, and its events count
// again.
//
// checkout-availability is 99% over 30 days. 1000 requests arrive at
// 11:50 (5 bad) and 1000 at 11:55 (15 bad). By hand:
//   - no correction: 2000 requests, 20 bad; the budget allows 1% of
//     2000 = 20 bad, so budget_remaining = 1 - 20/20 = 0;
//   - with the 11:55 minute corrected: 1000 requests, 5 bad, 10 allowed,
//     budget_remaining = 1 - 5/10 = 0.5;
//   - the correction deleted: back to 2000 requests and 0.
func TestCorrectionPrincipalAndSoftDelete(t *testing.T) {
	e := newWriteEnv(t, auth.Config{Tokens: testTokens()})
	at1150 := time.Date(2026, 3, 1, 11, 50, 0, 0, time.UTC)
	at1155 := time.Date(2026, 3, 1, 11, 55, 0, 0, time.UTC)
	e.slos.Observe(otlptest.EntryRequest(t, "checkout", 1000, 5), at1150.Add(10*time.Second))
	e.slos.Observe(otlptest.EntryRequest(t, "checkout", 1000, 15), at1155.Add(10*time.Second))
	status := func() (total, remaining float64) {
		t.Helper()
		a := e.do(t, req{method: "GET", path: "/api/v1/slos/checkout-availability", token: readerToken})
		st := decode[slo.Status](t, a)
		if st.BudgetRemaining == nil {
			t.Fatalf("no budget: %s", a.body)
		}
		return st.Total, *st.BudgetRemaining
	}
	const eps = 1e-9
	check := func(when string, wantTotal, wantRemaining float64) {
		t.Helper()
		total, rem := status()
		if total != wantTotal || rem < wantRemaining-eps || rem > wantRemaining+eps {
			t.Errorf("%s: total %v, budget_remaining %v; want %v, %v", when, total, rem, wantTotal, wantRemaining)
		}
	}
	check("before the correction", 2000, 0)

	base := "/api/v1/slos/checkout-availability/corrections"
	// The author comes from the token, never from the body.
	if a := e.do(t, req{method: "POST", path: base, token: opsToken, contentType: "application/json",
		body: `{"start":"2026-03-01T11:55:00Z","end":"2026-03-01T11:56:00Z","reason":"load test","created_by":"someone-else"}`}); a.status != http.StatusBadRequest {
		t.Errorf("created_by in the body: %d, want 400: %s", a.status, a.body)
	}
	a := e.do(t, req{method: "POST", path: base, token: opsToken, contentType: "application/json",
		body: `{"start":"2026-03-01T11:55:00Z","end":"2026-03-01T11:56:00Z","reason":"load test"}`})
	if a.status != http.StatusCreated {
		t.Fatalf("POST correction: %d %s", a.status, a.body)
	}
	c := decode[slo.Correction](t, a)
	if c.CreatedBy != "release-manager" {
		t.Errorf("created_by = %q, want the token's name release-manager", c.CreatedBy)
	}
	check("with the correction", 1000, 0.5)

	// A token with only the read scope may not delete it.
	del := req{method: "DELETE", path: base + "/" + jsonNumber(c.ID)}
	del.token = readerToken
	if a := e.do(t, del); a.status != http.StatusForbidden {
		t.Errorf("DELETE with a read token: %d", a.status)
	}
	e.clk.Add(time.Minute)
	del.token = adminToken
	if a := e.do(t, del); a.status != http.StatusNoContent {
		t.Fatalf("DELETE: %d %s", a.status, a.body)
	}
	check("after the deletion", 2000, 0)
	if a := e.do(t, del); a.status != http.StatusNotFound {
		t.Errorf("second DELETE: %d, want 404: %s", a.status, a.body)
	}

	list := func(q string) []slo.Correction {
		t.Helper()
		a := e.do(t, req{method: "GET", path: base + q, token: readerToken})
		if a.status != http.StatusOK {
			t.Fatalf("GET %s: %d %s", q, a.status, a.body)
		}
		return decode[CorrectionList](t, a).Corrections
	}
	if got := list(""); len(got) != 0 {
		t.Errorf("default list shows deleted corrections: %+v", got)
	}
	want := c
	want.DeletedBy, want.DeletedAt = "root", sloNow.Add(time.Minute)
	if diff := cmp.Diff([]slo.Correction{want}, list("?deleted=true")); diff != "" {
		t.Errorf("deleted=true (-want +got):\n%s", diff)
	}
	if a := e.do(t, req{method: "GET", path: base + "?deleted=maybe", token: readerToken}); a.status != http.StatusBadRequest {
		t.Errorf("deleted=maybe: %d", a.status)
	}
	// The status lists only the corrections that apply.
	a = e.do(t, req{method: "GET", path: "/api/v1/slos/checkout-availability", token: readerToken})
	var st struct {
		Corrections []json.RawMessage `json:"corrections"`
	}
	if err := json.Unmarshal(a.body, &st); err != nil || len(st.Corrections) != 0 {
		t.Errorf("status corrections after deletion: %s (%v)", st.Corrections, err)
	}
}

// TestLongCorrectionRefused: a correction longer than the 30-day window
// would exclude a whole window; the API refuses it, naming the window.
func TestLongCorrectionRefused(t *testing.T) {
	e := newWriteEnv(t, auth.Config{AllowAnonymousWrites: true})
	a := e.do(t, req{method: "POST", path: "/api/v1/slos/checkout-availability/corrections", contentType: "application/json",
		body: `{"start":"2026-01-01T00:00:00Z","end":"2026-02-01T00:00:00Z","reason":"exclude January"}`})
	if a.status != http.StatusBadRequest {
		t.Fatalf("31-day correction: %d, want 400: %s", a.status, a.body)
	}
	if eb := decode[ErrorBody](t, a); !strings.Contains(eb.Detail, "longer than the SLO window (30d)") {
		t.Errorf("detail %q does not name the window", eb.Detail)
	}
	a = e.do(t, req{method: "POST", path: "/api/v1/slos/checkout-availability/corrections", contentType: "application/json",
		body: `{"start":"2026-01-01T00:00:00Z","end":"2026-01-31T00:00:00Z","reason":"30 days exactly"}`})
	if a.status != http.StatusCreated {
		t.Errorf("30-day correction: %d, want 201: %s", a.status, a.body)
	}
	c := decode[slo.Correction](t, a)
	if c.CreatedBy != auth.Anonymous {
		t.Errorf("anonymous correction created_by = %q", c.CreatedBy)
	}
}
