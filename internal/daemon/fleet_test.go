package daemon

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tailgate-sre/tailgate/internal/store/postgres"
)

// fakeFleetDB is a fleet store and its leader lock as the database sees
// them: the members' rows, stamped with the one clock of the test, and
// which instance's session holds the lock.
type fakeFleetDB struct {
	mu    sync.Mutex
	now   func() time.Time
	rows  map[string]postgres.Member
	owner string          // the instance whose session holds the lock
	cut   map[string]bool // instances that cannot reach the database
}

// fakeMember is one instance's connection to a fakeFleetDB: its
// fleetStore and its leaderLock.
type fakeMember struct {
	db   *fakeFleetDB
	name string
	held bool // what the instance believes about the lock
}

var errCut = errors.New("connection timed out")

func (m *fakeMember) Instance() string { return m.name }
func (m *fakeMember) Where() string    { return "fake" }

func (m *fakeMember) Heartbeat(_ context.Context, r postgres.Member) error {
	m.db.mu.Lock()
	defer m.db.mu.Unlock()
	if m.db.cut[m.name] {
		return errCut
	}
	r.Instance, r.Heartbeat = m.name, m.db.now()
	m.db.rows[m.name] = r
	return nil
}

func (m *fakeMember) Members(context.Context) ([]postgres.Member, time.Time, error) {
	m.db.mu.Lock()
	defer m.db.mu.Unlock()
	if m.db.cut[m.name] {
		return nil, time.Time{}, errCut
	}
	var out []postgres.Member
	for _, r := range m.db.rows {
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b postgres.Member) int { return strings.Compare(a.Instance, b.Instance) })
	return out, m.db.now(), nil
}

func (m *fakeMember) TryLead(context.Context, time.Duration) (bool, error) {
	m.db.mu.Lock()
	defer m.db.mu.Unlock()
	switch {
	case m.held:
		return true, nil // as postgres.Leadership: Renew proves it
	case m.db.cut[m.name]:
		return false, errCut
	case m.db.owner == "":
		m.db.owner, m.held = m.name, true
	}
	return m.held, nil
}

func (m *fakeMember) Renew(_ context.Context, r postgres.Member) error {
	m.db.mu.Lock()
	defer m.db.mu.Unlock()
	if !m.held || m.db.cut[m.name] || m.db.owner != m.name {
		m.held = false
		return errCut
	}
	r.Instance, r.Heartbeat, r.Leader = m.name, m.db.now(), true
	m.db.rows[m.name] = r
	return nil
}

func (m *fakeMember) Release() {
	m.db.mu.Lock()
	defer m.db.mu.Unlock()
	if m.held && m.db.owner == m.name {
		m.db.owner = ""
	}
	m.held = false
}

// fleetHarness runs instances of one fake fleet on one fake clock.
type fleetHarness struct {
	t   *testing.T
	now time.Time
	db  *fakeFleetDB
}

func newFleetHarness(t *testing.T) *fleetHarness {
	h := &fleetHarness{t: t}
	h.now = h.at(0)
	h.db = &fakeFleetDB{now: func() time.Time { return h.now }, rows: map[string]postgres.Member{}, cut: map[string]bool{}}
	return h
}

// instance starts a fleet member with a one-second heartbeat (a two-second
// lease); it does not tick until the test calls tick.
func (h *fleetHarness) instance(name string) *fleet {
	m := &fakeMember{db: h.db, name: name}
	return newFleetWith(m, m, func() time.Time { return h.now }, "", time.Second, nil, slog.New(slog.DiscardHandler), nil)
}

func (h *fleetHarness) at(d time.Duration) time.Time {
	return time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC).Add(d)
}

