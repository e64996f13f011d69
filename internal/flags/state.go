package flags

import (
	"context"
	"errors"
	"time"
)

// State is what changes about a flag at run time. It lives in the store,
// so every instance of a fleet serves the same variant.
type State struct {
	Key string `json:"key"`
	// Forced, when set, is served to everyone instead of the targeting.
	Forced *Forced `json:"forced,omitempty"`
	// Paused stops the flag's kill switch from flipping or restoring it.
	Paused bool `json:"paused"`
	// Version counts the flag's changes; a write names the version it
	// read, so two instances cannot both apply a change they raced on.
	Version int64 `json:"version"`
	// Since is when the state last changed.
	Since time.Time `json:"since"`
}

// Action names a change of a flag.
type Action string

// The actions the history records.
const (
	ActionFlip    Action = "flip"    // a variant forced
	ActionRestore Action = "restore" // back to the targeting
	ActionPause   Action = "pause"   // kill switch paused for this flag
	ActionResume  Action = "resume"  // kill switch resumed
	ActionDefine  Action = "define"  // a flag created or edited through the API
	ActionDelete  Action = "delete"  // an API flag deleted
)

// Change is one entry of a flag's history: who changed what, when, why,
// from what to what. It is also the payload of the flag's audit row.
type Change struct {
	Key    string    `json:"key"`
	Action Action    `json:"action"`
	Actor  string    `json:"actor"`
	At     time.Time `json:"at"`
	// Source is "operator" (the API or CLI) or "kill_switch".
	Source string `json:"source"`
	Reason string `json:"reason,omitempty"`
	// From and To are the served variant before and after ("" means the
	// targeting decides).
	From string `json:"from,omitempty"`
	To   string `json:"to,omitempty"`
	// Definition is the new definition of an API flag (ActionDefine).
	Definition *Config `json:"definition,omitempty"`
}

// ErrConflict is returned by Store.SetFlagState when the stored version is
// not the one the change was based on: another instance changed the flag
// first.
var ErrConflict = errors.New("the flag changed concurrently")

// Store keeps flag states, their history and the flags defined through
// the API; *sqlite.DB implements it. Every write appends its Change to the
// store's audit chain in the same transaction.
type Store interface {
	// FlagStates returns the stored state of every flag that has one.
	FlagStates(ctx context.Context) ([]State, error)
	// SetFlagState stores st if the stored version is st.Version-1 (0 when
	// none is stored), and records ch; otherwise ErrConflict.
	SetFlagState(ctx context.Context, st State, ch Change) error
	// FlagHistory returns a flag's changes, newest first, at most limit.
	FlagHistory(ctx context.Context, key string, limit int) ([]Change, error)
	// FlagDefinitions returns the flags defined through the API.
	FlagDefinitions(ctx context.Context) ([]Config, error)
	// PutFlagDefinition creates or replaces an API flag and records ch.
	PutFlagDefinition(ctx context.Context, c Config, ch Change) error
	// DeleteFlagDefinition deletes an API flag and its state, records ch,
	// and reports whether it existed.
	DeleteFlagDefinition(ctx context.Context, key string, ch Change) (bool, error)
}
