package notify

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/cenkalti/backoff/v5"
)

// Event is a notification that is not an SLO alert: a kill switch that
// flipped a flag, an incident's status update. Webhooks receive events;
// Alertmanager, which takes only alerts, does not.
type Event struct {
	// Kind names the event, e.g. "flag.flip", "flag.restore".
	Kind string
	// Subject is what the event is about: a flag key, an incident ID.
	Subject string
	// Service is the service concerned, when there is one.
	Service string
	// Text is a one-paragraph human summary with the numbers.
	Text string
	At   time.Time
	// Fields carry the event's details as JSON values.
	Fields map[string]any
	Links  map[string]string
}

// EventPayload is the JSON body a webhook receives for an event. Its
// "text" field makes it a valid Slack incoming-webhook message (Slack and
// compatible receivers show text and ignore the rest).
type EventPayload struct {
	Version string            `json:"version"`
	Kind    string            `json:"kind"` // always "event"
	Event   string            `json:"event"`
	Subject string            `json:"subject"`
	Service string            `json:"service,omitempty"`
	Text    string            `json:"text"`
	At      time.Time         `json:"at"`
	Fields  map[string]any    `json:"fields,omitempty"`
	Links   map[string]string `json:"links,omitempty"`
}

// NotifyEvent queues e for every webhook, or drops it (counted) where a
// queue is full. It never blocks.
func (n *Notifiers) NotifyEvent(e Event) {
	for _, w := range n.webhooks {
		select {
		case w.events <- e:
		default:
			w.m.results.WithLabelValues(w.name, "dropped").Inc()
			w.log.Warn("notification queue full; dropped", "event", e.Kind, "subject", e.Subject)
		}
	}
}

// postEvent makes one attempt to deliver e to the webhook.
func (w *Webhook) postEvent(ctx context.Context, e Event) error {
	body, err := json.Marshal(EventPayload{Version: "1", Kind: "event", Event: e.Kind, Subject: e.Subject, Service: e.Service,
		Text: e.Text, At: e.At.UTC(), Fields: e.Fields, Links: e.Links})
	if err != nil {
		return backoff.Permanent(fmt.Errorf("encode event: %w", err))
	}
	return postJSON(ctx, w.worker.client, w.cfg.URL, w.cfg.Timeout.Std(), w.cfg.Headers, body)
}
