package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/tailgate-sre/tailgate/internal/signals"
	"github.com/tailgate-sre/tailgate/internal/units"
)

// ServiceSource is what the service (golden signals) and cardinality
// endpoints read; *signals.Signals implements it.
type ServiceSource interface {
	Services(ctx context.Context, q signals.Query, now time.Time) (signals.ServicesResponse, error)
	Service(ctx context.Context, name string, q signals.Query, now time.Time) (signals.ServiceDetail, error)
	Operations(ctx context.Context, name string, q signals.Query, now time.Time) (signals.OperationsResponse, error)
	ErrorOrigins(ctx context.Context, name string, q signals.Query, now time.Time) (signals.ErrorOrigins, error)
	Cardinality(service string, top int) signals.CardinalityReport
}

var _ ServiceSource = (*signals.Signals)(nil)

// Cardinality report defaults: keys per service, and the most asked for.
const (
	defaultCardinalityTop = 10
	maxCardinalityTop     = 1000
)

// serviceRoutes registers:
//
//	GET /api/v1/services                         every service, with series
//	GET /api/v1/services/{service}               one service, its operations and error origins
//	GET /api/v1/services/{service}/operations    its operations, with series
//	GET /api/v1/services/{service}/events        deploys and kill-switch flips to mark on its charts
//	GET /api/v1/services/{service}/error-origins where its errors start
//	GET /api/v1/cardinality?service=&top=        the attribute cardinality report
//
// The series endpoints take from and to (RFC 3339, Unix seconds, or a
// duration back from now such as 6h; default the last hour) and step (a
// whole number of minutes such as 5m; default about 60 points).
func (s *Server) serviceRoutes(mux *http.ServeMux) {
	src := s.deps.Services
	if src == nil {
		return
	}
	// series serves a time-series read: the query comes from the URL's
	// from, to and step, the service (when the route has one) from the path.
	series := func(read func(ctx context.Context, service string, q signals.Query, now time.Time) (any, error)) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			now := s.deps.Now()
			q, ok := seriesQuery(w, r, now)
			if !ok {
				return
			}
			resp, err := read(r.Context(), r.PathValue("service"), q, now)
			s.writeSignals(w, resp, err)
		}
	}
	mux.HandleFunc("GET /api/v1/services", series(func(ctx context.Context, _ string, q signals.Query, now time.Time) (any, error) {
		return src.Services(ctx, q, now)
	}))
	mux.HandleFunc("GET /api/v1/services/{service}", series(func(ctx context.Context, svc string, q signals.Query, now time.Time) (any, error) {
		return src.Service(ctx, svc, q, now)
	}))
	mux.HandleFunc("GET /api/v1/services/{service}/events", s.serviceEvents)
	mux.HandleFunc("GET /api/v1/services/{service}/operations", series(func(ctx context.Context, svc string, q signals.Query, now time.Time) (any, error) {
		return src.Operations(ctx, svc, q, now)
	}))
	mux.HandleFunc("GET /api/v1/services/{service}/error-origins", series(func(ctx context.Context, svc string, q signals.Query, now time.Time) (any, error) {
		return src.ErrorOrigins(ctx, svc, q, now)
	}))
	mux.HandleFunc("GET /api/v1/cardinality", func(w http.ResponseWriter, r *http.Request) {
		top := defaultCardinalityTop
		if v := r.URL.Query().Get("top"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 || n > maxCardinalityTop {
				writeError(w, http.StatusBadRequest, "invalid request",
					fmt.Sprintf("top: must be an integer from 0 (all keys) to %d, got %q", maxCardinalityTop, v))
				return
			}
			top = n
		}
		writeJSON(w, http.StatusOK, src.Cardinality(r.URL.Query().Get("service"), top))
	})
}

// seriesQuery reads from, to and step; zero values leave the defaults to
// signals.
func seriesQuery(w http.ResponseWriter, r *http.Request, now time.Time) (signals.Query, bool) {
	v := r.URL.Query()
	var q signals.Query
	var err error
	if q.From, err = parseTime(v.Get("from"), time.Time{}, now); err != nil {
		writeError(w, http.StatusBadRequest, "invalid request", "from: "+err.Error())
		return q, false
	}
	if q.To, err = parseTime(v.Get("to"), time.Time{}, now); err != nil {
		writeError(w, http.StatusBadRequest, "invalid request", "to: "+err.Error())
		return q, false
	}
	if st := v.Get("step"); st != "" {
		if q.Step, err = units.ParseDuration(st); err != nil {
			writeError(w, http.StatusBadRequest, "invalid request", "step: "+err.Error())
			return q, false
		}
	}
	return q, true
}

// writeSignals writes an answer of the signals package, or maps its error
// to a status code.
func (s *Server) writeSignals(w http.ResponseWriter, v any, err error) {
	switch {
	case err == nil:
		writeJSON(w, http.StatusOK, v)
	case errors.Is(err, signals.ErrBadQuery):
		writeError(w, http.StatusBadRequest, "invalid request", err.Error())
	case errors.Is(err, signals.ErrUnknownService):
		writeError(w, http.StatusNotFound, "unknown service", err.Error())
	default:
		s.deps.Logger.Error("read golden signals", "err", err)
		writeError(w, http.StatusInternalServerError, "internal error", err.Error())
	}
}
