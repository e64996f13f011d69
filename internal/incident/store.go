package incident

import (
	"context"
	"errors"
)

// ErrConflict is returned by Store.UpdateIncident when the stored version
// is not the one the change was based on.
var ErrConflict = errors.New("the incident changed concurrently")

// Store keeps incidents and their recorded timeline entries; *sqlite.DB
// implements it. Every write appends its entries to the store's audit
// chain in the same transaction.
type Store interface {
	// CreateIncident stores inc with a new ID ("INC-<n>", n counting from
	// 1 per store), records entries, and returns it with its ID.
	CreateIncident(ctx context.Context, inc Incident, entries []Entry) (Incident, error)
	// UpdateIncident stores inc if the stored version is inc.Version-1,
	// and records entries; otherwise ErrConflict (ErrNotFound when there
	// is no such incident).
	UpdateIncident(ctx context.Context, inc Incident, entries []Entry) error
	// AddIncidentEntries records entries on an incident.
	AddIncidentEntries(ctx context.Context, id string, entries []Entry) error
	// GetIncident returns one incident, or ErrNotFound.
	GetIncident(ctx context.Context, id string) (Incident, error)
	// ListIncidents returns incidents, newest first, at most limit; open
	// ones only when openOnly.
	ListIncidents(ctx context.Context, openOnly bool, limit int) ([]Incident, error)
	// IncidentEntries returns an incident's recorded entries, oldest first.
	IncidentEntries(ctx context.Context, id string) ([]Entry, error)
}
