package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"

	"github.com/tailgate-sre/tailgate/internal/canary"
	"github.com/tailgate-sre/tailgate/internal/config"
	"github.com/tailgate-sre/tailgate/internal/flags"
	"github.com/tailgate-sre/tailgate/internal/gate"
	"github.com/tailgate-sre/tailgate/internal/incident"
	"github.com/tailgate-sre/tailgate/internal/signals"
	"github.com/tailgate-sre/tailgate/internal/slo"
	"github.com/tailgate-sre/tailgate/internal/store/postgres"
	"github.com/tailgate-sre/tailgate/internal/store/sqlite"
	"github.com/tailgate-sre/tailgate/internal/users"
	"github.com/tailgate-sre/tailgate/internal/wal"
)

// store is what the daemon keeps its state in: the embedded SQLite store,
// or the fleet's PostgreSQL store.
type store interface {
	slo.Store
	signals.Store
	gate.Store
	gate.AuditStore
	flags.Store
	incident.Store
	wal.MarkStore
	canary.Store
	users.Store
	incident.EvidenceStore
	Close() error
}

var (
	_ store = (*sqlite.DB)(nil)
	_ store = (*postgres.DB)(nil)
)

// openStore opens the store cfg names, and returns where it is for logs.
// With the fleet store, fleet is its handle for heartbeats and the leader
// lock; nil with the embedded store.
func openStore(ctx context.Context, cfg config.Config, instance string, log *slog.Logger) (st store, where string, fleet *postgres.DB, err error) {
	dsn, err := cfg.Storage.PostgresDSN()
	if err != nil {
		return nil, "", nil, err
	}
	if dsn == "" {
		db, err := sqlite.Open(ctx, cfg.Storage.Path)
		if err != nil {
			return nil, "", nil, err
		}
		return db, db.Path(), nil, nil
	}
	db, err := postgres.Open(ctx, dsn, postgres.Options{Instance: instance})
	if err != nil {
		return nil, "", nil, fmt.Errorf("storage.postgres: %w", err)
	}
	log.Info("fleet store", "postgres", postgres.Redact(dsn), "instance", instance, "state_dir", filepath.Clean(cfg.Storage.Path))
	return db, db.Where(), db, nil
}
