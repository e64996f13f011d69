package ui_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/tailgate-sre/tailgate/internal/config"
	"github.com/tailgate-sre/tailgate/internal/daemon"
	"github.com/tailgate-sre/tailgate/internal/daemon/daemontest"
	"github.com/tailgate-sre/tailgate/internal/otlptest"
)

// liveConfig is a daemon on loopback ports chosen by the kernel, with SLOs
// of one-hour windows so that a short failure moves their budgets.
const liveConfig = `
server: {api: 127.0.0.1:0}
ingest: {otlp_grpc: 127.0.0.1:0, otlp_http: 127.0.0.1:0}
sampling: {root_grace: 300ms}
# The test declares an incident and flips a flag without a token.
auth: {allow_anonymous_writes: true}
# Every hour is a working hour, so that the report's off-hours count does
# not depend on when the test runs.
oncall:
  time_zone: UTC
  working_hours: "00:00-23:59 Mon-Sun"
  rotations:
    - {name: shop-primary, services: [checkout, payments], shift: 12h}
flags:
  - key: recommendations
    variants: {enabled: true, disabled: false}
    default_variant: enabled
    kill_switch: {slos: [checkout-availability], when: {budget_exhausted: true}, variant: disabled}
slos:
  - name: frontend-availability
    service: frontend
    description: The shop answers without a server error.
    objective: 99
    window: 1h
    sli: {kind: availability}
  - name: checkout-availability
    service: checkout
    objective: 98
    window: 1h
    sli: {kind: availability}
  - name: checkout-latency
    service: checkout
    objective: 95
    window: 1h
    sli: {kind: latency, threshold: 200ms, filter: {http.route: /api/checkout}}
  - name: payments-availability
    service: payments
    objective: 99.5
    window: 1h
    sli: {kind: availability}
  - name: inventory-availability
    service: inventory
    objective: 99.9
    window: 1h
    sli: {kind: availability}
`

func startLiveDaemon(t *testing.T) *daemon.Daemon {
	t.Helper()
	cfg, err := config.Parse([]byte(liveConfig))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Storage.Path = t.TempDir()
	d := daemontest.Start(t, cfg)
	return d
}

// shop is a small system of services instrumented with the OpenTelemetry
// SDK: frontend -> checkout -> payments (with a database call), checkout
// -> inventory.
type shop struct {
	t         *testing.T
	providers []*sdktrace.TracerProvider
	front     trace.Tracer
	checkout  trace.Tracer
	payments  trace.Tracer
	inventory trace.Tracer
}

func newShop(t *testing.T, d *daemon.Daemon) *shop {
	t.Helper()
	s := &shop{t: t}
	tracer := func(service string, useHTTP bool, attrs ...attribute.KeyValue) trace.Tracer {
		addr := d.GRPCAddr()
		if useHTTP {
			addr = d.HTTPAddr()
		}
		tp := otlptest.Provider(t, addr, service, useHTTP, attrs...)
		s.providers = append(s.providers, tp)
		return tp.Tracer("shop")
	}
	// Leaf services first, so that flush sends callers' spans last.
	s.payments = tracer("payments", false, attribute.String("service.version", "2.3.1"))
	s.inventory = tracer("inventory", true)
	s.checkout = tracer("checkout", true)
	s.front = tracer("frontend", false)
	return s
}

