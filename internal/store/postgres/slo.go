package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tailgate-sre/tailgate/internal/gate"
	"github.com/tailgate-sre/tailgate/internal/slo"
	"github.com/tailgate-sre/tailgate/internal/wal"
)

var (
	_ slo.Store             = (*DB)(nil)
	_ slo.FleetBucketStore  = (*DB)(nil)
	_ slo.MarkedBucketStore = (*DB)(nil)
)

// AddSLIBuckets adds the buckets' counts to this instance's rows, in one
// transaction.
func (s *DB) AddSLIBuckets(ctx context.Context, buckets []slo.Bucket) error {
	if len(buckets) == 0 {
		return nil
	}
	if err := s.tx(ctx, func(tx pgx.Tx) error { return s.insertSLIBuckets(ctx, tx, buckets) }); err != nil {
		return fmt.Errorf("add SLI buckets to %s: %w", s.where, err)
	}
	return nil
}

// AddSLIBucketsMarked implements slo.MarkedBucketStore: the counts and the
// write-ahead log mark they include commit together.
func (s *DB) AddSLIBucketsMarked(ctx context.Context, buckets []slo.Bucket, mark wal.Mark, more ...wal.Mark) error {
	err := s.tx(ctx, func(tx pgx.Tx) error {
		if err := s.insertSLIBuckets(ctx, tx, buckets); err != nil {
			return err
		}
		for _, m := range append([]wal.Mark{mark}, more...) {
			if err := putMark(ctx, tx, m); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("add SLI buckets to %s: %w", s.where, err)
	}
	return nil
}

// bucketKey is a row of slo_buckets less its instance.
type bucketKey struct {
	slo, grp string
	minute   int64
}

// insertSLIBuckets adds the buckets to this instance's rows with one
// statement: the buckets are summed per row first, since one INSERT ... ON
// CONFLICT may not touch a row twice.
func (s *DB) insertSLIBuckets(ctx context.Context, tx pgx.Tx, buckets []slo.Bucket) error {
	if len(buckets) == 0 {
		return nil
	}
	idx := make(map[bucketKey]int, len(buckets))
	var (
		slos, grps    []string
		minutes       []int64
		goods, totals []int64
	)
	for _, b := range buckets {
		if b.Good > math.MaxInt64 || b.Total > math.MaxInt64 {
			return fmt.Errorf("SLI bucket of %q at %s: count out of range", b.SLO, b.Minute.Format(time.RFC3339))
		}
		k := bucketKey{b.SLO, b.Group, b.Minute.Unix()}
		if i, ok := idx[k]; ok {
			goods[i] += int64(b.Good)
			totals[i] += int64(b.Total)
			continue
		}
		idx[k] = len(slos)
		slos, grps, minutes = append(slos, k.slo), append(grps, k.grp), append(minutes, k.minute)
		goods, totals = append(goods, int64(b.Good)), append(totals, int64(b.Total))
	}
	_, err := tx.Exec(ctx, `INSERT INTO slo_buckets (slo, grp, minute, instance, good, total)
		SELECT b.slo, b.grp, b.minute, $6, b.good, b.total
		FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::bigint[]) AS b(slo, grp, minute, good, total)
		ON CONFLICT (slo, grp, minute, instance) DO UPDATE
		SET good = slo_buckets.good + excluded.good, total = slo_buckets.total + excluded.total, updated_at = clock_timestamp()`,
		slos, grps, minutes, goods, totals, s.instance)
	return err
}

// LoadSLIBuckets returns this instance's buckets from since on, in minute
// order; PeerSLIBuckets returns the other instances'.
func (s *DB) LoadSLIBuckets(ctx context.Context, since time.Time) ([]slo.Bucket, error) {
	rows, err := s.pool.Query(ctx, `SELECT slo, grp, minute, good, total FROM slo_buckets
		WHERE instance = $1 AND minute >= $2 ORDER BY minute, slo, grp`, s.instance, since.Unix())
	if err != nil {
		return nil, fmt.Errorf("load SLI buckets from %s: %w", s.where, err)
	}
	out, err := scanBuckets(rows)
	if err != nil {
		return nil, fmt.Errorf("load SLI buckets from %s: %w", s.where, err)
	}
	return out, nil
}

// FleetSLIBuckets returns every instance's buckets from since on, summed
// per minute, in minute order (for copies and reports).
func (s *DB) FleetSLIBuckets(ctx context.Context, since time.Time) ([]slo.Bucket, error) {
	rows, err := s.pool.Query(ctx, `SELECT slo, grp, minute, SUM(good)::bigint, SUM(total)::bigint FROM slo_buckets
		WHERE minute >= $1 GROUP BY slo, grp, minute ORDER BY minute, slo, grp`, since.Unix())
	if err != nil {
		return nil, fmt.Errorf("load SLI buckets from %s: %w", s.where, err)
	}
	out, err := scanBuckets(rows)
	if err != nil {
		return nil, fmt.Errorf("load SLI buckets from %s: %w", s.where, err)
	}
	return out, nil
}

// peerOverlap is how far before the previous read's time PeerSLIBuckets
// looks again: a row committed late in a transaction that began before
// that read carries an earlier updated_at, and must not be missed. Writes
// of counts are single statements that take milliseconds.
const peerOverlap = time.Minute

// PeerSLIBuckets implements slo.FleetBucketStore: for each minute from
// since on whose row any other instance changed at or after changed (the
// zero time: every minute), the sum of every other instance's counts;
// and the database's clock at the read, for the next call's changed.
func (s *DB) PeerSLIBuckets(ctx context.Context, since, changed time.Time) ([]slo.Bucket, time.Time, error) {
	var out []slo.Bucket
	var now time.Time
	err := s.tx(ctx, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `SELECT clock_timestamp()`).Scan(&now); err != nil {
			return err
		}
		from := time.Unix(0, 0)
		if !changed.IsZero() {
			from = changed.Add(-peerOverlap)
		}
		rows, err := tx.Query(ctx, `WITH changed AS (
				SELECT DISTINCT slo, grp, minute FROM slo_buckets
				WHERE instance <> $1 AND minute >= $2 AND updated_at >= $3
			)
			SELECT b.slo, b.grp, b.minute, SUM(b.good)::bigint, SUM(b.total)::bigint
			FROM slo_buckets b JOIN changed c USING (slo, grp, minute)
			WHERE b.instance <> $1
			GROUP BY b.slo, b.grp, b.minute ORDER BY b.minute, b.slo, b.grp`, s.instance, since.Unix(), from)
		if err != nil {
			return err
		}
		out, err = scanBuckets(rows)
		return err
	})
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("read the fleet's SLI buckets from %s: %w", s.where, err)
	}
	return out, now.UTC(), nil
}

