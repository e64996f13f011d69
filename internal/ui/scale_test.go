package ui_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/google/go-cmp/cmp"

	"github.com/tailgate-sre/tailgate/internal/ui"
)

const (
	fakeToken    = "s3cret-read-token"
	fakeSLOs     = 1000
	fakeServices = 200
)

// fakeAPI answers the dashboard's endpoints with a large synthetic fleet,
// behind a bearer token. Each answer of /api/v1/slos lowers every budget a
// little, so that refreshes change the numbers but not the order.
type fakeAPI struct {
	generation   atomic.Int64
	unauthorized atomic.Int64
}

func (f *fakeAPI) handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/", ui.Handler())
	api := http.NewServeMux()
	api.HandleFunc("GET /api/v1/slos", f.slos)
	api.HandleFunc("GET /api/v1/services", f.services)
	api.HandleFunc("GET /api/v1/services/{s}/error-origins", func(w http.ResponseWriter, r *http.Request) {
		writeTestJSON(w, map[string]any{"service": r.PathValue("s"), "failed_requests": 10, "origins": []any{},
			"summary": r.PathValue("s") + ": 80% of its errors originate in db /query (timeout)"})
	})
	api.HandleFunc("GET /api/v1/services/{s}/risk", func(w http.ResponseWriter, r *http.Request) {
		v, rule := "allow", "within-budget"
		if strings.HasSuffix(r.PathValue("s"), "7") {
			v, rule = "deny", "budget-exhausted"
		}
		writeTestJSON(w, map[string]any{"service": r.PathValue("s"), "feature_decision": v, "feature_rule": rule, "feature_reasons": []string{rule}})
	})
	api.HandleFunc("GET /api/v1/alerts", func(w http.ResponseWriter, r *http.Request) {
		writeTestJSON(w, map[string]any{"alerts": []any{}, "transitions": []any{}})
	})
	api.HandleFunc("GET /api/v1/gate/decisions", func(w http.ResponseWriter, r *http.Request) {
		writeTestJSON(w, map[string]any{"decisions": []any{}})
	})
	api.HandleFunc("GET /api/v1/gate/overrides", func(w http.ResponseWriter, r *http.Request) {
		writeTestJSON(w, map[string]any{"overrides": []any{}})
	})
	api.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		n := 100 * f.generation.Load()
		fmt.Fprintf(w, "# HELP tailgate_sampler_spans_kept_total x\n# TYPE tailgate_sampler_spans_kept_total counter\n"+
			"tailgate_sampler_spans_kept_total{rule=\"errors\"} %d\ntailgate_sampler_spans_not_sampled_total{rule=\"rest\"} %d\n"+
			"tailgate_sampler_buffered_spans 12\n", n, 19*n)
	})
	authed := func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+fakeToken {
			f.unauthorized.Add(1)
			w.Header().Set("WWW-Authenticate", `Bearer realm="tailgate"`)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprint(w, `{"error": "unauthorized", "detail": "missing bearer token"}`)
			return
		}
		api.ServeHTTP(w, r)
	}
	mux.HandleFunc("/api/", authed)
	mux.HandleFunc("GET /metrics", authed)
	return mux
}

func writeTestJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// fakeBudget is SLO i's budget remaining at a generation.
func fakeBudget(i int, gen int64) float64 {
	return float64(i%100)/100 - 0.2 - float64(gen)/1000
}

func (f *fakeAPI) slos(w http.ResponseWriter, _ *http.Request) {
	gen := f.generation.Add(1)
	list := make([]map[string]any, fakeSLOs)
	for i := range list {
		b := fakeBudget(i, gen)
		br := 1 - b
		alerts := []any{}
		if b < 0 {
			alerts = append(alerts, map[string]any{"name": "budget-exhausted", "severity": "ticket", "state": "firing", "summary": "spent"})
		}
		list[i] = map[string]any{
			"name": fmt.Sprintf("slo-%04d", i), "service": fmt.Sprintf("svc-%03d", i%fakeServices),
			"objective": 99.9, "window": "30d", "window_seconds": 2592000, "sli_kind": "availability",
			"good": 999000, "total": 1000000, "sli": 0.999, "budget_remaining": b, "budget_exhausted": b <= 0,
			"budget":     map[string]any{"total_events": 1000, "consumed_events": 1000 * (1 - b), "remaining_events": 1000 * b},
			"burn_rates": map[string]any{"5m": br, "1h": br, "6h": br, "30d": br},
			"alerts":     alerts,
		}
	}
	writeTestJSON(w, map[string]any{"slos": list})
}

