package notify

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/tailgate-sre/tailgate/internal/slo"
	"github.com/tailgate-sre/tailgate/internal/units"
)

var _ slo.Notifier = (*Alertmanager)(nil)

// Alertmanager sends alerts to Alertmanager's API v2 (POST /api/v2/alerts):
// labels alertname, service, slo, severity (and alert, group, the SLO's own
// labels), endsAt on resolve. Firing alerts are sent again every resend
// interval with endsAt four intervals ahead, as Prometheus does.
type Alertmanager struct {
	worker
	cfg AlertmanagerConfig
	url string

	mu     sync.Mutex
	active map[string]AMAlert // firing alerts by identity
}

// AMAlert is an alert of Alertmanager's API v2 (postableAlert).
type AMAlert struct {
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations,omitempty"`
	StartsAt     time.Time         `json:"startsAt,omitzero"`
	EndsAt       time.Time         `json:"endsAt,omitzero"`
	GeneratorURL string            `json:"generatorURL,omitempty"`
}

func newAlertmanager(cfg AlertmanagerConfig, name string, log *slog.Logger, m *metrics) *Alertmanager {
	if cfg.Timeout == 0 {
		cfg.Timeout = units.Duration(defaultTimeout)
	}
	if cfg.ResendInterval == 0 {
		cfg.ResendInterval = units.Duration(defaultResendInterval)
	}
	a := &Alertmanager{cfg: cfg, url: strings.TrimRight(cfg.URL, "/") + "/api/v2/alerts", active: map[string]AMAlert{}}
	a.init(name, log, m, cfg.QueueSize, cfg.MaxRetries)
	a.deliver = a.post
	a.tick = a.resend
	a.tickEvery = cfg.ResendInterval.Std()
	return a
}

// ToAMAlert converts a notification; ends is endsAt for a firing alert.
func ToAMAlert(n slo.Notification, ends time.Time) AMAlert {
	a := n.Alert
	labels := map[string]string{}
	for k, v := range n.Labels {
		labels[k] = v
	}
	labels["alertname"] = a.AlertName
	labels["service"] = a.Service
	labels["slo"] = a.SLO
	labels["severity"] = a.Severity.String()
	labels["alert"] = a.Name
	if a.Group != "" {
		labels["group"] = a.Group
	}
	ann := map[string]string{"summary": a.Summary}
	if n.Description != "" {
		ann["description"] = n.Description
	}
	f := func(p *float64) string {
		if p == nil {
			return "no data"
		}
		return strconv.FormatFloat(*p, 'g', 4, 64)
	}
	ann["budget_remaining"] = f(n.BudgetRemaining)
	for _, w := range []string{"5m", "1h", "6h", "1d", "3d"} {
		if b, ok := n.BurnRates[w]; ok {
			ann["burn_rate_"+w] = f(b)
		}
	}
	if n.TimeToExhaustion != nil {
		ann["time_to_exhaustion"] = units.FormatDuration(time.Duration(*n.TimeToExhaustion * float64(time.Second)).Round(time.Minute))
	}
	out := AMAlert{Labels: labels, Annotations: ann, StartsAt: a.FiredAt, EndsAt: ends, GeneratorURL: n.Links["slo"]}
	if n.Status == slo.Resolved {
		out.EndsAt = n.At
	}
	return out
}

func identity(a slo.Alert) string { return a.SLO + "\x00" + a.Group + "\x00" + a.Name }

// post sends one notification and tracks firing alerts for resending.
func (a *Alertmanager) post(ctx context.Context, n slo.Notification) error {
	al := ToAMAlert(n, n.At.Add(4*a.cfg.ResendInterval.Std()))
	a.mu.Lock()
	if n.Status == slo.Resolved {
		delete(a.active, identity(n.Alert))
	} else {
		a.active[identity(n.Alert)] = al
	}
	a.mu.Unlock()
	return a.postAlerts(ctx, []AMAlert{al})
}

// resend sends every firing alert again with a fresh endsAt.
func (a *Alertmanager) resend(ctx context.Context) {
	ends := time.Now().Add(4 * a.cfg.ResendInterval.Std())
	a.mu.Lock()
	var als []AMAlert
	for k, al := range a.active {
		al.EndsAt = ends
		a.active[k] = al
		als = append(als, al)
	}
	a.mu.Unlock()
	if len(als) == 0 {
		return
	}
	if err := a.postAlerts(ctx, als); err != nil {
		a.log.Warn("resend alerts to Alertmanager", "err", err)
	}
}

func (a *Alertmanager) postAlerts(ctx context.Context, als []AMAlert) error {
	body, err := json.Marshal(als)
	if err != nil {
		return backoff.Permanent(fmt.Errorf("encode alerts: %w", err))
	}
	return postJSON(ctx, a.worker.client, a.url, a.cfg.Timeout.Std(), a.cfg.Headers, body)
}
