package storetest

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tailgate-sre/tailgate/internal/gate"
	"github.com/tailgate-sre/tailgate/internal/incident"
)

func runIncidents(t *testing.T, open func(t *testing.T) Stores) {
	st := func(t *testing.T) Stores {
		t.Helper()
		s := open(t)
		if s.Incidents == nil {
			t.Skip("store keeps no incidents")
		}
		return s
	}
	t.Run("Lifecycle", func(t *testing.T) { testIncidentLifecycle(t, st(t)) })
	t.Run("ConcurrentDeclarations", func(t *testing.T) { testIncidentConcurrent(t, st(t).Incidents) })
	t.Run("Reopen", func(t *testing.T) {
		s := st(t)
		if s.Reopen == nil {
			t.Skip("store keeps nothing across a restart (Reopen is nil)")
		}
		inc, err := s.Incidents.CreateIncident(t.Context(), newIncident("checkout"), []incident.Entry{entry(0, "declared")})
		if err != nil {
			t.Fatal(err)
		}
		r := s.Reopen(t).Incidents
		got, err := r.GetIncident(t.Context(), inc.ID)
		if err != nil || got.Title != inc.Title {
			t.Fatalf("after a reopen: %+v, %v", got, err)
		}
		es, err := r.IncidentEntries(t.Context(), inc.ID)
		if err != nil || len(es) != 1 {
			t.Errorf("entries after a reopen: %v, %v", es, err)
		}
	})
}

func newIncident(service string) incident.Incident {
	return incident.Incident{Title: service + " is paging", Severity: "sev2", State: incident.Declared, Services: []string{service},
		Roles: map[incident.Role]string{}, Source: "page", DeclaredBy: "tailgate", DeclaredAt: base, Version: 1}
}

func entry(minute int, text string) incident.Entry {
	return incident.Entry{At: base.Add(time.Duration(minute) * time.Minute), Kind: incident.KindNote, Source: "api", Actor: "alice", Text: text}
}

func testIncidentLifecycle(t *testing.T, s Stores) {
	ctx := t.Context()
	is := s.Incidents
	if got, err := is.ListIncidents(ctx, false, 10); err != nil || len(got) != 0 {
		t.Fatalf("empty store lists %v, %v", got, err)
	}
	a, err := is.CreateIncident(ctx, newIncident("checkout"), []incident.Entry{entry(0, "declared")})
	if err != nil {
		t.Fatal(err)
	}
	b, err := is.CreateIncident(ctx, newIncident("search"), []incident.Entry{entry(1, "declared b")})
	if err != nil {
		t.Fatal(err)
	}
	if a.ID != "INC-1" || b.ID != "INC-2" {
		t.Fatalf("IDs %s, %s; want INC-1 and INC-2", a.ID, b.ID)
	}
	// Resolve a: version 2, with an entry.
	at := base.Add(30 * time.Minute)
	a.State, a.ResolvedAt, a.Version = incident.Resolved, &at, 2
	a.Roles[incident.Commander] = "alice"
	if err := is.UpdateIncident(ctx, a, []incident.Entry{entry(30, "resolved")}); err != nil {
		t.Fatal(err)
	}
	// A stale write (based on version 1 again) is refused.
	stale := a
	stale.State, stale.Version = incident.Mitigated, 2
	if err := is.UpdateIncident(ctx, stale, nil); !errors.Is(err, incident.ErrConflict) {
		t.Errorf("stale update: %v, want ErrConflict", err)
	}
	ghost := newIncident("x")
	ghost.ID, ghost.Version = "INC-99", 2
	if err := is.UpdateIncident(ctx, ghost, nil); !errors.Is(err, incident.ErrNotFound) {
		t.Errorf("update of INC-99: %v, want ErrNotFound", err)
	}
	if err := is.AddIncidentEntries(ctx, "INC-99", []incident.Entry{entry(0, "x")}); !errors.Is(err, incident.ErrNotFound) {
		t.Errorf("entries on INC-99: %v, want ErrNotFound", err)
	}
	if _, err := is.GetIncident(ctx, "INC-99"); !errors.Is(err, incident.ErrNotFound) {
		t.Errorf("get INC-99: %v, want ErrNotFound", err)
	}
	got, err := is.GetIncident(ctx, "INC-1")
	if err != nil {
		t.Fatal(err)
	}
	if got.State != incident.Resolved || got.Version != 2 || got.Roles[incident.Commander] != "alice" || got.ResolvedAt == nil || !got.ResolvedAt.Equal(at) {
		t.Errorf("INC-1 after resolving: %+v", got)
	}
	open, _ := is.ListIncidents(ctx, true, 10)
	all, _ := is.ListIncidents(ctx, false, 10)
	ids := func(l []incident.Incident) (out []string) {
		for _, i := range l {
			out = append(out, i.ID)
		}
		return out
	}
	if diff := cmp.Diff([]string{"INC-2"}, ids(open)); diff != "" {
		t.Errorf("open incidents (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"INC-2", "INC-1"}, ids(all)); diff != "" {
		t.Errorf("all incidents, newest first (-want +got):\n%s", diff)
	}
	if err := is.AddIncidentEntries(ctx, "INC-1", []incident.Entry{entry(31, "late note")}); err != nil {
		t.Fatal(err)
	}
	es, err := is.IncidentEntries(ctx, "INC-1")
	if err != nil {
		t.Fatal(err)
	}
	var texts []string
	for _, e := range es {
		texts = append(texts, e.Text)
	}
	if diff := cmp.Diff([]string{"declared", "resolved", "late note"}, texts); diff != "" {
		t.Errorf("INC-1 entries, in the order recorded (-want +got):\n%s", diff)
	}
	if s.Audit != nil {
		rs, err := s.Audit.AuditRecords(ctx, 0, 100)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, r := range rs {
			if r.Kind == gate.AuditIncident {
				n++
			}
		}
		// Two creations, one update, one batch of entries: the refused
		// writes left nothing.
		if n != 4 {
			t.Errorf("incident audit rows: %d, want 4", n)
		}
		if rep, err := gate.VerifyAudit(ctx, s.Audit); err != nil || rep.Broken != nil {
			t.Errorf("audit chain: %+v, %v", rep, err)
		}
	}
}

// testIncidentConcurrent declares incidents from several writers at once,
// as the instances of a fleet may: every one gets its own ID.
func testIncidentConcurrent(t *testing.T, is incident.Store) {
	var wg sync.WaitGroup
	var mu sync.Mutex
	seen := map[string]bool{}
	for range workers {
		wg.Go(func() {
			inc, err := is.CreateIncident(t.Context(), newIncident("checkout"), nil)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if seen[inc.ID] {
				t.Errorf("ID %s given twice", inc.ID)
			}
			seen[inc.ID] = true
		})
	}
	wg.Wait()
	if len(seen) != workers {
		t.Errorf("%d distinct IDs, want %d", len(seen), workers)
	}
}
