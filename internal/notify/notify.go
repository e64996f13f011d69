// Package notify sends SLO alert notifications to generic webhooks and to
// Alertmanager's API v2, each through a bounded queue with retries and
// timeouts, so that a failing receiver never blocks alert evaluation.
package notify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tailgate-sre/tailgate/internal/retry"
	"github.com/tailgate-sre/tailgate/internal/slo"
	"github.com/tailgate-sre/tailgate/internal/units"
)

// Config is the notify: section of the config file.
type Config struct {
	Webhooks     []WebhookConfig     `yaml:"webhooks"`
	Alertmanager *AlertmanagerConfig `yaml:"alertmanager"`
}

// WebhookConfig is one webhook receiver: a JSON POST per notification.
type WebhookConfig struct {
	URL string `yaml:"url"`
	// Timeout bounds one attempt (default 5s).
	Timeout units.Duration `yaml:"timeout"`
	// Headers are added to every request (e.g. Authorization).
	Headers map[string]string `yaml:"headers"`
	// MaxRetries after the first attempt (default 3; -1 for none).
	MaxRetries int `yaml:"max_retries"`
	// QueueSize bounds the notifications waiting (default 1000); more are
	// dropped and counted.
	QueueSize int `yaml:"queue_size"`
}

// AlertmanagerConfig is an Alertmanager to send alerts to (API v2).
type AlertmanagerConfig struct {
	// URL is the Alertmanager's base URL, e.g. http://127.0.0.1:9093.
	URL string `yaml:"url"`
	// URLs lists every replica of an Alertmanager cluster (instead of
	// URL): each gets every alert through its own queue, so a replica
	// that is down delays no other (Alertmanager deduplicates).
	URLs       []string          `yaml:"urls"`
	Timeout    units.Duration    `yaml:"timeout"`
	Headers    map[string]string `yaml:"headers"`
	MaxRetries int               `yaml:"max_retries"`
	QueueSize  int               `yaml:"queue_size"`
	// ResendInterval is how often firing alerts are sent again, as
	// Alertmanager expects (default 1m); each carries endsAt four intervals
	// ahead, so alerts of a dead tailgate resolve by themselves.
	ResendInterval units.Duration `yaml:"resend_interval"`
}

// DefaultConfig returns the defaults: no receivers.
func DefaultConfig() Config { return Config{} }

// Defaults of the receivers' settings.
const (
	defaultTimeout        = 5 * time.Second
	defaultRetries        = 3
	defaultQueueSize      = 1000
	defaultResendInterval = time.Minute
	// maxRetryWait caps one backoff wait between attempts.
	maxRetryWait = 30 * time.Second
	// maxRetryAfter is the longest Retry-After a receiver waits for.
	maxRetryAfter = 5 * time.Minute
)

func validateURL(u string) error {
	if u == "" {
		return errors.New("required")
	}
	p, err := url.Parse(u)
	if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
		return fmt.Errorf("must be an http or https URL, got %q", u)
	}
	return nil
}

// Validate reports every problem, each naming its key relative to notify:.
func (c *Config) Validate() error {
	var errs []error
	common := func(path string, timeout units.Duration, retries, queue int) {
		if timeout < 0 {
			errs = append(errs, fmt.Errorf("%s.timeout: must not be negative, got %s", path, timeout))
		}
		if retries < -1 || retries > 20 {
			errs = append(errs, fmt.Errorf("%s.max_retries: must be between -1 and 20, got %d", path, retries))
		}
		if queue < 0 {
			errs = append(errs, fmt.Errorf("%s.queue_size: must not be negative, got %d", path, queue))
		}
	}
	for i, w := range c.Webhooks {
		p := fmt.Sprintf("webhooks[%d]", i)
		if err := validateURL(w.URL); err != nil {
			errs = append(errs, fmt.Errorf("%s.url: %w", p, err))
		}
		common(p, w.Timeout, w.MaxRetries, w.QueueSize)
	}
	if a := c.Alertmanager; a != nil {
		switch {
		case a.URL != "" && len(a.URLs) > 0:
			errs = append(errs, errors.New("alertmanager: give url or urls, not both"))
		case len(a.URLs) > 0:
			for i, u := range a.URLs {
				if err := validateURL(u); err != nil {
					errs = append(errs, fmt.Errorf("alertmanager.urls[%d]: %w", i, err))
				}
			}
		default:
			if err := validateURL(a.URL); err != nil {
				errs = append(errs, fmt.Errorf("alertmanager.url: %w", err))
			}
		}
		common("alertmanager", a.Timeout, a.MaxRetries, a.QueueSize)
		if a.ResendInterval < 0 || a.ResendInterval != 0 && a.ResendInterval.Std() < time.Second {
			errs = append(errs, fmt.Errorf("alertmanager.resend_interval: must be at least 1s, got %s", a.ResendInterval))
		}
	}
	return errors.Join(errs...)
}

