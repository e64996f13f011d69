package api

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tailgate-sre/tailgate/internal/auth"
	"github.com/tailgate-sre/tailgate/internal/otlptest"
	"github.com/tailgate-sre/tailgate/internal/slo"
	"github.com/tailgate-sre/tailgate/internal/units"
)

// sloNow is the API's fixed clock in the SLO endpoint tests, and the time
// the tests observe requests at.
var sloNow = time.Date(2026, 3, 1, 12, 2, 30, 0, time.UTC)

func sloServer(t *testing.T) (*httptest.Server, *slo.Engine) {
	t.Helper()
	e, err := slo.NewEngine([]slo.Spec{
		{Name: "checkout-availability", Service: "checkout", Objective: 99, Window: units.Duration(30 * 24 * time.Hour), SLI: slo.SLISpec{Kind: slo.Availability}},
		{Name: "search-latency", Service: "search", Objective: 99, Window: units.Duration(7 * 24 * time.Hour),
			SLI: slo.SLISpec{Kind: slo.Latency, Threshold: units.Duration(200 * time.Millisecond)}},
	}, slo.Settings{})
	if err != nil {
		t.Fatal(err)
	}
	// No tokens: the corrections these tests add are anonymous writes.
	a, err := auth.New(auth.Config{AllowAnonymousWrites: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(New(Deps{SLOs: e, Auth: a, Now: func() time.Time { return sloNow }}))
	t.Cleanup(ts.Close)
	return ts, e
}

func call(t *testing.T, method, url string, body any, out any) int {
	t.Helper()
	var rd *bytes.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	} else {
		rd = bytes.NewReader(nil)
	}
	req, _ := http.NewRequestWithContext(t.Context(), method, url, rd)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil && resp.StatusCode != http.StatusNoContent {
			t.Fatalf("%s %s: decode: %v", method, url, err)
		}
	}
	return resp.StatusCode
}

func TestSLOStatusEndpoint(t *testing.T) {
	ts, e := sloServer(t)
	e.Observe(otlptest.EntryRequest(t, "checkout", 200, 1), sloNow)

	// The fields DESIGN.md promises, read as raw JSON.
	var raw map[string]any
	if code := call(t, "GET", ts.URL+"/api/v1/slos/checkout-availability", nil, &raw); code != http.StatusOK {
		t.Fatalf("status %d", code)
	}
	for _, k := range []string{"name", "service", "objective", "window", "good", "total", "budget_remaining", "burn_rates", "alerts",
		"coverage", "time_to_exhaustion_seconds", "sli", "windows", "budget"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("missing field %q", k)
		}
	}
	got := map[string]any{"name": raw["name"], "service": raw["service"], "objective": raw["objective"], "window": raw["window"],
		"good": raw["good"], "total": raw["total"], "budget_remaining": raw["budget_remaining"], "alerts": raw["alerts"]}
	// 1 bad of 200 against a 1% budget of 2 requests: half left.
	want := map[string]any{"name": "checkout-availability", "service": "checkout", "objective": 99.0, "window": "30d",
		"good": 199.0, "total": 200.0, "budget_remaining": 0.5, "alerts": []any{}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("status (-want +got):\n%s", diff)
	}
	br := raw["burn_rates"].(map[string]any)
	if br["1h"] != 0.5 || len(br) != 8 {
		t.Errorf("burn_rates = %v, want 8 windows with 1h = 0.5", br)
	}
	// Without traffic: null, never NaN.
	if code := call(t, "GET", ts.URL+"/api/v1/slos/search-latency", nil, &raw); code != http.StatusOK {
		t.Fatalf("status %d", code)
	}
	if raw["budget_remaining"] != nil || raw["sli"] != nil || raw["burn_rates"].(map[string]any)["5m"] != nil {
		t.Errorf("no-data status: budget_remaining %v, sli %v, burn_rates %v", raw["budget_remaining"], raw["sli"], raw["burn_rates"])
	}

	var list SLOList
	if code := call(t, "GET", ts.URL+"/api/v1/slos", nil, &list); code != http.StatusOK || len(list.SLOs) != 2 || list.SLOs[0].Total != 200 {
		t.Errorf("list: %d %+v", code, list)
	}
	var eb ErrorBody
	if code := call(t, "GET", ts.URL+"/api/v1/slos/nope", nil, &eb); code != http.StatusNotFound || eb.Error != "unknown SLO" {
		t.Errorf("unknown SLO: %d %+v", code, eb)
	}
}

func TestSLOHistoryEndpoint(t *testing.T) {
	ts, e := sloServer(t)
	e.Observe(otlptest.EntryRequest(t, "checkout", 100, 2), sloNow)
	var h SLOHistory
	if code := call(t, "GET", ts.URL+"/api/v1/slos/checkout-availability/history?from=-1h&step=10m", nil, &h); code != http.StatusOK {
		t.Fatalf("status %d", code)
	}
	if h.Step != "10m" || len(h.Points) != 7 {
		t.Fatalf("history: step %s, %d points, want 10m and 7", h.Step, len(h.Points))
	}
	last := h.Points[len(h.Points)-1]
	if last.Total != 100 || last.BudgetRemaining == nil || *last.BudgetRemaining != -1 {
		t.Errorf("last point = %+v, want 100 requests and budget -1", last)
	}
	if first := h.Points[0]; first.Total != 0 || first.SLI != nil {
		t.Errorf("first point = %+v, want no data", first)
	}
	for _, q := range []string{"step=10s", "from=yesterday", "from=-400d&step=1m", "to=-2h&from=-1h"} {
		var eb ErrorBody
		if code := call(t, "GET", ts.URL+"/api/v1/slos/checkout-availability/history?"+q, nil, &eb); code != http.StatusBadRequest {
			t.Errorf("%s: status %d, want 400 (%+v)", q, code, eb)
		}
	}
}

