package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/tailgate-sre/tailgate/internal/slo"
	"github.com/tailgate-sre/tailgate/internal/units"
)

var _ slo.Notifier = (*Webhook)(nil)

// Webhook POSTs each notification as JSON (WebhookPayload).
type Webhook struct {
	worker
	cfg WebhookConfig
}

// WebhookPayload is the JSON body a webhook receives.
type WebhookPayload struct {
	Version string `json:"version"`
	// Status is firing or resolved.
	Status    string `json:"status"`
	AlertName string `json:"alertname"`
	// Alert is the rule's name (page-1h, budget-exhausted, ...).
	Alert            string              `json:"alert"`
	Kind             string              `json:"kind"`
	Severity         string              `json:"severity"`
	SLO              string              `json:"slo"`
	Service          string              `json:"service"`
	Group            string              `json:"group,omitempty"`
	Summary          string              `json:"summary"`
	Description      string              `json:"description,omitempty"`
	Objective        float64             `json:"objective"`
	Window           string              `json:"window"`
	BurnRates        map[string]*float64 `json:"burn_rates"`
	BudgetRemaining  *float64            `json:"budget_remaining"`
	TimeToExhaustion *float64            `json:"time_to_exhaustion_seconds"`
	Values           slo.AlertValues     `json:"values"`
	StartsAt         time.Time           `json:"starts_at"`
	EndsAt           time.Time           `json:"ends_at,omitzero"`
	Labels           map[string]string   `json:"labels,omitempty"`
	Links            map[string]string   `json:"links,omitempty"`
}

// Payload builds the webhook body of a notification.
func Payload(n slo.Notification) WebhookPayload {
	a := n.Alert
	p := WebhookPayload{
		Version: "1", Status: n.Status.String(), AlertName: a.AlertName, Alert: a.Name, Kind: a.Kind.String(),
		Severity: a.Severity.String(), SLO: a.SLO, Service: a.Service, Group: a.Group, Summary: a.Summary,
		Description: n.Description, Objective: n.Objective, Window: n.Window, BurnRates: n.BurnRates,
		BudgetRemaining: n.BudgetRemaining, TimeToExhaustion: n.TimeToExhaustion, Values: a.Values,
		StartsAt: a.FiredAt, Labels: n.Labels, Links: n.Links,
	}
	if n.Status == slo.Resolved {
		p.EndsAt = n.At
	}
	return p
}

func newWebhook(cfg WebhookConfig, name string, log *slog.Logger, m *metrics) *Webhook {
	if cfg.Timeout == 0 {
		cfg.Timeout = units.Duration(defaultTimeout)
	}
	w := &Webhook{cfg: cfg}
	w.init(name, log, m, cfg.QueueSize, cfg.MaxRetries)
	w.deliver = w.post
	w.deliverEvent = w.postEvent
	return w
}

// post makes one attempt.
func (w *Webhook) post(ctx context.Context, n slo.Notification) error {
	body, err := json.Marshal(Payload(n))
	if err != nil {
		return backoff.Permanent(fmt.Errorf("encode notification: %w", err))
	}
	return postJSON(ctx, w.worker.client, w.cfg.URL, w.cfg.Timeout.Std(), w.cfg.Headers, body)
}

// postJSON POSTs body with a timeout and classifies the answer.
func postJSON(ctx context.Context, c *http.Client, url string, timeout time.Duration, headers map[string]string, body []byte) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return backoff.Permanent(fmt.Errorf("build request: %w", err))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "tailgate")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("post to %s: %w", url, err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	return statusError(resp.StatusCode, string(msg), resp.Header, time.Now())
}