// Settings are the notifiers' dependencies.
type Settings struct {
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// Notifiers is the set of configured receivers.
type Notifiers struct {
	webhooks []*Webhook
	ams      []*Alertmanager // one per replica
}

// New builds the receivers of cfg (which must be valid).
func New(cfg Config, set Settings) (*Notifiers, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	m, err := newMetrics(set.Registerer)
	if err != nil {
		return nil, err
	}
	if set.Logger == nil {
		set.Logger = slog.New(slog.DiscardHandler)
	}
	n := &Notifiers{}
	for i, w := range cfg.Webhooks {
		n.webhooks = append(n.webhooks, newWebhook(w, fmt.Sprintf("webhook[%d]", i), set.Logger, m))
	}
	if a := cfg.Alertmanager; a != nil {
		urls := a.URLs
		if len(urls) == 0 {
			urls = []string{a.URL}
		}
		for i, u := range urls {
			one := *a
			one.URL, one.URLs = u, nil
			name := "alertmanager"
			if len(urls) > 1 {
				name = fmt.Sprintf("alertmanager[%d]", i)
			}
			n.ams = append(n.ams, newAlertmanager(one, name, set.Logger, m))
		}
	}
	return n, nil
}

// List returns the receivers for slo.Settings.Notifiers.
func (n *Notifiers) List() []slo.Notifier {
	var out []slo.Notifier
	for _, w := range n.webhooks {
		out = append(out, w)
	}
	for _, a := range n.ams {
		out = append(out, a)
	}
	return out
}

func (n *Notifiers) each(fn func(*worker)) {
	for _, w := range n.webhooks {
		fn(&w.worker)
	}
	for _, a := range n.ams {
		fn(&a.worker)
	}
}

// Start starts each receiver's sender.
func (n *Notifiers) Start(ctx context.Context) error {
	n.each(func(w *worker) { w.start(ctx) })
	return nil
}

// Shutdown sends what is queued until ctx ends, then stops.
func (n *Notifiers) Shutdown(ctx context.Context) error {
	var errs []error
	n.each(func(w *worker) { errs = append(errs, w.shutdown(ctx)) })
	return errors.Join(errs...)
}

// metrics are shared by every receiver.
type metrics struct {
	results *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{results: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tailgate_notify_notifications_total",
		Help: "Alert notifications by receiver and result: sent, failed (after retries) or dropped (queue full).",
	}, []string{"receiver", "result"})}
	if reg != nil {
		if err := reg.Register(m.results); err != nil {
			return nil, fmt.Errorf("register notify metrics: %w", err)
		}
	}
	return m, nil
}

// worker runs one receiver's queue: a goroutine that takes notifications
// and delivers them with retries. Notify never blocks.
type worker struct {
	name    string
	log     *slog.Logger
	m       *metrics
	queue   chan slo.Notification
	retries int
	// deliver sends one notification (one attempt).
	deliver func(ctx context.Context, n slo.Notification) error
	// events queues Events for deliverEvent; a receiver that takes none
	// leaves deliverEvent nil.
	events       chan Event
	deliverEvent func(ctx context.Context, e Event) error
	// tick, when set, runs every tickEvery (Alertmanager's resend).
	tick      func(ctx context.Context)
	tickEvery time.Duration
	// firstWait is the first retry's wait (1s); later waits grow 1.5 times
	// up to maxRetryWait, with jitter (a randomization factor, 0 in tests
	// that check exact waits).
	firstWait time.Duration
	jitter    float64
	client    *http.Client

	mu      sync.Mutex
	started bool
	stop    chan struct{}
	done    chan struct{}
	cancel  context.CancelFunc
}

func (w *worker) init(name string, log *slog.Logger, m *metrics, queue, retries int) {
	if queue == 0 {
		queue = defaultQueueSize
	}
	switch {
	case retries == 0:
		retries = defaultRetries
	case retries < 0:
		retries = 0
	}
	w.name, w.log, w.m, w.retries = name, log.With("receiver", name), m, retries
	w.firstWait, w.jitter = time.Second, retry.Jitter
	// Each receiver has its own transport, so Shutdown can close its idle
	// connections.
	w.client = &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	w.queue = make(chan slo.Notification, queue)
	w.events = make(chan Event, queue)
	w.stop = make(chan struct{})
	w.done = make(chan struct{})
}