func TestSLOCorrectionsEndpoints(t *testing.T) {
	ts, e := sloServer(t)
	now := sloNow
	e.Observe(otlptest.EntryRequest(t, "checkout", 10, 10), now)
	base := ts.URL + "/api/v1/slos/checkout-availability/corrections"

	// After the fact: the load test that just failed does not count.
	var c slo.Correction
	body := CorrectionRequest{Start: now.Add(-time.Minute), End: now.Add(time.Minute), Reason: "load test"}
	if code := call(t, "POST", base, body, &c); code != http.StatusCreated {
		t.Fatalf("POST: %d %+v", code, c)
	}
	if c.ID == 0 || c.CreatedBy != auth.Anonymous || c.Source != slo.SourceAPI {
		t.Errorf("created %+v", c)
	}
	var st slo.Status
	call(t, "GET", ts.URL+"/api/v1/slos/checkout-availability", nil, &st)
	if st.Total != 0 || len(st.Corrections) != 1 || st.Corrections[0].ExcludedTotal != 10 {
		t.Errorf("after the correction: total %v, corrections %+v", st.Total, st.Corrections)
	}
	var list CorrectionList
	if code := call(t, "GET", base, nil, &list); code != http.StatusOK || len(list.Corrections) != 1 {
		t.Errorf("GET: %d %+v", code, list)
	}
	for name, tc := range map[string]struct {
		body any
		code int
	}{
		"no reason":              {CorrectionRequest{Start: now, End: now.Add(time.Hour)}, http.StatusBadRequest},
		"author from the body":   {CorrectionRequest{Start: now, End: now.Add(time.Hour), Reason: "x", CreatedBy: "a"}, http.StatusBadRequest},
		"bad rrule":              {CorrectionRequest{Start: now, RRule: "FREQ=HOURLY", Duration: units.Duration(time.Hour), Reason: "x"}, http.StatusBadRequest},
		"unknown field":          {map[string]any{"start": now, "end": now.Add(time.Hour), "reason": "x", "bogus": 1}, http.StatusBadRequest},
		"longer than 30d window": {CorrectionRequest{Start: now.Add(-31 * 24 * time.Hour), End: now, Reason: "x"}, http.StatusBadRequest},
	} {
		var eb ErrorBody
		if code := call(t, "POST", base, tc.body, &eb); code != tc.code {
			t.Errorf("%s: status %d, want %d (%+v)", name, code, tc.code, eb)
		}
	}
	if code := call(t, "POST", ts.URL+"/api/v1/slos/nope/corrections", body, nil); code != http.StatusNotFound {
		t.Errorf("unknown SLO: %d", code)
	}
	if code := call(t, "DELETE", base+"/999", nil, nil); code != http.StatusNotFound {
		t.Errorf("DELETE unknown: %d", code)
	}
	if code := call(t, "DELETE", base+"/x", nil, nil); code != http.StatusBadRequest {
		t.Errorf("DELETE bad id: %d", code)
	}
	if code := call(t, "DELETE", base+"?id="+jsonNumber(c.ID), nil, nil); code != http.StatusNoContent {
		t.Errorf("DELETE: %d", code)
	}
	call(t, "GET", ts.URL+"/api/v1/slos/checkout-availability", nil, &st)
	if st.Total != 10 {
		t.Errorf("after delete: total %v, want 10", st.Total)
	}
}

func jsonNumber(n int64) string { b, _ := json.Marshal(n); return string(b) }

func TestAlertsEndpoint(t *testing.T) {
	ts, _ := sloServer(t)
	var al AlertList
	if code := call(t, "GET", ts.URL+"/api/v1/alerts?state=firing", nil, &al); code != http.StatusOK {
		t.Fatalf("status %d", code)
	}
	if al.Alerts == nil || al.Transitions == nil || len(al.Alerts) != 0 {
		t.Errorf("alerts = %+v, want empty lists", al)
	}
	resp, err := http.Get(ts.URL + "/api/v1/alerts?limit=-1")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("limit=-1: %d", resp.StatusCode)
	}
}

func TestSLORoutesAbsentWithoutSource(t *testing.T) {
	ts := httptest.NewServer(New(Deps{}))
	defer ts.Close()
	resp, err := http.Get(ts.URL + "/api/v1/slos")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var eb ErrorBody
	json.NewDecoder(resp.Body).Decode(&eb) //nolint:errcheck // checked below
	if resp.StatusCode != http.StatusNotFound || !strings.Contains(eb.Detail, "/api/v1/slos") {
		t.Errorf("status %d %+v", resp.StatusCode, eb)
	}
}
