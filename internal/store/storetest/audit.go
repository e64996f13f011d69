package storetest

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tailgate-sre/tailgate/internal/gate"
	"github.com/tailgate-sre/tailgate/internal/slo"
)

func runAudit(t *testing.T, open func(t *testing.T) Stores) {
	st := func(t *testing.T) Stores {
		t.Helper()
		s := open(t)
		if s.Audit == nil {
			if s.Gate != nil {
				t.Fatal("the store has a gate part but no audit log (Stores.Audit is nil)")
			}
			t.Skip("store has no audit log")
		}
		return s
	}
	t.Run("Chain", func(t *testing.T) { testAuditChain(t, st(t).Audit) })
	t.Run("Paging", func(t *testing.T) { testAuditPaging(t, st(t).Audit) })
	t.Run("GateWrites", func(t *testing.T) { testAuditGateWrites(t, st(t)) })
	t.Run("Corrections", func(t *testing.T) { testAuditCorrections(t, st(t)) })
	t.Run("Concurrent", func(t *testing.T) { testAuditConcurrent(t, st(t)) })
	t.Run("Cancelled", func(t *testing.T) { testAuditCancelled(t, st(t)) })
	t.Run("Reopen", func(t *testing.T) {
		s := st(t)
		if s.Reopen == nil {
			t.Skip("store keeps nothing across a restart (Reopen is nil)")
		}
		testAuditReopen(t, s)
	})
}

// canonical is the documented row encoding, written out here instead of
// calling gate.AuditCanonical.
func canonical(seq int64, kind, actor string, at time.Time, payload string) string {
	return fmt.Sprintf(`{"seq":%d,"kind":%q,"actor":%q,"time":%d,"payload":%s}`, seq, kind, actor, at.UnixNano(), payload)
}

// chainOf returns the hex hashes of rows given as canonical encodings.
func chainOf(rows ...string) []string {
	var prev []byte
	out := make([]string, 0, len(rows))
	for _, r := range rows {
		h := sha256.Sum256(append(append([]byte{}, prev...), r...))
		prev = h[:]
		out = append(out, hex.EncodeToString(h[:]))
	}
	return out
}

func auditRows(t *testing.T, s gate.AuditStore) []gate.AuditRecord {
	t.Helper()
	rs, err := s.AuditRecords(t.Context(), 0, gate.MaxLimit)
	must(t, err)
	if rs == nil {
		t.Error("AuditRecords = nil; want an empty slice")
	}
	return rs
}

func verifyIntact(t *testing.T, s gate.AuditStore, rows int64) {
	t.Helper()
	rep, err := gate.VerifyAudit(t.Context(), s)
	must(t, err)
	if rep.Broken != nil || rep.Rows != rows {
		t.Fatalf("verify = %d rows, broken %+v; want %d intact rows", rep.Rows, rep.Broken, rows)
	}
}

func testAuditChain(t *testing.T, s gate.AuditStore) {
	verifyIntact(t, s, 0)
	if rs := auditRows(t, s); len(rs) != 0 {
		t.Fatalf("empty store has audit rows %v", rs)
	}
	e1 := gate.AuditEntry{Kind: "flag.flip", Actor: "alice", Time: base, Payload: []byte(`{"flag":"x","on":true}`)}
	e2 := gate.AuditEntry{Kind: "incident.open", Actor: `bob "b"`, Time: base.Add(time.Millisecond + 3), Payload: []byte(`{"id":1}`)}
	e3 := gate.AuditEntry{Kind: "flag.flip", Actor: "", Time: base.Add(-time.Hour), Payload: []byte(`[]`)}
	must(t, s.AppendAudit(t.Context(), []gate.AuditEntry{e1, e2}))
	must(t, s.AppendAudit(t.Context(), []gate.AuditEntry{e3}))
	want := chainOf(
		canonical(1, "flag.flip", "alice", base, `{"flag":"x","on":true}`),
		`{"seq":2,"kind":"incident.open","actor":"bob \"b\"","time":`+strconv.FormatInt(base.UnixNano()+1_000_003, 10)+`,"payload":{"id":1}}`,
		canonical(3, "flag.flip", "", base.Add(-time.Hour), `[]`),
	)
	rs := auditRows(t, s)
	if len(rs) != 3 {
		t.Fatalf("got %d rows, want 3", len(rs))
	}
	for i, e := range []gate.AuditEntry{e1, e2, e3} {
		r := rs[i]
		prev := ""
		if i > 0 {
			prev = want[i-1]
		}
		if r.Seq != int64(i+1) || r.Kind != e.Kind || r.Actor != e.Actor || !r.Time.Equal(e.Time) || string(r.Payload) != string(e.Payload) {
			t.Errorf("row %d = %d %s %q %v %s; want %d %s %q %v %s", i, r.Seq, r.Kind, r.Actor, r.Time, r.Payload, i+1, e.Kind, e.Actor, e.Time, e.Payload)
		}
		if r.PrevHash != prev || r.Hash != want[i] {
			t.Errorf("row %d hashes = %s, %s; want %s, %s", i+1, r.PrevHash, r.Hash, prev, want[i])
		}
	}
	verifyIntact(t, s, 3)
	if err := s.AppendAudit(t.Context(), []gate.AuditEntry{{Kind: "bad", Time: base, Payload: []byte(`{`)}}); err == nil {
		t.Error("AppendAudit accepted a payload that is not JSON")
	}
	verifyIntact(t, s, 3)
}

