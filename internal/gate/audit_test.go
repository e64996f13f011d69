package gate

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// TestAuditChainHashes checks the documented encoding against hashes
// computed here from hand-written canonical rows.
func TestAuditChainHashes(t *testing.T) {
	at := time.Date(2026, 3, 4, 10, 7, 0, 5, time.FixedZone("IST", 5*3600+1800))
	m := NewMemoryStore()
	es := []AuditEntry{
		{Kind: "flag.flip", Actor: "alice", Time: at, Payload: []byte(`{"flag":"new-checkout","on":true}`)},
		{Kind: "incident.open", Actor: "", Time: at.Add(time.Second), Payload: []byte(`{"id":7}`)},
	}
	if err := m.AppendAudit(t.Context(), es); err != nil {
		t.Fatal(err)
	}
	// 2026-03-04 04:37:00.000000005 UTC.
	const nanos = "1772599020000000005"
	row1 := `{"seq":1,"kind":"flag.flip","actor":"alice","time":` + nanos + `,"payload":{"flag":"new-checkout","on":true}}`
	row2 := `{"seq":2,"kind":"incident.open","actor":"","time":1772599021000000005,"payload":{"id":7}}`
	h1 := sha256.Sum256([]byte(row1))
	h2 := sha256.Sum256(append(h1[:], row2...))
	got, err := m.AuditRecords(t.Context(), 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("got %d rows, want 2", len(got))
	}
	if got[0].Seq != 1 || got[0].PrevHash != "" || got[0].Hash != hex.EncodeToString(h1[:]) {
		t.Errorf("row 1 = seq %d prev %q hash %q, want 1, \"\", %x", got[0].Seq, got[0].PrevHash, got[0].Hash, h1)
	}
	if got[1].Seq != 2 || got[1].PrevHash != hex.EncodeToString(h1[:]) || got[1].Hash != hex.EncodeToString(h2[:]) {
		t.Errorf("row 2 = seq %d prev %q hash %q, want 2, %x, %x", got[1].Seq, got[1].PrevHash, got[1].Hash, h1, h2)
	}
	rep, err := VerifyAudit(t.Context(), m)
	if err != nil || rep.Broken != nil || rep.Rows != 2 || rep.Head != hex.EncodeToString(h2[:]) {
		t.Errorf("verify = %+v, %v; want 2 intact rows ending at %x", rep, err, h2)
	}
}

// tamperedLog serves a stored chain with one change applied.
type tamperedLog struct {
	*MemoryStore
	change func([]AuditRecord) []AuditRecord
}

func (l tamperedLog) AuditRecords(ctx context.Context, after int64, limit int) ([]AuditRecord, error) {
	rs, err := l.MemoryStore.AuditRecords(ctx, 0, MaxLimit)
	if err != nil {
		return nil, err
	}
	rs = l.change(slices.Clone(rs))
	out := []AuditRecord{}
	for _, r := range rs {
		if r.Seq > after && len(out) < limit {
			out = append(out, r)
		}
	}
	return out, nil
}

func TestVerifyAuditFindsTheFirstBreak(t *testing.T) {
	m := NewMemoryStore()
	for i := range 5 {
		e, err := NewAuditEntry("test", "bob", t0.Add(time.Duration(i)*time.Minute), map[string]int{"n": i})
		if err != nil {
			t.Fatal(err)
		}
		if err := m.AppendAudit(t.Context(), []AuditEntry{e}); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name    string
		change  func([]AuditRecord) []AuditRecord
		seq     int64
		problem string
		rows    int64 // intact rows before the break
	}{
		{"payload", func(rs []AuditRecord) []AuditRecord { rs[2].Payload = []byte(`{"n":9}`); return rs }, 3, "does not match its content", 2},
		{"actor", func(rs []AuditRecord) []AuditRecord { rs[1].Actor = "mallory"; return rs }, 2, "does not match its content", 1},
		{"rehashed", func(rs []AuditRecord) []AuditRecord {
			rs[1].Actor = "mallory"
			rs[1].Hash, _ = AuditHash(rs[1].PrevHash, rs[1].Seq, rs[1].AuditEntry)
			return rs
		}, 3, "is not the previous row's hash", 2},
		{"deleted", func(rs []AuditRecord) []AuditRecord { return slices.Delete(rs, 1, 2) }, 3, "row 2 is missing", 1},
		{"first deleted", func(rs []AuditRecord) []AuditRecord { return rs[1:] }, 2, "row 1 is missing", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep, err := VerifyAudit(t.Context(), tamperedLog{m, tc.change})
			if err != nil {
				t.Fatal(err)
			}
			if rep.Broken == nil {
				t.Fatalf("verify found no break: %+v", rep)
			}
			if rep.Broken.Seq != tc.seq || !strings.Contains(rep.Broken.Problem, tc.problem) {
				t.Errorf("broken at row %d (%s), want row %d with %q", rep.Broken.Seq, rep.Broken.Problem, tc.seq, tc.problem)
			}
			if rep.Rows != tc.rows {
				t.Errorf("rows checked = %d, want %d", rep.Rows, tc.rows)
			}
		})
	}
}

