package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/tailgate-sre/tailgate/internal/auth"
	"github.com/tailgate-sre/tailgate/internal/canary"
	"github.com/tailgate-sre/tailgate/internal/gate"
	"github.com/tailgate-sre/tailgate/internal/signals"
)

// CanaryService judges canaries; *canary.Checker implements it.
type CanaryService interface {
	Check(req canary.CheckRequest) (canary.CheckResult, error)
	Regression(m canary.Marker) canary.Regression
	// Series is Check with the test minute by minute, for the dashboard.
	Series(req canary.CheckRequest) (canary.SeriesResult, error)
	// Versions lists the services serving more than one version lately.
	Versions(window time.Duration) []canary.ServiceVersions
}

var _ CanaryService = (*canary.Checker)(nil)

// canaryRoutes registers the canary check (a question: scope gate:check)
// and its Argo Rollouts and Flagger adapters.
func (s *Server) canaryRoutes(mux *http.ServeMux) {
	if s.deps.Canary == nil {
		return
	}
	mux.HandleFunc("POST /api/v1/canary/check", s.authorize(auth.ScopeGateCheck, s.canaryCheck))
	mux.HandleFunc("GET /api/v1/canary/argo", s.authorize(auth.ScopeGateCheck, s.canaryArgo))
	mux.HandleFunc("POST /api/v1/canary/flagger/{hook}", s.canaryFlagger) // authorizes itself, like the gate's
	mux.HandleFunc("GET /api/v1/canary/versions", s.authorize(auth.ScopeRead, s.canaryVersions))
	mux.HandleFunc("GET /api/v1/canary/series", s.authorize(auth.ScopeRead, s.canarySeries))
	if s.deps.Gate != nil {
		mux.HandleFunc("GET /api/v1/deploys/regression", s.authorize(auth.ScopeGateCheck, s.deployRegression))
	}
}

// canaryVersionsWindow is how far back GET /api/v1/canary/versions looks
// for versions serving side by side.
const canaryVersionsWindow = time.Hour

// CanaryVersions is GET /api/v1/canary/versions's answer.
type CanaryVersions struct {
	// Window is how far back versions were counted.
	Window   string                   `json:"window"`
	Services []canary.ServiceVersions `json:"services"`
	// Canaries are every version of those services but the busiest, each
	// judged against the busiest.
	Canaries []CanaryRow `json:"canaries"`
}

// CanaryRow is one version judged as a canary against its service's
// busiest version.
type CanaryRow struct {
	Service   string         `json:"service"`
	Canary    string         `json:"canary"`
	Baseline  string         `json:"baseline"`
	Requests  uint64         `json:"requests"`
	FirstSeen time.Time      `json:"first_seen"`
	Verdict   canary.Outcome `json:"verdict"`
	Rule      string         `json:"rule"`
	Reason    string         `json:"reason"`
}

// canaryVersions answers GET /api/v1/canary/versions: the services with
// more than one version serving in the last hour, busiest version first,
// and each other version's verdict against the busiest (the dashboard's
// list of canaries).
func (s *Server) canaryVersions(w http.ResponseWriter, _ *http.Request) {
	ans := CanaryVersions{Window: canaryVersionsWindow.String(), Services: s.deps.Canary.Versions(canaryVersionsWindow), Canaries: []CanaryRow{}}
	if ans.Services == nil {
		ans.Services = []canary.ServiceVersions{}
	}
	for _, sv := range ans.Services {
		base := sv.Versions[0].Version
		for _, v := range sv.Versions[1:] {
			row := CanaryRow{Service: sv.Service, Canary: v.Version, Baseline: base, Requests: v.Requests, FirstSeen: v.FirstSeen}
			if res, err := s.deps.Canary.Check(canary.CheckRequest{Service: sv.Service, Canary: v.Version, Baseline: base}); err == nil {
				row.Verdict, row.Rule, row.Reason = res.Verdict.Verdict, res.Rule, res.Reason
			}
			ans.Canaries = append(ans.Canaries, row)
		}
	}
	writeJSON(w, http.StatusOK, ans)
}

// canarySeries answers GET /api/v1/canary/series?service=S&canary=V
// [&baseline=B]: the verdict now and the test minute by minute since the
// canary was first seen.
func (s *Server) canarySeries(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	res, err := s.deps.Canary.Series(canary.CheckRequest{Service: q.Get("service"), Canary: q.Get("canary"), Baseline: q.Get("baseline")})
	if canaryError(w, err) {
		return
	}
	writeJSON(w, http.StatusOK, res)
}