func testAuditPaging(t *testing.T, s gate.AuditStore) {
	var es []gate.AuditEntry
	for i := range 7 {
		es = append(es, gate.AuditEntry{Kind: "n", Time: base, Payload: []byte(strconv.Itoa(i))})
	}
	must(t, s.AppendAudit(t.Context(), es))
	rs, err := s.AuditRecords(t.Context(), 2, 3)
	must(t, err)
	if len(rs) != 3 || rs[0].Seq != 3 || rs[2].Seq != 5 || string(rs[0].Payload) != "2" {
		t.Errorf("AuditRecords(after 2, limit 3) = %+v; want rows 3 to 5", rs)
	}
	rs, err = s.AuditRecords(t.Context(), 7, 3)
	must(t, err)
	if len(rs) != 0 {
		t.Errorf("AuditRecords(after 7) = %+v; want none", rs)
	}
}

// testAuditGateWrites checks that the gate's writes add their rows, in
// order, with the actor each names.
func testAuditGateWrites(t *testing.T, s Stores) {
	if s.Gate == nil {
		t.Skip("store has no gate part")
	}
	ctx := t.Context()
	d := decision("d1", "checkout", base)
	d.Principal = "token:ci"
	addDecisions(t, s.Gate, d, decision("d2", "cart", base.Add(time.Second)))
	o := gate.Override{ID: "o1", Service: "checkout", ChangeClasses: []gate.ChangeClass{gate.Feature}, Reason: "launch",
		ApprovedBy: "cto", CreatedBy: "token:alice", CreatedAt: base, ExpiresAt: base.Add(time.Hour)}
	must(t, s.Gate.AddOverride(ctx, o))
	_, err := s.Gate.RevokeOverride(ctx, "o1", "token:bob", base.Add(time.Minute))
	must(t, err)
	_, err = s.Gate.RevokeOverride(ctx, "o1", "token:carol", base.Add(2*time.Minute)) // already revoked: no row
	must(t, err)
	if _, err := s.Gate.RevokeOverride(ctx, "nope", "x", base); !errors.Is(err, gate.ErrNotFound) {
		t.Errorf("revoking an unknown override: %v, want ErrNotFound", err)
	}
	must(t, s.Gate.AddDeploy(ctx, gate.Deploy{ID: "dep1", Service: "checkout", Version: "v1", Time: base})) // not audited
	rs := auditRows(t, s.Audit)
	type row struct {
		kind  gate.AuditKind
		actor string
		at    time.Time
		has   string
	}
	want := []row{
		{gate.AuditDecision, "token:ci", base, `"id":"d1"`},
		{gate.AuditDecision, "", base.Add(time.Second), `"id":"d2"`},
		{gate.AuditOverride, "token:alice", base, `"reason":"launch"`},
		{gate.AuditOverrideRevoke, "token:bob", base.Add(time.Minute), `"revoked_by":"token:bob"`},
	}
	if len(rs) != len(want) {
		t.Fatalf("got %d audit rows %+v, want %d", len(rs), rs, len(want))
	}
	for i, w := range want {
		r := rs[i]
		if r.Kind != w.kind || r.Actor != w.actor || !r.Time.Equal(w.at) || !strings.Contains(string(r.Payload), w.has) {
			t.Errorf("row %d = %s %q %v %s; want %s %q %v containing %s", i+1, r.Kind, r.Actor, r.Time, r.Payload, w.kind, w.actor, w.at, w.has)
		}
	}
	verifyIntact(t, s.Audit, int64(len(want)))
}

