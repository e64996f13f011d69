package bench

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tailgate-sre/tailgate/internal/config"
	"github.com/tailgate-sre/tailgate/internal/store/pgtest"
)

// pg is the PostgreSQL server of BenchmarkE2EPostgres, started at its
// first database.
var pg pgtest.Server

// BenchmarkE2EPostgres compares the fleet store with the embedded one:
// BenchmarkE2E's throughput phase on SQLite and on PostgreSQL (a fresh
// database on a private server on this machine), alternating within each
// iteration. It reports both medians of tailgate's own spans per
// CPU-second (the database server's CPU is not in them) and the cost in
// percent; and, from PostgreSQL's statistics of the last run, what the
// fleet store writes: row writes (inserts and updates) per minute per SLO
// series and per golden-signal series, and the bytes of a row of each.
func BenchmarkE2EPostgres(b *testing.B) {
	if testing.Short() {
		b.Skip("end-to-end benchmark")
	}
	opts := loadOptions(b)
	var lite, post []float64
	var usage pgUsage
	for b.Loop() {
		seed := uint64(len(lite) + 1)
		order := []bool{true, false}
		if seed%2 == 0 {
			order = []bool{false, true}
		}
		for _, onPG := range order {
			dsn := ""
			if onPG {
				dsn = pg.Database(b)
			}
			start := time.Now()
			f := throughput(b, opts, seed, func(c *config.Config) {
				c.Storage.Postgres = dsn
				c.Instance = "bench"
			})
			if onPG {
				post = append(post, f.spansPerCPUSec)
				usage = measurePG(b, dsn, time.Since(start))
			} else {
				lite = append(lite, f.spansPerCPUSec)
			}
			b.Logf("run %d, postgres %v: %d spans, %.2fs CPU: %.0f spans/cpu-s", seed, onPG, f.spans, f.cpu.Seconds(), f.spansPerCPUSec)
		}
	}
	ml, mp := median(lite), median(post)
	b.ReportMetric(ml, "sqlite-spans/cpu-s")
	b.ReportMetric(mp, "pg-spans/cpu-s")
	b.ReportMetric(100*(1-mp/ml), "pg-cost-%")
	b.ReportMetric(usage.sloWritesPerMinSeries, "slo-row-writes/min/series")
	b.ReportMetric(usage.sloRowBytes, "slo-B/row")
	b.ReportMetric(usage.sigRowsPerMinSeries, "signal-rows/min/series")
	b.ReportMetric(usage.sigRowBytes, "signal-B/row")
}

// pgUsage is what one run wrote to PostgreSQL.
type pgUsage struct {
	sloWritesPerMinSeries, sloRowBytes float64
	sigRowsPerMinSeries, sigRowBytes   float64
}

// measurePG reads the run's writes from the statistics of its database:
// inserts and updates of the SLO buckets per minute of the run per series
// (SLO and group), and the signal rows per minute per (service,
// operation) series.
func measurePG(b *testing.B, dsn string, run time.Duration) pgUsage {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(ctx)
	// The statistics collector reports with a delay; ask for a fresh view.
	if _, err := conn.Exec(ctx, `SELECT pg_stat_force_next_flush()`); err != nil {
		b.Logf("pg_stat_force_next_flush: %v", err)
	}
	var u pgUsage
	var sloWrites, sigRows, sloSeries, sigSeries float64
	err = conn.QueryRow(ctx, `SELECT
		(SELECT COALESCE(SUM(n_tup_ins + n_tup_upd), 0) FROM pg_stat_user_tables WHERE relname = 'slo_buckets')::float8,
		(SELECT COUNT(DISTINCT (slo, grp)) FROM slo_buckets)::float8,
		(SELECT COALESCE(AVG(pg_column_size(t.*)), 0) FROM slo_buckets t)::float8,
		(SELECT COUNT(*) FROM signal_buckets)::float8,
		(SELECT COUNT(DISTINCT (service, operation)) FROM signal_buckets)::float8,
		(SELECT COALESCE(AVG(pg_column_size(t.*)), 0) FROM signal_buckets t)::float8`).
		Scan(&sloWrites, &sloSeries, &u.sloRowBytes, &sigRows, &sigSeries, &u.sigRowBytes)
	if err != nil {
		b.Fatal(err)
	}
	mins := run.Minutes()
	if sloSeries > 0 {
		u.sloWritesPerMinSeries = sloWrites / mins / sloSeries
	}
	if sigSeries > 0 {
		u.sigRowsPerMinSeries = sigRows / mins / sigSeries
	}
	return u
}
