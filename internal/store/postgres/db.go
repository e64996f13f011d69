// Package postgres is tailgate's fleet store: the state the embedded
// SQLite store holds, kept in PostgreSQL (jackc/pgx) so that several
// tailgate instances share it. Counts are written per instance and read as
// the fleet's sum; audited writes are serialized across the fleet by an
// advisory lock; one instance at a time is the leader (see Leader).
package postgres

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Advisory lock keys. They are arbitrary constants, the same in every
// version: two instances agree on them without coordination.
const (
	lockMigrate int64 = 0x7461696c67617465 // "tailgate"
	lockAudit   int64 = lockMigrate + 1
	lockLeader  int64 = lockMigrate + 2
)

// Options configure Open.
type Options struct {
	// Instance names this tailgate in the fleet; its counts are written
	// under this name. Required.
	Instance string
	// MaxConns bounds the connection pool (default 8).
	MaxConns int32
	// ReadOnly applies no migration, for tools that only read (audit
	// verify): the database must have been migrated by a tailgate.
	ReadOnly bool
}

// DB is an open fleet store. It is safe for concurrent use.
type DB struct {
	pool     *pgxpool.Pool
	instance string
	// where names the database in errors, without the password.
	where  string
	leader *Leadership
}

// Open connects to the database named by dsn (a postgres:// URL or a
// key=value connection string), applies the migrations this version has
// that the database lacks, under a lock so that instances starting
// together do not race, and refuses a database whose schema is newer than
// this version knows.
func Open(ctx context.Context, dsn string, o Options) (*DB, error) {
	if o.Instance == "" {
		return nil, errors.New("postgres store: no instance name")
	}
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// pgx's parse errors can quote the DSN, password included.
		return nil, fmt.Errorf("postgres store: cannot parse the connection string (%s)", redactParseError(err))
	}
	cfg.MaxConns = 8
	if o.MaxConns > 0 {
		cfg.MaxConns = o.MaxConns
	}
	if cfg.ConnConfig.RuntimeParams == nil {
		cfg.ConnConfig.RuntimeParams = map[string]string{}
	}
	if _, ok := cfg.ConnConfig.RuntimeParams["application_name"]; !ok {
		cfg.ConnConfig.RuntimeParams["application_name"] = "tailgate/" + o.Instance
	}
	where := fmt.Sprintf("postgres://%s:%d/%s", cfg.ConnConfig.Host, cfg.ConnConfig.Port, cfg.ConnConfig.Database)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", where, err)
	}
	s := &DB{pool: pool, instance: o.Instance, where: where}
	s.leader = &Leadership{db: s}
	if o.ReadOnly {
		if _, err := s.SchemaVersion(ctx); err != nil {
			pool.Close()
			return nil, fmt.Errorf("open %s: no tailgate schema: %w", where, err)
		}
		return s, nil
	}
	if err := s.migrate(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("open %s: %w", where, err)
	}
	return s, nil
}

// redactParseError keeps pgx's reason and drops the quoted string.
func redactParseError(err error) string {
	msg := err.Error()
	if i := strings.LastIndex(msg, ": "); i >= 0 {
		return msg[i+2:]
	}
	return "invalid"
}

// Redact returns dsn with its password replaced, for logs.
func Redact(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil || u.Scheme == "" {
		if strings.Contains(dsn, "password") {
			return "(connection string with a password)"
		}
		return dsn
	}
	if _, has := u.User.Password(); has {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	q := u.Query()
	if q.Has("password") {
		q.Set("password", "xxxxx")
		u.RawQuery = q.Encode()
	}
	return u.String()
}

// Where names the database (host, port, database), for logs.
func (s *DB) Where() string { return s.where }

// Instance returns the instance name the store writes counts under.
func (s *DB) Instance() string { return s.instance }

// Close gives up the leader lock and closes the pool.
func (s *DB) Close() error {
	s.leader.Release()
	s.pool.Close()
	return nil
}

// Ping checks that the database answers.
func (s *DB) Ping(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return fmt.Errorf("%s: %w", s.where, err)
	}
	return nil
}

// writeTx runs fn in a transaction that holds the fleet's audit lock:
// every audited write (and the incident numbering, and the flag versions)
// is serialized across instances, so no two link a row to the same head of
// the audit chain.
func (s *DB) writeTx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, lockAudit); err != nil {
			return fmt.Errorf("take the audit lock: %w", err)
		}
		return fn(tx)
	})
}

// tx runs fn in a plain transaction.
func (s *DB) tx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	return pgx.BeginFunc(ctx, s.pool, fn)
}

// nanos and fromNanos convert instants to and from the stored Unix
// nanoseconds.
func nanos(t time.Time) int64 { return t.UnixNano() }

func fromNanos(n int64) time.Time { return time.Unix(0, n).UTC() }
