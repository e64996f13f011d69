package notify

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/tailgate-sre/tailgate/internal/slo"
	"github.com/tailgate-sre/tailgate/internal/units"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestConfigValidate(t *testing.T) {
	cfg := Config{
		Webhooks:     []WebhookConfig{{URL: "ftp://x"}, {URL: "http://ok", MaxRetries: 50, QueueSize: -1, Timeout: -1}},
		Alertmanager: &AlertmanagerConfig{URL: "", ResendInterval: units.Duration(time.Millisecond)},
	}
	err := cfg.Validate()
	var got []string
	if err != nil {
		got = strings.Split(err.Error(), "\n")
	}
	want := []string{
		`webhooks[0].url: must be an http or https URL, got "ftp://x"`,
		"webhooks[1].timeout: must not be negative, got -1ns",
		"webhooks[1].max_retries: must be between -1 and 20, got 50",
		"webhooks[1].queue_size: must not be negative, got -1",
		"alertmanager.url: required",
		"alertmanager.resend_interval: must be at least 1s, got 1ms",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("errors (-want +got):\n%s", diff)
	}
	ok := Config{Webhooks: []WebhookConfig{{URL: "https://hooks.example/x"}}, Alertmanager: &AlertmanagerConfig{URL: "http://127.0.0.1:9093"}}
	if err := ok.Validate(); err != nil {
		t.Errorf("valid config: %v", err)
	}
}

func ptr(v float64) *float64 { return &v }

func notification(status slo.AlertState, at time.Time) slo.Notification {
	fired := time.Date(2024, 1, 1, 10, 0, 0, 0, time.UTC)
	return slo.Notification{
		Alert: slo.Alert{SLO: "checkout-availability", Service: "checkout", Name: "page-1h", AlertName: "SLOBurnRateTooHigh",
			Kind: slo.BurnRateAlert, Severity: slo.Page, State: status, FiredAt: fired, Summary: "burn rate 20 over 1h",
			Values: slo.AlertValues{Threshold: 14.4, LongWindow: "1h", ShortWindow: "5m", BurnRateLong: ptr(20), BurnRateShort: ptr(30), Coverage: 1}},
		Status: status, Objective: 99.9, Window: "30d",
		BurnRates:        map[string]*float64{"5m": ptr(30), "1h": ptr(20), "3d": nil},
		BudgetRemaining:  ptr(0.75),
		TimeToExhaustion: ptr(97200),
		Labels:           map[string]string{"team": "payments"},
		Links:            map[string]string{"slo": "http://tailgate:8080/api/v1/slos/checkout-availability"},
		At:               at,
	}
}

// receiver is a test webhook server that fails the first failures
// requests with status.
type receiver struct {
	mu       sync.Mutex
	bodies   [][]byte
	headers  []http.Header
	failures int
	status   int
	block    chan struct{}
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if r.block != nil {
		select {
		case <-r.block:
		case <-req.Context().Done():
			return
		}
	}
	b, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	r.bodies = append(r.bodies, b)
	r.headers = append(r.headers, req.Header.Clone())
	fail := len(r.bodies) <= r.failures
	r.mu.Unlock()
	if fail {
		http.Error(w, "try later", r.status)
		return
	}
	w.WriteHeader(http.StatusOK)
}

func (r *receiver) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.bodies)
}

// waitFor polls an outside process (a real Alertmanager) until cond holds.
// Tests of tailgate's own goroutines use synctest instead.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func counter(t *testing.T, reg *prometheus.Registry, receiver, result string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if mf.GetName() == "tailgate_notify_notifications_total" && labels["receiver"] == receiver && labels["result"] == result {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

