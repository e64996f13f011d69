package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tailgate-sre/tailgate/internal/slo"
	"github.com/tailgate-sre/tailgate/internal/units"
)

// SLOSource is what the SLO endpoints read; *slo.Engine implements it.
type SLOSource interface {
	List(now time.Time) []slo.Status
	Status(name string, now time.Time) (slo.Status, bool)
	History(name string, from, to time.Time, step time.Duration, now time.Time) ([]slo.HistoryPoint, error)
	Corrections(name string) ([]slo.Correction, error)
	AddCorrection(ctx context.Context, c slo.Correction, now time.Time) (slo.Correction, error)
	DeleteCorrection(ctx context.Context, name string, id int64, by string, now time.Time) error
	Alerts() []slo.Alert
	Transitions(name string, limit int) []slo.Transition
}

var _ SLOSource = (*slo.Engine)(nil)

// SLOList is the answer of GET /api/v1/slos.
type SLOList struct {
	SLOs []slo.Status `json:"slos"`
}

// SLOHistory is the answer of GET /api/v1/slos/{name}/history.
type SLOHistory struct {
	SLO    string             `json:"slo"`
	From   time.Time          `json:"from"`
	To     time.Time          `json:"to"`
	Step   string             `json:"step"`
	Points []slo.HistoryPoint `json:"points"`
}

// CorrectionList is the answer of GET /api/v1/slos/{name}/corrections:
// the corrections that apply, and with deleted=true the deleted ones too
// (with deleted_by and deleted_at).
type CorrectionList struct {
	Corrections []slo.Correction `json:"corrections"`
}

// CorrectionRequest is the body of POST /api/v1/slos/{name}/corrections:
// a one-off period (start, end) or a recurring one (start, duration,
// rrule), and why. Who adds it is the caller's token name ("anonymous"
// without tokens), never the body: CreatedBy must be empty.
type CorrectionRequest struct {
	Start     time.Time      `json:"start"`
	End       time.Time      `json:"end,omitzero"`
	Duration  units.Duration `json:"duration,omitzero"`
	RRule     string         `json:"rrule,omitempty"`
	TimeZone  string         `json:"time_zone,omitempty"`
	Reason    string         `json:"reason"`
	CreatedBy string         `json:"created_by,omitempty"`
}

// AlertList is the answer of GET /api/v1/alerts: the pending and firing
// alerts and the latest transitions.
type AlertList struct {
	Alerts      []slo.Alert      `json:"alerts"`
	Transitions []slo.Transition `json:"transitions"`
}

// maxCorrectionBody bounds a correction request's body.
const maxCorrectionBody = 64 << 10

