package users

import (
	"context"
	"fmt"
	"math"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/tailgate-sre/tailgate/internal/otlp"
	"github.com/tailgate-sre/tailgate/internal/otlptest"
	"github.com/tailgate-sre/tailgate/internal/units"
)

// within checks an estimate against the exact count, allowing four
// standard errors of the sketch (1.04/sqrt(1024), about 3.25%), and one
// user for the smallest counts.
func within(t *testing.T, what string, got uint64, exact int) {
	t.Helper()
	tol := math.Max(1, 4*1.04/math.Sqrt(Registers)*float64(exact))
	if math.Abs(float64(got)-float64(exact)) > tol {
		t.Errorf("%s: estimate %d, exact %d (tolerance %.0f)", what, got, exact, tol)
	}
}

func TestSketchEstimates(t *testing.T) {
	for _, n := range []int{0, 1, 7, 100, 1000, 10000, 200000} {
		var s Sketch
		for i := range n {
			s.Add(hash(fmt.Appendf(nil, "user-%d", i)))
			s.Add(hash(fmt.Appendf(nil, "user-%d", i))) // a user failing twice counts once
		}
		within(t, fmt.Sprint(n, " users"), s.Estimate(), n)
	}
	// Two instances saw overlapping users: 0..5999 and 4000..9999.
	var a, b Sketch
	for i := range 6000 {
		a.Add(hash(fmt.Appendf(nil, "user-%d", i)))
		b.Add(hash(fmt.Appendf(nil, "user-%d", i+4000)))
	}
	a.Merge(&b)
	within(t, "merged", a.Estimate(), 10000)
	before := a
	a.Merge(&b) // merging again changes nothing
	if a != before {
		t.Error("merging the same sketch twice changed it")
	}
}

// request builds n entry spans of service ending at end, the first bad
// failed, span i carrying user.id i%users on the span (one user,
// resource-user, on the resource when onResource).
func request(t *testing.T, service string, n, bad, users int, end time.Time, onResource bool) *otlp.Request {
	res := map[string]string{"service.name": service}
	if onResource {
		res["user.id"] = "resource-user"
	}
	return otlptest.SpanRequest(t, res, n, func(i int, sp ptrace.Span) {
		sp.SetStartTimestamp(pcommon.NewTimestampFromTime(end.Add(-time.Millisecond)))
		sp.SetEndTimestamp(pcommon.NewTimestampFromTime(end))
		if !onResource {
			sp.Attributes().PutInt("user.id", int64(i%users))
		}
		if i < bad {
			sp.Status().SetCode(ptrace.StatusCodeError)
		}
	})
}

// memStore is a fleet store's sketches: each instance's last write.
type memStore map[string]map[key]Sketch

func (m memStore) instance(name string) Store { return memInstance{m, name} }

type memInstance struct {
	m    memStore
	name string
}

func (s memInstance) PutUserSketches(_ context.Context, rows []Row) error {
	if s.m[s.name] == nil {
		s.m[s.name] = map[key]Sketch{}
	}
	for _, r := range rows {
		s.m[s.name][key{r.Service, bucketOf(minuteOf(r.Start))}] = r.Sketch
	}
	return nil
}

func (s memInstance) UserSketches(_ context.Context, service string, from, to time.Time) ([]Row, error) {
	var out []Row
	for _, ks := range s.m {
		for k, sk := range ks {
			if k.service == service && k.start >= bucketOf(minuteOf(from)) && k.start <= bucketOf(minuteOf(to)) {
				out = append(out, Row{Service: k.service, Start: k.start.Time(), Sketch: sk})
			}
		}
	}
	return out, nil
}

func (s memInstance) PruneUserSketches(context.Context, time.Time) error { return nil }

func TestCounter(t *testing.T) {
	if NewCounter("", time.Hour) != nil {
		t.Fatal("a counter without an attribute")
	}
	now := time.Date(2026, 12, 4, 10, 23, 30, 0, time.UTC)
	a, b := NewCounter("user.id", 24*time.Hour), NewCounter("user.id", 24*time.Hour)
	// Instance a: 300 checkout failures of 120 users (user.id 0..119 as
	// an integer on the span); 500 successes of other users don't count.
	a.Observe(request(t, "checkout", 800, 300, 120, now, false), now)
	// Instance b: 200 failures, users 0..79 again and nobody else.
	b.Observe(request(t, "checkout", 200, 200, 80, now, false), now)
	// Payments fails for one user named on the resource.
	a.Observe(request(t, "payments", 10, 10, 1, now, true), now)

	fleet := memStore{}
	for name, c := range map[string]*Counter{"a": a, "b": b} {
		rows := c.Unstored()
		if err := fleet.instance(name).PutUserSketches(t.Context(), rows); err != nil {
			t.Fatal(err)
		}
		if again := c.Unstored(); len(again) != 0 {
			t.Errorf("%s: %d sketches unstored after a write", name, len(again))
		}
	}
	from, to := now.Add(-time.Hour), now
	got, ok, err := a.Estimate(t.Context(), fleet.instance("a"), "checkout", from, to)
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	within(t, "checkout across the fleet", got, 120)
	got, _, _ = b.Estimate(t.Context(), nil, "checkout", from, to)
	within(t, "b alone", got, 80)
	if got, _, _ := a.Estimate(t.Context(), fleet.instance("a"), "payments", from, to); got != 1 {
		t.Errorf("payments: %d users, want the one on the resource", got)
	}
	// Another ten minutes hold none of them.
	if got, _, _ := a.Estimate(t.Context(), fleet.instance("a"), "checkout", now.Add(-3*time.Hour), now.Add(-2*time.Hour)); got != 0 {
		t.Errorf("two hours earlier: %d users, want 0", got)
	}
	// A failed write leaves the sketches to be written again.
	a.Observe(request(t, "checkout", 5, 5, 5, now, false), now)
	rows := a.Unstored()
	a.Unmark(rows)
	if len(a.Unstored()) != len(rows) || len(rows) == 0 {
		t.Errorf("unmarked sketches are not offered again")
	}
	a.Prune(now.Add(48 * time.Hour))
	if got, _, _ := a.Estimate(t.Context(), nil, "checkout", from, to); got != 0 {
		t.Errorf("after pruning: %d users in memory", got)
	}
}

func minuteOf(t time.Time) units.Minute { return units.MinuteOf(t) }
