package api

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/tailgate-sre/tailgate/internal/canary"
	"github.com/tailgate-sre/tailgate/internal/flags"
	"github.com/tailgate-sre/tailgate/internal/gate"
	"github.com/tailgate-sre/tailgate/internal/signals"
	"github.com/tailgate-sre/tailgate/internal/slo"
)

// eventsGate, eventsFlags and eventsSLOs give only what GET .../events
// reads; the embedded interfaces panic if anything else is called.
type eventsGate struct {
	GateService
	deploys []gate.Deploy
	asked   gate.DeployQuery
}

func (g *eventsGate) Deploys(_ context.Context, q gate.DeployQuery) ([]gate.Deploy, error) {
	g.asked = q
	return g.deploys, nil
}

type eventsFlags struct {
	FlagService
	views   []flags.View
	history map[string][]flags.Change
}

func (f eventsFlags) List() []flags.View { return f.views }
func (f eventsFlags) History(_ context.Context, key string, _ int) ([]flags.Change, error) {
	return f.history[key], nil
}

type eventsSLOs struct{ SLOSource }

func (eventsSLOs) List(time.Time) []slo.Status {
	return []slo.Status{{Name: "checkout-availability", Service: "checkout"}, {Name: "payments-availability", Service: "payments"}}
}

// TestServiceEvents checks the marks of a service's charts: its deploys,
// and the flips and restores of flags whose kill switch watches one of its
// SLOs (or the service), in time order; another service's flag, other
// actions and changes outside the range are left out.
func TestServiceEvents(t *testing.T) {
	srv, _ := newSignalsServer(t, signalsStore{})
	now := signalsNow
	g := &eventsGate{deploys: []gate.Deploy{{Service: "checkout", Version: "3.9.0", ChangeClass: gate.Feature, Time: now.Add(-20 * time.Minute), Description: "new cart"}}}
	at := func(m int) time.Time { return now.Add(time.Duration(m) * time.Minute) }
	fl := eventsFlags{
		views: []flags.View{
			{Config: flags.Config{Key: "recommendations", KillSwitch: &flags.KillSwitch{SLOs: []string{"checkout-availability"}}}},
			{Config: flags.Config{Key: "fraud-v2", KillSwitch: &flags.KillSwitch{Service: "checkout"}}},
			{Config: flags.Config{Key: "payments-retry", KillSwitch: &flags.KillSwitch{SLOs: []string{"payments-availability"}}}},
			{Config: flags.Config{Key: "theme"}},
		},
		history: map[string][]flags.Change{
			"recommendations": {
				{Action: flags.ActionFlip, Source: "kill_switch", To: "disabled", At: at(-10), Reason: "checkout-availability: page"},
				{Action: flags.ActionRestore, Actor: "alice", At: at(-2)},
				{Action: flags.ActionPause, Actor: "bob", At: at(-1)},
				{Action: flags.ActionFlip, Actor: "carol", To: "disabled", At: at(-90)}, // before the hour
			},
			"fraud-v2":       {{Action: flags.ActionFlip, Actor: "dave", To: "off", At: at(-30)}},
			"payments-retry": {{Action: flags.ActionFlip, Source: "kill_switch", To: "off", At: at(-5)}},
		},
	}
	srv.deps.Gate, srv.deps.Flags, srv.deps.SLOs = g, fl, eventsSLOs{}
	var got struct{ Events []ServiceEvent }
	getJSON(t, srv, "/api/v1/services/checkout/events", http.StatusOK, &got)
	want := []ServiceEvent{
		{At: at(-30), Kind: "flip", Text: "flag fraud-v2 flip to off by dave"},
		{At: at(-20), Kind: "deploy", Text: "deploy 3.9.0 (feature): new cart"},
		{At: at(-10), Kind: "flip", Text: "flag recommendations flip to disabled by the kill switch: checkout-availability: page"},
		{At: at(-2), Kind: "restore", Text: "flag recommendations restore by alice"},
	}
	if len(got.Events) != len(want) {
		t.Fatalf("events %+v, want %+v", got.Events, want)
	}
	for i := range want {
		if !got.Events[i].At.Equal(want[i].At) || got.Events[i].Kind != want[i].Kind || got.Events[i].Text != want[i].Text {
			t.Errorf("event %d = %+v, want %+v", i, got.Events[i], want[i])
		}
	}
	if g.asked.Service != "checkout" || !g.asked.From.Equal(now.Add(-time.Hour)) {
		t.Errorf("deploys asked for %+v, want checkout over the last hour", g.asked)
	}
	// With canary counts, a deploy carries its regression verdict.
	srv.deps.Canary = &fixedCanary{verdict: canary.Regressed}
	getJSON(t, srv, "/api/v1/services/checkout/events", http.StatusOK, &got)
	for _, e := range got.Events {
		if want := map[string]string{"deploy": "regressed"}[e.Kind]; e.Verdict != want {
			t.Errorf("%s event verdict %q, want %q", e.Kind, e.Verdict, want)
		}
	}
	rec := httptest.NewRecorder()
	srv.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/api/v1/services/checkout/events?from=nonsense", nil))
	if rec.Code != http.StatusBadRequest {
		t.Errorf("a bad from: HTTP %d, want 400", rec.Code)
	}
}