// RegressionAnswer is GET /api/v1/deploys/regression's answer: the deploy
// judged and the verdict.
type RegressionAnswer struct {
	Deploy     gate.Deploy       `json:"deploy"`
	Regression canary.Regression `json:"regression"`
	// Origin says where the failed requests since the deploy started: in
	// the service's own code or in a dependency (from the kept error
	// traces); ErrorOrigins has the detail. Empty without failed requests
	// analysed.
	Origin       string                `json:"origin,omitempty"`
	ErrorOrigins *signals.ErrorOrigins `json:"error_origins,omitempty"`
}

// deployRegression answers GET /api/v1/deploys/regression?service=S[&id=ID]:
// the service after its deploy marker (the latest one that is not a
// rollback, or the one named) against itself before it.
func (s *Server) deployRegression(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	svc, id := q.Get("service"), q.Get("id")
	if svc == "" {
		writeError(w, http.StatusBadRequest, "invalid request", "service: required")
		return
	}
	ds, err := s.deps.Gate.Deploys(r.Context(), gate.DeployQuery{Service: svc, Limit: gate.MaxLimit})
	if err != nil {
		s.gateError(w, r, err)
		return
	}
	var d *gate.Deploy
	for i := len(ds) - 1; i >= 0; i-- {
		if id == "" && ds[i].ChangeClass != gate.Rollback || id != "" && ds[i].ID == id {
			d = &ds[i]
			break
		}
	}
	if d == nil {
		what := "no deploy marker of " + svc + " (other than rollbacks)"
		if id != "" {
			what = "no deploy marker " + id + " of " + svc
		}
		writeError(w, http.StatusNotFound, "not found", what+": record one with tailgate gate deploy")
		return
	}
	marker := canary.Marker{Service: d.Service, At: d.Time, RollbackCommand: d.RollbackCommand}
	reg := s.deps.Canary.Regression(marker)
	ans := RegressionAnswer{Deploy: *d, Regression: reg}
	if src := s.deps.Services; src != nil {
		// Best effort: the verdict stands without it.
		now := s.deps.Now()
		at := d.Time.Truncate(time.Minute)
		from := at.Add(time.Minute)
		if from.Before(now) {
			if eo, err := src.ErrorOrigins(r.Context(), svc, signals.Query{From: from, To: now}, now); err == nil && eo.FailedRequests > 0 {
				ans.ErrorOrigins, ans.Origin = &eo, originSentence(eo)
				// The same window before the deploy as the verdict's, for
				// what is new since.
				if reg.RequestsBefore > 0 {
					prev, err := src.ErrorOrigins(r.Context(), svc, signals.Query{From: at.Add(-marker.BeforeWindow()), To: at}, now)
					if err == nil {
						ans.Origin = newOriginSentence(prev, eo, float64(reg.RequestsAfter)/float64(reg.RequestsBefore))
					}
				}
			}
		}
	}
	writeJSON(w, http.StatusOK, ans)
}

// newOriginSentence says where the failed requests beyond those expected
// at the rate before the deploy started: the origin with the most more
// than its own count before predicts (scaled by the traffic after over
// before), and whether the service's own errors changed, e.g. "new
// failures originate in a dependency, payments POST /charge (5xx): 95 of
// the 100 failed requests beyond the rate before the deploy; checkout's
// own errors are unchanged (20, 18 expected)".
func newOriginSentence(before, after signals.ErrorOrigins, scale float64) string {
	expected := scale * before.FailedRequests
	excess := after.FailedRequests - expected
	if excess < 1 {
		return fmt.Sprintf("no new failures: %.0f failed requests since the deploy, %.0f expected at the rate before it", after.FailedRequests, expected)
	}
	type key struct {
		service, operation, reason string
		dependency                 bool
	}
	prior := map[key]float64{}
	for _, o := range before.Origins {
		prior[key{o.Service, o.Operation, o.Reason, o.Dependency}] += scale * o.Requests
	}
	var best *signals.Origin
	bestNew := 0.0
	for i, o := range after.Origins {
		if n := o.Requests - prior[key{o.Service, o.Operation, o.Reason, o.Dependency}]; best == nil || n > bestNew {
			best, bestNew = &after.Origins[i], n
		}
	}
	ownExpected := scale * before.OriginatedHere
	own := fmt.Sprintf("%s's own errors are unchanged (%.0f, %.0f expected)", after.Service, after.OriginatedHere, ownExpected)
	if grew := after.OriginatedHere - ownExpected; grew > max(2, 0.1*excess) {
		own = fmt.Sprintf("%s's own errors grew by %.0f (%.0f, %.0f expected)", after.Service, grew, after.OriginatedHere, ownExpected)
	}
	if best == nil || bestNew < 1 {
		return fmt.Sprintf("%.0f failed requests beyond the rate before the deploy, from no single origin; %s", excess, own)
	}
	if best.Service != after.Service || best.Dependency {
		return fmt.Sprintf("new failures originate in a dependency, %s %s (%s): %.0f of the %.0f failed requests beyond the rate before the deploy; %s",
			best.Service, best.Operation, best.Reason, min(bestNew, excess), excess, own)
	}
	return fmt.Sprintf("new failures originate in %s's own code, %s (%s): %.0f of the %.0f failed requests beyond the rate before the deploy (%.0f, %.0f expected)",
		after.Service, best.Operation, best.Reason, min(bestNew, excess), excess, after.OriginatedHere, ownExpected)
}