// start creates and starts notifiers whose retry waits are exact (1s,
// 1.5s, ...) and whose clients keep no idle connection: inside a synctest
// bubble, an idle connection's reader blocks on the network, which is not
// durable blocking, so synctest.Wait would never return.
func start(t *testing.T, cfg Config, reg prometheus.Registerer) *Notifiers {
	t.Helper()
	n, err := New(cfg, Settings{Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	n.each(func(w *worker) {
		w.jitter = 0
		w.client = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	})
	if err := n.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestWebhookPayloadAndRetries(t *testing.T) {
	rcv := &receiver{failures: 2, status: http.StatusServiceUnavailable}
	ts := httptest.NewServer(rcv)
	defer ts.Close()
	reg := prometheus.NewRegistry()
	synctest.Test(t, func(t *testing.T) {
		n := start(t, Config{Webhooks: []WebhookConfig{{URL: ts.URL, Headers: map[string]string{"Authorization": "Bearer s3cret"}}}}, reg)
		at := time.Date(2024, 1, 1, 10, 30, 0, 0, time.UTC)
		n.List()[0].Notify(notification(slo.Resolved, at))
		// Two failures, retried after 1s and 1.5s of fake time.
		time.Sleep(2 * time.Second)
		synctest.Wait()
		if c := rcv.count(); c != 2 {
			t.Errorf("%d attempts after 2s, want 2 (the second retry is due at 2.5s)", c)
		}
		time.Sleep(time.Second)
		synctest.Wait()
		if err := n.Shutdown(t.Context()); err != nil {
			t.Fatal(err)
		}
	})
	if c := rcv.count(); c != 3 {
		t.Fatalf("%d attempts, want 3", c)
	}
	var got map[string]any
	if err := json.Unmarshal(rcv.bodies[2], &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"version": "1", "status": "resolved", "alertname": "SLOBurnRateTooHigh", "alert": "page-1h", "kind": "burn_rate",
		"severity": "page", "slo": "checkout-availability", "service": "checkout", "summary": "burn rate 20 over 1h",
		"objective": 99.9, "window": "30d",
		"burn_rates":       map[string]any{"5m": 30.0, "1h": 20.0, "3d": nil},
		"budget_remaining": 0.75, "time_to_exhaustion_seconds": 97200.0,
		"values": map[string]any{"threshold": 14.4, "long_window": "1h", "short_window": "5m", "burn_rate_long": 20.0,
			"burn_rate_short": 30.0, "coverage": 1.0, "budget_remaining": nil},
		"starts_at": "2024-01-01T10:00:00Z", "ends_at": "2024-01-01T10:30:00Z",
		"labels": map[string]any{"team": "payments"},
		"links":  map[string]any{"slo": "http://tailgate:8080/api/v1/slos/checkout-availability"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("payload (-want +got):\n%s", diff)
	}
	if h := rcv.headers[0].Get("Authorization"); h != "Bearer s3cret" {
		t.Errorf("Authorization = %q", h)
	}
	if s, f := counter(t, reg, "webhook[0]", "sent"), counter(t, reg, "webhook[0]", "failed"); s != 1 || f != 0 {
		t.Errorf("sent/failed = %v/%v, want 1/0", s, f)
	}
}

func TestWebhookClientErrorIsNotRetried(t *testing.T) {
	rcv := &receiver{failures: 100, status: http.StatusBadRequest}
	ts := httptest.NewServer(rcv)
	defer ts.Close()
	reg := prometheus.NewRegistry()
	synctest.Test(t, func(t *testing.T) {
		n := start(t, Config{Webhooks: []WebhookConfig{{URL: ts.URL}}}, reg)
		n.List()[0].Notify(notification(slo.Firing, time.Now()))
		synctest.Wait()
		time.Sleep(time.Minute) // long past every retry a 5xx would get
		synctest.Wait()
		if f := counter(t, reg, "webhook[0]", "failed"); f != 1 {
			t.Errorf("failed = %v, want 1", f)
		}
		if err := n.Shutdown(t.Context()); err != nil {
			t.Fatal(err)
		}
	})
	if c := rcv.count(); c != 1 {
		t.Errorf("%d attempts, want 1", c)
	}
}

// A receiver that never answers fills the bounded queue; Notify keeps
// returning at once and counts what it drops.
func TestWebhookNeverBlocks(t *testing.T) {
	rcv := &receiver{block: make(chan struct{})}
	ts := httptest.NewServer(rcv)
	defer ts.Close()
	defer close(rcv.block)
	reg := prometheus.NewRegistry()
	n := start(t, Config{Webhooks: []WebhookConfig{{URL: ts.URL, QueueSize: 2, Timeout: units.Duration(time.Minute)}}}, reg)
	nf := n.List()[0]
	// Notify returns at once (a blocked call would hang the test); the
	// drops are counted in Notify itself, so they are known when it
	// returns. Two wait in the queue, and the sender may have taken one
	// more before the queue filled: 47 or 48 of 50 are dropped.
	for range 50 {
		nf.Notify(notification(slo.Firing, time.Now()))
	}
	if d := counter(t, reg, "webhook[0]", "dropped"); d != 47 && d != 48 {
		t.Errorf("dropped = %v, want 47 or 48", d)
	}
	// A deadline already past: Shutdown cancels the stuck request and
	// reports the deadline.
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := n.Shutdown(ctx); err == nil {
		t.Error("Shutdown of a stuck receiver returned nil, want the deadline error")
	}
}

func TestAlertmanagerFakeServer(t *testing.T) {
	var mu sync.Mutex
	var posts [][]AMAlert
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v2/alerts" || r.Method != http.MethodPost {
			http.Error(w, "no", http.StatusNotFound)
			return
		}
		var als []AMAlert
		if err := json.NewDecoder(r.Body).Decode(&als); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		mu.Lock()
		posts = append(posts, als)
		mu.Unlock()
	}))
	defer ts.Close()
	// fired is the alert's start (notification's FiredAt); the
	// notifications are sent at fake times of the bubble (2000-01-01).
	fired := time.Date(2024, 1, 1, 10, 0, 0, 0, time.UTC)
	var sentAt time.Time
	synctest.Test(t, func(t *testing.T) {
		n := start(t, Config{Alertmanager: &AlertmanagerConfig{URL: ts.URL + "/", ResendInterval: units.Duration(time.Second)}}, nil)
		am := n.List()[0]
		sentAt = time.Now()
		am.Notify(notification(slo.Firing, sentAt))
		synctest.Wait()
		// The resend runs every second: the firing alert is sent again.
		time.Sleep(1500 * time.Millisecond)
		synctest.Wait()
		mu.Lock()
		if len(posts) != 2 {
			t.Errorf("%d posts after 1.5s, want the first and one resend", len(posts))
		}
		mu.Unlock()
		am.Notify(notification(slo.Resolved, sentAt.Add(time.Hour)))
		synctest.Wait()
		if err := n.Shutdown(t.Context()); err != nil {
			t.Fatal(err)
		}
	})
	if len(posts) != 3 {
		t.Fatalf("%d posts, want 3 (firing, resend, resolved)", len(posts))
	}
	if last := posts[2]; len(last) != 1 || !last[0].EndsAt.Equal(sentAt.Add(time.Hour)) {
		t.Errorf("resolution = %+v, want one alert ending at the resolution time", last)
	}
	mu.Lock()
	defer mu.Unlock()
	first := posts[0][0]
	wantLabels := map[string]string{"alertname": "SLOBurnRateTooHigh", "service": "checkout", "slo": "checkout-availability",
		"severity": "page", "alert": "page-1h", "team": "payments"}
	if diff := cmp.Diff(wantLabels, first.Labels); diff != "" {
		t.Errorf("labels (-want +got):\n%s", diff)
	}
	if !first.StartsAt.Equal(fired) || !first.EndsAt.Equal(sentAt.Add(4*time.Second)) {
		t.Errorf("startsAt/endsAt = %s/%s, want %s and 4 resend intervals after %s", first.StartsAt, first.EndsAt, fired, sentAt)
	}
	if first.Annotations["burn_rate_1h"] != "20" || first.Annotations["budget_remaining"] != "0.75" || first.Annotations["time_to_exhaustion"] != "27h" {
		t.Errorf("annotations = %v", first.Annotations)
	}
	if !posts[1][0].EndsAt.After(first.EndsAt) {
		t.Errorf("resend did not move endsAt: %s", posts[1][0].EndsAt)
	}
}

