package gate

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"
)

// Errors of the gate, mapped to HTTP statuses at the API's edge.
var (
	// ErrInvalid marks a request the gate cannot answer as asked (unknown
	// change class, missing service, an override without a reason).
	ErrInvalid = errors.New("invalid request")
	// ErrNotFound marks an unknown override.
	ErrNotFound = errors.New("not found")
)

// Store persists the audit log, overrides and deploy markers.
// *sqlite.DB implements it; MemoryStore is an in-process one.
type Store interface {
	AddDecision(ctx context.Context, d Decision) error
	Decisions(ctx context.Context, q DecisionQuery) ([]Decision, error)
	AddOverride(ctx context.Context, o Override) error
	// RevokeOverride marks an override revoked at at by by and returns it;
	// revoking a revoked override returns it unchanged. An unknown ID is
	// ErrNotFound.
	RevokeOverride(ctx context.Context, id, by string, at time.Time) (Override, error)
	Overrides(ctx context.Context, q OverrideQuery) ([]Override, error)
	AddDeploy(ctx context.Context, d Deploy) error
	Deploys(ctx context.Context, q DeployQuery) ([]Deploy, error)
}

// DecisionQuery selects audit records, newest first.
type DecisionQuery struct {
	Service  string    // empty: all services
	From, To time.Time // zero: unbounded; From inclusive, To exclusive
	Limit    int       // at most this many; 0 means DefaultLimit
}

// OverrideQuery selects overrides, newest first.
type OverrideQuery struct {
	Service string // empty: all services
	// ActiveAt, when set, keeps only the overrides neither revoked nor
	// expired at that moment.
	ActiveAt time.Time
	// ActiveOnly asks Gate.Overrides for the overrides active at the
	// gate's now (it sets ActiveAt); stores read ActiveAt only.
	ActiveOnly bool
	Limit      int
}

// DeployQuery selects deploy markers, oldest first.
type DeployQuery struct {
	Service  string
	From, To time.Time
	Limit    int
}

// Limits of list queries.
const (
	DefaultLimit = 100
	MaxLimit     = 10000
)

// EffectiveLimit clamps a query limit to [1, MaxLimit], 0 meaning
// DefaultLimit.
func EffectiveLimit(n int) int {
	switch {
	case n <= 0:
		return DefaultLimit
	case n > MaxLimit:
		return MaxLimit
	default:
		return n
	}
}

// Deploy is a deploy marker: a version of a service went out at a time.
type Deploy struct {
	ID          string      `json:"id"`
	Service     string      `json:"service"`
	Version     string      `json:"version"`
	Environment string      `json:"environment,omitempty"`
	ChangeClass ChangeClass `json:"change_class,omitempty"`
	Time        time.Time   `json:"time"`
	DeployedBy  string      `json:"deployed_by,omitempty"`
	Description string      `json:"description,omitempty"`
	// RollbackCommand undoes this deploy, e.g. kubectl rollout undo
	// deployment/NAME -n NS: a regression verdict hands it on.
	RollbackCommand string `json:"rollback_command,omitempty"`
	// Principal is the authenticated identity that recorded it.
	Principal string `json:"principal,omitempty"`
}

// MemoryStore keeps everything in process memory; for tests, demos and a
// daemon without storage. It is safe for concurrent use.
type MemoryStore struct {
	mu        sync.Mutex
	decisions []Decision
	overrides []Override
	deploys   []Deploy
	audit     []AuditRecord // the hash chain, Seq i+1 at index i
}

var (
	_ Store           = (*MemoryStore)(nil)
	_ DecisionBatcher = (*MemoryStore)(nil)
	_ AuditStore      = (*MemoryStore)(nil)
)

// NewMemoryStore returns an empty MemoryStore.
func NewMemoryStore() *MemoryStore { return &MemoryStore{} }

// AddDecision implements Store.
func (m *MemoryStore) AddDecision(ctx context.Context, d Decision) error {
	return m.AddDecisions(ctx, []Decision{d})
}

// AddDecisions implements DecisionBatcher, appending the decisions' audit
// rows under the same lock.
func (m *MemoryStore) AddDecisions(_ context.Context, ds []Decision) error {
	es, err := DecisionAudit(ds)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.appendAudit(es); err != nil {
		return err
	}
	m.decisions = append(m.decisions, ds...)
	return nil
}

