// Package storetest is the conformance suite every store implementation
// runs: one call to Run checks each method the core packages (slo,
// signals, gate) rely on, against expectations computed by hand from the
// interfaces' contracts.
//
// A store's tests call it once:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) storetest.Stores { ... })
//	}
//
// Parts a store does not implement are left nil and skipped.
package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/tailgate-sre/tailgate/internal/flags"
	"github.com/tailgate-sre/tailgate/internal/gate"
	"github.com/tailgate-sre/tailgate/internal/incident"
	"github.com/tailgate-sre/tailgate/internal/signals"
	"github.com/tailgate-sre/tailgate/internal/slo"
)

// Stores is one store under test, as the interfaces the core declares.
// Each call of the open function passed to Run must return empty storage,
// not shared with any other call.
type Stores struct {
	SLO     slo.Store     // nil: the SLO tests are skipped
	Signals signals.Store // nil: the golden-signal tests are skipped
	Gate    gate.Store    // nil: the gate tests are skipped
	// Audit is the store's hash-chained audit log; a store with a Gate
	// part must have one.
	Audit gate.AuditStore
	// Flags keeps flag states, history and API flags; nil skips the flag
	// tests. Its writes must append to Audit.
	Flags flags.Store
	// Incidents keeps incidents and their timeline entries; nil skips
	// the incident tests. Its writes must append to Audit.
	Incidents incident.Store
	// Reopen, for a durable store, closes the storage behind these stores
	// and opens it again (the same file or database), returning the new
	// handles. nil marks a store that keeps nothing across a restart; the
	// persistence tests are skipped and a cancelled context may be
	// ignored (a store that does no I/O need not check it).
	Reopen func(t *testing.T) Stores
}

// Workers and writes per worker of the concurrency tests.
const (
	workers          = 8
	writesPerWorker  = 25
	concurrentWrites = workers * writesPerWorker
)

// base is a minute in a zone other than UTC's, so that a store that
// keeps wall clock instead of instants is caught: 2026-03-04 10:07 at
// UTC+05:30 is 04:37 UTC.
var base = time.Date(2026, 3, 4, 10, 7, 0, 0, time.FixedZone("IST", 5*3600+1800))

// Run runs the whole suite, one subtest per interface.
func Run(t *testing.T, open func(t *testing.T) Stores) {
	t.Run("SLO", func(t *testing.T) { runSLO(t, open) })
	t.Run("Signals", func(t *testing.T) { runSignals(t, open) })
	t.Run("Gate", func(t *testing.T) { runGate(t, open) })
	t.Run("Audit", func(t *testing.T) { runAudit(t, open) })
	t.Run("Flags", func(t *testing.T) { runFlags(t, open) })
	t.Run("Incidents", func(t *testing.T) { runIncidents(t, open) })
	t.Run("WALMarks", func(t *testing.T) { runMarks(t, open) })
	t.Run("Canary", func(t *testing.T) { runCanary(t, open) })
	t.Run("Users", func(t *testing.T) { runUsers(t, open) })
	t.Run("Evidence", func(t *testing.T) { runEvidence(t, open) })
}

// cancelled returns a context that is already cancelled.
func cancelled(t *testing.T) context.Context {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	return ctx
}

// checkCancelled checks the outcome of a write made with a cancelled
// context: a durable store must refuse it with an error that wraps
// context.Canceled; any store either refuses it or does it whole, which
// written reports.
func checkCancelled(t *testing.T, s Stores, err error, written func() bool) {
	t.Helper()
	switch {
	case err != nil && !errors.Is(err, context.Canceled):
		t.Fatalf("write with a cancelled context: error %v does not wrap context.Canceled", err)
	case err != nil && written():
		t.Fatalf("write with a cancelled context failed (%v) but left rows behind", err)
	case err == nil && s.Reopen != nil:
		t.Fatal("durable store accepted a write with a cancelled context")
	case err == nil && !written():
		t.Fatal("write with a cancelled context returned nil but stored nothing")
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func isEmptySlice(v any) bool {
	switch s := v.(type) {
	case []slo.Bucket:
		return len(s) == 0
	case []slo.Transition:
		return len(s) == 0
	case []signals.Bucket:
		return len(s) == 0
	case []signals.OriginRow:
		return len(s) == 0
	}
	return false
}