func scanBuckets(rows pgx.Rows) ([]slo.Bucket, error) {
	defer rows.Close()
	var out []slo.Bucket
	for rows.Next() {
		var b slo.Bucket
		var m, g, t int64
		if err := rows.Scan(&b.SLO, &b.Group, &m, &g, &t); err != nil {
			return nil, err
		}
		b.Minute, b.Good, b.Total = time.Unix(m, 0).UTC(), uint64(g), uint64(t)
		out = append(out, b)
	}
	return out, rows.Err()
}

// DeleteSLIBucketsBefore drops every instance's buckets older than before.
func (s *DB) DeleteSLIBucketsBefore(ctx context.Context, before time.Time) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM slo_buckets WHERE minute < $1`, before.Unix()); err != nil {
		return fmt.Errorf("prune SLI buckets in %s: %w", s.where, err)
	}
	return nil
}

// TrackSLO records that counting of an SLO began at now unless it already
// had (on any instance), and returns when it began.
func (s *DB) TrackSLO(ctx context.Context, name string, now time.Time) (time.Time, error) {
	var since int64
	err := s.pool.QueryRow(ctx, `WITH ins AS (
			INSERT INTO slo_tracking (slo, since) VALUES ($1, $2) ON CONFLICT (slo) DO NOTHING RETURNING since
		)
		SELECT since FROM ins UNION ALL SELECT since FROM slo_tracking WHERE slo = $1 LIMIT 1`, name, nanos(now)).Scan(&since)
	if err != nil {
		return time.Time{}, fmt.Errorf("track SLO %q in %s: %w", name, s.where, err)
	}
	return fromNanos(since), nil
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.Format(time.RFC3339Nano)
}

func parseTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	return time.Parse(time.RFC3339Nano, s)
}

// AddCorrection stores a correction with its audit row and returns it with
// its ID.
func (s *DB) AddCorrection(ctx context.Context, c slo.Correction) (slo.Correction, error) {
	dur := ""
	if c.Duration != 0 {
		dur = c.Duration.String()
	}
	err := s.writeTx(ctx, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `INSERT INTO slo_corrections (slo, start, end_time, duration, rrule, time_zone, reason, created_by, created_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id`, c.SLO, formatTime(c.Start), formatTime(c.End), dur, c.RRule, c.TimeZone,
			c.Reason, c.CreatedBy, formatTime(c.CreatedAt)).Scan(&c.ID); err != nil {
			return err
		}
		rec := c
		rec.Source = slo.SourceAPI
		e, err := gate.NewAuditEntry(gate.AuditCorrection, c.CreatedBy, c.CreatedAt, rec)
		if err != nil {
			return err
		}
		return appendAudit(ctx, tx, []gate.AuditEntry{e})
	})
	if err != nil {
		return slo.Correction{}, fmt.Errorf("add correction to %q: %w", c.SLO, err)
	}
	return c, nil
}

// correctionDeletion is the audit payload of a deleted correction (the
// same as the embedded store's, so that chains read alike).
type correctionDeletion struct {
	SLO       string    `json:"slo"`
	ID        int64     `json:"id"`
	DeletedBy string    `json:"deleted_by"`
	DeletedAt time.Time `json:"deleted_at"`
}

// ListCorrections returns every stored correction in ID order, deleted
// ones included.
func (s *DB) ListCorrections(ctx context.Context) ([]slo.Correction, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, slo, start, end_time, duration, rrule, time_zone, reason, created_by, created_at,
		deleted_by, deleted_at FROM slo_corrections ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("list corrections: %w", err)
	}
	defer rows.Close()
	var out []slo.Correction
	for rows.Next() {
		var c slo.Correction
		var start, end, dur, created, deleted string
		if err := rows.Scan(&c.ID, &c.SLO, &start, &end, &dur, &c.RRule, &c.TimeZone, &c.Reason, &c.CreatedBy, &created,
			&c.DeletedBy, &deleted); err != nil {
			return nil, fmt.Errorf("list corrections: %w", err)
		}
		var e1, e2, e3, e4, e5 error
		c.Start, e1 = parseTime(start)
		c.End, e2 = parseTime(end)
		c.CreatedAt, e3 = parseTime(created)
		c.DeletedAt, e4 = parseTime(deleted)
		if dur != "" {
			e5 = c.Duration.UnmarshalText([]byte(dur))
		}
		if err := errors.Join(e1, e2, e3, e4, e5); err != nil {
			return nil, fmt.Errorf("list corrections: correction %d: %w", c.ID, err)
		}
		c.Source = slo.SourceAPI
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list corrections: %w", err)
	}
	return out, nil
}

// DeleteCorrection marks a correction deleted, keeping the row.
func (s *DB) DeleteCorrection(ctx context.Context, name string, id int64, by string, at time.Time) (bool, error) {
	if at.IsZero() {
		return false, fmt.Errorf("delete correction %d of %q: no deletion time", id, name)
	}
	deleted := false
	err := s.writeTx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE slo_corrections SET deleted_by = $1, deleted_at = $2
			WHERE slo = $3 AND id = $4 AND deleted_at = ''`, by, formatTime(at), name, id)
		if err != nil || tag.RowsAffected() == 0 {
			return err
		}
		deleted = true
		e, err := gate.NewAuditEntry(gate.AuditCorrectionDelete, by, at, correctionDeletion{SLO: name, ID: id, DeletedBy: by, DeletedAt: at})
		if err != nil {
			return err
		}
		return appendAudit(ctx, tx, []gate.AuditEntry{e})
	})
	if err != nil {
		return false, fmt.Errorf("delete correction %d of %q: %w", id, name, err)
	}
	return deleted, nil
}

