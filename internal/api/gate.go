package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/tailgate-sre/tailgate/internal/auth"
	"github.com/tailgate-sre/tailgate/internal/gate"
	"github.com/tailgate-sre/tailgate/internal/units"
)

// GateService is what the gate endpoints use; *gate.Gate implements it.
type GateService interface {
	Check(ctx context.Context, req gate.CheckRequest) (gate.Decision, error)
	Decisions(ctx context.Context, q gate.DecisionQuery) ([]gate.Decision, error)
	CreateOverride(ctx context.Context, req gate.OverrideRequest) (gate.Override, error)
	Overrides(ctx context.Context, q gate.OverrideQuery) ([]gate.Override, error)
	RevokeOverride(ctx context.Context, id, by string) (gate.Override, error)
	RecordDeploy(ctx context.Context, d gate.Deploy) (gate.Deploy, error)
	Deploys(ctx context.Context, q gate.DeployQuery) ([]gate.Deploy, error)
	Risk(ctx context.Context, service string) (gate.RiskReport, error)
}

var _ GateService = (*gate.Gate)(nil)

// gateRoutes registers the release gate, its adapters (Argo Rollouts web
// metric, Flagger webhooks), overrides, deploy markers and the risk report.
// Gate checks are questions (authorize); overrides and deploy markers are
// writes (write).
func (s *Server) gateRoutes(mux *http.ServeMux) {
	if s.deps.Gate == nil {
		return
	}
	mux.HandleFunc("POST /api/v1/gate/check", s.authorize(auth.ScopeGateCheck, s.gateCheck))
	mux.HandleFunc("GET /api/v1/gate/argo", s.authorize(auth.ScopeGateCheck, s.gateArgo))
	mux.HandleFunc("POST /api/v1/gate/flagger/{hook}", s.gateFlagger) // authorizes itself: Flagger cannot send headers
	mux.HandleFunc("GET /api/v1/gate/decisions", s.authorize(auth.ScopeRead, s.gateDecisions))
	mux.HandleFunc("POST /api/v1/gate/overrides", s.write(auth.ScopeGateOverride, s.createOverride))
	mux.HandleFunc("GET /api/v1/gate/overrides", s.authorize(auth.ScopeRead, s.listOverrides))
	mux.HandleFunc("DELETE /api/v1/gate/overrides/{id}", s.write(auth.ScopeGateOverride, s.revokeOverride))
	mux.HandleFunc("POST /api/v1/deploys", s.write(auth.ScopeGateCheck, s.recordDeploy))
	mux.HandleFunc("GET /api/v1/deploys", s.authorize(auth.ScopeRead, s.listDeploys))
	mux.HandleFunc("GET /api/v1/services/{s}/risk", s.authorize(auth.ScopeRead, s.serviceRisk))
}

// maxBody bounds request bodies of the gate endpoints.
const maxBody = 1 << 20

// decodeJSON reads a request body strictly: unknown fields and trailing
// data are errors, so that a typo ("change-class") never goes unnoticed.
func decodeJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil && dec.More() {
		err = errors.New("trailing data after the JSON object")
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid request", "decode JSON body: "+err.Error())
		return false
	}
	return true
}

// gateError maps a gate error to its status at the edge.
func (s *Server) gateError(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, gate.ErrInvalid):
		writeError(w, http.StatusBadRequest, "invalid request", strings.TrimPrefix(err.Error(), gate.ErrInvalid.Error()+": "))
	case errors.Is(err, gate.ErrNotFound):
		writeError(w, http.StatusNotFound, "not found", err.Error())
	case errors.Is(err, context.Canceled):
		// The caller went away; nobody reads the answer.
	default:
		s.deps.Logger.Error("gate request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		writeError(w, http.StatusInternalServerError, "internal error", err.Error())
	}
}

func (s *Server) gateCheck(w http.ResponseWriter, r *http.Request) {
	var req gate.CheckRequest
	if !decodeJSON(w, r, &req) {
		return
	}
	req.Principal, req.Source = principalName(r), "api"
	d, err := s.deps.Gate.Check(r.Context(), req)
	if err != nil {
		s.gateError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, d)
}

// gateArgo is the Argo Rollouts web metric provider: always 200 with the
// decision, so that the AnalysisTemplate's successCondition
// (result.decision == "allow") and failureCondition (result.decision ==
// "deny") read it; canary is neither, which Argo counts as inconclusive.
func (s *Server) gateArgo(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	req := gate.CheckRequest{
		Service:     q.Get("service"),
		ChangeClass: gate.ChangeClass(q.Get("change_class")),
		Version:     q.Get("version"),
		Environment: q.Get("environment"),
		RequestedBy: q.Get("requested_by"),
		Principal:   principalName(r),
		Source:      "argo-rollouts",
	}
	if req.ChangeClass == "" {
		req.ChangeClass = gate.Feature
	}
	if req.RequestedBy == "" {
		req.RequestedBy = "argo-rollouts"
	}
	d, err := s.deps.Gate.Check(r.Context(), req)
	if err != nil {
		s.gateError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, d)
}