// TestDeployRegression checks GET /api/v1/deploys/regression: it judges
// the latest deploy marker of the service that is not a rollback (or the
// one named), hands on its rollback command, and says what is wrong with a
// request it cannot answer.
func TestDeployRegression(t *testing.T) {
	now := signalsNow
	g := &eventsGate{deploys: []gate.Deploy{
		{ID: "dep_1", Service: "checkout", Version: "3.9.0", ChangeClass: gate.Feature, Time: now.Add(-20 * time.Minute), RollbackCommand: "kubectl rollout undo deployment/checkout"},
		{ID: "dep_2", Service: "checkout", Version: "3.8.0", ChangeClass: gate.Rollback, Time: now.Add(-5 * time.Minute)},
	}}
	fc := &fixedCanary{verdict: canary.Regressed}
	srv := New(Deps{Gate: g, Canary: fc, Now: func() time.Time { return now }})
	var got RegressionAnswer
	getJSON(t, srv, "/api/v1/deploys/regression?service=checkout", http.StatusOK, &got)
	if got.Deploy.ID != "dep_1" || got.Regression.Verdict != canary.Regressed || got.Regression.RollbackCommand != "kubectl rollout undo deployment/checkout" {
		t.Errorf("answer %+v, want dep_1 regressed with its rollback command", got)
	}
	if g.asked.Service != "checkout" {
		t.Errorf("deploys asked for %+v", g.asked)
	}
	getJSON(t, srv, "/api/v1/deploys/regression?service=checkout&id=dep_2", http.StatusOK, &got)
	if got.Deploy.ID != "dep_2" {
		t.Errorf("named deploy: %s, want dep_2", got.Deploy.ID)
	}
	for path, status := range map[string]int{
		"/api/v1/deploys/regression":                          http.StatusBadRequest,
		"/api/v1/deploys/regression?service=checkout&id=nope": http.StatusNotFound,
	} {
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		if rec.Code != status {
			t.Errorf("GET %s: %d, want %d (%s)", path, rec.Code, status, rec.Body)
		}
	}
}

// originsSource answers error origins only.
type originsSource struct {
	ServiceSource
	eo    signals.ErrorOrigins
	asked signals.Query
	// before, when set, answers for the window ending at deployed.
	before      *signals.ErrorOrigins
	deployed    time.Time
	askedBefore signals.Query
}

func (o *originsSource) ErrorOrigins(_ context.Context, _ string, q signals.Query, _ time.Time) (signals.ErrorOrigins, error) {
	if o.before != nil && !q.To.After(o.deployed) {
		o.askedBefore = q
		return *o.before, nil
	}
	o.asked = q
	return o.eo, nil
}

// TestDeployRegressionOrigin checks the regression answer's origin: from
// the error origins of the minutes after the deploy, whether the failed
// requests started in the service's own code or in a dependency.
func TestDeployRegressionOrigin(t *testing.T) {
	now := signalsNow
	deployed := now.Add(-20*time.Minute + 10*time.Second)
	g := &eventsGate{deploys: []gate.Deploy{{ID: "dep_1", Service: "checkout", Version: "3.9.0", Time: deployed}}}
	src := &originsSource{eo: signals.ErrorOrigins{Service: "checkout", FailedRequests: 120, OriginatedHere: 20, Propagated: 100,
		Origins: []signals.Origin{{Service: "payments", Operation: "POST /charge", Reason: "5xx", Requests: 100}, {Service: "checkout", Operation: "POST /api/checkout", Reason: "error", Requests: 20}}}}
	srv := New(Deps{Gate: g, Canary: &fixedCanary{verdict: canary.Regressed}, Services: src, Now: func() time.Time { return now }})
	var got RegressionAnswer
	getJSON(t, srv, "/api/v1/deploys/regression?service=checkout", http.StatusOK, &got)
	want := "a dependency: payments POST /charge (5xx): 100 of 120 failed requests since the deploy start there, 20 in checkout itself"
	if got.Origin != want || got.ErrorOrigins == nil {
		t.Errorf("origin %q, want %q", got.Origin, want)
	}
	if !src.asked.From.Equal(deployed.Truncate(time.Minute).Add(time.Minute)) || !src.asked.To.Equal(now) {
		t.Errorf("origins asked for %+v, want the minutes after the deploy's", src.asked)
	}
	src.eo.OriginatedHere, src.eo.Propagated = 90, 30
	getJSON(t, srv, "/api/v1/deploys/regression?service=checkout", http.StatusOK, &got)
	if want := "own code: 90 of 120 failed requests since the deploy start in checkout itself"; got.Origin != want {
		t.Errorf("origin %q, want %q", got.Origin, want)
	}
}

