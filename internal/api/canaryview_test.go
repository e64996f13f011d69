package api

import (
	"testing"
	"time"

	"github.com/tailgate-sre/tailgate/internal/canary"
)

// TestCanaryView checks the dashboard's canary endpoints with a real
// checker: the services serving two versions, and a canary's minutes with
// the verdict now.
func TestCanaryView(t *testing.T) {
	now := time.Date(2026, 12, 4, 10, 3, 30, 0, time.UTC)
	m0 := now.Truncate(time.Minute).Add(-3 * time.Minute)
	rec := canary.NewRecorder(canary.RecorderConfig{})
	var rows []canary.VersionRow
	for i := range 4 {
		m := m0.Add(time.Duration(i) * time.Minute)
		rows = append(rows,
			canary.VersionRow{Service: "payments", Version: "2.4.1", Operation: "POST /charge", Minute: m, Counts: canary.Counts{Requests: 50, Errors: 25}},
			canary.VersionRow{Service: "payments", Version: "2.3.1", Operation: "POST /charge", Minute: m, Counts: canary.Counts{Requests: 500, Errors: 1}},
			canary.VersionRow{Service: "search", Version: "1.0", Operation: "GET /", Minute: m, Counts: canary.Counts{Requests: 10}})
	}
	rec.Seed(rows)
	srv := New(Deps{Canary: canary.NewChecker(rec, canary.Config{}, nil, func() time.Time { return now }), Now: func() time.Time { return now }})

	var vs CanaryVersions
	getJSON(t, srv, "/api/v1/canary/versions", 200, &vs)
	if len(vs.Services) != 1 || vs.Services[0].Service != "payments" || len(vs.Services[0].Versions) != 2 ||
		vs.Services[0].Versions[0].Version != "2.3.1" || vs.Services[0].Versions[0].Requests != 2000 {
		t.Errorf("versions %+v, want payments alone, 2.3.1 (2,000 requests) first", vs.Services)
	}
	// 100 of 200 failed against 4 of 2,000.
	if len(vs.Canaries) != 1 || vs.Canaries[0].Canary != "2.4.1" || vs.Canaries[0].Baseline != "2.3.1" || vs.Canaries[0].Verdict != canary.Fail {
		t.Errorf("canaries %+v, want 2.4.1 against 2.3.1, failed", vs.Canaries)
	}

	var s canary.SeriesResult
	getJSON(t, srv, "/api/v1/canary/series?service=payments&canary=2.4.1&baseline=2.3.1", 200, &s)
	if s.Verdict.Verdict != canary.Fail || s.Canary.Requests != 200 || len(s.Points) != 4 {
		t.Fatalf("series: %s on %d canary requests, %d points; want fail on 200, 4 points", s.Verdict.Verdict, s.Canary.Requests, len(s.Points))
	}
	if p := s.Points[0]; !p.Minute.Equal(m0) || p.Canary.Requests != 50 || p.Baseline.Requests != 500 {
		t.Errorf("first point %+v, want %s with 50 and 500 requests", p, m0)
	}
	var bad ErrorBody
	getJSON(t, srv, "/api/v1/canary/series?service=payments", 400, &bad)
	if bad.Error != "invalid request" {
		t.Errorf("no canary named: %+v, want invalid request", bad)
	}
}
