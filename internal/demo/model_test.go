package demo

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// stats are counts over many planned requests of one phase.
type stats struct {
	n, errorTraces, slowTraces int
	checkouts, checkoutBad     int // checkout's entry spans, bad ones
	checkoutSlow               int // over the latency SLO's 300ms
	checkoutGoodSlow           int // of those, not bad for availability
	charges, chargesBad        int // payments' entry spans
	frontendBad                int
	maxOKExtent                time.Duration
}

func statusCode(s *Span) int64 {
	for _, a := range s.Attrs {
		if a.Key == "http.response.status_code" {
			return a.Value.AsInt64()
		}
	}
	return 0
}

func collect(t *testing.T, p Phase, n int, seed uint64) stats {
	t.Helper()
	m := DefaultModel()
	rng := rand.New(rand.NewPCG(seed, seed+1))
	var st stats
	for range n {
		r := m.Request(p, rng)
		st.n++
		checkStructure(t, r)
		switch r.Class {
		case Error:
			st.errorTraces++
		case Slow:
			st.slowTraces++
		default:
			st.maxOKExtent = max(st.maxOKExtent, r.Extent)
		}
		if r.Root.Bad() {
			st.frontendBad++
		}
		r.Root.Walk(func(s *Span) {
			if s.Kind != trace.SpanKindServer {
				return
			}
			switch s.Service {
			case Checkout:
				st.checkouts++
				if s.Bad() {
					st.checkoutBad++
				}
				if s.End-s.Start > 300*time.Millisecond {
					st.checkoutSlow++
					if !s.Bad() {
						st.checkoutGoodSlow++
					}
				}
			case Payments:
				st.charges++
				if s.Bad() {
					st.chargesBad++
				}
			}
		})
	}
	return st
}

// checkStructure checks what makes a trace realistic: children start
// within their parent, server spans answer before their caller gives up
// (except a callee a timed-out caller left behind), every span has a
// known service, and the class follows from the spans.
func checkStructure(t *testing.T, r *Request) {
	t.Helper()
	bad, extent := false, time.Duration(0)
	var walk func(s *Span, parent *Span)
	walk = func(s *Span, parent *Span) {
		bad = bad || s.Status == codes.Error || statusCode(s) >= 500
		extent = max(extent, s.End)
		if s.End < s.Start {
			t.Fatalf("span %s ends before it starts", s.Name)
		}
		if s.Service == "" || s.Version == "" {
			t.Fatalf("span %s without service or version", s.Name)
		}
		if parent != nil {
			if s.Start < parent.Start {
				t.Fatalf("span %s starts before its parent %s", s.Name, parent.Name)
			}
			timedOut := parent.Kind == trace.SpanKindClient && parent.Status == codes.Error && statusCode(parent) == 0
			if s.End > parent.End && !timedOut {
				t.Fatalf("span %s (%s) ends after its parent %s (%s)", s.Name, s.End, parent.Name, parent.End)
			}
		}
		if s.Kind == trace.SpanKindServer && statusCode(s) >= 400 && statusCode(s) < 500 && s.Status == codes.Error {
			t.Fatalf("server span %s with a 4xx has status ERROR; the conventions leave it unset", s.Name)
		}
		for _, c := range s.Children {
			walk(c, s)
		}
	}
	walk(r.Root, nil)
	if r.Extent != extent {
		t.Fatalf("extent %s, want %s", r.Extent, extent)
	}
	want := OK
	switch {
	case bad:
		want = Error
	case extent > SlowThreshold:
		want = Slow
	}
	if r.Class != want {
		t.Fatalf("class %s, want %s", r.Class, want)
	}
}

// within checks an observed share against an expectation computed by hand
// from the model's parameters.
func within(t *testing.T, what string, got, want, tol float64) {
	t.Helper()
	if math.Abs(got-want) > tol {
		t.Errorf("%s = %.4f, want %.4f ± %.4f", what, got, want, tol)
	}
}

func share(a, b int) float64 { return float64(a) / float64(b) }

// normalTail is P(Z > z) for a standard normal Z.
func normalTail(z float64) float64 { return 0.5 * math.Erfc(z/math.Sqrt2) }