// order sends one trace; failing makes payments time out, and the error
// propagates to checkout and frontend as 502s.
func (s *shop) order(start time.Time, failing bool) {
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	at := func(n int) trace.SpanStartEventOption { return trace.WithTimestamp(start.Add(ms(n))) }
	end := func(n int) trace.SpanEndOption { return trace.WithTimestamp(start.Add(ms(n))) }
	server := trace.WithSpanKind(trace.SpanKindServer)
	client := trace.WithSpanKind(trace.SpanKindClient)
	ctx := s.t.Context()

	payDur, status := 30, 200
	if failing {
		payDur, status = 250, 502
	}
	ctx, fr := s.front.Start(ctx, "GET /checkout", server, at(0), trace.WithAttributes(attribute.String("http.route", "/checkout")))
	ctx, fc := s.front.Start(ctx, "POST /api/checkout", client, at(1))
	cctx, cs := s.checkout.Start(ctx, "POST /api/checkout", server, at(2), trace.WithAttributes(attribute.String("http.route", "/api/checkout")))
	ictx, ic := s.checkout.Start(cctx, "GET /stock", client, at(3))
	_, is := s.inventory.Start(ictx, "GET /stock", server, at(4), trace.WithAttributes(attribute.String("http.route", "/stock"), attribute.Int("http.response.status_code", 200)))
	is.End(end(12))
	ic.End(end(13))
	pctx, pc := s.checkout.Start(cctx, "POST /charge", client, at(14))
	dctx, ps := s.payments.Start(pctx, "POST /charge", server, at(15), trace.WithAttributes(attribute.String("http.route", "/charge")))
	_, db := s.payments.Start(dctx, "INSERT payments", client, at(16), trace.WithAttributes(attribute.String("db.system", "postgresql")))
	db.End(end(16 + payDur/3))
	if failing {
		ps.SetStatus(codes.Error, "card processor timeout")
		ps.SetAttributes(attribute.Int("http.response.status_code", 504))
		pc.SetStatus(codes.Error, "upstream timeout")
	} else {
		ps.SetAttributes(attribute.Int("http.response.status_code", 200))
	}
	ps.End(end(15 + payDur))
	pc.End(end(16 + payDur))
	cs.SetAttributes(attribute.Int("http.response.status_code", status))
	fr.SetAttributes(attribute.Int("http.response.status_code", status))
	if failing {
		cs.SetStatus(codes.Error, "payment failed")
		fc.SetStatus(codes.Error, "checkout failed")
		fr.SetStatus(codes.Error, "checkout failed")
	}
	cs.End(end(18 + payDur))
	fc.End(end(19 + payDur))
	fr.End(end(20 + payDur))
}

// canaryCharges sends n payments POST /charge server spans of a version,
// bad of them failed, ending now, through the OpenTelemetry SDK.
func canaryCharges(t *testing.T, d *daemon.Daemon, version string, n, bad int) {
	t.Helper()
	tp := otlptest.Provider(t, d.GRPCAddr(), "payments", false, attribute.String("service.version", version))
	tr := tp.Tracer("shop")
	now := time.Now()
	for i := range n {
		_, sp := tr.Start(t.Context(), "POST /charge", trace.WithSpanKind(trace.SpanKindServer), trace.WithTimestamp(now.Add(-40*time.Millisecond)),
			trace.WithAttributes(attribute.String("http.route", "/charge")))
		if i < bad {
			sp.SetStatus(codes.Error, "charge failed")
			sp.SetAttributes(attribute.Int("http.response.status_code", 500))
		} else {
			sp.SetAttributes(attribute.Int("http.response.status_code", 200))
		}
		sp.End(trace.WithTimestamp(now))
	}
	if err := tp.Shutdown(t.Context()); err != nil {
		t.Fatalf("SDK export to tailgate failed: %v", err)
	}
}

// flush sends everything buffered in the SDKs.
func (s *shop) flush() {
	for _, tp := range s.providers {
		if err := tp.ForceFlush(s.t.Context()); err != nil {
			s.t.Fatalf("SDK export to tailgate failed: %v", err)
		}
	}
}

func (s *shop) close() {
	for _, tp := range s.providers {
		if err := tp.Shutdown(context.Background()); err != nil {
			s.t.Errorf("SDK shutdown: %v", err)
		}
	}
}

// apiGet fetches a JSON endpoint of the daemon into v.
func apiGet(t *testing.T, base, path string, v any) {
	t.Helper()
	res, err := http.Get(base + path)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(res.Body)
		t.Fatalf("GET %s: %s %s", path, res.Status, b)
	}
	if err := json.NewDecoder(res.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
}

type sloStatus struct {
	Name            string   `json:"name"`
	Service         string   `json:"service"`
	BudgetRemaining *float64 `json:"budget_remaining"`
	Total           float64  `json:"total"`
}