func (f *fakeAPI) services(w http.ResponseWriter, _ *http.Request) {
	now := time.Now().Truncate(time.Minute)
	list := make([]map[string]any, fakeServices)
	for i := range list {
		series := make([]map[string]any, 60)
		for j := range series {
			series[j] = map[string]any{"time": now.Add(time.Duration(j-60) * time.Minute), "requests": 60 + j, "errors": i % 3,
				"rate_per_second": float64(60+j) / 60, "error_ratio": float64(i%3) / float64(60+j), "p99_seconds": 0.1 + float64(j%7)/100, "in_flight": 0.1}
		}
		list[i] = map[string]any{"service": fmt.Sprintf("svc-%03d", i), "requests": 5000, "errors": 60 * (i % 3), "rate_per_second": 1.4,
			"error_ratio": float64(i%3) / 100, "p50_seconds": 0.02, "p90_seconds": 0.05, "p99_seconds": 0.12, "max_seconds": 0.5, "in_flight": 0.1, "series": series}
	}
	writeTestJSON(w, map[string]any{"from": now.Add(-time.Hour), "to": now, "step": "1m", "services": list})
}

// TestDashboardAtScale loads the dashboard against 1,000 SLOs and 200
// services behind a token: the login appears, pages hold 50 rows, refreshes
// reuse the rows they update, filtering and paging work.
func TestDashboardAtScale(t *testing.T) {
	chromiumPath(t)
	f := &fakeAPI{}
	srv := httptest.NewServer(f.handler())
	defer srv.Close()
	b := newBrowser(t, srv.URL)

	// The API answers 401: the dashboard asks for a token.
	b.open("/slos")
	b.wait("login form", `!document.getElementById('login').hidden`, 10*time.Second)
	if err := chromedp.Do(b.timeout(20*time.Second),
		chromedp.SendKeys(chromedp.ID("token"), fakeToken),
		chromedp.Click(chromedp.CSS("#login-form button[type=submit]"))); err != nil {
		t.Fatalf("sign in: %v", err)
	}
	b.wait("login closed", `document.getElementById('login').hidden`, 10*time.Second)
	if got := evalAs[string](b, `sessionStorage.getItem('tailgate.token')`); got != fakeToken {
		t.Errorf("sessionStorage token = %q, want the one typed", got)
	}

	// One page of 50 of the 1,000 SLOs, worst budget first.
	b.wait("a page of SLOs", `document.querySelectorAll('#slo-table tbody tr').length === 50`, 20*time.Second)
	b.wait("SLO count", `document.querySelector('#slo-table .count').textContent === '1–50 of 1000 SLOs'`, 5*time.Second)
	first := evalAs[string](b, `document.querySelector('#slo-table tbody tr').dataset.slo`)
	if first != "slo-0000" {
		t.Errorf("first row = %s, want slo-0000 (lowest budget)", first)
	}
	b.screenshot("scale-slos")

	// A refresh updates the numbers in the same row elements.
	b.eval(`window.__row = document.querySelector('tr[data-slo="slo-0000"]'); window.__text = window.__row.querySelector('.budget-text').textContent; window.__n = +document.body.dataset.refreshes`)
	b.wait("two refreshes", `+document.body.dataset.refreshes >= window.__n + 2`, 15*time.Second)
	same := evalAs[bool](b, `document.querySelector('tr[data-slo="slo-0000"]') === window.__row`)
	changed := evalAs[bool](b, `window.__row.querySelector('.budget-text').textContent !== window.__text`)
	if !same || !changed {
		t.Errorf("after a refresh: same row element %v (want true), budget text changed %v (want true)", same, changed)
	}
	if n := f.unauthorized.Load(); n == 0 {
		t.Error("the fake API never refused a request: the login was not exercised")
	}

	// Filtering and paging.
	if err := chromedp.Do(b.timeout(10*time.Second), chromedp.SendKeys(chromedp.CSS("#slo-table input.filter"), "slo-0999")); err != nil {
		t.Fatal(err)
	}
	b.wait("filtered to one", `document.querySelectorAll('#slo-table tbody tr').length === 1 && document.querySelector('#slo-table tbody tr').dataset.slo === 'slo-0999'`, 5*time.Second)
	b.eval(`(() => { const i = document.querySelector('#slo-table input.filter'); i.value = ''; i.dispatchEvent(new Event('input')); })()`)
	if err := chromedp.Do(b.timeout(10*time.Second), chromedp.Click(chromedp.CSS("#slo-table button.pg:last-child"))); err != nil {
		t.Fatal(err)
	}
	b.wait("second page", `document.querySelector('#slo-table .count').textContent === '51–100 of 1000 SLOs'`, 5*time.Second)

	// 200 services with three sparklines each on a page of 50.
	b.route("/services")
	b.wait("a page of services", `document.querySelectorAll('.view tbody tr[data-service]').length === 50`, 20*time.Second)
	b.wait("service count", `document.querySelector('.view .count').textContent === '1–50 of 200 services'`, 5*time.Second)
	b.wait("sparklines", `document.querySelectorAll('svg.spark path.spark-line[d^="M"]').length >= 100`, 10*time.Second)
	b.wait("error origins", `[...document.querySelectorAll('td.origin')].some((td) => td.textContent.includes('originate in db'))`, 15*time.Second)
	b.screenshot("scale-services")

	// The gate's freeze state for the visible page.
	b.route("/gate")
	b.wait("freeze state", `document.querySelectorAll('#gate-freeze tbody tr .chip-deny').length > 0`, 20*time.Second)

	// The formatting and parsing modules, against values worked out by hand.
	got := evalAs[[]string](b, `(async () => {
		const f = await import('./static/js/fmt.js');
		const m = await import('./static/js/metrics.js');
		const s = m.parseMetrics('# HELP x y\ntailgate_sampler_spans_kept_total{rule="a\\"b",x="1"} 12 1700000000\ntailgate_sampler_spans_kept_total{rule="c"} 3e2\nother 1\n', ['tailgate_']);
		return [f.pct(0.25), f.pct(-0.66666), f.pct(null), f.dur(0.0123), f.dur(0.00045), f.dur(1.5), f.rate(0.5), f.rate(1234),
			f.burn(14.4), f.burn(0.853), f.span(540000), f.bytes(1536), f.errPct(0.0004), f.sliPct(0.99912), f.num(1234567),
			String(s.length), s[0].labels.rule, String(m.sum(s, 'tailgate_sampler_spans_kept_total')), JSON.stringify(m.byLabel(s, 'tailgate_sampler_spans_kept_total', 'rule'))];
	})()`)
	want := []string{"25.0%", "-66.7%", "—", "12.3 ms", "450 µs", "1.50 s", "0.50/s", "1234/s",
		"14.4×", "0.85×", "6d 6h", "1.5 KiB", "0.040%", "99.912%", "1.23M",
		"2", `a"b`, "312", `{"a\"b":12,"c":300}`}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("fmt.js and metrics.js (-want +got):\n%s", diff)
	}
	// JavaScript's toFixed, which the dashboard formats budgets with, and
	// the test's exact reimplementation agree.
	xs := []float64{12.25, -12.25, 0.05, 1.005, -0.04, 0.25, -66.66666666666667, 33.35}
	var js []string
	raw, _ := json.Marshal(xs)
	js = evalAs[[]string](b, string(raw)+`.map((x) => x.toFixed(1))`)
	var goFixed []string
	for _, x := range xs {
		goFixed = append(goFixed, jsToFixed1(x))
	}
	if diff := cmp.Diff(js, goFixed); diff != "" {
		t.Errorf("jsToFixed1 disagrees with the browser's toFixed(1) (-browser +Go):\n%s", diff)
	}

	// Signing out asks for the token again.
	if err := chromedp.Do(b.timeout(10*time.Second), chromedp.Click(chromedp.ID("signout"))); err != nil {
		t.Fatal(err)
	}
	b.wait("login after sign-out", `!document.getElementById('login').hidden && sessionStorage.getItem('tailgate.token') === null`, 10*time.Second)
	b.checkConsole("401")
}
