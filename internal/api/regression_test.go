package api

import (
	"net/http"
	"testing"
	"time"

	"github.com/tailgate-sre/tailgate/internal/canary"
	"github.com/tailgate-sre/tailgate/internal/gate"
	"github.com/tailgate-sre/tailgate/internal/otlp"
	"github.com/tailgate-sre/tailgate/internal/otlptest"
	"github.com/tailgate-sre/tailgate/internal/signals"
	"github.com/tailgate-sre/tailgate/internal/store/sqlite"
)

// TestDeployRegressionEndToEnd judges a bad deploy of checkout with the
// real counts (canary.Recorder), the real error origins (signals over
// SQLite) and an injected clock: 30 minutes before the deploy at 1 failed
// request in 100, all in checkout's own code; 5 minutes after it at 11 in
// 100, 10 of them from payments POST /charge answering 503. The answer
// is regressed, carries the marker's rollback command, and names
// payments as where the new failures start, checkout's own errors
// unchanged.
func TestDeployRegressionEndToEnd(t *testing.T) {
	t0 := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	deployed := t0.Add(30*time.Minute + 10*time.Second)
	now := t0.Add(36 * time.Minute)
	db, err := sqlite.Open(t.Context(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	sig, err := signals.New(signals.DefaultConfig(), signals.Settings{Store: db})
	if err != nil {
		t.Fatal(err)
	}
	rec := canary.NewRecorder(canary.RecorderConfig{})

	var id uint64
	span := func(service, name, route string, kind otlp.Kind, parent uint64, status uint16, end time.Time) signals.TraceSpan {
		id++
		s := signals.TraceSpan{Service: service, Name: name, Route: route, Kind: kind, Bad: status >= 500 || status == 1,
			HTTPStatus: status, Start: uint64(end.Add(-20 * time.Millisecond).UnixNano()), End: uint64(end.UnixNano())}
		s.SpanID[7], s.SpanID[6] = byte(id), byte(id>>8)
		if parent != 0 {
			s.ParentSpanID[7], s.ParentSpanID[6] = byte(parent), byte(parent>>8)
		}
		if status == 1 { // an error status without HTTP status
			s.HTTPStatus = 0
		}
		return s
	}
	ownFailure := func(end time.Time) {
		root := span("checkout", "POST /api/checkout", "/api/checkout", otlp.KindServer, 0, 500, end)
		cart := span("checkout", "validate cart", "", otlp.KindInternal, id, 1, end)
		sig.ObserveTrace([]signals.TraceSpan{root, cart}, end)
	}
	paymentsFailure := func(end time.Time) {
		root := span("checkout", "POST /api/checkout", "/api/checkout", otlp.KindServer, 0, 502, end)
		call := span("checkout", "POST /charge", "", otlp.KindClient, id, 503, end)
		charge := span("payments", "POST /charge", "/charge", otlp.KindServer, id, 503, end)
		sig.ObserveTrace([]signals.TraceSpan{root, call, charge}, end)
	}
	minute := func(at time.Time, n, own, dep int) {
		end := at.Add(30 * time.Second)
		rec.Observe(otlptest.VersionRequest(t, "checkout", "", n, own+dep, end), end.Add(time.Second))
		for range own {
			ownFailure(end)
		}
		for range dep {
			paymentsFailure(end)
		}
	}
	for i := range 30 {
		minute(t0.Add(time.Duration(i)*time.Minute), 100, 1, 0)
	}
	for i := 31; i <= 35; i++ {
		minute(t0.Add(time.Duration(i)*time.Minute), 100, 1, 10)
	}

	const rollback = "kubectl rollout undo deployment/checkout -n shop"
	g := &eventsGate{deploys: []gate.Deploy{{ID: "dep_1", Service: "checkout", Version: "3.9.0", ChangeClass: gate.Feature, Time: deployed, RollbackCommand: rollback}}}
	clock := func() time.Time { return now }
	srv := New(Deps{Gate: g, Canary: canary.NewChecker(rec, canary.Config{}, nil, clock), Services: sig, Now: clock})
	var got RegressionAnswer
	getJSON(t, srv, "/api/v1/deploys/regression?service=checkout", http.StatusOK, &got)
	reg := got.Regression
	if reg.Verdict != canary.Regressed || reg.RollbackCommand != rollback {
		t.Fatalf("verdict %s (%s), rollback %q; want regressed with %q", reg.Verdict, reg.Detail.Reason, reg.RollbackCommand, rollback)
	}
	if reg.RequestsBefore != 3000 || reg.RequestsAfter != 500 {
		t.Errorf("compared %d requests before and %d after, want 3,000 and 500", reg.RequestsBefore, reg.RequestsAfter)
	}
	// By hand: 55 failed after; 30 before scaled by 500/3,000 is 5
	// expected, so 50 beyond; payments 50 − 0, checkout's own 5 − 5.
	want := "new failures originate in a dependency, payments /charge (5xx): 50 of the 50 failed requests beyond the rate before the deploy; checkout's own errors are unchanged (5, 5 expected)"
	if got.Origin != want {
		t.Errorf("origin %q,\nwant %q", got.Origin, want)
	}
}