// AddAlertTransitions appends transitions in one transaction.
func (s *DB) AddAlertTransitions(ctx context.Context, ts []slo.Transition) error {
	if len(ts) == 0 {
		return nil
	}
	err := s.tx(ctx, func(tx pgx.Tx) error {
		for _, t := range ts {
			vals, err := json.Marshal(t.Values)
			if err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `INSERT INTO slo_alert_transitions (slo, service, grp, alert, kind, severity, from_state, to_state, at, alert_values)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`, t.SLO, t.Service, t.Group, t.Alert, t.Kind.String(), t.Severity.String(),
				t.From.String(), t.To.String(), nanos(t.At), string(vals)); err != nil {
				return fmt.Errorf("alert transition of %q: %w", t.SLO, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("add alert transitions: %w", err)
	}
	return nil
}

const transitionColumns = `slo, service, grp, alert, kind, severity, from_state, to_state, at, alert_values`

func scanTransitions(rows pgx.Rows) ([]slo.Transition, error) {
	defer rows.Close()
	out := []slo.Transition{}
	for rows.Next() {
		var t slo.Transition
		var kind, sev, from, to, vals string
		var at int64
		if err := rows.Scan(&t.SLO, &t.Service, &t.Group, &t.Alert, &kind, &sev, &from, &to, &at, &vals); err != nil {
			return nil, err
		}
		t.At = fromNanos(at)
		err := errors.Join(t.Kind.UnmarshalText([]byte(kind)), t.From.UnmarshalText([]byte(from)), t.To.UnmarshalText([]byte(to)))
		if sev != "" {
			err = errors.Join(err, t.Severity.UnmarshalText([]byte(sev)))
		}
		if err == nil {
			err = json.Unmarshal([]byte(vals), &t.Values)
		}
		if err != nil {
			return nil, fmt.Errorf("alert transition of %q at %s: %w", t.SLO, t.At.Format(time.RFC3339), err)
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// LatestAlertTransitions returns the newest transition of each alert.
func (s *DB) LatestAlertTransitions(ctx context.Context) ([]slo.Transition, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+transitionColumns+` FROM slo_alert_transitions
		WHERE id IN (SELECT MAX(id) FROM slo_alert_transitions GROUP BY slo, grp, alert) ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("load alert states: %w", err)
	}
	ts, err := scanTransitions(rows)
	if err != nil {
		return nil, fmt.Errorf("load alert states: %w", err)
	}
	return ts, nil
}

// ListAlertTransitions returns transitions newest first, of one SLO when
// name is not empty, at or after since, at most limit (0: no limit).
func (s *DB) ListAlertTransitions(ctx context.Context, name string, since time.Time, limit int) ([]slo.Transition, error) {
	lim := any(nil) // LIMIT NULL is no limit
	if limit > 0 {
		lim = limit
	}
	from := int64(math.MinInt64)
	if !since.IsZero() {
		from = nanos(since)
	}
	rows, err := s.pool.Query(ctx, `SELECT `+transitionColumns+` FROM slo_alert_transitions
		WHERE ($1 = '' OR slo = $1) AND at >= $2 ORDER BY id DESC LIMIT $3`, name, from, lim)
	if err != nil {
		return nil, fmt.Errorf("list alert transitions: %w", err)
	}
	ts, err := scanTransitions(rows)
	if err != nil {
		return nil, fmt.Errorf("list alert transitions: %w", err)
	}
	return ts, nil
}