func TestModelCalm(t *testing.T) {
	m := DefaultModel()
	for _, p := range []Phase{Calm, Recovery} {
		t.Run(p.String(), func(t *testing.T) {
			st := collect(t, p, 40000, 7)
			if st.checkoutBad != 0 || st.frontendBad != 0 || st.chargesBad != 0 {
				t.Errorf("bad entry spans: frontend %d, checkout %d, payments %d; the calm spends no availability budget",
					st.frontendBad, st.checkoutBad, st.chargesBad)
			}
			if st.slowTraces != 0 || st.maxOKExtent > SlowThreshold {
				t.Errorf("%d slow traces, longest OK trace %s; none should pass %s", st.slowTraces, st.maxOKExtent, SlowThreshold)
			}
			// Error traces: declined cards on checkouts, unknown products on
			// product pages, and inventory hiccups on both (checkout calls it
			// once, or twice after a hiccup).
			checkoutShare := 1 - m.HomeShare - m.ProductShare
			want := checkoutShare*m.DeclineRate + m.ProductShare*m.NotFoundRate +
				(m.ProductShare+checkoutShare)*m.InventoryFlakeRate
			within(t, "error trace share", share(st.errorTraces, st.n), want, 0.002)
			within(t, "checkout share", share(st.checkouts, st.n), checkoutShare, 0.01)
			// The latency SLO's budget is 5%: the calm spends a little of it.
			if s := share(st.checkoutSlow, st.checkouts); s > 0.01 {
				t.Errorf("%.2f%% of checkouts over 300ms in the calm, want under 1%%", 100*s)
			}
		})
	}
}

func TestModelFailure(t *testing.T) {
	m := DefaultModel()
	st := collect(t, Failure, 40000, 11)
	b := m.Broken
	// A charge fails when payments refuses it, or when its query hits the
	// statement timeout: P(q > timeout) for a log-normal query time.
	pTimeoutDB := normalTail(math.Log(float64(b.StatementTimeout)/float64(b.QueryMedian)) / b.QuerySpread)
	within(t, "payments error ratio", share(st.chargesBad, st.charges), b.Rejected+(1-b.Rejected)*pTimeoutDB, 0.02)
	// Checkout fails when payments fails or takes longer than checkout's
	// timeout: roughly a query over the timeout less the card processor's
	// ~45ms and a few ms of overhead.
	pSlow := normalTail(math.Log(float64(m.CheckoutTimeout-50*time.Millisecond)/float64(b.QueryMedian)) / b.QuerySpread)
	wantCheckout := b.Rejected + (1-b.Rejected)*pSlow
	within(t, "checkout error ratio", share(st.checkoutBad, st.checkouts), wantCheckout, 0.03)
	if r := share(st.checkoutBad, st.checkouts); r < 0.4 || r > 0.6 {
		t.Errorf("checkout error ratio %.3f, want between 40%% and 60%%", r)
	}
	// Every failed checkout propagates to the frontend.
	if st.frontendBad != st.checkoutBad {
		t.Errorf("frontend failures %d, checkout failures %d: want them equal", st.frontendBad, st.checkoutBad)
	}
	// Successful checkouts wait ~450ms for payments: the latency SLO burns.
	// P(q > 300ms - ~50ms of everything else) among the queries that
	// finished in time.
	pOver := normalTail(math.Log(float64(250*time.Millisecond)/float64(b.QueryMedian)) / b.QuerySpread)
	within(t, "slow share of successful checkouts", share(st.checkoutGoodSlow, st.checkouts-st.checkoutBad), (pOver-pSlow)/(1-pSlow), 0.03)
	if st.slowTraces != 0 || st.maxOKExtent > SlowThreshold {
		t.Errorf("%d slow OK traces (longest %s): an OK trace never passes the slow threshold", st.slowTraces, st.maxOKExtent)
	}
}

func TestModelTimeoutLeavesCalleeRunning(t *testing.T) {
	m := DefaultModel()
	m.Broken.Rejected = 0
	m.Broken.QueryMedian = 2 * m.CheckoutTimeout // every charge is too slow for checkout
	m.Broken.QuerySpread = 0
	m.Broken.StatementTimeout = 0
	m.HomeShare, m.ProductShare = 0, 0
	r := m.Request(Failure, rand.New(rand.NewPCG(1, 2)))
	var call, charge, co *Span
	r.Root.Walk(func(s *Span) {
		switch {
		case s.Service == Checkout && s.Kind == trace.SpanKindServer:
			co = s
		case s.Service == Checkout && s.Name == "POST /api/charge":
			call = s
		case s.Service == Payments && s.Kind == trace.SpanKindServer:
			charge = s
		}
	})
	if call == nil || charge == nil || co == nil {
		t.Fatal("the checkout trace lacks the charge call")
	}
	if got := call.End - call.Start; got != m.CheckoutTimeout {
		t.Errorf("charge call lasted %s, want the checkout timeout %s", got, m.CheckoutTimeout)
	}
	if call.Status != codes.Error || !hasAttr(call.Attrs, attribute.String("error.type", "timeout")) {
		t.Errorf("timed-out call: status %v, attrs %v; want ERROR with error.type=timeout", call.Status, call.Attrs)
	}
	if statusCode(co) != 504 || statusCode(r.Root) != 504 {
		t.Errorf("checkout answered %d and the frontend %d, want 504 both", statusCode(co), statusCode(r.Root))
	}
	if charge.End <= call.End {
		t.Errorf("payments ended at %s, before checkout gave up at %s; it should carry on", charge.End, call.End)
	}
	if r.Extent <= SlowThreshold || r.Class != Error {
		t.Errorf("extent %s class %s: want a long error trace", r.Extent, r.Class)
	}
}

