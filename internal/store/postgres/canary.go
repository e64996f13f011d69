package postgres

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tailgate-sre/tailgate/internal/canary"
)

var _ canary.Store = (*DB)(nil)

// AddCanaryCounts implements canary.Store: the counts are added to this
// instance's rows, with one statement (the rows summed per key first,
// since one INSERT ... ON CONFLICT may not touch a row twice).
func (s *DB) AddCanaryCounts(ctx context.Context, rows []canary.VersionRow) error {
	if len(rows) == 0 {
		return nil
	}
	type key struct {
		svc, ver, op string
		minute       int64
	}
	idx := make(map[key]int, len(rows))
	var (
		svcs, vers, ops   []string
		minutes           []int64
		reqs, errs, slows []int64
	)
	for _, r := range rows {
		if r.Requests > math.MaxInt64 || r.Errors > math.MaxInt64 || r.Slow > math.MaxInt64 {
			return fmt.Errorf("canary counts of %s %s %q at %s: count out of range", r.Service, r.Version, r.Operation, r.Minute.Format(time.RFC3339))
		}
		k := key{r.Service, r.Version, r.Operation, r.Minute.Unix()}
		if i, ok := idx[k]; ok {
			reqs[i] += int64(r.Requests)
			errs[i] += int64(r.Errors)
			slows[i] += int64(r.Slow)
			continue
		}
		idx[k] = len(svcs)
		svcs, vers, ops, minutes = append(svcs, k.svc), append(vers, k.ver), append(ops, k.op), append(minutes, k.minute)
		reqs, errs, slows = append(reqs, int64(r.Requests)), append(errs, int64(r.Errors)), append(slows, int64(r.Slow))
	}
	err := s.tx(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO canary_counts (service, version, operation, minute, instance, requests, errors, slow)
			SELECT c.service, c.version, c.operation, c.minute, $8, c.requests, c.errors, c.slow
			FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::bigint[], $7::bigint[])
				AS c(service, version, operation, minute, requests, errors, slow)
			ON CONFLICT (service, version, operation, minute, instance) DO UPDATE
			SET requests = canary_counts.requests + excluded.requests, errors = canary_counts.errors + excluded.errors,
				slow = canary_counts.slow + excluded.slow`,
			svcs, vers, ops, minutes, reqs, errs, slows, s.instance)
		return err
	})
	if err != nil {
		return fmt.Errorf("add canary counts to %s: %w", s.where, err)
	}
	return nil
}

// CanaryCounts implements canary.Store: this instance's rows and the sum
// of the other instances'.
func (s *DB) CanaryCounts(ctx context.Context, since time.Time) (own, peers []canary.VersionRow, err error) {
	rows, err := s.pool.Query(ctx, `SELECT service, version, operation, minute, instance = $2, SUM(requests), SUM(errors), SUM(slow)
		FROM canary_counts WHERE minute >= $1 GROUP BY service, version, operation, minute, instance = $2`,
		since.Truncate(time.Minute).Unix(), s.instance)
	if err != nil {
		return nil, nil, fmt.Errorf("read canary counts from %s: %w", s.where, err)
	}
	defer rows.Close()
	for rows.Next() {
		var r canary.VersionRow
		var m, req, bad, slow int64
		var mine bool
		if err := rows.Scan(&r.Service, &r.Version, &r.Operation, &m, &mine, &req, &bad, &slow); err != nil {
			return nil, nil, fmt.Errorf("read canary counts from %s: %w", s.where, err)
		}
		r.Minute = time.Unix(m, 0).UTC()
		r.Requests, r.Errors, r.Slow = uint64(req), uint64(bad), uint64(slow)
		if mine {
			own = append(own, r)
		} else {
			peers = append(peers, r)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("read canary counts from %s: %w", s.where, err)
	}
	return own, peers, nil
}

// PruneCanaryCounts implements canary.Store.
func (s *DB) PruneCanaryCounts(ctx context.Context, cut time.Time) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM canary_counts WHERE minute < $1`, cut.Unix()); err != nil {
		return fmt.Errorf("prune canary counts in %s: %w", s.where, err)
	}
	return nil
}
