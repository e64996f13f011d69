package daemon

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/tailgate-sre/tailgate/internal/canary"
	"github.com/tailgate-sre/tailgate/internal/config"
	"github.com/tailgate-sre/tailgate/internal/otlptest"
)

// fleetCounts is a fleet store's canary counts, shared by instances.
type fleetCounts struct {
	mu   sync.Mutex
	rows map[string][]canary.VersionRow // by instance
}

// instanceCounts is one instance's view of fleetCounts (canary.Store).
type instanceCounts struct {
	f        *fleetCounts
	instance string
}

func (s instanceCounts) AddCanaryCounts(_ context.Context, rows []canary.VersionRow) error {
	s.f.mu.Lock()
	defer s.f.mu.Unlock()
	s.f.rows[s.instance] = append(s.f.rows[s.instance], rows...)
	return nil
}

func (s instanceCounts) CanaryCounts(_ context.Context, since time.Time) (own, peers []canary.VersionRow, err error) {
	s.f.mu.Lock()
	defer s.f.mu.Unlock()
	for in, rows := range s.f.rows {
		for _, r := range rows {
			if r.Minute.Before(since.Truncate(time.Minute)) {
				continue
			}
			if in == s.instance {
				own = append(own, r)
			} else {
				peers = append(peers, r)
			}
		}
	}
	return own, peers, nil
}

func (s instanceCounts) PruneCanaryCounts(context.Context, time.Time) error { return nil }

