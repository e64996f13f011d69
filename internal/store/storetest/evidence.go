package storetest

import (
	"slices"
	"testing"
	"time"

	"github.com/tailgate-sre/tailgate/internal/incident"
)

// runEvidence checks the kept failed traces of post-mortems: a trace
// recorded twice is kept once, a read returns the given services' traces
// of the minutes in range, oldest first, up to the limit, and a prune
// drops the old ones.
func runEvidence(t *testing.T, open func(t *testing.T) Stores) {
	s := open(t)
	es, ok := s.SLO.(incident.EvidenceStore)
	if !ok {
		t.Skip("store keeps no failed traces")
	}
	ctx := t.Context()
	m0 := base.Truncate(time.Minute).UTC()
	ft := func(svc string, m int, id string) incident.FailedTrace {
		return incident.FailedTrace{Service: svc, Minute: m0.Add(time.Duration(m) * time.Minute), TraceID: id}
	}
	must(t, es.AddFailedTraces(ctx, []incident.FailedTrace{ft("checkout", 2, "c2"), ft("checkout", 0, "c0"), ft("payments", 1, "p1"), ft("search", 1, "s1")}))
	must(t, es.AddFailedTraces(ctx, []incident.FailedTrace{ft("checkout", 0, "c0"), ft("checkout", 5, "c5")})) // c0 again
	must(t, es.AddFailedTraces(ctx, nil))
	ids := func(ts []incident.FailedTrace) []string {
		var out []string
		for _, x := range ts {
			out = append(out, x.TraceID)
		}
		return out
	}
	got, err := es.FailedTraces(ctx, []string{"checkout", "payments"}, m0, m0.Add(2*time.Minute), 10)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"c0", "p1", "c2"}; !slices.Equal(ids(got), want) {
		t.Errorf("traces of checkout and payments, minutes 0-2: %v, want %v", ids(got), want)
	}
	if got[0].Service != "checkout" || !got[0].Minute.Equal(m0) {
		t.Errorf("first trace %+v, want checkout at %s", got[0], m0)
	}
	if got, _ := es.FailedTraces(ctx, []string{"checkout"}, m0, m0.Add(time.Hour), 2); !slices.Equal(ids(got), []string{"c0", "c2"}) {
		t.Errorf("limit 2: %v", ids(got))
	}
	if got, _ := es.FailedTraces(ctx, nil, m0, m0.Add(time.Hour), 10); len(got) != 0 {
		t.Errorf("no services: %v", ids(got))
	}
	must(t, es.PruneFailedTraces(ctx, m0.Add(2*time.Minute)))
	if got, _ := es.FailedTraces(ctx, []string{"checkout", "payments"}, m0, m0.Add(time.Hour), 10); !slices.Equal(ids(got), []string{"c2", "c5"}) {
		t.Errorf("after pruning before minute 2: %v", ids(got))
	}
}