func hasAttr(attrs []attribute.KeyValue, kv attribute.KeyValue) bool {
	for _, a := range attrs {
		if a == kv {
			return true
		}
	}
	return false
}

func TestModelIsDeterministic(t *testing.T) {
	m := DefaultModel()
	a, b := rand.New(rand.NewPCG(3, 4)), rand.New(rand.NewPCG(3, 4))
	for i := range 100 {
		x, y := m.Request(Failure, a), m.Request(Failure, b)
		if x.Extent != y.Extent || x.Class != y.Class || x.Route != y.Route {
			t.Fatalf("request %d differs with the same seed", i)
		}
	}
}

func TestModelHasDatabaseAndHTTPAttributes(t *testing.T) {
	m := DefaultModel()
	m.HomeShare, m.ProductShare = 0, 0
	r := m.Request(Calm, rand.New(rand.NewPCG(5, 6)))
	keys := map[attribute.Key]bool{}
	kinds := map[trace.SpanKind]int{}
	services := map[string]bool{}
	r.Root.Walk(func(s *Span) {
		kinds[s.Kind]++
		services[s.Service] = true
		for _, a := range s.Attrs {
			keys[a.Key] = true
		}
	})
	for _, k := range []attribute.Key{"http.route", "http.response.status_code", "http.request.method", "db.system", "db.namespace", "server.address"} {
		if !keys[k] {
			t.Errorf("no span carries %s", k)
		}
	}
	for _, s := range []string{Frontend, Checkout, Payments, Inventory} {
		if !services[s] {
			t.Errorf("a checkout does not reach %s", s)
		}
	}
	if kinds[trace.SpanKindServer] != 4 || kinds[trace.SpanKindClient] < 6 {
		t.Errorf("span kinds %v, want 4 server spans and client spans for every call", kinds)
	}
}

// TestModelCanary checks the recovery's canary at its last (largest)
// step: the hotfix serves that share of the charges, refuses none, and answers most of them over
// payments' latency threshold (150ms) where the stable release answers
// few; the slow charges burn payments' latency budget (90%) under every
// alert tier (3x), and checkout's budgets not at all, so that the canary
// is caught by tailgate's verdict, not by an alert.
func TestModelCanary(t *testing.T) {
	m := DefaultModel()
	rng := rand.New(rand.NewPCG(5, 6))
	const threshold = 150 * time.Millisecond
	if !slices.Equal(m.CanarySteps, []float64{0.01, 0.10}) {
		t.Fatalf("canary steps %v, want 1%% then 10%%", m.CanarySteps)
	}
	last := m.CanarySteps[len(m.CanarySteps)-1]
	var charges, slow, hotfix, hotfixSlow, stable, stableSlow, bad, checkouts, checkoutSlow int
	for range 40000 {
		r := m.RequestCanary(Recovery, rng, last)
		checkStructure(t, r)
		r.Root.Walk(func(s *Span) {
			if s.Kind != trace.SpanKindServer {
				return
			}
			if s.Bad() && (s.Service == Payments || s.Service == Checkout) {
				bad++
			}
			over := s.End-s.Start > threshold
			switch s.Service {
			case Payments:
				charges++
				if over {
					slow++
				}
				switch s.Version {
				case m.Hotfix.Version:
					hotfix++
					if over {
						hotfixSlow++
					}
				case m.Stable.Version:
					stable++
					if over {
						stableSlow++
					}
				default:
					t.Fatalf("payments %s during the recovery's canary", s.Version)
				}
			case Checkout:
				checkouts++
				if s.End-s.Start > 300*time.Millisecond {
					checkoutSlow++
				}
			}
		})
	}
	within(t, "canary share of charges", share(hotfix, charges), last, 0.01)
	if bad != 0 {
		t.Errorf("%d failed payments or checkout spans with the canary live, want none", bad)
	}
	if h, s := share(hotfixSlow, hotfix), share(stableSlow, stable); h < 0.7 || s > 0.03 {
		t.Errorf("charges over 150ms: hotfix %.1f%%, stable %.1f%%; want most of the hotfix's and few of the stable's", 100*h, 100*s)
	}
	if burn := share(slow, charges) / 0.10; burn >= 3 {
		t.Errorf("payments-latency burns at %.1fx with the canary live, want under the lowest tier (3x)", burn)
	}
	if burn := share(checkoutSlow, checkouts) / 0.05; burn >= 1 {
		t.Errorf("checkout-latency burns at %.1fx with the canary live, want under 1x", burn)
	}
	// Without a live canary nothing goes to the hotfix.
	for range 2000 {
		m.RequestCanary(Recovery, rng, 0).Root.Walk(func(s *Span) {
			if s.Service == Payments && s.Version == m.Hotfix.Version {
				t.Fatal("a charge went to the hotfix without a live canary")
			}
		})
	}
}
