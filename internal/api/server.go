// Package api serves tailgate's HTTP JSON API under /api/v1, with
// Prometheus metrics at /metrics and health at /healthz and /readyz. Each
// area of the API lives in its own file and reads its domain through a small
// interface declared there.
package api

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/tailgate-sre/tailgate/internal/auth"
	"github.com/tailgate-sre/tailgate/internal/ui"
)

// Deps are what the API reads. Nil sources leave their endpoints out.
type Deps struct {
	Logger   *slog.Logger
	Gatherer prometheus.Gatherer
	// Ready reports whether the process is ready to take traffic; nil means
	// always ready.
	Ready func() error
	// Degraded lists what is wrong without making the process unready
	// (the fleet store unreachable), for /readyz's body; nil: nothing.
	Degraded func() []string
	// Instance and Cell name this tailgate in /readyz and the fleet.
	Instance, Cell string
	// Fleet lists the fleet's instances; nil without the fleet store.
	Fleet FleetSource

	SLOs     SLOSource     // see slo.go
	Services ServiceSource // see services.go
	Gate     GateService   // see gate.go
	Flags    FlagService   // see flags.go
	// Incidents runs incidents; see incidents.go.
	Incidents IncidentService
	// Canary judges canaries; see canary.go.
	Canary CanaryService

	// Auth authenticates API callers; nil leaves the API open.
	Auth *auth.Authenticator

	// Now is the clock every endpoint reads: the "now" of relative times
	// such as from=1h, of budget and burn-rate reads and of corrections.
	// Nil means time.Now; tests inject a fixed or stepped clock.
	Now func() time.Time
}

// Server routes API requests.
type Server struct {
	deps Deps
	mux  *http.ServeMux
	// cop refuses writes that a browser sends cross-origin.
	cop *http.CrossOriginProtection
}

// New returns a Server with every route registered.
func New(deps Deps) *Server {
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	s := &Server{deps: deps, mux: http.NewServeMux(), cop: http.NewCrossOriginProtection()}
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	s.mux.HandleFunc("GET /readyz", s.readyz)
	if deps.Gatherer != nil {
		s.mux.HandleFunc("GET /metrics", s.authorize(auth.ScopeRead, promhttp.HandlerFor(deps.Gatherer, promhttp.HandlerOpts{}).ServeHTTP))
	}
	notFound := func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "not found", "no API endpoint "+r.Method+" "+r.URL.Path)
	}
	s.mux.HandleFunc("/api/", notFound)
	// The SLO and service endpoints are reads, except the SLO corrections
	// that change the budget math: those are writes and need the override
	// scope. They are registered on their own mux and authorized here by
	// method, so each area's file states only its routes.
	areas := http.NewServeMux()
	areas.HandleFunc("/", notFound)
	s.sloRoutes(areas)
	s.serviceRoutes(areas)
	byMethod := func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			s.write(auth.ScopeGateOverride, areas.ServeHTTP)(w, r)
			return
		}
		s.authorize(auth.ScopeRead, areas.ServeHTTP)(w, r)
	}
	for _, prefix := range []string{"/api/v1/slos", "/api/v1/alerts", "/api/v1/services", "/api/v1/cardinality"} {
		s.mux.HandleFunc(prefix, byMethod)
		s.mux.HandleFunc(prefix+"/", byMethod)
	}
	s.gateRoutes(s.mux)
	s.flagRoutes(s.mux)
	s.incidentRoutes(s.mux)
	s.canaryRoutes(s.mux)
	s.fleetRoutes(s.mux)
	// The dashboard: public static assets at / and /static/; the data it
	// shows comes from the routes above, with the caller's token.
	s.mux.Handle("/", ui.Handler())
	return s
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

func (s *Server) readyz(w http.ResponseWriter, _ *http.Request) {
	if s.deps.Ready != nil {
		if err := s.deps.Ready(); err != nil {
			writeError(w, http.StatusServiceUnavailable, "not ready", err.Error())
			return
		}
	}
	body := readyBody{Status: "ready", Instance: s.deps.Instance, Cell: s.deps.Cell}
	if s.deps.Degraded != nil {
		body.Degraded = s.deps.Degraded()
	}
	writeJSON(w, http.StatusOK, body)
}

// readyBody is /readyz's answer when ready. Degraded says what is wrong
// that does not make the instance unready.
type readyBody struct {
	Status   string   `json:"status"`
	Instance string   `json:"instance,omitempty"`
	Cell     string   `json:"cell,omitempty"`
	Degraded []string `json:"degraded,omitempty"`
}

// ErrorBody is the JSON shape of every API error.
type ErrorBody struct {
	Error  string `json:"error"`
	Detail string `json:"detail,omitempty"`
}

// writeJSON writes v as JSON with the given status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v) // the client went away; nothing left to tell it
}

// writeError writes the API's error shape.
func writeError(w http.ResponseWriter, status int, msg, detail string) {
	writeJSON(w, status, ErrorBody{Error: msg, Detail: detail})
}
