package canary

import (
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"

	"github.com/tailgate-sre/tailgate/internal/otlp"
)

// request builds a parsed request: for each version, n entry spans of
// service checkout, bad of them failed, slow of them lasting 500 ms (the
// others 50 ms), and one client span that must not count.
func request(t testing.TB, now time.Time, versions map[string][3]int) *otlp.Request {
	t.Helper()
	td := ptrace.NewTraces()
	for v, c := range versions {
		rs := td.ResourceSpans().AppendEmpty()
		rs.Resource().Attributes().PutStr("service.name", "checkout")
		rs.Resource().Attributes().PutStr("service.version", v)
		ss := rs.ScopeSpans().AppendEmpty()
		for i := range c[0] + 1 {
			sp := ss.Spans().AppendEmpty()
			sp.SetTraceID([16]byte{1, byte(i), byte(len(v))})
			sp.SetSpanID([8]byte{1, byte(i)})
			sp.SetKind(ptrace.SpanKindServer)
			if i == c[0] {
				sp.SetKind(ptrace.SpanKindClient)
			}
			d := 50 * time.Millisecond
			if i < c[2] {
				d = 500 * time.Millisecond
			}
			sp.SetStartTimestamp(pcommon.NewTimestampFromTime(now.Add(-d)))
			sp.SetEndTimestamp(pcommon.NewTimestampFromTime(now))
			if i >= c[0]-c[1] && i < c[0] {
				sp.Status().SetCode(ptrace.StatusCodeError)
			}
		}
	}
	b, err := ptraceotlp.NewExportRequestFromTraces(td).MarshalProto()
	if err != nil {
		t.Fatal(err)
	}
	var req otlp.Request
	if err := otlp.Parse(b, otlp.Limits{}, &req); err != nil {
		t.Fatal(err)
	}
	return &req
}

func TestRecorderCountsByVersion(t *testing.T) {
	now := time.Date(2026, 12, 3, 10, 0, 30, 0, time.UTC)
	r := NewRecorder(RecorderConfig{Thresholds: map[string]time.Duration{"checkout": 300 * time.Millisecond}})
	// {requests, failed, slow}: counted by hand below.
	r.Observe(request(t, now, map[string][3]int{"1.0": {100, 1, 10}, "1.1": {10, 3, 4}}), now)
	r.Observe(request(t, now.Add(time.Minute), map[string][3]int{"1.0": {50, 0, 5}, "0.9": {5, 0, 0}}), now.Add(time.Minute))
	from, to := now.Add(-time.Hour), now.Add(time.Hour)
	if got := count(r, "checkout", "1.1", from, to); got != (Counts{Requests: 10, Errors: 3, Slow: 4}) {
		t.Errorf("1.1: %+v", got)
	}
	if got := count(r, "checkout", "1.0", from, to); got != (Counts{Requests: 150, Errors: 1, Slow: 15}) {
		t.Errorf("1.0: %+v", got)
	}
	if got := countOthers(r, "checkout", "1.1", from, to); got != (Counts{Requests: 155, Errors: 1, Slow: 15}) {
		t.Errorf("all but 1.1: %+v", got)
	}
	// Only the second minute.
	if got := count(r, "checkout", "1.0", now.Add(time.Minute), to); got != (Counts{Requests: 50, Slow: 5}) {
		t.Errorf("1.0 from the second minute: %+v", got)
	}
	res, err := NewChecker(r, Config{}, map[string]float64{"checkout": 99}, func() time.Time { return now.Add(2 * time.Minute) }).
		Check(CheckRequest{Service: "checkout", Canary: "1.1", Since: from})
	if err != nil {
		t.Fatal(err)
	}
	if res.Canary.Requests != 10 || res.Baseline.Requests != 155 || res.Baseline.Errors != 1 || *res.Canary.Slow != 4 || res.Verdict.Verdict != Inconclusive {
		t.Errorf("check %+v", res)
	}
	if _, err := NewChecker(r, Config{}, nil, nil).Check(CheckRequest{Service: "checkout"}); err == nil {
		t.Error("a check without a canary version was accepted")
	}
}