// originSentence says whether most failed requests of eo started in the
// service itself or in a dependency, and which.
func originSentence(eo signals.ErrorOrigins) string {
	if eo.OriginatedHere >= eo.Propagated {
		return fmt.Sprintf("own code: %.0f of %.0f failed requests since the deploy start in %s itself", eo.OriginatedHere, eo.FailedRequests, eo.Service)
	}
	where := "a dependency"
	for _, o := range eo.Origins {
		if o.Service != eo.Service || o.Dependency {
			where = fmt.Sprintf("a dependency: %s %s (%s)", o.Service, o.Operation, o.Reason)
			break
		}
	}
	return fmt.Sprintf("%s: %.0f of %.0f failed requests since the deploy start there, %.0f in %s itself", where, eo.Propagated, eo.FailedRequests, eo.OriginatedHere, eo.Service)
}

func (s *Server) canaryAnswer(w http.ResponseWriter, req canary.CheckRequest, status func(canary.CheckResult) int) {
	res, err := s.deps.Canary.Check(req)
	if canaryError(w, err) {
		return
	}
	writeJSON(w, status(res), res)
}

// canaryError answers a failed canary check, if err is one: 400 for a
// request that names no service or canary, else 500.
func canaryError(w http.ResponseWriter, err error) bool {
	switch {
	case errors.Is(err, canary.ErrInvalid):
		writeError(w, http.StatusBadRequest, "invalid request", err.Error())
	case err != nil:
		writeError(w, http.StatusInternalServerError, "internal error", err.Error())
	default:
		return false
	}
	return true
}

func ok200(canary.CheckResult) int { return http.StatusOK }

// canaryCheck answers POST /api/v1/canary/check: the verdict is in the
// body (verdict: pass, fail or inconclusive), always with 200.
func (s *Server) canaryCheck(w http.ResponseWriter, r *http.Request) {
	var req canary.CheckRequest
	if !decodeJSON(w, r, &req) {
		return
	}
	s.canaryAnswer(w, req, ok200)
}

// canaryArgo answers an Argo Rollouts web metric:
// ?service=S&canary=V[&baseline=B]. An AnalysisTemplate reads
// jsonPath "{$.verdict}" with successCondition result == "pass" and
// failureCondition result == "fail"; inconclusive is neither, which Argo
// counts as an inconclusive measurement.
func (s *Server) canaryArgo(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	s.canaryAnswer(w, canary.CheckRequest{Service: q.Get("service"), Canary: q.Get("canary"), Baseline: q.Get("baseline")}, ok200)
}

// canaryFlagger answers a Flagger webhook (the rollout hook, run at every
// analysis step): 200 unless the verdict is fail, then 412, so Flagger
// counts a failed check and rolls back at its threshold. The metadata
// names service, canary (version) and optionally baseline; like the
// gate's hooks, a token may come in the metadata's token key.
func (s *Server) canaryFlagger(w http.ResponseWriter, r *http.Request) {
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
	run := func(w http.ResponseWriter, r *http.Request) {
		md := p.Metadata
		svc := md["service"]
		if svc == "" {
			svc = p.Name
		}
		s.canaryAnswer(w, canary.CheckRequest{Service: svc, Canary: md["canary"], Baseline: md["baseline"]}, func(res canary.CheckResult) int {
			if res.Verdict.Verdict == canary.Fail {
				return http.StatusPreconditionFailed
			}
			return http.StatusOK
		})
	}
	s.flaggerAuthorize(w, r, p, run)
}