// TestDeployRegressionNewOrigin checks the origin of the failures that
// are new since the deploy: each origin's count after against its count
// before, scaled by the traffic (the 30 minutes before had 2,000
// requests, the minutes after 1,000: half the before counts are
// expected).
func TestDeployRegressionNewOrigin(t *testing.T) {
	now := signalsNow
	deployed := now.Add(-20*time.Minute + 10*time.Second)
	at := deployed.Truncate(time.Minute)
	g := &eventsGate{deploys: []gate.Deploy{{ID: "dep_1", Service: "checkout", Version: "3.9.0", Time: deployed}}}
	// Before: 40 failed, all in checkout's own code (POST /api/checkout).
	before := signals.ErrorOrigins{Service: "checkout", FailedRequests: 40, OriginatedHere: 40,
		Origins: []signals.Origin{{Service: "checkout", Operation: "POST /api/checkout", Reason: "error", Requests: 40}}}
	// After: 120 failed, 100 from payments, 20 in checkout (20 expected).
	after := signals.ErrorOrigins{Service: "checkout", FailedRequests: 120, OriginatedHere: 20, Propagated: 100,
		Origins: []signals.Origin{{Service: "payments", Operation: "POST /charge", Reason: "5xx", Requests: 100}, {Service: "checkout", Operation: "POST /api/checkout", Reason: "error", Requests: 20}}}
	src := &originsSource{eo: after, before: &before, deployed: at}
	fc := &fixedCanary{verdict: canary.Regressed, before: 2000, after: 1000}
	srv := New(Deps{Gate: g, Canary: fc, Services: src, Now: func() time.Time { return now }})
	var got RegressionAnswer
	getJSON(t, srv, "/api/v1/deploys/regression?service=checkout", http.StatusOK, &got)
	// By hand: 120 − 40·½ = 100 beyond; payments 100 − 0, checkout 20 − 20.
	want := "new failures originate in a dependency, payments POST /charge (5xx): 100 of the 100 failed requests beyond the rate before the deploy; checkout's own errors are unchanged (20, 20 expected)"
	if got.Origin != want {
		t.Errorf("origin %q,\nwant %q", got.Origin, want)
	}
	if !src.askedBefore.From.Equal(at.Add(-30*time.Minute)) || !src.askedBefore.To.Equal(at) {
		t.Errorf("origins before asked for %+v, want the 30 minutes before the deploy's minute", src.askedBefore)
	}
	// Checkout's own code fails more, payments as before.
	after.OriginatedHere, after.Origins[1].Requests = 80, 80
	after.Propagated, after.Origins[0].Requests = 10, 10
	after.FailedRequests = 90
	before.Propagated, before.FailedRequests = 20, 60
	before.Origins = append(before.Origins, signals.Origin{Service: "payments", Operation: "POST /charge", Reason: "5xx", Requests: 20})
	src.eo, src.before = after, &before
	getJSON(t, srv, "/api/v1/deploys/regression?service=checkout", http.StatusOK, &got)
	// 90 − 60·½ = 60 beyond; checkout 80 − 20 = 60, payments 10 − 10 = 0.
	want = "new failures originate in checkout's own code, POST /api/checkout (error): 60 of the 60 failed requests beyond the rate before the deploy (80, 20 expected)"
	if got.Origin != want {
		t.Errorf("origin %q,\nwant %q", got.Origin, want)
	}
	// As many failures as before predicts: nothing new.
	after = before
	after.FailedRequests, after.OriginatedHere, after.Propagated = 30, 20, 10
	src.eo = after
	getJSON(t, srv, "/api/v1/deploys/regression?service=checkout", http.StatusOK, &got)
	if want := "no new failures: 30 failed requests since the deploy, 30 expected at the rate before it"; got.Origin != want {
		t.Errorf("origin %q,\nwant %q", got.Origin, want)
	}
}