func (s *Server) sloRoutes(mux *http.ServeMux) {
	src := s.deps.SLOs
	if src == nil {
		return
	}
	mux.HandleFunc("GET /api/v1/slos", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, SLOList{SLOs: src.List(s.deps.Now())})
	})
	mux.HandleFunc("GET /api/v1/slos/{name}", func(w http.ResponseWriter, r *http.Request) {
		st, ok := src.Status(r.PathValue("name"), s.deps.Now())
		if !ok {
			writeError(w, http.StatusNotFound, "unknown SLO", fmt.Sprintf("no SLO named %q", r.PathValue("name")))
			return
		}
		writeJSON(w, http.StatusOK, st)
	})
	mux.HandleFunc("GET /api/v1/slos/{name}/history", func(w http.ResponseWriter, r *http.Request) {
		s.sloHistory(w, r, src)
	})
	mux.HandleFunc("GET /api/v1/slos/{name}/corrections", func(w http.ResponseWriter, r *http.Request) {
		var withDeleted bool
		switch r.URL.Query().Get("deleted") {
		case "true", "1":
			withDeleted = true
		case "", "false", "0":
		default:
			writeError(w, http.StatusBadRequest, "invalid request", "deleted: must be true or false")
			return
		}
		cs, err := src.Corrections(r.PathValue("name"))
		if err != nil {
			writeSLOError(w, err)
			return
		}
		if !withDeleted {
			cs = slices.DeleteFunc(cs, func(c slo.Correction) bool { return c.Deleted() })
		}
		writeJSON(w, http.StatusOK, CorrectionList{Corrections: cs})
	})
	mux.HandleFunc("POST /api/v1/slos/{name}/corrections", func(w http.ResponseWriter, r *http.Request) {
		var req CorrectionRequest
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxCorrectionBody))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			writeError(w, http.StatusBadRequest, "invalid correction", err.Error())
			return
		}
		if req.CreatedBy != "" {
			writeError(w, http.StatusBadRequest, "invalid correction", "created_by: set by the server to the caller's token name; leave it out")
			return
		}
		c, err := src.AddCorrection(r.Context(), slo.Correction{
			SLO: r.PathValue("name"), Start: req.Start, End: req.End, Duration: req.Duration, RRule: req.RRule,
			TimeZone: req.TimeZone, Reason: req.Reason, CreatedBy: principalName(r),
		}, s.deps.Now())
		if err != nil {
			writeSLOError(w, err)
			return
		}
		s.deps.Logger.Info("SLO correction added", "slo", c.SLO, "id", c.ID, "created_by", c.CreatedBy, "reason", c.Reason)
		writeJSON(w, http.StatusCreated, c)
	})
	deleteCorrection := func(w http.ResponseWriter, r *http.Request, idText string) {
		id, err := strconv.ParseInt(idText, 10, 64)
		if err != nil || id <= 0 {
			writeError(w, http.StatusBadRequest, "invalid correction id", fmt.Sprintf("want a positive integer, got %q", idText))
			return
		}
		by := principalName(r)
		if err := src.DeleteCorrection(r.Context(), r.PathValue("name"), id, by, s.deps.Now()); err != nil {
			writeSLOError(w, err)
			return
		}
		s.deps.Logger.Info("SLO correction deleted", "slo", r.PathValue("name"), "id", id, "deleted_by", by)
		w.WriteHeader(http.StatusNoContent)
	}
	mux.HandleFunc("DELETE /api/v1/slos/{name}/corrections/{id}", func(w http.ResponseWriter, r *http.Request) {
		deleteCorrection(w, r, r.PathValue("id"))
	})
	mux.HandleFunc("DELETE /api/v1/slos/{name}/corrections", func(w http.ResponseWriter, r *http.Request) {
		deleteCorrection(w, r, r.URL.Query().Get("id"))
	})
	mux.HandleFunc("GET /api/v1/alerts", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		name, state := q.Get("slo"), q.Get("state")
		out := AlertList{Alerts: []slo.Alert{}}
		for _, a := range src.Alerts() {
			if (name == "" || a.SLO == name) && (state == "" || a.State.String() == state) {
				out.Alerts = append(out.Alerts, a)
			}
		}
		limit := 100
		if l := q.Get("limit"); l != "" {
			n, err := strconv.Atoi(l)
			if err != nil || n < 0 || n > 1000 {
				writeError(w, http.StatusBadRequest, "invalid limit", "want an integer from 0 to 1000")
				return
			}
			limit = n
		}
		out.Transitions = src.Transitions(name, limit)
		if limit == 0 {
			out.Transitions = []slo.Transition{}
		}
		writeJSON(w, http.StatusOK, out)
	})
}

// defaultHistoryPoints is the number of points a history answer aims
// for when no step is given.
const defaultHistoryPoints = 300

func (s *Server) sloHistory(w http.ResponseWriter, r *http.Request, src SLOSource) {
	now := s.deps.Now()
	q := r.URL.Query()
	to, err := parseTime(q.Get("to"), now, now)
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid to", err.Error())
		return
	}
	from, err := parseTime(q.Get("from"), to.Add(-24*time.Hour), now)
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid from", err.Error())
		return
	}
	var step time.Duration
	if v := q.Get("step"); v != "" {
		if step, err = units.ParseDuration(v); err != nil {
			writeError(w, http.StatusBadRequest, "invalid step", err.Error())
			return
		}
	} else {
		step = max(time.Minute, (to.Sub(from) / defaultHistoryPoints).Round(time.Minute))
	}
	pts, err := src.History(r.PathValue("name"), from, to, step, now)
	if err != nil {
		writeSLOError(w, err)
		return
	}
	if to.After(now) {
		to = now
	}
	writeJSON(w, http.StatusOK, SLOHistory{SLO: r.PathValue("name"), From: from, To: to, Step: units.FormatDuration(step), Points: pts})
}

// parseTime reads RFC 3339, Unix seconds, or a duration back from now
// ("-6h" or "6h"); empty gives def.
func parseTime(v string, def, now time.Time) (time.Time, error) {
	if v == "" {
		return def, nil
	}
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t, nil
	}
	if sec, err := strconv.ParseFloat(v, 64); err == nil {
		return time.Unix(0, int64(sec*float64(time.Second))), nil
	}
	if d, err := units.ParseDuration(strings.TrimPrefix(v, "-")); err == nil {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("want RFC 3339, Unix seconds or a duration back from now (6h), got %q", v)
}

// writeSLOError maps the engine's errors to status codes.
func writeSLOError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, slo.ErrUnknownSLO):
		writeError(w, http.StatusNotFound, "unknown SLO", err.Error())
	case errors.Is(err, slo.ErrUnknownCorrection):
		writeError(w, http.StatusNotFound, "unknown correction", err.Error())
	case errors.Is(err, slo.ErrInvalid):
		writeError(w, http.StatusBadRequest, "invalid request", err.Error())
	default:
		writeError(w, http.StatusInternalServerError, "internal error", err.Error())
	}
}
