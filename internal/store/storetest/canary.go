package storetest

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tailgate-sre/tailgate/internal/canary"
)

// runCanary checks the canary's per-version minute counts: additive per
// service, version, operation and minute, read from a minute on, pruned before a
// minute, kept across a restart.
func runCanary(t *testing.T, open func(t *testing.T) Stores) {
	s := open(t)
	cs, ok := s.SLO.(canary.Store)
	if !ok {
		t.Skip("store keeps no canary counts")
	}
	ctx := t.Context()
	m0 := base.Truncate(time.Minute).UTC()
	m1 := m0.Add(time.Minute)
	row := func(ver string, m time.Time, req, bad, slow uint64) canary.VersionRow {
		return canary.VersionRow{Service: "checkout", Version: ver, Operation: "POST /pay", Minute: m, Counts: canary.Counts{Requests: req, Errors: bad, Slow: slow}}
	}
	// Another operation of the same version and minute is a row of its
	// own.
	other := row("2.4.0", m0, 40, 4, 4)
	other.Operation = "GET /cart"
	must(t, cs.AddCanaryCounts(ctx, []canary.VersionRow{row("2.4.0", m0, 10, 2, 1), row("2.3.1", m0, 100, 1, 3), row("2.4.0", m1, 5, 0, 0), other}))
	// A second flush adds to the same minute, and a row twice in one
	// write is added twice.
	must(t, cs.AddCanaryCounts(ctx, []canary.VersionRow{row("2.4.0", m0, 3, 1, 0), row("2.4.0", m0, 1, 0, 0)}))
	must(t, cs.AddCanaryCounts(ctx, nil))

	read := func(cs canary.Store, since time.Time) []canary.VersionRow {
		t.Helper()
		own, peers, err := cs.CanaryCounts(ctx, since)
		if err != nil {
			t.Fatal(err)
		}
		if len(peers) != 0 {
			t.Errorf("peers %+v in a store of one instance", peers)
		}
		return sortRows(own)
	}
	want := sortRows([]canary.VersionRow{row("2.3.1", m0, 100, 1, 3), other, row("2.4.0", m0, 14, 3, 1), row("2.4.0", m1, 5, 0, 0)})
	if got := read(cs, m0); !rowsEqual(got, want) {
		t.Errorf("counts from %s = %+v, want %+v", m0, got, want)
	}
	if got := read(cs, m1); !rowsEqual(got, want[3:]) {
		t.Errorf("counts from %s = %+v, want %+v", m1, got, want[3:])
	}
	// A write with a cancelled context adds nothing or all.
	err := cs.AddCanaryCounts(cancelled(t), []canary.VersionRow{row("2.4.0", m1, 7, 0, 0)})
	checkCancelled(t, s, err, func() bool { return read(cs, m1)[0].Requests == 12 })
	m1Requests := read(cs, m1)[0].Requests

	must(t, cs.PruneCanaryCounts(ctx, m1))
	if got := read(cs, m0); len(got) != 1 || !got[0].Minute.Equal(m1) || got[0].Requests != m1Requests {
		t.Errorf("after pruning before %s: %+v, want the %s row only", m1, got, m1)
	}
	if s.Reopen == nil {
		return
	}
	s2 := s.Reopen(t)
	if got := read(s2.SLO.(canary.Store), m0); len(got) != 1 || got[0].Requests != m1Requests {
		t.Errorf("after a restart: %+v, want the %s row", got, m1)
	}
}

func sortRows(rs []canary.VersionRow) []canary.VersionRow {
	slices.SortFunc(rs, func(a, b canary.VersionRow) int {
		if c := a.Minute.Compare(b.Minute); c != 0 {
			return c
		}
		if c := strings.Compare(a.Version, b.Version); c != 0 {
			return c
		}
		return strings.Compare(a.Operation, b.Operation)
	})
	return rs
}

func rowsEqual(a, b []canary.VersionRow) bool {
	return slices.EqualFunc(a, b, func(x, y canary.VersionRow) bool {
		return x.Service == y.Service && x.Version == y.Version && x.Operation == y.Operation && x.Minute.Equal(y.Minute) && x.Counts == y.Counts
	})
}