// appendAudit links es to the chain; m.mu must be held.
func (m *MemoryStore) appendAudit(es []AuditEntry) error {
	var head *AuditRecord
	if n := len(m.audit); n > 0 {
		head = &m.audit[n-1]
	}
	rs, err := ChainAudit(head, es)
	if err != nil {
		return err
	}
	m.audit = append(m.audit, rs...)
	return nil
}

// AppendAudit implements AuditStore.
func (m *MemoryStore) AppendAudit(_ context.Context, es []AuditEntry) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.appendAudit(es)
}

// AuditRecords implements AuditStore.
func (m *MemoryStore) AuditRecords(_ context.Context, after int64, limit int) ([]AuditRecord, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := []AuditRecord{}
	for _, r := range m.audit {
		if len(out) >= limit {
			break
		}
		if r.Seq > after {
			out = append(out, r)
		}
	}
	return out, nil
}

// Decisions implements Store.
func (m *MemoryStore) Decisions(_ context.Context, q DecisionQuery) ([]Decision, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	// Sort every match before cutting at the limit: decisions arrive out
	// of evaluation order (batched audit writes, several instances), and
	// the limit keeps the newest evaluated, not the last stored.
	out := []Decision{}
	for i := len(m.decisions) - 1; i >= 0; i-- {
		d := m.decisions[i]
		if (q.Service == "" || d.Service == q.Service) && inRange(d.EvaluatedAt, q.From, q.To) {
			out = append(out, d)
		}
	}
	slices.SortStableFunc(out, func(a, b Decision) int { return b.EvaluatedAt.Compare(a.EvaluatedAt) })
	return out[:min(len(out), EffectiveLimit(q.Limit))], nil
}

// AddOverride implements Store.
func (m *MemoryStore) AddOverride(_ context.Context, o Override) error {
	o.Status = ""
	e, err := OverrideAudit(o)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.appendAudit([]AuditEntry{e}); err != nil {
		return err
	}
	m.overrides = append(m.overrides, o)
	return nil
}

// RevokeOverride implements Store.
func (m *MemoryStore) RevokeOverride(_ context.Context, id, by string, at time.Time) (Override, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i := range m.overrides {
		o := &m.overrides[i]
		if o.ID != id {
			continue
		}
		if o.RevokedAt == nil {
			t := at
			revoked := *o
			revoked.RevokedAt, revoked.RevokedBy = &t, by
			e, err := RevokeAudit(revoked)
			if err != nil {
				return Override{}, err
			}
			if err := m.appendAudit([]AuditEntry{e}); err != nil {
				return Override{}, err
			}
			*o = revoked
		}
		return *o, nil
	}
	return Override{}, ErrNotFound
}

// Overrides implements Store.
func (m *MemoryStore) Overrides(_ context.Context, q OverrideQuery) ([]Override, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	// As in Decisions, the limit applies after sorting by creation time.
	out := []Override{}
	for i := len(m.overrides) - 1; i >= 0; i-- {
		o := m.overrides[i]
		if q.Service != "" && o.Service != q.Service {
			continue
		}
		if !q.ActiveAt.IsZero() && o.StatusAt(q.ActiveAt) != OverrideActive {
			continue
		}
		out = append(out, o)
	}
	slices.SortStableFunc(out, func(a, b Override) int { return b.CreatedAt.Compare(a.CreatedAt) })
	return out[:min(len(out), EffectiveLimit(q.Limit))], nil
}

// AddDeploy implements Store.
func (m *MemoryStore) AddDeploy(_ context.Context, d Deploy) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.deploys = append(m.deploys, d)
	return nil
}

// Deploys implements Store.
func (m *MemoryStore) Deploys(_ context.Context, q DeployQuery) ([]Deploy, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := []Deploy{}
	for _, d := range m.deploys {
		if (q.Service == "" || d.Service == q.Service) && inRange(d.Time, q.From, q.To) {
			out = append(out, d)
		}
	}
	slices.SortStableFunc(out, func(a, b Deploy) int { return a.Time.Compare(b.Time) })
	if l := EffectiveLimit(q.Limit); len(out) > l {
		out = out[len(out)-l:]
	}
	return out, nil
}

func inRange(t, from, to time.Time) bool {
	return (from.IsZero() || !t.Before(from)) && (to.IsZero() || t.Before(to))
}