func testAuditCorrections(t *testing.T, s Stores) {
	cs, ok := s.SLO.(slo.CorrectionStore)
	if s.SLO == nil || !ok {
		t.Skip("store has no corrections")
	}
	ctx := t.Context()
	c, err := cs.AddCorrection(ctx, slo.Correction{SLO: "checkout-availability", Start: base, End: base.Add(time.Hour),
		Reason: "maintenance", CreatedBy: "token:alice", CreatedAt: base})
	must(t, err)
	ok, err = cs.DeleteCorrection(ctx, "checkout-availability", c.ID, "token:bob", base.Add(time.Minute))
	must(t, err)
	if !ok {
		t.Fatal("DeleteCorrection found nothing to delete")
	}
	ok, err = cs.DeleteCorrection(ctx, "checkout-availability", c.ID, "token:bob", base.Add(2*time.Minute)) // no row
	must(t, err)
	if ok {
		t.Error("deleting a deleted correction reported true")
	}
	rs := auditRows(t, s.Audit)
	if len(rs) != 2 {
		t.Fatalf("got %d audit rows %+v, want 2", len(rs), rs)
	}
	id := fmt.Sprintf(`"id":%d`, c.ID)
	if r := rs[0]; r.Kind != gate.AuditCorrection || r.Actor != "token:alice" || !strings.Contains(string(r.Payload), id) || !strings.Contains(string(r.Payload), `"reason":"maintenance"`) {
		t.Errorf("row 1 = %s %q %s", r.Kind, r.Actor, r.Payload)
	}
	if r := rs[1]; r.Kind != gate.AuditCorrectionDelete || r.Actor != "token:bob" || !r.Time.Equal(base.Add(time.Minute)) || !strings.Contains(string(r.Payload), id) {
		t.Errorf("row 2 = %s %q %v %s", r.Kind, r.Actor, r.Time, r.Payload)
	}
	verifyIntact(t, s.Audit, 2)
}

// testAuditConcurrent appends from several goroutines, directly and
// through the gate's writes, and wants one chain holding every row.
func testAuditConcurrent(t *testing.T, s Stores) {
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range writesPerWorker {
				var err error
				if s.Gate != nil && i%2 == 1 {
					err = s.Gate.AddDecision(t.Context(), decision(fmt.Sprintf("w%d-%d", w, i), "checkout", base))
				} else {
					err = s.Audit.AppendAudit(t.Context(), []gate.AuditEntry{{Kind: "n", Actor: strconv.Itoa(w), Time: base, Payload: []byte(strconv.Itoa(i))}})
				}
				if err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	verifyIntact(t, s.Audit, concurrentWrites)
}

func testAuditCancelled(t *testing.T, s Stores) {
	e := gate.AuditEntry{Kind: "n", Time: base, Payload: []byte(`1`)}
	err := s.Audit.AppendAudit(cancelled(t), []gate.AuditEntry{e})
	checkCancelled(t, s, err, func() bool { return len(auditRows(t, s.Audit)) > 0 })
	verifyIntact(t, s.Audit, int64(len(auditRows(t, s.Audit))))
}

func testAuditReopen(t *testing.T, s Stores) {
	must(t, s.Audit.AppendAudit(t.Context(), []gate.AuditEntry{{Kind: "n", Time: base, Payload: []byte(`1`)}}))
	s = s.Reopen(t)
	must(t, s.Audit.AppendAudit(t.Context(), []gate.AuditEntry{{Kind: "n", Time: base, Payload: []byte(`2`)}}))
	rs := auditRows(t, s.Audit)
	want := chainOf(canonical(1, "n", "", base, "1"), canonical(2, "n", "", base, "2"))
	if len(rs) != 2 || rs[0].Hash != want[0] || rs[1].PrevHash != want[0] || rs[1].Hash != want[1] {
		t.Fatalf("after a restart the chain is %+v; want rows hashed %v", rs, want)
	}
}
