package sqlite_test

import (
	"testing"

	"github.com/tailgate-sre/tailgate/internal/store/sqlite"
	"github.com/tailgate-sre/tailgate/internal/store/storetest"
)

// TestConformance runs the store conformance suite against a fresh
// database file per test; Reopen closes it and opens the same directory,
// as a restarted daemon does.
func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Stores {
		return openStores(t, t.TempDir())
	})
}

func openStores(t *testing.T, dir string) storetest.Stores {
	t.Helper()
	db, err := sqlite.Open(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	closeDB := func() {
		if !closed {
			closed = true
			if err := db.Close(); err != nil {
				t.Errorf("close store: %v", err)
			}
		}
	}
	t.Cleanup(closeDB)
	return storetest.Stores{
		SLO: db, Signals: db, Gate: db, Audit: db, Flags: db, Incidents: db,
		Reopen: func(t *testing.T) storetest.Stores {
			closeDB()
			return openStores(t, dir)
		},
	}
}
