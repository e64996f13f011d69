package incident

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// State is where an incident is in its lifecycle.
type State string

// The states, in order.
const (
	Declared  State = "declared"
	Mitigated State = "mitigated"
	Resolved  State = "resolved"
)

// Role is an incident role of the Incident Command System.
type Role string

// The roles.
const (
	Commander Role = "commander" // Incident Commander: owns the incident, decides, delegates
	Comms     Role = "comms"     // Communications lead: status updates to stakeholders
	Ops       Role = "ops"       // Operations lead: the hands on the system
)

// Roles returns every role, in order.
func Roles() []Role { return []Role{Commander, Comms, Ops} }

// ParseRole checks a role name.
func ParseRole(s string) (Role, error) {
	r := Role(strings.ToLower(strings.TrimSpace(s)))
	if !slices.Contains(Roles(), r) {
		return "", fmt.Errorf("%w: unknown role %q, want commander, comms or ops", ErrInvalid, s)
	}
	return r, nil
}

// Severities are the accepted severities, most severe first.
var severities = []string{"sev1", "sev2", "sev3", "sev4"}

// Errors for the API to map to statuses.
var (
	ErrNotFound = errors.New("no such incident")
	ErrInvalid  = errors.New("invalid incident request")
	// ErrTransition: the change does not apply in the incident's state
	// (mitigating a resolved incident, ...).
	ErrTransition = errors.New("invalid incident state transition")
)

// Incident is one incident as stored and shown.
type Incident struct {
	ID       string `json:"id"`
	Title    string `json:"title"`
	Severity string `json:"severity"`
	State    State  `json:"state"`
	// Services are the services involved (the paging ones, or the one a
	// person declared for); SLOs the paging SLOs.
	Services []string `json:"services"`
	SLOs     []string `json:"slos,omitempty"`
	// Origin is the likely origin service of the errors, when the error
	// origins point at one.
	Origin string `json:"origin,omitempty"`
	// Roles maps a role to its current holder.
	Roles map[Role]string `json:"roles"`
	// Source is "page" (declared from an alert) or "manual".
	Source      string     `json:"source"`
	DeclaredBy  string     `json:"declared_by"`
	DeclaredAt  time.Time  `json:"declared_at"`
	MitigatedAt *time.Time `json:"mitigated_at,omitempty"`
	ResolvedAt  *time.Time `json:"resolved_at,omitempty"`
	// Version counts the incident's changes (optimistic concurrency
	// between the instances of a fleet).
	Version int64 `json:"version"`
}

// Open reports whether the incident is not resolved.
func (i *Incident) Open() bool { return i.State != Resolved }

// Entry kinds of the timeline.
const (
	KindDeclared    = "declared"
	KindJoined      = "joined"
	KindAlertFiring = "alert_firing"
	KindAlertClear  = "alert_resolved"
	KindRole        = "role"
	KindNote        = "note"
	KindUpdate      = "status_update"
	KindState       = "state"
	KindOrigin      = "origin"
	KindDeploy      = "deploy"
	KindGate        = "gate_decision"
	KindOverride    = "gate_override"
	KindFlag        = "flag"
)

// Entry is one line of an incident's timeline: when, what kind, from
// which source (tailgate, or a person through the API), by whom, and a
// sentence with the numbers.
type Entry struct {
	At     time.Time      `json:"at"`
	Kind   string         `json:"kind"`
	Source string         `json:"source"` // "tailgate", "api"
	Actor  string         `json:"actor"`
	Text   string         `json:"text"`
	Fields map[string]any `json:"fields,omitempty"`
}