// Notify queues a notification, or drops it when the queue is full.
func (w *worker) Notify(n slo.Notification) {
	select {
	case w.queue <- n:
	default:
		w.m.results.WithLabelValues(w.name, "dropped").Inc()
		w.log.Warn("notification queue full; dropped", "slo", n.Alert.SLO, "alert", n.Alert.Name)
	}
}

func (w *worker) start(ctx context.Context) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.started {
		return
	}
	w.started = true
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	w.cancel = cancel
	go w.run(runCtx)
}

func (w *worker) run(ctx context.Context) {
	defer close(w.done)
	var tick <-chan time.Time
	if w.tick != nil {
		t := time.NewTicker(w.tickEvery)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case n := <-w.queue:
			w.send(ctx, n)
		case e := <-w.events:
			w.sendEvent(ctx, e)
		case <-tick:
			w.tick(ctx)
		case <-w.stop:
			// Drain what is queued; Shutdown cancels ctx at its deadline.
			for {
				select {
				case n := <-w.queue:
					w.send(ctx, n)
				case e := <-w.events:
					w.sendEvent(ctx, e)
				default:
					return
				}
			}
		case <-ctx.Done():
			return
		}
	}
}

// send delivers with retries (retry.NewBackOff: from 1s, growing 1.5 times
// with jitter up to 30s) until max_retries are spent, the answer is
// permanent or ctx ends. A Retry-After on 429 or 503 sets the next wait.
func (w *worker) send(ctx context.Context, n slo.Notification) {
	w.retry(ctx, func() error { return w.deliver(ctx, n) }, "slo", n.Alert.SLO, "alert", n.Alert.Name)
}

// sendEvent delivers an event like a notification.
func (w *worker) sendEvent(ctx context.Context, e Event) {
	w.retry(ctx, func() error { return w.deliverEvent(ctx, e) }, "event", e.Kind, "subject", e.Subject)
}

// retry runs attempt with the receiver's retries, counts the outcome and
// logs it with what (key-value pairs naming the notification).
func (w *worker) retry(ctx context.Context, attempt func() error, what ...any) {
	_, err := backoff.Retry(ctx, func() (struct{}, error) { return struct{}{}, attempt() },
		backoff.WithBackOff(retry.NewBackOff(w.firstWait, maxRetryWait, w.jitter)),
		backoff.WithMaxTries(uint(w.retries)+1),
		// Bounded by max_retries; the wait of a Retry-After is bounded
		// by maxRetryAfter.
		backoff.WithMaxElapsedTime(0),
		backoff.WithNotify(func(err error, wait time.Duration) {
			w.log.Debug("notification failed; retrying", append(what, "wait", wait.String(), "err", err)...)
		}))
	if err == nil {
		w.m.results.WithLabelValues(w.name, "sent").Inc()
		return
	}
	w.m.results.WithLabelValues(w.name, "failed").Inc()
	w.log.Warn("notification failed", append(what, "err", err)...)
}

func (w *worker) shutdown(ctx context.Context) error {
	w.mu.Lock()
	started := w.started
	select {
	case <-w.stop:
		w.mu.Unlock()
		return nil
	default:
		close(w.stop)
	}
	w.mu.Unlock()
	if !started {
		return nil
	}
	defer w.client.CloseIdleConnections()
	select {
	case <-w.done:
		w.cancel()
		return nil
	case <-ctx.Done():
		w.cancel()
		<-w.done
		return fmt.Errorf("stop %s: %w", w.name, ctx.Err())
	}
}

// statusError classifies an HTTP answer: 2xx is success, 429 and 5xx are
// retried, other codes are permanent (backoff.Permanent). The Retry-After
// of a 429 or 503 sets the next wait (a backoff.RetryAfterError in the
// chain); one longer than maxRetryAfter is not waited for: the notification
// fails rather than hold up the ones queued behind it.
func statusError(code int, body string, header http.Header, now time.Time) error {
	if code/100 == 2 {
		return nil
	}
	err := fmt.Errorf("HTTP %d: %s", code, strings.TrimSpace(body))
	if code != http.StatusTooManyRequests && code < 500 {
		return backoff.Permanent(err)
	}
	if !retry.ThrottleStatus(code) {
		return err
	}
	wait, ok := retry.ParseRetryAfter(header.Get("Retry-After"), now)
	switch {
	case !ok:
		return err
	case wait > maxRetryAfter:
		return backoff.Permanent(fmt.Errorf("%w (Retry-After %s is longer than %s)", err, wait, maxRetryAfter))
	}
	return fmt.Errorf("%w: %w", err, &backoff.RetryAfterError{Duration: wait})
}
