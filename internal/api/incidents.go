package api

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/tailgate-sre/tailgate/internal/auth"
	"github.com/tailgate-sre/tailgate/internal/incident"
)

// IncidentService is what the incident endpoints read and change;
// *incident.Service implements it.
type IncidentService interface {
	Declare(ctx context.Context, req incident.DeclareRequest, actor string) (incident.Incident, error)
	List(ctx context.Context, openOnly bool, limit int) ([]incident.Incident, error)
	Get(ctx context.Context, id string) (incident.View, error)
	Assign(ctx context.Context, id string, role incident.Role, to, actor string) (incident.Incident, error)
	Note(ctx context.Context, id, text, actor string) error
	Update(ctx context.Context, id, text, actor string) error
	Mitigate(ctx context.Context, id, actor, note string) (incident.Incident, error)
	Resolve(ctx context.Context, id, actor, note string) (incident.Incident, error)
	Report(ctx context.Context, id string) (incident.Report, error)
	Postmortem(ctx context.Context, id string, w io.Writer) error
	Oncall(ctx context.Context, from, to time.Time) (incident.OncallReport, error)
}

var _ IncidentService = (*incident.Service)(nil)

// incidentRoutes registers the incident API: reads with scope read,
// changes with incidents:write.
func (s *Server) incidentRoutes(mux *http.ServeMux) {
	if s.deps.Incidents == nil {
		return
	}
	mux.HandleFunc("GET /api/v1/incidents", s.authorize(auth.ScopeRead, s.listIncidents))
	mux.HandleFunc("POST /api/v1/incidents", s.write(auth.ScopeIncidents, s.declareIncident))
	mux.HandleFunc("GET /api/v1/incidents/feed.atom", s.authorize(auth.ScopeRead, s.incidentFeed))
	mux.HandleFunc("GET /api/v1/incidents/{id}", s.authorize(auth.ScopeRead, s.getIncident))
	mux.HandleFunc("GET /api/v1/incidents/{id}/postmortem", s.authorize(auth.ScopeRead, s.incidentPostmortem))
	mux.HandleFunc("POST /api/v1/incidents/{id}/{action}", s.write(auth.ScopeIncidents, s.changeIncident))
	mux.HandleFunc("GET /api/v1/reports/oncall", s.authorize(auth.ScopeRead, s.oncallReport))
}

// oncallReport answers the on-call load over ?from= (default 7d ago,
// a time or a duration back from now) to ?to= (default now).
func (s *Server) oncallReport(w http.ResponseWriter, r *http.Request) {
	now := s.deps.Now()
	from, to, ok := rangeParams(w, r, now, 7*24*time.Hour)
	if !ok {
		return
	}
	rep, err := s.deps.Incidents.Oncall(r.Context(), from, to)
	if err != nil {
		s.incidentError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, rep)
}

// IncidentChangeRequest is the body of POST /api/v1/incidents/{id}/{action}:
// assign takes role and to; note and update take text; mitigate and
// resolve an optional text.
type IncidentChangeRequest struct {
	Role string `json:"role,omitempty"`
	To   string `json:"to,omitempty"`
	Text string `json:"text,omitempty"`
}

func (s *Server) incidentError(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, incident.ErrNotFound):
		writeError(w, http.StatusNotFound, "not found", err.Error())
	case errors.Is(err, incident.ErrInvalid):
		writeError(w, http.StatusBadRequest, "invalid request", err.Error())
	case errors.Is(err, incident.ErrTransition):
		writeError(w, http.StatusConflict, "invalid state transition", err.Error())
	case errors.Is(err, context.Canceled):
	default:
		s.deps.Logger.Error("incident request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		writeError(w, http.StatusInternalServerError, "internal error", err.Error())
	}
}

func (s *Server) listIncidents(w http.ResponseWriter, r *http.Request) {
	open := r.URL.Query().Get("state") != "all"
	limit := 100
	if q := r.URL.Query().Get("limit"); q != "" {
		n, err := strconv.Atoi(q)
		if err != nil || n < 1 || n > 1000 {
			writeError(w, http.StatusBadRequest, "invalid request", "limit: want 1 to 1000, got "+strconv.Quote(q))
			return
		}
		limit = n
	}
	list, err := s.deps.Incidents.List(r.Context(), open, limit)
	if err != nil {
		s.incidentError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"incidents": list})
}

func (s *Server) declareIncident(w http.ResponseWriter, r *http.Request) {
	var req incident.DeclareRequest
	if !decodeJSON(w, r, &req) {
		return
	}
	inc, err := s.deps.Incidents.Declare(r.Context(), req, principalName(r))
	if err != nil {
		s.incidentError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, inc)
}

