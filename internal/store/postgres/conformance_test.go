package postgres_test

import (
	"os"
	"testing"

	"github.com/tailgate-sre/tailgate/internal/store/pgtest"
	"github.com/tailgate-sre/tailgate/internal/store/postgres"
	"github.com/tailgate-sre/tailgate/internal/store/storetest"
)

var pg pgtest.Server

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m, &pg)) }

// TestConformance runs the store conformance suite against a fresh
// database per test; Reopen closes the pool and connects again, as a
// restarted daemon does.
func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Stores {
		return openStores(t, pg.Database(t), "i1")
	})
}

func openDB(t *testing.T, dsn, instance string) *postgres.DB {
	t.Helper()
	db, err := postgres.Open(t.Context(), dsn, postgres.Options{Instance: instance})
	if err != nil {
		t.Fatal(err)
	}
	return db
}

func openStores(t *testing.T, dsn, instance string) storetest.Stores {
	t.Helper()
	db := openDB(t, dsn, instance)
	closed := false
	closeDB := func() {
		if !closed {
			closed = true
			db.Close()
		}
	}
	t.Cleanup(closeDB)
	return storetest.Stores{
		SLO: db, Signals: db, Gate: db, Audit: db, Flags: db, Incidents: db,
		Reopen: func(t *testing.T) storetest.Stores {
			closeDB()
			return openStores(t, dsn, instance)
		},
	}
}