// FlaggerPayload is the body Flagger POSTs to its webhooks.
type FlaggerPayload struct {
	Name      string            `json:"name"`
	Namespace string            `json:"namespace"`
	Phase     string            `json:"phase"`
	Checksum  string            `json:"checksum,omitempty"`
	BuildID   string            `json:"buildId,omitempty"`
	Metadata  map[string]string `json:"metadata,omitempty"`
}

// FlaggerAnswer is the gate's answer to a Flagger webhook; Flagger shows
// the body of a refusal in its events.
type FlaggerAnswer struct {
	Decision   gate.Verdict `json:"decision"`
	Advance    bool         `json:"advance"`
	Reason     string       `json:"reason"`
	PolicyRule string       `json:"policy_rule"`
	Reasons    []string     `json:"reasons"`
	DecisionID string       `json:"decision_id"`
}

// flaggerHooks are the webhook types the gate answers.
func flaggerHook(hook string) bool {
	switch hook {
	case "confirm-rollout", "pre-rollout", "rollout", "confirm-traffic-increase", "confirm-promotion":
		return true
	}
	return false
}

// gateFlagger answers Flagger's gating webhooks: 200 advances, 403 halts.
// The change is named by the webhook's metadata (service, change_class,
// version, environment), defaulting to the canary's name, feature and its
// namespace. A canary verdict lets the rollout start (it is a canary) and
// its weight steps go on (confirm-traffic-increase: Flagger's payload
// carries no weight) but not promote: confirm-promotion answers 403 until
// the policy allows.
//
// Flagger sends no custom headers, so a bearer token may come in the
// metadata's token key; a token with only the gate:check scope limits what
// a leaked Canary manifest can do.
func (s *Server) gateFlagger(w http.ResponseWriter, r *http.Request) {
	hook := r.PathValue("hook")
	if !flaggerHook(hook) {
		writeError(w, http.StatusNotFound, "not found", fmt.Sprintf("unknown Flagger hook %q (confirm-rollout, pre-rollout, rollout, confirm-traffic-increase, confirm-promotion)", hook))
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid request", "read body: "+err.Error())
		return
	}
	var p FlaggerPayload
	if err := json.Unmarshal(body, &p); err != nil {
		writeError(w, http.StatusBadRequest, "invalid request", "decode Flagger payload: "+err.Error())
		return
	}
	s.flaggerAuthorize(w, r, p, func(w http.ResponseWriter, r *http.Request) { s.flaggerDecide(w, r, hook, p) })
}

// flaggerAuthorize runs a Flagger webhook's handler for a caller with the
// gate:check scope. Flagger sends no custom headers, so the bearer token
// may come in the webhook's metadata (key token).
func (s *Server) flaggerAuthorize(w http.ResponseWriter, r *http.Request, p FlaggerPayload, run http.HandlerFunc) {
	a := s.deps.Auth
	if a.Open() {
		s.authorize(auth.ScopeGateCheck, run)(w, r)
		return
	}
	var pr auth.Principal
	var err error
	if r.Header.Get("Authorization") == "" && p.Metadata["token"] != "" {
		pr, err = a.AuthenticateToken(p.Metadata["token"])
	} else {
		pr, err = a.Authenticate(r)
	}
	s.authorized(w, r, auth.ScopeGateCheck, pr, err, run)
}

func (s *Server) flaggerDecide(w http.ResponseWriter, r *http.Request, hook string, p FlaggerPayload) {
	md := p.Metadata
	or := func(v, def string) string {
		if v != "" {
			return v
		}
		return def
	}
	req := gate.CheckRequest{
		Service:     or(md["service"], p.Name),
		ChangeClass: gate.ChangeClass(or(md["change_class"], string(gate.Feature))),
		Version:     md["version"],
		Environment: or(md["environment"], p.Namespace),
		RequestedBy: or(md["requested_by"], "flagger/"+p.Namespace+"/"+p.Name+" "+hook),
		Principal:   principalName(r),
		Source:      "flagger",
	}
	d, err := s.deps.Gate.Check(r.Context(), req)
	if err != nil {
		s.gateError(w, r, err)
		return
	}
	advance := d.Verdict == gate.Allow || (d.Verdict == gate.Canary && hook != "confirm-promotion")
	ans := FlaggerAnswer{Decision: d.Verdict, Advance: advance, PolicyRule: d.PolicyRule, Reasons: d.Reasons, DecisionID: d.ID}
	if len(d.Reasons) > 0 {
		ans.Reason = d.Reasons[0]
	}
	status := http.StatusOK
	if !advance {
		status = http.StatusForbidden
		if d.Verdict == gate.Canary {
			ans.Reason = "the policy allows this change only as a canary (" + strconv.FormatFloat(d.CanaryWeight, 'f', -1, 64) + "% suggested): not promoting. " + ans.Reason
		}
	}
	writeJSON(w, status, ans)
}