// TestCanarySyncAcrossInstances checks that every instance of a fleet
// judges a canary from all of its requests: the canary's requests landed
// on one instance, the baseline's on another, and after a sync each
// checker sees both and fails the canary alike; a restarted instance gets
// its own counts back.
func TestCanarySyncAcrossInstances(t *testing.T) {
	fleet := &fleetCounts{rows: map[string][]canary.VersionRow{}}
	now := time.Now()
	start := func(instance string) (*canary.Recorder, *canary.Checker, *canarySync) {
		rec := canary.NewRecorder(canary.RecorderConfig{})
		cs := newCanarySync(rec, instanceCounts{fleet, instance}, time.Hour, slog.New(slog.DiscardHandler))
		if err := cs.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
		return rec, canary.NewChecker(rec, canary.Config{}, nil, nil), cs
	}
	recA, checkA, syncA := start("a")
	recB, checkB, syncB := start("b")
	// 1,000 baseline requests (1 failed) reach a; 200 canary requests, 60
	// failed, reach b.
	recA.Observe(otlptest.VersionRequest(t, "checkout", "2.3.1", 1000, 1, now), now)
	recB.Observe(otlptest.VersionRequest(t, "checkout", "2.4.0", 200, 60, now), now)

	check := func(c *canary.Checker) canary.CheckResult {
		t.Helper()
		res, err := c.Check(canary.CheckRequest{Service: "checkout", Canary: "2.4.0", Baseline: "2.3.1", Since: now.Add(-time.Minute)})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	if res := check(checkA); res.Verdict.Verdict == canary.Fail {
		t.Fatalf("a judged a canary it has no request of: %+v", res.Verdict)
	}
	for _, s := range []*canarySync{syncA, syncB, syncA} { // b writes before a reads
		if err := s.sync(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	for name, c := range map[string]*canary.Checker{"a": checkA, "b": checkB} {
		res := check(c)
		if res.Canary.Requests != 200 || res.Baseline.Requests != 1000 || res.Verdict.Verdict != canary.Fail {
			t.Errorf("%s: canary %d requests, baseline %d, verdict %s; want 200, 1000, fail", name, res.Canary.Requests, res.Baseline.Requests, res.Verdict.Verdict)
		}
	}
	// b stops (its last counts stored) and starts again: its own counts
	// come back from the store, a's as peers.
	if err := syncB.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := syncA.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	_, checkB2, syncB2 := start("b")
	defer syncB2.Shutdown(context.Background())
	if res := check(checkB2); res.Canary.Requests != 200 || res.Baseline.Requests != 1000 {
		t.Errorf("restarted b: canary %d, baseline %d requests; want 200 and 1000", res.Canary.Requests, res.Baseline.Requests)
	}
	// Nothing was stored twice.
	var total uint64
	for _, rows := range fleet.rows {
		for _, r := range rows {
			total += r.Requests
		}
	}
	if total != 1200 {
		t.Errorf("the store holds %d requests, want 1,200", total)
	}
}

// TestCanaryPolicyTolerances checks that a policy's canary block sets the
// tolerances of its service's verdicts, and the default policy's those of
// the others: the same worsening (0.5% to 4% errors over 2,000 requests
// each) fails on the defaults, and passes the checkout policy, which
// fails only beyond 3x and 5 points.
func TestCanaryPolicyTolerances(t *testing.T) {
	cfg, err := config.Parse([]byte(`
policies:
  - service: checkout
    canary: {max_ratio: 3, max_increase: 0.05}
  - service: cart
    canary: {version_attribute: k8s.deployment.name}   # Flagger: the workloads
  - canary: {false_positive_rate: 0.01}
`))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	rec, checker := newCanary(nil, cfg.Policies)
	for _, svc := range []string{"checkout", "payments"} {
		rec.Observe(otlptest.VersionRequest(t, svc, "1.0", 2000, 10, now), now)
		rec.Observe(otlptest.VersionRequest(t, svc, "1.1", 2000, 80, now), now)
	}
	verdict := func(svc string) canary.CheckResult {
		t.Helper()
		res, err := checker.Check(canary.CheckRequest{Service: svc, Canary: "1.1", Baseline: "1.0", Since: now.Add(-time.Minute)})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	if res := verdict("payments"); res.Verdict.Verdict != canary.Fail || res.Alpha != 0.01 {
		t.Errorf("payments (default policy): %s at alpha %v, want fail at 0.01 (%s)", res.Verdict.Verdict, res.Alpha, res.Reason)
	}
	if res := verdict("checkout"); res.Verdict.Verdict == canary.Fail || res.Margin < 0.04 {
		t.Errorf("checkout (max 3x and 5 points): %s with margin %v, want no fail (%s)", res.Verdict.Verdict, res.Margin, res.Reason)
	}

	// cart tells its versions apart by workload, as Flagger's canary and
	// primary Deployments; service.version is ignored there.
	for _, w := range []struct {
		deployment string
		n, bad     int
	}{{"cart", 300, 90}, {"cart-primary", 2000, 2}} {
		rec.Observe(otlptest.SpanRequest(t, map[string]string{"service.name": "cart", "k8s.deployment.name": w.deployment, "service.version": "9.9"},
			w.n, func(i int, sp ptrace.Span) {
				sp.SetStartTimestamp(pcommon.NewTimestampFromTime(now.Add(-time.Millisecond)))
				sp.SetEndTimestamp(pcommon.NewTimestampFromTime(now))
				if i < w.bad {
					sp.Status().SetCode(ptrace.StatusCodeError)
				}
			}), now)
	}
	res, err := checker.Check(canary.CheckRequest{Service: "cart", Canary: "cart", Baseline: "cart-primary", Since: now.Add(-time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	if res.Canary.Requests != 300 || res.Baseline.Requests != 2000 || res.Verdict.Verdict != canary.Fail {
		t.Errorf("cart by workload: canary %d, baseline %d requests, %s; want 300, 2000, fail", res.Canary.Requests, res.Baseline.Requests, res.Verdict.Verdict)
	}

	if _, err := config.Parse([]byte("policies:\n  - canary: {false_positive_rate: 0.7}\n")); err == nil ||
		!strings.Contains(err.Error(), "policies[0].canary.false_positive_rate") {
		t.Errorf("a bad canary block: %v, want an error naming policies[0].canary.false_positive_rate", err)
	}
}

// TestBackground: the loop runs until shutdown, which waits for it and
// runs the final step once; a loop never started runs neither, and start
// after shutdown starts nothing.
func TestBackground(t *testing.T) {
	var b background
	ran := make(chan struct{}, 1)
	kick := make(chan struct{})
	b.start(time.Hour, kick, func(context.Context) {
		select {
		case ran <- struct{}{}:
		default:
		}
	})
	kick <- struct{}{}
	<-ran
	finals := 0
	final := func() error { finals++; return nil }
	if err := b.shutdown(final); err != nil {
		t.Fatal(err)
	}
	if err := b.shutdown(final); err != nil || finals != 1 {
		t.Errorf("two shutdowns ran the final step %d times, want once (err %v)", finals, err)
	}
	b.start(time.Hour, kick, func(context.Context) { t.Error("a loop started after shutdown") })
	select {
	case kick <- struct{}{}:
		t.Error("a kick was taken after shutdown")
	default:
	}

	var never background
	if err := never.shutdown(func() error { t.Error("final step of a loop never started"); return nil }); err != nil {
		t.Fatal(err)
	}
}
