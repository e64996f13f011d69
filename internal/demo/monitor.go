package demo

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// client reads tailgate's HTTP API, the one users script against.
type client struct {
	base string
	http *http.Client
}

func newClient(base string) *client {
	return &client{base: base, http: &http.Client{Timeout: 5 * time.Second}}
}

// do sends a request with an optional JSON body and decodes the JSON
// answer into out.
func (c *client) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("encode %s %s: %w", method, path, err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return fmt.Errorf("build %s %s: %w", method, path, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("read answer of %s %s: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		var e struct{ Error, Detail string }
		_ = json.Unmarshal(data, &e)
		return fmt.Errorf("%s %s: HTTP %d: %s %s", method, path, resp.StatusCode, e.Error, e.Detail)
	}
	if out == nil {
		return nil
	}
	if raw, ok := out.(*[]byte); ok {
		*raw = data
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("decode answer of %s %s: %w", method, path, err)
	}
	return nil
}

// raw GETs path and returns the answer's bytes.
func (c *client) raw(ctx context.Context, path string) ([]byte, error) {
	var b []byte
	err := c.do(ctx, http.MethodGet, path, nil, &b)
	return b, err
}

// apiSLO is the part of an SLO's status the demo shows.
type apiSLO struct {
	Name            string              `json:"name"`
	Service         string              `json:"service"`
	Objective       float64             `json:"objective"`
	Window          string              `json:"window"`
	SLIKind         string              `json:"sli_kind"`
	Good            float64             `json:"good"`
	Total           float64             `json:"total"`
	BudgetRemaining *float64            `json:"budget_remaining"`
	BurnRates       map[string]*float64 `json:"burn_rates"`
	Windows         []struct {
		Window   string   `json:"window"`
		BurnRate *float64 `json:"burn_rate"`
	} `json:"windows"`
	Alerts []apiAlert `json:"alerts"`
}

// burn returns the burn rate over window w, from the burn-rate table or
// the window list (which also holds the alert tiers' scaled windows).
func (s *apiSLO) burn(w string) *float64 {
	if b, ok := s.BurnRates[w]; ok {
		return b
	}
	for _, x := range s.Windows {
		if x.Window == w {
			return x.BurnRate
		}
	}
	return nil
}

// apiAlert is a pending or firing alert.
type apiAlert struct {
	SLO      string      `json:"slo"`
	Name     string      `json:"name"`
	Severity string      `json:"severity"`
	State    string      `json:"state"`
	Values   alertValues `json:"values"`
}

type alertValues struct {
	Threshold       float64  `json:"threshold"`
	LongWindow      string   `json:"long_window"`
	ShortWindow     string   `json:"short_window"`
	BurnRateLong    *float64 `json:"burn_rate_long"`
	BurnRateShort   *float64 `json:"burn_rate_short"`
	BudgetRemaining *float64 `json:"budget_remaining"`
}

// apiTransition is a change of an alert's state.
type apiTransition struct {
	SLO      string      `json:"slo"`
	Alert    string      `json:"alert"`
	Severity string      `json:"severity"`
	From     string      `json:"from"`
	To       string      `json:"to"`
	At       time.Time   `json:"at"`
	Values   alertValues `json:"values"`
}

// apiDecision is the part of a gate decision the demo shows.
type apiDecision struct {
	ID         string   `json:"id"`
	Decision   string   `json:"decision"`
	PolicyRule string   `json:"policy_rule"`
	Reasons    []string `json:"reasons"`
	StaleData  bool     `json:"stale_data"`
	Override   *struct {
		ID string `json:"id"`
	} `json:"override"`
}

// reason is the decision's deciding reason, or its rule.
func (d *apiDecision) reason() string {
	if len(d.Reasons) > 0 {
		return d.Reasons[0]
	}
	return d.PolicyRule
}

// Counters are the daemon's span counts, read from its metrics.
type Counters struct {
	In, Kept, Dropped, Buffered float64
}

// snapshot is what the demo saw at one poll.
type snapshot struct {
	At          time.Time
	Spans       Counters
	SLOs        []apiSLO
	Alerts      []apiAlert
	Transitions []apiTransition // newest first
	Gate        *apiDecision
	// Flag is the recommendations flag as an application sees it (OFREP).
	Flag *apiFlag
	// Incidents are the incidents declared so far, newest first.
	Incidents []apiIncident
	Errs      []error
}

// apiIncident is the part of an incident the demo shows.
type apiIncident struct {
	ID         string    `json:"id"`
	Title      string    `json:"title"`
	State      string    `json:"state"`
	Services   []string  `json:"services"`
	Origin     string    `json:"origin"`
	Source     string    `json:"source"`
	DeclaredAt time.Time `json:"declared_at"`
}

// DemoFlag is the flag the demo's kill switch guards.
const DemoFlag = "recommendations"

// apiFlag is an OFREP evaluation of the demo's flag, with the reason of
// the flag's last change when it is forced.
type apiFlag struct {
	Value    any            `json:"value"`
	Variant  string         `json:"variant"`
	Metadata map[string]any `json:"metadata"`
	Why      string         `json:"-"`
}

// gateQuestion is the change the demo asks the gate about on every poll.
func gateQuestion() map[string]string {
	return map[string]string{
		"service": Checkout, "change_class": "feature", "version": "3.9.0",
		"environment": "production", "requested_by": "tailgate-demo",
	}
}

// monitor polls the daemon: its metrics in process, the rest through the
// HTTP API.
type monitor struct {
	api      *client
	gatherer prometheus.Gatherer
	now      func() time.Time // the demo's clock
}

// poll reads everything the screen shows and asks the gate whether
// checkout may ship a feature now. A failed read is reported in Errs and
// leaves its part empty.
func (m *monitor) poll(ctx context.Context) snapshot {
	s := snapshot{At: m.now()}
	var err error
	if s.Spans, err = m.counters(); err != nil {
		s.Errs = append(s.Errs, err)
	}
	var slos struct {
		SLOs []apiSLO `json:"slos"`
	}
	if err := m.api.do(ctx, http.MethodGet, "/api/v1/slos", nil, &slos); err != nil {
		s.Errs = append(s.Errs, err)
	}
	s.SLOs = slos.SLOs
	var alerts struct {
		Alerts      []apiAlert      `json:"alerts"`
		Transitions []apiTransition `json:"transitions"`
	}
	if err := m.api.do(ctx, http.MethodGet, "/api/v1/alerts?limit=1000", nil, &alerts); err != nil {
		s.Errs = append(s.Errs, err)
	}
	s.Alerts, s.Transitions = alerts.Alerts, alerts.Transitions
	var f apiFlag
	if err := m.api.do(ctx, http.MethodPost, "/ofrep/v1/evaluate/flags/"+DemoFlag,
		map[string]any{"context": map[string]any{"targetingKey": "demo-shopper"}}, &f); err != nil {
		s.Errs = append(s.Errs, err)
	} else {
		var h struct {
			History []struct {
				Reason string `json:"reason"`
			} `json:"history"`
		}
		if f.Metadata["forced_by"] != nil && m.api.do(ctx, http.MethodGet, "/api/v1/flags/"+DemoFlag+"/history?limit=1", nil, &h) == nil && len(h.History) > 0 {
			f.Why = h.History[0].Reason
		}
		s.Flag = &f
	}
	var incs struct {
		Incidents []apiIncident `json:"incidents"`
	}
	if err := m.api.do(ctx, http.MethodGet, "/api/v1/incidents?state=all&limit=10", nil, &incs); err != nil {
		s.Errs = append(s.Errs, err)
	}
	s.Incidents = incs.Incidents
	var d apiDecision
	if err := m.api.do(ctx, http.MethodPost, "/api/v1/gate/check", gateQuestion(), &d); err != nil {
		s.Errs = append(s.Errs, err)
	} else {
		s.Gate = &d
	}
	return s
}

// counters reads the sampler's span counts from the daemon's registry.
func (m *monitor) counters() (Counters, error) {
	v, err := gatherSums(m.gatherer,
		"tailgate_sampler_spans_received_total", "tailgate_sampler_spans_kept_total",
		"tailgate_sampler_spans_not_sampled_total", "tailgate_sampler_buffered_spans")
	if err != nil {
		return Counters{}, err
	}
	return Counters{In: v[0], Kept: v[1], Dropped: v[2], Buffered: v[3]}, nil
}

// gatherSums returns, for each name, the sum of the metric's series
// (counters, gauges and untyped), 0 when absent.
func gatherSums(g prometheus.Gatherer, names ...string) ([]float64, error) {
	mfs, err := g.Gather()
	if err != nil {
		return nil, fmt.Errorf("gather metrics: %w", err)
	}
	out := make([]float64, len(names))
	for _, mf := range mfs {
		for i, n := range names {
			if mf.GetName() != n {
				continue
			}
			for _, m := range mf.GetMetric() {
				switch {
				case m.Counter != nil:
					out[i] += m.Counter.GetValue()
				case m.Gauge != nil:
					out[i] += m.Gauge.GetValue()
				case m.Untyped != nil:
					out[i] += m.Untyped.GetValue()
				}
			}
		}
	}
	return out, nil
}

// recordDeploy records a deploy marker through the API.
func (c *client) recordDeploy(ctx context.Context, service, version, class, description string) error {
	return c.do(ctx, http.MethodPost, "/api/v1/deploys", map[string]string{
		"service": service, "version": version, "environment": "production", "change_class": class,
		"deployed_by": "tailgate-demo", "description": description,
	}, nil)
}

// createOverride lets checkout's features through for an hour.
func (c *client) createOverride(ctx context.Context, now time.Time) (string, error) {
	var o struct {
		ID string `json:"id"`
	}
	err := c.do(ctx, http.MethodPost, "/api/v1/gate/overrides", map[string]any{
		"service": Checkout, "change_classes": []string{"feature"},
		"reason":      "payments rolled back and healthy; the launch is contractual, risk accepted",
		"approved_by": "vp-engineering@example.com",
		"expires_at":  now.Add(time.Hour).UTC().Format(time.RFC3339),
	}, &o)
	return o.ID, err
}

// apiImpact is one SLO's line of an incident's post-mortem numbers.
type apiImpact struct {
	SLO            string  `json:"slo"`
	Failed         uint64  `json:"failed"`
	BudgetConsumed float64 `json:"budget_consumed"`
	NeedsReview    bool    `json:"needs_review"`
}

// closeIncident plays the on-call's end of an incident: a commander, the
// resolution, then the post-mortem's numbers and its Markdown draft.
func (c *client) closeIncident(ctx context.Context, id string) ([]apiImpact, []byte, error) {
	base := "/api/v1/incidents/" + id
	if err := c.do(ctx, http.MethodPost, base+"/assign", map[string]string{"role": "commander", "to": "demo-oncall"}, nil); err != nil {
		return nil, nil, err
	}
	if err := c.do(ctx, http.MethodPost, base+"/resolve", map[string]string{"text": "payments rolled back; burn back under 1x"}, nil); err != nil {
		return nil, nil, err
	}
	var rep struct {
		Impacts []apiImpact `json:"impacts"`
	}
	if err := c.do(ctx, http.MethodGet, base+"/postmortem?format=json", nil, &rep); err != nil {
		return nil, nil, err
	}
	md, err := c.raw(ctx, base+"/postmortem")
	return rep.Impacts, md, err
}

// waitSettled waits until the sampler holds no trace and the exporter's
// queue is empty (everything decided and written), or ctx ends. It wants
// two quiet readings in a row, so that a batch on its way from the sampler
// to the exporter is not missed between the two gauges.
func waitSettled(ctx context.Context, g prometheus.Gatherer) error {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	quiet := 0
	for {
		v, err := gatherSums(g, "tailgate_sampler_buffered_traces", "tailgate_sampler_intake_spans", "tailgate_exporter_queue_spans")
		if err != nil {
			return err
		}
		if v[0] == 0 && v[1] == 0 && v[2] == 0 {
			quiet++
		} else {
			quiet = 0
		}
		if quiet >= 2 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for the sampler to decide %v buffered traces: %w", v[0], context.Cause(ctx))
		case <-t.C:
		}
	}
}

// isGone reports an error that only says the run was interrupted.
func isGone(err error) bool {
	var ue *url.Error
	return errors.Is(err, context.Canceled) || errors.As(err, &ue) && errors.Is(ue.Err, context.Canceled)
}