func (s *Server) getIncident(w http.ResponseWriter, r *http.Request) {
	v, err := s.deps.Incidents.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		s.incidentError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

// incidentPostmortem answers the draft in Markdown, or its numbers as
// JSON with ?format=json.
func (s *Server) incidentPostmortem(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if r.URL.Query().Get("format") == "json" {
		rep, err := s.deps.Incidents.Report(r.Context(), id)
		if err != nil {
			s.incidentError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, rep)
		return
	}
	var buf bytes.Buffer
	if err := s.deps.Incidents.Postmortem(r.Context(), id, &buf); err != nil {
		s.incidentError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "text/markdown; charset=utf-8")
	_, _ = w.Write(buf.Bytes())
}

func (s *Server) changeIncident(w http.ResponseWriter, r *http.Request) {
	var req IncidentChangeRequest
	if !decodeJSON(w, r, &req) {
		return
	}
	id, actor, ctx := r.PathValue("id"), principalName(r), r.Context()
	var inc incident.Incident
	var err error
	switch r.PathValue("action") {
	case "assign":
		var role incident.Role
		if role, err = incident.ParseRole(req.Role); err == nil {
			inc, err = s.deps.Incidents.Assign(ctx, id, role, req.To, actor)
		}
	case "notes":
		err = s.deps.Incidents.Note(ctx, id, req.Text, actor)
	case "updates":
		err = s.deps.Incidents.Update(ctx, id, req.Text, actor)
	case "mitigate":
		inc, err = s.deps.Incidents.Mitigate(ctx, id, actor, req.Text)
	case "resolve":
		inc, err = s.deps.Incidents.Resolve(ctx, id, actor, req.Text)
	default:
		writeError(w, http.StatusNotFound, "not found", "no incident action "+strconv.Quote(r.PathValue("action"))+"; want assign, notes, updates, mitigate or resolve")
		return
	}
	if err != nil {
		s.incidentError(w, r, err)
		return
	}
	if inc.ID == "" {
		v, err := s.deps.Incidents.Get(ctx, id)
		if err != nil {
			s.incidentError(w, r, err)
			return
		}
		inc = v.Incident
	}
	writeJSON(w, http.StatusOK, inc)
}

// The Atom feed of incidents and their status updates, for status pages.
type (
	atomFeed struct {
		XMLName xml.Name    `xml:"http://www.w3.org/2005/Atom feed"`
		Title   string      `xml:"title"`
		ID      string      `xml:"id"`
		Updated string      `xml:"updated"`
		Entries []atomEntry `xml:"entry"`
	}
	atomEntry struct {
		Title   string `xml:"title"`
		ID      string `xml:"id"`
		Updated string `xml:"updated"`
		Author  struct {
			Name string `xml:"name"`
		} `xml:"author"`
		Content string `xml:"content"`
	}
)

// incidentFeed answers the incidents' declarations, status updates and
// state changes as an Atom feed, newest first.
func (s *Server) incidentFeed(w http.ResponseWriter, r *http.Request) {
	list, err := s.deps.Incidents.List(r.Context(), false, 50)
	if err != nil {
		s.incidentError(w, r, err)
		return
	}
	feed := atomFeed{Title: "tailgate incidents", ID: "urn:tailgate:incidents", Updated: s.deps.Now().UTC().Format(time.RFC3339)}
	for _, inc := range list {
		v, err := s.deps.Incidents.Get(r.Context(), inc.ID)
		if err != nil {
			s.incidentError(w, r, err)
			return
		}
		for i := len(v.Timeline) - 1; i >= 0; i-- {
			e := v.Timeline[i]
			if e.Kind != incident.KindUpdate && e.Kind != incident.KindDeclared && e.Kind != incident.KindState {
				continue
			}
			ae := atomEntry{Title: inc.ID + " " + inc.Title + " (" + string(inc.State) + ")",
				ID:      "urn:tailgate:incident:" + inc.ID + ":" + strconv.FormatInt(e.At.UnixNano(), 10),
				Updated: e.At.UTC().Format(time.RFC3339), Content: e.Text}
			ae.Author.Name = e.Actor
			feed.Entries = append(feed.Entries, ae)
		}
	}
	w.Header().Set("Content-Type", "application/atom+xml; charset=utf-8")
	_, _ = io.WriteString(w, xml.Header)
	_ = xml.NewEncoder(w).Encode(feed)
}