// TestCheckerKeepsAFail checks that a fail verdict stands: once a
// version failed, Failed reports it, even when the counts checked later
// (here from a later start, which leaves out the failures) would be
// inconclusive.
func TestCheckerKeepsAFail(t *testing.T) {
	now := time.Date(2026, 12, 3, 10, 0, 30, 0, time.UTC)
	r := NewRecorder(RecorderConfig{})
	// 200 canary requests, 120 failed, against 2,000 baseline ones, 2
	// failed: 60% against 0.1%, which the test fails.
	r.Observe(request(t, now, map[string][3]int{"1.0": {2000, 2, 0}, "1.1": {200, 120, 0}}), now)
	c := NewChecker(r, Config{}, nil, func() time.Time { return now.Add(2 * time.Minute) })
	if _, ok := c.Failed("checkout", "1.1"); ok {
		t.Fatal("Failed before any check")
	}
	res, err := c.Check(CheckRequest{Service: "checkout", Canary: "1.1", Baseline: "1.0", Since: now.Add(-time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	if res.Verdict.Verdict != Fail {
		t.Fatalf("verdict %s (%s), want fail", res.Verdict.Verdict, res.Reason)
	}
	later, err := c.Check(CheckRequest{Service: "checkout", Canary: "1.1", Since: now.Add(time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	if later.Verdict.Verdict == Fail {
		t.Fatalf("a check of no counts failed: %+v", later)
	}
	got, ok := c.Failed("checkout", "1.1")
	if !ok || got.Reason != res.Reason || got.BaselineVersion != "1.0" {
		t.Errorf("Failed = %+v, %v; want the first fail verdict", got, ok)
	}
	if _, ok := c.Failed("checkout", "1.0"); ok {
		t.Error("the baseline is reported failed")
	}
}

// BenchmarkRecorderObserve is the ingest cost of the per-version counts,
// per entry span: independent of how many analyses or deploy markers are
// active, since every version of every service is counted.
func BenchmarkRecorderObserve(b *testing.B) {
	now := time.Now()
	req := request(b, now, map[string][3]int{"1.0": {200, 2, 20}, "1.1": {50, 1, 5}, "1.2": {10, 0, 1}})
	r := NewRecorder(RecorderConfig{Thresholds: map[string]time.Duration{"checkout": 300 * time.Millisecond}})
	b.ReportAllocs()
	for b.Loop() {
		r.Observe(req, now)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(req.Spans)), "ns/span")
}

// TestRecorderStoreRoundTrip checks what a Recorder gives its store and
// takes from it: the counts not stored yet as deltas (counted meanwhile
// ones included the next time), its own stored counts at start, and the
// peers' counts added to every read.
func TestRecorderStoreRoundTrip(t *testing.T) {
	now := time.Date(2026, 12, 3, 10, 0, 30, 0, time.UTC)
	m := now.Truncate(time.Minute)
	r := NewRecorder(RecorderConfig{Thresholds: map[string]time.Duration{"checkout": 300 * time.Millisecond}})
	r.Observe(request(t, now, map[string][3]int{"1.0": {100, 1, 10}, "1.1": {10, 3, 4}}), now)
	rows := r.Unstored()
	byVersion := map[string]Counts{}
	for _, row := range rows {
		if row.Service != "checkout" || !row.Minute.Equal(m) {
			t.Errorf("row %+v, want checkout at %s", row, m)
		}
		byVersion[row.Version] = row.Counts
	}
	if byVersion["1.0"] != (Counts{100, 1, 10}) || byVersion["1.1"] != (Counts{10, 3, 4}) || len(rows) != 2 {
		t.Fatalf("unstored %+v", rows)
	}
	// Counted between the read and its write: left for the next flush.
	r.Observe(request(t, now, map[string][3]int{"1.1": {5, 1, 0}}), now)
	r.MarkStored(rows)
	rows = r.Unstored()
	if len(rows) != 1 || rows[0].Version != "1.1" || rows[0].Counts != (Counts{5, 1, 0}) {
		t.Fatalf("after the first flush, unstored %+v, want 1.1's 5 requests counted meanwhile", rows)
	}
	r.MarkStored(rows)
	if rows := r.Unstored(); len(rows) != 0 {
		t.Fatalf("after the second flush, unstored %+v", rows)
	}

	// The fleet's other instances: their counts are added to every read.
	earlier := m.Add(-2 * time.Minute)
	r.SetPeers([]VersionRow{
		{Service: "checkout", Version: "1.1", Minute: earlier, Counts: Counts{20, 10, 0}},
		{Service: "checkout", Version: "0.9", Minute: m, Counts: Counts{7, 0, 0}},
	})
	from, to := m.Add(-time.Hour), m.Add(time.Hour)
	if got := count(r, "checkout", "1.1", from, to); got != (Counts{35, 14, 4}) {
		t.Errorf("1.1 with its peers' counts: %+v, want 15+20 requests, 4+10 errors, 4 slow", got)
	}
	if got := countOthers(r, "checkout", "1.1", from, to); got != (Counts{107, 1, 10}) {
		t.Errorf("all but 1.1 with the peers': %+v, want 100+7 requests", got)
	}
	if first, ok := r.FirstSeen("checkout", "1.1"); !ok || !first.Equal(earlier) {
		t.Errorf("1.1 first seen %v, want %s (a peer saw it first)", first, earlier)
	}
	if rows := r.Unstored(); len(rows) != 0 {
		t.Errorf("peers' counts are offered to the store: %+v", rows)
	}
	r.SetPeers(nil)
	if got := count(r, "checkout", "1.1", from, to); got != (Counts{15, 4, 4}) {
		t.Errorf("1.1 once the peers are gone: %+v", got)
	}

	// A restart: the stored counts come back, and are not stored again.
	r2 := NewRecorder(RecorderConfig{})
	r2.Seed([]VersionRow{{Service: "checkout", Version: "1.1", Minute: m, Counts: Counts{15, 4, 4}}})
	if got := count(r2, "checkout", "1.1", from, to); got != (Counts{15, 4, 4}) {
		t.Errorf("seeded counts %+v", got)
	}
	if rows := r2.Unstored(); len(rows) != 0 {
		t.Errorf("seeded counts offered to the store again: %+v", rows)
	}
	if first, ok := r2.FirstSeen("checkout", "1.1"); !ok || !first.Equal(m) {
		t.Errorf("seeded version first seen %v, want %s", first, m)
	}
}

// TestCheckerRegression checks the post-deploy verdict from the
// per-version counts of all versions: the minutes after the deploy against
// the 30 before it, the deploy's minute on neither side.
func TestCheckerRegression(t *testing.T) {
	deploy := time.Date(2026, 12, 3, 10, 30, 20, 0, time.UTC)
	r := NewRecorder(RecorderConfig{})
	// Before: 2,000 requests, 0.25% failed (20 minutes earlier); the
	// deploy's own minute holds 500 failures that count on neither side.
	r.Observe(request(t, deploy.Add(-20*time.Minute), map[string][3]int{"1.0": {2000, 5, 0}}), deploy.Add(-20*time.Minute))
	r.Observe(request(t, deploy, map[string][3]int{"1.0": {500, 500, 0}}), deploy)
	now := deploy.Add(10 * time.Minute)
	c := NewChecker(r, Config{}, nil, func() time.Time { return now })
	m := Marker{Service: "checkout", At: deploy, RollbackCommand: "kubectl rollout undo deployment/checkout -n shop"}
	if g := c.Regression(m); g.Verdict != Inconclusive || g.Detail.Rule != "no_canary_traffic" {
		t.Errorf("no request since the deploy: %s (%s: %s), want inconclusive", g.Verdict, g.Detail.Rule, g.Detail.Reason)
	}
	// After: 600 requests, 6% failed, in two versions.
	r.Observe(request(t, deploy.Add(3*time.Minute), map[string][3]int{"1.1": {400, 24, 0}, "1.0": {200, 12, 0}}), deploy.Add(3*time.Minute))
	g := c.Regression(m)
	if g.Verdict != Regressed || g.RollbackCommand != m.RollbackCommand || g.Detail.Canary.Requests != 600 || g.Detail.Baseline.Requests != 2000 {
		t.Errorf("6%% after 0.25%%: %s (%s), rollback %q, %d after and %d before; want regressed with the command, 600 and 2000",
			g.Verdict, g.Detail.Reason, g.RollbackCommand, g.Detail.Canary.Requests, g.Detail.Baseline.Requests)
	}
	// A service with nothing before its deploy cannot be judged.
	if g := c.Regression(Marker{Service: "payments", At: deploy}); g.Verdict != Inconclusive || g.Detail.Rule != "no_baseline_traffic" {
		t.Errorf("nothing before: %s (%s)", g.Verdict, g.Detail.Rule)
	}
}

// TestMergePeers: a sync that reads the last minutes only replaces the
// peers' counts of those minutes and keeps the older ones; pruning drops
// peers' minutes past the retention.
func TestMergePeers(t *testing.T) {
	m := time.Date(2026, 12, 3, 10, 30, 0, 0, time.UTC)
	r := NewRecorder(RecorderConfig{Retention: time.Hour})
	row := func(at time.Time, n uint64) VersionRow {
		return VersionRow{Service: "checkout", Version: "1.1", Operation: "/pay", Minute: at, Counts: Counts{Requests: n}}
	}
	r.SetPeers([]VersionRow{row(m.Add(-30*time.Minute), 10), row(m.Add(-2*time.Minute), 5)})
	// The last 5 minutes again: minute −2 grew to 7, minute −1 is new.
	r.MergePeers([]VersionRow{row(m.Add(-2*time.Minute), 7), row(m.Add(-time.Minute), 3)}, m.Add(-5*time.Minute))
	for _, tc := range []struct {
		at   time.Duration
		want uint64
	}{{-30 * time.Minute, 10}, {-2 * time.Minute, 7}, {-time.Minute, 3}} {
		at := m.Add(tc.at)
		if got := count(r, "checkout", "1.1", at, at).Requests; got != tc.want {
			t.Errorf("minute %s: %d requests, want %d", tc.at, got, tc.want)
		}
	}
	// 40 minutes on, the retention (an hour) has passed minute −30.
	r.Prune(m.Add(40 * time.Minute))
	if got := count(r, "checkout", "1.1", m.Add(-time.Hour), m).Requests; got != 10 {
		t.Errorf("after pruning: %d requests, want 10 (minutes −2 and −1)", got)
	}
}

// count returns a version's counts in the minutes from from's through
// to's, summed over operations.
func count(r *Recorder, service, version string, from, to time.Time) Counts {
	isCanary, _ := versionMatch(version, "")
	return sumOps(r.Operations(service, isCanary, from, to))
}

// countOthers returns the counts of every version of service but
// version: the baseline when none is named.
func countOthers(r *Recorder, service, version string, from, to time.Time) Counts {
	_, isBaseline := versionMatch(version, "")
	return sumOps(r.Operations(service, isBaseline, from, to))
}
