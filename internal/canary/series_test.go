package canary

import (
	"testing"
	"time"
)

// TestSeries checks the canary view's minutes: each minute's own counts
// as fed, and the test with the counts up to its end, whose last minute
// is the verdict now.
func TestSeries(t *testing.T) {
	r := NewRecorder(RecorderConfig{})
	// The minute before: the baseline alone, 2 of 1,000 failed; minute 0:
	// the canary alone (100 good); minutes 1-3: the canary fails 20 of
	// 100, the baseline 5 of 1,000.
	observeMinute(t, r, "checkout", "v1", "GET /", 1000, 2, t0.Add(-time.Minute))
	observeMinute(t, r, "checkout", "v2", "GET /", 100, 0, t0)
	for i := 1; i <= 3; i++ {
		at := t0.Add(time.Duration(i) * time.Minute)
		observeMinute(t, r, "checkout", "v2", "GET /", 100, 20, at)
		observeMinute(t, r, "checkout", "v1", "GET /", 1000, 5, at)
	}
	c := NewChecker(r, Config{}, nil, func() time.Time { return t0.Add(3*time.Minute + 50*time.Second) })
	s, err := c.Series(CheckRequest{Service: "checkout", Canary: "v2"})
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Points) != 5 {
		t.Fatalf("%d points, want 5 (the minute before, minutes 0 to 3)", len(s.Points))
	}
	if p := s.Points[0]; !p.Minute.Equal(t0.Add(-time.Minute)) || p.Baseline != (Counts{Requests: 1000, Errors: 2}) || p.Canary != (Counts{}) || p.ErrorRatio != nil || p.Verdict != "" {
		t.Errorf("the minute before: %+v, want the baseline's 1,000 requests alone, no test", p)
	}
	first, last := s.Points[1], s.Points[4]
	if !first.Minute.Equal(t0) || first.Canary != (Counts{Requests: 100}) || first.Baseline != (Counts{}) || first.Verdict != Inconclusive {
		t.Errorf("minute 0: %+v, want the canary's 100 requests alone, inconclusive", first)
	}
	if last.Canary != (Counts{Requests: 100, Errors: 20}) || last.Baseline != (Counts{Requests: 1000, Errors: 5}) {
		t.Errorf("minute 3's own counts %+v / %+v, want 100 (20 failed) / 1,000 (5 failed)", last.Canary, last.Baseline)
	}
	// Up to minute 3: 60 of 400 against 15 of 3,000, as Check judges now.
	if last.Verdict != Fail || s.Verdict.Verdict != Fail || *last.ErrorRatio != s.ErrorRatio || s.Canary.Requests != 400 {
		t.Errorf("last point %s %+v, verdict now %s %+v on %d requests; want both fail alike on 400", last.Verdict, last.ErrorRatio, s.Verdict.Verdict, s.ErrorRatio, s.Canary.Requests)
	}
	// The difference by hand: 60/400 − 15/3000 = 0.145.
	if d := last.ErrorRatio.Diff; d < 0.1449 || d > 0.1451 {
		t.Errorf("difference %.4f, want 0.145", d)
	}
}

func TestVersions(t *testing.T) {
	r := NewRecorder(RecorderConfig{})
	observeMinute(t, r, "checkout", "v1", "GET /", 300, 0, t0)
	observeMinute(t, r, "checkout", "v2", "GET /", 10, 0, t0)
	observeMinute(t, r, "search", "v1", "GET /", 50, 0, t0) // one version: no canary
	// A peer serves a third checkout version and payments' canary.
	r.SetPeers([]VersionRow{
		{Service: "checkout", Version: "v3", Operation: "GET /", Minute: t0, Counts: Counts{Requests: 20}},
		{Service: "payments", Version: "2.4.1", Operation: "/charge", Minute: t0, Counts: Counts{Requests: 5}},
		{Service: "payments", Version: "2.3.1", Operation: "/charge", Minute: t0, Counts: Counts{Requests: 95}},
	})
	got := r.Versions(t0, t0)
	if len(got) != 2 || got[0].Service != "checkout" || got[1].Service != "payments" {
		t.Fatalf("services %+v, want checkout and payments", got)
	}
	var order []string
	for _, v := range got[0].Versions {
		order = append(order, v.Version)
	}
	if len(order) != 3 || order[0] != "v1" || order[1] != "v3" || order[2] != "v2" || got[0].Versions[0].Requests != 300 {
		t.Errorf("checkout versions %v, want v1 (300), v3 (20), v2 (10)", got[0].Versions)
	}
	if r.Versions(t0.Add(time.Hour), t0.Add(time.Hour)) != nil {
		t.Error("versions in an hour without traffic")
	}
}
