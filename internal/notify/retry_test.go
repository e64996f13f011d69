package notify

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tailgate-sre/tailgate/internal/slo"
)

// scripted is a webhook server that answers each request with the next
// step of its script (the last step repeats) and counts the requests.
type scripted struct {
	mu    sync.Mutex
	steps []step
	n     int
	// now is the client's (fake) clock at the start, for HTTP-date headers.
	now time.Time
}

type step struct {
	status int
	// retryAfter is the header value; "+3s" means an HTTP date three
	// seconds after the client's start.
	retryAfter string
}

func (s *scripted) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	st := s.steps[min(s.n, len(s.steps)-1)]
	s.n++
	now := s.now
	s.mu.Unlock()
	if d, ok := strings.CutPrefix(st.retryAfter, "+"); ok {
		dur, _ := time.ParseDuration(d)
		w.Header().Set("Retry-After", now.Add(dur).UTC().Format(http.TimeFormat))
	} else if st.retryAfter != "" {
		w.Header().Set("Retry-After", st.retryAfter)
	}
	w.WriteHeader(st.status)
}

func (s *scripted) requests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}

// newTestWebhook returns a webhook to url whose waits are exact (no
// jitter, first wait 1s) and whose client keeps no idle connection: an idle
// connection's reader blocks on the network, which is not durable blocking,
// so the bubble's fake clock would never advance.
func newTestWebhook(t *testing.T, url string, retries int) (*Webhook, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	m, err := newMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	w := newWebhook(WebhookConfig{URL: url, MaxRetries: retries}, "webhook[0]", slog.New(slog.DiscardHandler), m)
	w.firstWait, w.jitter = time.Second, 0
	w.client = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	return w, reg
}

// TestSendRetries checks, on the bubble's fake clock, how long send waited
// between attempts: the Retry-After of a 429 or 503 (seconds or an HTTP
// date), else the backoff (1s, then 1.5 times more each time, no jitter).
func TestSendRetries(t *testing.T) {
	tests := []struct {
		name     string
		steps    []step
		retries  int
		requests int
		wait     time.Duration // fake time spent in send
		result   string
	}{
		{"503 with Retry-After seconds, then 200", []step{{503, "2"}, {200, ""}}, 3, 2, 2 * time.Second, "sent"},
		{"429 with Retry-After date, then 200", []step{{429, "+3s"}, {200, ""}}, 3, 2, 3 * time.Second, "sent"},
		{"503 without Retry-After waits the backoff", []step{{503, ""}, {200, ""}}, 3, 2, time.Second, "sent"},
		{"500 ignores Retry-After", []step{{500, "7"}, {200, ""}}, 3, 2, time.Second, "sent"},
		{"a Retry-After resets the backoff", []step{{503, ""}, {503, ""}, {503, "1"}, {503, ""}, {200, ""}}, 5, 5,
			1*time.Second + 1500*time.Millisecond + 1*time.Second + 1*time.Second, "sent"},
		{"retries run out: 1 + 3 attempts", []step{{502, ""}}, 3, 4,
			1*time.Second + 1500*time.Millisecond + 2250*time.Millisecond, "failed"},
		{"400 is permanent", []step{{400, ""}}, 3, 1, 0, "failed"},
		{"a Retry-After over 5m is not waited for", []step{{503, "3600"}, {200, ""}}, 3, 1, 0, "failed"},
		{"max_retries -1: one attempt", []step{{503, "1"}, {200, ""}}, -1, 1, 0, "failed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := &scripted{steps: tt.steps}
			ts := httptest.NewServer(srv)
			defer ts.Close()
			synctest.Test(t, func(t *testing.T) {
				w, reg := newTestWebhook(t, ts.URL, tt.retries)
				start := time.Now()
				srv.mu.Lock()
				srv.now = start
				srv.mu.Unlock()
				w.send(t.Context(), notification(slo.Firing, start))
				if got := time.Since(start); got != tt.wait {
					t.Errorf("send took %v of fake time, want %v", got, tt.wait)
				}
				if got := srv.requests(); got != tt.requests {
					t.Errorf("%d requests, want %d", got, tt.requests)
				}
				for _, result := range []string{"sent", "failed"} {
					want := 0.0
					if result == tt.result {
						want = 1
					}
					if got := counter(t, reg, "webhook[0]", result); got != want {
						t.Errorf("%s = %v, want %v", result, got, want)
					}
				}
			})
		})
	}
}

// TestSendStopsWhenContextEnds: a receiver that keeps asking for a 10s
// wait, and a context that ends after 4s: send gives up at 4s, after one
// attempt, and counts the notification as failed.
func TestSendStopsWhenContextEnds(t *testing.T) {
	srv := &scripted{steps: []step{{503, "10"}}}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	synctest.Test(t, func(t *testing.T) {
		w, reg := newTestWebhook(t, ts.URL, 5)
		ctx, cancel := context.WithTimeout(t.Context(), 4*time.Second)
		defer cancel()
		start := time.Now()
		w.send(ctx, notification(slo.Firing, start))
		if got := time.Since(start); got != 4*time.Second {
			t.Errorf("send took %v of fake time, want 4s (the context's end)", got)
		}
		if got := srv.requests(); got != 1 {
			t.Errorf("%d requests, want 1", got)
		}
		if got := counter(t, reg, "webhook[0]", "failed"); got != 1 {
			t.Errorf("failed = %v, want 1", got)
		}
	})
}