// TestFleetLeaderLease checks that two instances never act as the leader
// at once, though the database gives the lock to the second while the
// first still believes it holds it (its session ended, and it has not
// ticked since), and that the second leads as soon as the first's recorded
// claim has run out: the times below are worked out from a one-second
// heartbeat and a two-second lease.
func TestFleetLeaderLease(t *testing.T) {
	h := newFleetHarness(t)
	a, b := h.instance("a"), h.instance("b")
	a.tick(t.Context()) // 0s: a takes the free lock and records its claim
	b.tick(t.Context())
	if !a.Leader() || b.Leader() {
		t.Fatalf("at 0s: a leads %v, b leads %v; want a only", a.Leader(), b.Leader())
	}
	h.now = h.at(time.Second)
	a.tick(t.Context()) // 1s: a's last recorded claim; it may act until 3s
	b.tick(t.Context())

	// 1.5s: a is cut off from the database, which ends its session and
	// frees the lock; a's ticks hang from now on (it never ticks again).
	h.now = h.at(1500 * time.Millisecond)
	h.db.mu.Lock()
	h.db.cut["a"], h.db.owner = true, ""
	h.db.mu.Unlock()

	// 2s: b takes the lock and waits out a's claim (1s + 2s = 3s).
	h.now = h.at(2 * time.Second)
	b.tick(t.Context())
	var bFrom time.Duration
	for d := 2 * time.Second; d <= 6*time.Second; d += 100 * time.Millisecond {
		h.now = h.at(d)
		if d%time.Second == 0 && d > 2*time.Second {
			b.tick(t.Context())
		}
		la, lb := a.Leader(), b.Leader()
		if la && lb {
			t.Fatalf("at %v both a and b act as the leader", d)
		}
		if lb && bFrom == 0 {
			bFrom = d
		}
		if want := d < 3*time.Second; la != want {
			t.Errorf("at %v a leads %v, want %v (its claim recorded at 1s runs out at 3s)", d, la, want)
		}
	}
	if bFrom != 3*time.Second {
		t.Errorf("b led from %v, want 3s: when a's claim ran out", bFrom)
	}
}

// TestFleetLeaderHandOver checks the hand-overs that need no wait and the
// one that does: after a clean shutdown the next instance leads at once;
// after a crash (the lock freed with the session, the claim still
// recorded) it leads once the claim has run out; an instance that cannot
// record its claim stops acting at once; one that cannot read the claims
// waits a whole lease.
func TestFleetLeaderHandOver(t *testing.T) {
	h := newFleetHarness(t)
	a := h.instance("a")
	a.tick(t.Context())
	if !a.Leader() {
		t.Fatal("a does not lead an empty fleet at once")
	}
	if err := a.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	if a.Leader() {
		t.Fatal("a still leads after Shutdown")
	}
	h.now = h.at(500 * time.Millisecond)
	b := h.instance("b")
	b.tick(t.Context())
	if !b.Leader() {
		t.Fatal("b does not lead at once after a's clean shutdown")
	}

	// b crashes at 1s: its session, and the lock with it, is gone; its
	// claim, recorded at 0.5s, runs out at 2.5s.
	h.now = h.at(time.Second)
	h.db.mu.Lock()
	h.db.owner = ""
	h.db.mu.Unlock()
	c := h.instance("c")
	c.tick(t.Context()) // takes the lock at 1s, records its claim until 3s
	for _, d := range []time.Duration{1 * time.Second, 2499 * time.Millisecond} {
		if h.now = h.at(d); c.Leader() {
			t.Fatalf("c leads at %v, before b's claim ran out at 2.5s", d)
		}
	}
	if h.now = h.at(2500 * time.Millisecond); !c.Leader() {
		t.Fatal("c does not lead at 2.5s, when b's claim ran out")
	}

	// c renews at 2.6s (its claim now runs to 4.6s), then cannot record
	// it at a tick at 2.8s: it stops acting at once.
	h.now = h.at(2600 * time.Millisecond)
	c.tick(t.Context())
	h.now = h.at(2800 * time.Millisecond)
	h.db.mu.Lock()
	h.db.cut["c"] = true
	h.db.mu.Unlock()
	if !c.Leader() {
		t.Fatal("c does not lead at 2.8s before its tick")
	}
	c.tick(t.Context())
	if c.Leader() {
		t.Fatal("c still leads after its claim could not be recorded")
	}
	if got := c.health.Load().(string); got != errCut.Error() {
		t.Errorf("c's health %q, want %q", got, errCut.Error())
	}

	// d cannot read the claims: it waits a whole lease from 3s.
	h.now = h.at(3 * time.Second)
	d := h.instance("d")
	h.db.mu.Lock()
	h.db.cut["d"] = true
	h.db.mu.Unlock()
	if from := d.takeOver(t.Context()); !from.Equal(h.at(5 * time.Second)) {
		t.Errorf("d, without the claims, may lead from %v, want a lease later (5s)", from.Sub(h.at(0)))
	}
}