// rangeParams reads ?from= and ?to= (each a time or a duration back from
// now; defaults now−def and now), answering 400 and false when either is
// bad or from is not before to.
func rangeParams(w http.ResponseWriter, r *http.Request, now time.Time, def time.Duration) (from, to time.Time, ok bool) {
	from, to = now.Add(-def), now
	for _, p := range []struct {
		name string
		t    *time.Time
	}{{"from", &from}, {"to", &to}} {
		if q := r.URL.Query().Get(p.name); q != "" {
			v, err := timeParam(q, now)
			if err != nil {
				writeError(w, http.StatusBadRequest, "invalid request", p.name+": "+err.Error())
				return from, to, false
			}
			*p.t = v
		}
	}
	if !from.Before(to) {
		writeError(w, http.StatusBadRequest, "invalid request", "from must be before to")
		return from, to, false
	}
	return from, to, true
}

// timeParam reads a time query parameter: RFC 3339, or a duration meaning
// that long before now ("24h", "7d").
func timeParam(q string, now time.Time) (time.Time, error) {
	if q == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, q); err == nil {
		return t, nil
	}
	if d, err := units.ParseDuration(q); err == nil && d > 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("must be an RFC 3339 time (2026-03-01T12:00:00Z) or a duration before now (24h, 7d), got %q", q)
}

// listParams reads service, from, to and limit.
func listParams(w http.ResponseWriter, r *http.Request, now time.Time) (service string, from, to time.Time, limit int, ok bool) {
	q := r.URL.Query()
	var err error
	if from, err = timeParam(q.Get("from"), now); err != nil {
		writeError(w, http.StatusBadRequest, "invalid request", "from: "+err.Error())
		return
	}
	if to, err = timeParam(q.Get("to"), now); err != nil {
		writeError(w, http.StatusBadRequest, "invalid request", "to: "+err.Error())
		return
	}
	if l := q.Get("limit"); l != "" {
		if limit, err = strconv.Atoi(l); err != nil || limit <= 0 || limit > gate.MaxLimit {
			writeError(w, http.StatusBadRequest, "invalid request", fmt.Sprintf("limit: must be an integer from 1 to %d, got %q", gate.MaxLimit, l))
			return
		}
	}
	return q.Get("service"), from, to, limit, true
}

func (s *Server) gateDecisions(w http.ResponseWriter, r *http.Request) {
	service, from, to, limit, ok := listParams(w, r, s.deps.Now())
	if !ok {
		return
	}
	ds, err := s.deps.Gate.Decisions(r.Context(), gate.DecisionQuery{Service: service, From: from, To: to, Limit: limit})
	if err != nil {
		s.gateError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"decisions": ds})
}

func (s *Server) createOverride(w http.ResponseWriter, r *http.Request) {
	var req gate.OverrideRequest
	if !decodeJSON(w, r, &req) {
		return
	}
	req.CreatedBy = principalName(r)
	o, err := s.deps.Gate.CreateOverride(r.Context(), req)
	if err != nil {
		s.gateError(w, r, err)
		return
	}
	w.Header().Set("Location", "/api/v1/gate/overrides/"+o.ID)
	writeJSON(w, http.StatusCreated, o)
}

// listOverrides lists the active overrides, or with all=true every
// override with its status.
func (s *Server) listOverrides(w http.ResponseWriter, r *http.Request) {
	service, _, _, limit, ok := listParams(w, r, s.deps.Now())
	if !ok {
		return
	}
	q := gate.OverrideQuery{Service: service, Limit: limit}
	switch r.URL.Query().Get("all") {
	case "true", "1":
	case "", "false", "0":
		q.ActiveOnly = true
	default:
		writeError(w, http.StatusBadRequest, "invalid request", "all: must be true or false")
		return
	}
	os, err := s.deps.Gate.Overrides(r.Context(), q)
	if err != nil {
		s.gateError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"overrides": os})
}

func (s *Server) revokeOverride(w http.ResponseWriter, r *http.Request) {
	o, err := s.deps.Gate.RevokeOverride(r.Context(), r.PathValue("id"), principalName(r))
	if err != nil {
		s.gateError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, o)
}

func (s *Server) recordDeploy(w http.ResponseWriter, r *http.Request) {
	var d gate.Deploy
	if !decodeJSON(w, r, &d) {
		return
	}
	if d.ID != "" || d.Principal != "" {
		writeError(w, http.StatusBadRequest, "invalid request", "id and principal are set by the server")
		return
	}
	d.Principal = principalName(r)
	d, err := s.deps.Gate.RecordDeploy(r.Context(), d)
	if err != nil {
		s.gateError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, d)
}

func (s *Server) listDeploys(w http.ResponseWriter, r *http.Request) {
	service, from, to, limit, ok := listParams(w, r, s.deps.Now())
	if !ok {
		return
	}
	ds, err := s.deps.Gate.Deploys(r.Context(), gate.DeployQuery{Service: service, From: from, To: to, Limit: limit})
	if err != nil {
		s.gateError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"deploys": ds})
}

func (s *Server) serviceRisk(w http.ResponseWriter, r *http.Request) {
	rep, err := s.deps.Gate.Risk(r.Context(), r.PathValue("s"))
	if err != nil {
		s.gateError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, rep)
}
