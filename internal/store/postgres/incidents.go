package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tailgate-sre/tailgate/internal/gate"
	"github.com/tailgate-sre/tailgate/internal/incident"
)

var _ incident.Store = (*DB)(nil)

// incidentAudit is the payload of an incident's audit row.
type incidentAudit struct {
	Incident string           `json:"incident"`
	Version  int64            `json:"version,omitempty"`
	State    incident.State   `json:"state,omitempty"`
	Roles    map[string]any   `json:"roles,omitempty"`
	Entries  []incident.Entry `json:"entries"`
}

// recordIncident appends entries and the audit row of a change of id.
func (s *DB) recordIncident(ctx context.Context, tx pgx.Tx, inc *incident.Incident, id string, entries []incident.Entry) error {
	for _, e := range entries {
		rec, err := json.Marshal(e)
		if err != nil {
			return fmt.Errorf("encode incident entry: %w", err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO incident_entries (incident, at, record) VALUES ($1, $2, $3)`, id, e.At.UnixNano(), string(rec)); err != nil {
			return fmt.Errorf("append incident entry: %w", err)
		}
	}
	payload := incidentAudit{Incident: id, Entries: entries}
	actor, at := "tailgate", time.Now().UTC()
	if len(entries) > 0 {
		actor, at = entries[0].Actor, entries[0].At
	}
	if inc != nil {
		payload.Version, payload.State = inc.Version, inc.State
		payload.Roles = map[string]any{}
		for r, who := range inc.Roles {
			payload.Roles[string(r)] = who
		}
	}
	e, err := gate.NewAuditEntry(gate.AuditIncident, actor, at, payload)
	if err != nil {
		return err
	}
	return appendAudit(ctx, tx, []gate.AuditEntry{e})
}

// CreateIncident implements incident.Store.
func (s *DB) CreateIncident(ctx context.Context, inc incident.Incident, entries []incident.Entry) (incident.Incident, error) {
	err := s.writeTx(ctx, func(tx pgx.Tx) error {
		var next int64
		if err := tx.QueryRow(ctx, `SELECT COALESCE(MAX(seq), 0) + 1 FROM incidents`).Scan(&next); err != nil {
			return fmt.Errorf("number the incident: %w", err)
		}
		inc.ID = "INC-" + strconv.FormatInt(next, 10)
		rec, err := json.Marshal(inc)
		if err != nil {
			return fmt.Errorf("encode incident: %w", err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO incidents (seq, id, state, declared_at, version, record) VALUES ($1, $2, $3, $4, $5, $6)`,
			next, inc.ID, string(inc.State), inc.DeclaredAt.UnixNano(), inc.Version, string(rec)); err != nil {
			return fmt.Errorf("insert incident: %w", err)
		}
		return s.recordIncident(ctx, tx, &inc, inc.ID, entries)
	})
	if err != nil {
		return incident.Incident{}, err
	}
	return inc, nil
}

// UpdateIncident implements incident.Store.
func (s *DB) UpdateIncident(ctx context.Context, inc incident.Incident, entries []incident.Entry) error {
	return s.writeTx(ctx, func(tx pgx.Tx) error {
		var have int64
		err := tx.QueryRow(ctx, `SELECT version FROM incidents WHERE id = $1`, inc.ID).Scan(&have)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("%w: %s", incident.ErrNotFound, inc.ID)
		}
		if err != nil {
			return fmt.Errorf("read incident %s: %w", inc.ID, err)
		}
		if have != inc.Version-1 {
			return fmt.Errorf("%w: %s is at version %d, the change was based on %d", incident.ErrConflict, inc.ID, have, inc.Version-1)
		}
		rec, err := json.Marshal(inc)
		if err != nil {
			return fmt.Errorf("encode incident: %w", err)
		}
		if _, err := tx.Exec(ctx, `UPDATE incidents SET state = $1, version = $2, record = $3 WHERE id = $4`,
			string(inc.State), inc.Version, string(rec), inc.ID); err != nil {
			return fmt.Errorf("update incident %s: %w", inc.ID, err)
		}
		return s.recordIncident(ctx, tx, &inc, inc.ID, entries)
	})
}

// AddIncidentEntries implements incident.Store.
func (s *DB) AddIncidentEntries(ctx context.Context, id string, entries []incident.Entry) error {
	return s.writeTx(ctx, func(tx pgx.Tx) error {
		var one int
		err := tx.QueryRow(ctx, `SELECT 1 FROM incidents WHERE id = $1`, id).Scan(&one)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("%w: %s", incident.ErrNotFound, id)
		}
		if err != nil {
			return fmt.Errorf("read incident %s: %w", id, err)
		}
		return s.recordIncident(ctx, tx, nil, id, entries)
	})
}

// GetIncident implements incident.Store.
func (s *DB) GetIncident(ctx context.Context, id string) (incident.Incident, error) {
	var rec string
	err := s.pool.QueryRow(ctx, `SELECT record FROM incidents WHERE id = $1`, id).Scan(&rec)
	if errors.Is(err, pgx.ErrNoRows) {
		return incident.Incident{}, fmt.Errorf("%w: %s", incident.ErrNotFound, id)
	}
	if err != nil {
		return incident.Incident{}, fmt.Errorf("read incident %s: %w", id, err)
	}
	var inc incident.Incident
	if err := json.Unmarshal([]byte(rec), &inc); err != nil {
		return incident.Incident{}, fmt.Errorf("decode incident %s: %w", id, err)
	}
	return inc, nil
}

// ListIncidents implements incident.Store.
func (s *DB) ListIncidents(ctx context.Context, openOnly bool, limit int) ([]incident.Incident, error) {
	q := `SELECT record FROM incidents ORDER BY seq DESC LIMIT $1`
	if openOnly {
		q = `SELECT record FROM incidents WHERE state != 'resolved' ORDER BY seq DESC LIMIT $1`
	}
	rows, err := s.pool.Query(ctx, q, limit)
	if err != nil {
		return nil, fmt.Errorf("list incidents: %w", err)
	}
	defer rows.Close()
	out := []incident.Incident{}
	for rows.Next() {
		var rec string
		if err := rows.Scan(&rec); err != nil {
			return nil, fmt.Errorf("list incidents: %w", err)
		}
		var inc incident.Incident
		if err := json.Unmarshal([]byte(rec), &inc); err != nil {
			return nil, fmt.Errorf("decode incident: %w", err)
		}
		out = append(out, inc)
	}
	return out, rows.Err()
}

// IncidentEntries implements incident.Store.
func (s *DB) IncidentEntries(ctx context.Context, id string) ([]incident.Entry, error) {
	rows, err := s.pool.Query(ctx, `SELECT record FROM incident_entries WHERE incident = $1 ORDER BY n`, id)
	if err != nil {
		return nil, fmt.Errorf("read incident entries: %w", err)
	}
	defer rows.Close()
	out := []incident.Entry{}
	for rows.Next() {
		var rec string
		if err := rows.Scan(&rec); err != nil {
			return nil, fmt.Errorf("read incident entries: %w", err)
		}
		var e incident.Entry
		if err := json.Unmarshal([]byte(rec), &e); err != nil {
			return nil, fmt.Errorf("decode incident entry: %w", err)
		}
		out = append(out, e)
	}
	return out, rows.Err()
}