// TestRealAlertmanager posts to the Debian package's Alertmanager, started
// on 127.0.0.1 with a temporary config and storage.
func TestRealAlertmanager(t *testing.T) {
	bin, err := exec.LookPath("prometheus-alertmanager")
	if err != nil {
		t.Skip("prometheus-alertmanager is not installed (apt-get install prometheus-alertmanager; .ci/run installs it)")
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "alertmanager.yml")
	if err := os.WriteFile(cfg, []byte("route:\n  receiver: devnull\nreceivers:\n  - name: devnull\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithCancel(t.Context())
	cmd := exec.CommandContext(ctx, bin, "--config.file="+cfg, "--storage.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--cluster.listen-address=")
	var logs strings.Builder
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cancel()
		cmd.Wait() //nolint:errcheck // killed on purpose
	}()
	base := "http://" + addr
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	waitFor(t, "Alertmanager to be ready", func() bool {
		resp, err := client.Get(base + "/-/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})

	n := start(t, Config{Alertmanager: &AlertmanagerConfig{URL: base}}, nil)
	defer n.Shutdown(context.Background()) //nolint:errcheck // shut down below too
	now := time.Now().UTC().Truncate(time.Second)
	note := notification(slo.Firing, now)
	note.Alert.FiredAt = now.Add(-time.Minute)
	n.List()[0].Notify(note)

	type amAlert struct {
		Labels   map[string]string `json:"labels"`
		StartsAt time.Time         `json:"startsAt"`
		EndsAt   time.Time         `json:"endsAt"`
		Status   struct {
			State string `json:"state"`
		} `json:"status"`
	}
	get := func() []amAlert {
		resp, err := client.Get(base + "/api/v2/alerts?filter=slo%3D%22checkout-availability%22")
		if err != nil {
			t.Fatalf("query Alertmanager: %v\n%s", err, logs.String())
		}
		defer resp.Body.Close()
		var out []amAlert
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
			t.Fatal(err)
		}
		return out
	}
	var got []amAlert
	waitFor(t, "the alert in Alertmanager", func() bool { got = get(); return len(got) == 1 })
	a := got[0]
	for k, v := range map[string]string{"alertname": "SLOBurnRateTooHigh", "service": "checkout", "slo": "checkout-availability", "severity": "page"} {
		if a.Labels[k] != v {
			t.Errorf("label %s = %q, want %q", k, a.Labels[k], v)
		}
	}
	if a.Status.State != "active" || !a.StartsAt.Equal(now.Add(-time.Minute)) {
		t.Errorf("alert state %q starts %s, want active from %s", a.Status.State, a.StartsAt, now.Add(-time.Minute))
	}
	// Resolving sends endsAt: Alertmanager stops listing it as active.
	n.List()[0].Notify(notification(slo.Resolved, now))
	waitFor(t, "the resolution", func() bool {
		for _, x := range get() {
			if !x.EndsAt.After(now) && x.EndsAt.Equal(now) {
				return true
			}
		}
		return len(get()) == 0
	})
	if err := n.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	client.CloseIdleConnections()
}