// TestDashboardLive runs a real daemon, sends it OpenTelemetry SDK traffic
// with a failure phase, and checks in headless Chromium that the dashboard
// shows the services, the SLOs with the API's numbers, charts, and the
// gate's deny for the failing service.
func TestDashboardLive(t *testing.T) {
	chromiumPath(t)
	d := startLiveDaemon(t)
	base := "http://" + d.APIAddr()

	// Calm, then a failure in which one order in ten fails.
	s := newShop(t, d)
	now := time.Now()
	const calm, failure = 600, 300
	for i := range calm {
		s.order(now.Add(-4*time.Minute+time.Duration(i)*200*time.Millisecond), false)
	}
	s.flush()
	for i := range failure {
		s.order(now.Add(-2*time.Minute+time.Duration(i)*300*time.Millisecond), i%10 == 0)
	}
	s.close()
	// A payments canary, 2.4.1, fails 30 of its 40 charges beside the
	// stable 2.3.1's 200 good ones, all ending now (the failure's orders
	// give 2.3.1 the minute before too, where the canary's charts begin).
	canaryCharges(t, d, "2.4.1", 40, 30)
	canaryCharges(t, d, "2.3.1", 200, 0)

	// The budget of checkout is spent: 30 bad of 900 against 2% allowed.
	deadline := time.Now().Add(30 * time.Second)
	for {
		var risk struct {
			FeatureDecision string   `json:"feature_decision"`
			FeatureRule     string   `json:"feature_rule"`
			FeatureReasons  []string `json:"feature_reasons"`
		}
		apiGet(t, base, "/api/v1/services/checkout/risk", &risk)
		if risk.FeatureDecision == "deny" && risk.FeatureRule != "stale-data" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the gate does not deny checkout's features: %+v", risk)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// A pipeline asks the gate, which records its answer.
	res, err := http.Post(base+"/api/v1/gate/check", "application/json",
		strings.NewReader(`{"service": "checkout", "change_class": "feature", "version": "v1.4.0", "requested_by": "deploy pipeline"}`))
	if err != nil {
		t.Fatal(err)
	}
	var dec struct {
		Decision string `json:"decision"`
	}
	if err := json.NewDecoder(res.Body).Decode(&dec); err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if dec.Decision != "deny" {
		t.Fatalf("gate check for checkout: %q, want deny", dec.Decision)
	}
	// A fix may still ship, and the record shows it beside the deny.
	res, err = http.Post(base+"/api/v1/gate/check", "application/json",
		strings.NewReader(`{"service": "checkout", "change_class": "fix", "version": "v1.3.1", "requested_by": "deploy pipeline"}`))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()

	// The fix ships: its deploy marker.
	res, err = http.Post(base+"/api/v1/deploys", "application/json",
		strings.NewReader(`{"service": "checkout", "version": "v1.3.1", "change_class": "fix", "deployed_by": "deploy pipeline"}`))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusCreated {
		t.Fatalf("deploy marker: HTTP %d", res.StatusCode)
	}

	// An incident a person declares; the kill switch has flipped the flag
	// (checkout's budget is spent).
	res, err = http.Post(base+"/api/v1/incidents", "application/json",
		strings.NewReader(`{"service": "checkout", "title": "checkout errors", "commander": "alice"}`))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusCreated {
		t.Fatalf("declare: HTTP %d", res.StatusCode)
	}

	b := newBrowser(t, base)

	// Services, with sparklines and where checkout's errors start.
	b.open("/services")
	for _, svc := range []string{"frontend", "checkout", "payments", "inventory"} {
		b.wait("service "+svc, fmt.Sprintf(`document.querySelector('tr[data-service=%q]') !== null`, svc), 20*time.Second)
	}
	b.wait("sparklines", `document.querySelectorAll('svg.spark path.spark-line[d^="M"]').length >= 4`, 10*time.Second)
	b.wait("checkout's error origin", `(document.querySelector('tr[data-service="checkout"] td.origin')?.textContent || '').includes('payments')`, 30*time.Second)
	b.screenshot("services")
	// Checkout's page marks the deploy and the kill switch's flip of the
	// flag that watches its SLO, on the charts and in the list under them.
	b.route("/services/checkout")
	b.wait("deploy on checkout's charts", `document.querySelector('#service-events li[data-kind="deploy"]')?.textContent.includes('deploy v1.3.1 (fix)') === true`, 20*time.Second)
	b.wait("the deploy's regression verdict", `['regressed', 'clean', 'inconclusive'].includes(document.querySelector('#service-events li[data-kind="deploy"]')?.dataset.verdict)`, 20*time.Second)
	b.wait("flip on checkout's charts", `document.querySelector('#service-events li[data-kind="flip"]')?.textContent.includes('flag recommendations flip to disabled by the kill switch') === true`, 30*time.Second)
	b.screenshot("service-events")

	// The canary is listed with its verdict, and its page charts both
	// versions and the test against its boundaries.
	b.route("/canary")
	b.wait("payments canary listed as failed", `document.querySelector('#canary-table tr[data-canary="payments/2.4.1"][data-verdict="fail"] .chip-firing') !== null`, 20*time.Second)
	b.screenshot("canaries")
	// The same canary against a version that served nothing, then against
	// 2.3.1: a new query on the same path must mount the page again.
	b.route("/canary/payments/2.4.1?baseline=0.0.0-none")
	b.wait("canary against a silent baseline", `document.querySelector('.view h1')?.textContent === 'payments 2.4.1 vs 0.0.0-none' && document.querySelector('#canary-verdict')?.dataset.verdict === 'inconclusive'`, 20*time.Second)
	b.route("/canary/payments/2.4.1?baseline=2.3.1")
	b.wait("canary verdict", `document.querySelector('#canary-verdict')?.dataset.verdict === 'fail'`, 20*time.Second)
	b.wait("canary charts", `document.querySelectorAll('#canary-charts .chart:not([hidden]) canvas').length >= 2`, 20*time.Second)
	if got := evalAs[string](b, `document.querySelector('.view h1')?.textContent || ''`); got != "payments 2.4.1 vs 2.3.1" {
		t.Errorf("canary page title %q, want payments 2.4.1 vs 2.3.1", got)
	}
	if got := evalAs[string](b, `[...document.querySelectorAll('.stat')].find((e) => e.textContent.includes('p50 · p99'))?.querySelector('.stat-sub')?.textContent || ''`); !strings.HasPrefix(got, "baseline ") {
		t.Errorf("canary page latency stat %q, want the baseline's quantiles", got)
	}
	b.screenshot("canary")

	// SLOs: every row's budget remaining is the API's, formatted.
	b.route("/slos")
	var list struct {
		SLOs []sloStatus `json:"slos"`
	}
	apiGet(t, base, "/api/v1/slos", &list)
	if len(list.SLOs) != 5 {
		t.Fatalf("API lists %d SLOs, want 5", len(list.SLOs))
	}
	b.wait("SLO rows", `document.querySelectorAll('#slo-table tbody tr').length === 5`, 20*time.Second)
	deadline = time.Now().Add(15 * time.Second)
	for {
		apiGet(t, base, "/api/v1/slos", &list)
		shown := evalAs[map[string]string](b, `Object.fromEntries([...document.querySelectorAll('#slo-table tbody tr')].map((tr) => [tr.dataset.slo, tr.querySelector('.budget-text').textContent]))`)
		want := map[string]string{}
		for _, st := range list.SLOs {
			want[st.Name] = "—"
			if st.BudgetRemaining != nil {
				want[st.Name] = jsToFixed1(*st.BudgetRemaining*100) + "%"
			}
		}
		diff := ""
		for name, w := range want {
			if shown[name] != w {
				diff += fmt.Sprintf("\n  %s: shown %q, API %q", name, shown[name], w)
			}
		}
		if diff == "" {
			t.Logf("budget remaining as shown and in the API: %v", want)
			break
		}
		if time.Now().After(deadline) {
			b.screenshot("failed-slo-numbers")
			t.Fatalf("SLO budgets differ between the dashboard and the API:%s", diff)
		}
		time.Sleep(500 * time.Millisecond)
	}
	// Alerts are evaluated every 10s: the exhausted budget's alert shows.
	b.wait("budget-exhausted alert", `(document.querySelector('tr[data-slo="checkout-availability"] .alerts')?.textContent || '').includes('budget-exhausted') && document.querySelector('tr[data-slo="checkout-availability"] .alerts .chip[data-state="firing"]') !== null`, 25*time.Second)
	sloShot := b.screenshot("slos")

	// An SLO's page draws its charts with uPlot.
	b.route("/slos/checkout-availability")
	b.wait("SLO charts", `document.querySelectorAll('.chart canvas').length >= 3`, 20*time.Second)
	b.wait("burn-down with data", `(() => { const c = document.querySelectorAll('.chart .u-legend'); return c.length >= 3; })()`, 10*time.Second)
	b.screenshot("slo-detail")

	// The gate: checkout is frozen, and the pipeline's deny is listed.
	b.route("/gate")
	b.wait("checkout frozen", `document.querySelector('#gate-freeze tr[data-service="checkout"] .chip-deny') !== null`, 20*time.Second)
	b.wait("deny decision", `document.querySelector('#gate-decisions tr[data-service="checkout"][data-decision="deny"] .chip-deny') !== null`, 10*time.Second)
	b.wait("fix allowed", `document.querySelector('#gate-decisions tr[data-service="checkout"][data-decision="allow"]') !== null`, 10*time.Second)
	if got := evalAs[string](b, `document.querySelector('#gate-freeze tr[data-service="inventory"] .chip')?.textContent || ''`); got != "allow" {
		t.Errorf("inventory's freeze state = %q, want allow", got)
	}
	b.screenshot("gate")

	// The other views render without errors.
	b.route("/alerts")
	b.wait("alerts", `document.querySelector('#active-alerts tbody tr') !== null`, 30*time.Second)
	b.screenshot("alerts")
	b.route("/sampler")
	b.wait("sampler rules", `[...document.querySelectorAll('#sampler-rules tbody tr td:first-child')].some((td) => td.textContent === 'errors')`, 20*time.Second)
	b.wait("sampler history", `/^([3-9]|\d\d+) scrapes/.test(document.querySelector('.view .head .muted')?.textContent || '')`, 20*time.Second)
	b.wait("sampler chart", `document.querySelectorAll('.chart canvas').length >= 3`, 20*time.Second)
	b.screenshot("sampler")
	b.route("/cardinality")
	b.wait("cardinality keys", `document.querySelector('#cardinality-keys tbody tr') !== null`, 20*time.Second)
	b.screenshot("cardinality")
	b.route("/incidents")
	b.wait("incident listed", `document.querySelector('#incidents tr[data-incident="INC-1"]') !== null`, 20*time.Second)
	b.route("/incidents/INC-1")
	b.wait("incident timeline", `document.querySelector('#incident-timeline tr[data-kind="declared"]') !== null`, 20*time.Second)
	b.wait("incident roles", `(document.querySelector('#incident-roles')?.textContent || '').includes('Commander: alice')`, 10*time.Second)
	b.screenshot("incident")
	// The on-call report counts the incident for the rotation of
	// checkout, per 12-hour shift of the last 7 days (14 shifts).
	b.route("/oncall")
	b.wait("rotation listed", `(document.querySelector('#oncall-rotations tr[data-rotation="shop-primary"]')?.textContent || '').includes('checkout, payments')`, 20*time.Second)
	b.wait("incident counted", `(() => {
		const td = [...document.querySelectorAll('#oncall-rotations tr[data-rotation="shop-primary"] td')].map((td) => td.textContent);
		const n = Number(td[6]);
		return n >= 1 && td[7] === (n / 14).toFixed(2) + ' (12h)';
	})()`, 20*time.Second)
	b.screenshot("oncall")
	b.route("/flags")
	b.wait("flag listed", `document.querySelector('#flags tr[data-flag="recommendations"]') !== null`, 20*time.Second)
	b.wait("flag flipped by the kill switch", `(document.querySelector('#flags tr[data-flag="recommendations"]')?.textContent || '').includes('forced by the kill switch')`, 30*time.Second)
	b.screenshot("flags")
	b.checkConsole()

	if *updateScreenshot {
		p := filepath.Join("..", "..", "docs", "dashboard.png")
		if err := os.WriteFile(p, sloShot, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s (%d bytes)", p, len(sloShot))
	}
}
