package main

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

// TestServerFailover: with --server given several times, a client command
// tries the next server on a connection error or a 502/503/504, and never
// on an answer (a deny is an answer).
func TestServerFailover(t *testing.T) {
	allow := `{"decision":"allow","policy_rule":"within-budget","reasons":["fine"],"slos":[]}`
	var hits [3]atomic.Int32
	unavailable := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits[0].Add(1)
		http.Error(w, "not ready", http.StatusServiceUnavailable)
	}))
	defer unavailable.Close()
	healthy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits[1].Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(allow))
	}))
	defer healthy.Close()
	denying := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits[2].Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"decision":"deny","policy_rule":"budget-exhausted","reasons":["spent"],"slos":[]}`))
	}))
	defer denying.Close()
	down := httptest.NewServer(http.NotFoundHandler())
	downURL := down.URL
	down.Close()

	gate := func(servers ...string) (int, string) {
		args := []string{"tailgate", "gate", "check", "--service", "checkout", "--change", "feature"}
		for _, s := range servers {
			args = append(args, "--server", s)
		}
		var out, errb bytes.Buffer
		code := run(t.Context(), args, strings.NewReader(""), &out, &errb)
		return code, out.String() + errb.String()
	}
	t.Setenv("TAILGATE_TOKEN", "")
	t.Setenv("TAILGATE_TOKEN_FILE", "")
	if code, out := gate(downURL, unavailable.URL, healthy.URL); code != exitOK {
		t.Errorf("down, then 503, then healthy: exit %d\n%s", code, out)
	}
	if hits[0].Load() != 1 || hits[1].Load() != 1 {
		t.Errorf("hits %d (503) and %d (healthy), want 1 and 1", hits[0].Load(), hits[1].Load())
	}
	// A deny is an answer: the next server is not asked.
	if code, _ := gate(denying.URL, healthy.URL); code != exitFail || hits[1].Load() != 1 {
		t.Errorf("deny first: exit %d, healthy asked %d times; want exit 1 and no failover", code, hits[1].Load())
	}
	// Nobody answers: exit 2, naming each.
	code, out := gate(downURL, unavailable.URL)
	if code != exitUsage || !strings.Contains(out, "no tailgate answered (2 tried)") || !strings.Contains(out, "HTTP 503") {
		t.Errorf("none answers: exit %d\n%s", code, out)
	}
	// The environment variable takes a comma-separated list.
	t.Setenv("TAILGATE_SERVER", downURL+", "+healthy.URL)
	if code, out := gate(); code != exitOK {
		t.Errorf("TAILGATE_SERVER list: exit %d\n%s", code, out)
	}
}
