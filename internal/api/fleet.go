package api

import (
	"context"
	"net/http"
	"time"

	"github.com/tailgate-sre/tailgate/internal/auth"
)

// FleetSource describes the fleet this instance belongs to (nil without
// the fleet store).
type FleetSource interface {
	Fleet(ctx context.Context) (Fleet, error)
}

// Fleet is the answer of GET /api/v1/fleet: this instance, and the
// instances of its cell by their heartbeats in the shared store.
type Fleet struct {
	Cell     string `json:"cell,omitempty"`
	Instance string `json:"instance"`
	// Store names the shared store (host, port, database).
	Store string `json:"store"`
	// Leader is whether this instance leads the fleet.
	Leader bool `json:"leader"`
	// Now is the store's clock, which the ages are measured by.
	Now     time.Time     `json:"now"`
	Members []FleetMember `json:"members"`
}

// FleetMember is one instance of the cell.
type FleetMember struct {
	Instance     string    `json:"instance"`
	Cell         string    `json:"cell,omitempty"`
	Version      string    `json:"version"`
	Schema       int       `json:"schema"`
	Started      time.Time `json:"started_at"`
	Heartbeat    time.Time `json:"heartbeat_at"`
	HeartbeatAge float64   `json:"heartbeat_age_seconds"`
	Leader       bool      `json:"leader"`
	// FlushedUntil is when the member last stored its counts; FlushAge is
	// how long ago (null before its first flush).
	FlushedUntil time.Time `json:"flushed_until,omitzero"`
	FlushAge     *float64  `json:"flush_age_seconds"`
	Health       string    `json:"health"`
}

func (s *Server) fleetRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/v1/fleet", s.authorize(auth.ScopeRead, func(w http.ResponseWriter, r *http.Request) {
		if s.deps.Fleet == nil {
			writeError(w, http.StatusNotFound, "no fleet", "this instance runs on the embedded store; a fleet shares storage.postgres (docs/scale.md)")
			return
		}
		f, err := s.deps.Fleet.Fleet(r.Context())
		if err != nil {
			writeError(w, http.StatusServiceUnavailable, "fleet store unreachable", err.Error())
			return
		}
		if f.Members == nil {
			f.Members = []FleetMember{}
		}
		writeJSON(w, http.StatusOK, f)
	}))
}