// TestCheckReturnsAfterItsAuditRow checks that every decision a
// concurrent Check returned is already in the store's chain, read without
// waiting for the writer.
func TestCheckReturnsAfterItsAuditRow(t *testing.T) {
	store := NewMemoryStore()
	g, _, states, _ := newTestGate(t, store)
	states.set("checkout", state("a", 0.9))
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 50 {
				d, err := g.Check(t.Context(), CheckRequest{Service: "checkout", ChangeClass: Rollback})
				if err != nil {
					t.Error(err)
					return
				}
				if !auditHolds(t, store, d.ID) {
					t.Errorf("decision %s returned before its audit row was written", d.ID)
					return
				}
			}
		})
	}
	wg.Wait()
	rep, err := VerifyAudit(t.Context(), store)
	if err != nil || rep.Broken != nil || rep.Rows != 400 {
		t.Errorf("verify = %+v, %v; want 400 intact rows", rep, err)
	}
}

func auditHolds(t *testing.T, m *MemoryStore, id string) bool {
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	want := `"id":"` + id + `"`
	for _, r := range m.audit {
		if r.Kind == AuditDecision && strings.Contains(string(r.Payload), want) {
			return true
		}
	}
	return false
}

// heldStore holds every batch write until release is closed.
type heldStore struct {
	*MemoryStore
	entered chan struct{}
	release chan struct{}
}

func (s heldStore) AddDecisions(ctx context.Context, ds []Decision) error {
	s.entered <- struct{}{}
	<-s.release
	return s.MemoryStore.AddDecisions(ctx, ds)
}

// TestCheckWaitsForTheCommit holds the writer's transaction open and
// checks, once every goroutine is blocked, that Check has not answered;
// then that a caller that goes away gets a decision saying its record is
// unconfirmed.
func TestCheckWaitsForTheCommit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := heldStore{NewMemoryStore(), make(chan struct{}, 1), make(chan struct{})}
		g, _, states, _ := newTestGate(t, store)
		states.set("checkout", state("a", 0.9))
		answered := make(chan Decision, 1)
		go func() {
			d, err := g.Check(t.Context(), CheckRequest{Service: "checkout", ChangeClass: Rollback})
			if err != nil {
				t.Error(err)
			}
			answered <- d
		}()
		<-store.entered
		synctest.Wait()
		select {
		case d := <-answered:
			t.Fatalf("Check answered %s before its audit row was committed", d.ID)
		default:
		}
		close(store.release)
		d := <-answered
		if !auditHolds(t, store.MemoryStore, d.ID) {
			t.Errorf("decision %s answered without its audit row", d.ID)
		}
		if slices.ContainsFunc(d.Reasons, func(r string) bool { return strings.HasPrefix(r, "audit:") }) {
			t.Errorf("a committed decision's reasons mention the audit: %q", d.Reasons)
		}
	})
	synctest.Test(t, func(t *testing.T) {
		store := heldStore{NewMemoryStore(), make(chan struct{}, 1), make(chan struct{})}
		g, _, states, _ := newTestGate(t, store)
		states.set("checkout", state("a", 0.9))
		ctx, cancel := context.WithCancel(t.Context())
		answered := make(chan Decision, 1)
		go func() {
			d, _ := g.Check(ctx, CheckRequest{Service: "checkout", ChangeClass: Rollback})
			answered <- d
		}()
		<-store.entered
		cancel()
		d := <-answered
		if !slices.ContainsFunc(d.Reasons, func(r string) bool {
			return strings.HasPrefix(r, "audit: this decision could not be recorded: not confirmed before the request ended")
		}) {
			t.Errorf("reasons of an unconfirmed decision: %q", d.Reasons)
		}
		close(store.release) // the write still completes; Shutdown drains it
	})
}
