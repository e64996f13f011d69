package notify

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/tailgate-sre/tailgate/internal/slo"
	"github.com/tailgate-sre/tailgate/internal/units"
)

// TestAlertmanagerCluster: with urls, every replica gets every alert
// through its own queue, so a replica that fails delays no other.
func TestAlertmanagerCluster(t *testing.T) {
	var upPosts, downPosts atomic.Int32
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api/v2/alerts" {
			upPosts.Add(1)
		}
	}))
	defer up.Close()
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		downPosts.Add(1)
		http.Error(w, "replica restarting", http.StatusServiceUnavailable)
	}))
	defer down.Close()
	synctest.Test(t, func(t *testing.T) {
		n := start(t, Config{Alertmanager: &AlertmanagerConfig{URLs: []string{down.URL, up.URL}, ResendInterval: units.Duration(time.Hour), MaxRetries: 2}}, nil)
		ams := n.List()
		if len(ams) != 2 {
			t.Fatalf("%d receivers for 2 URLs", len(ams))
		}
		for _, am := range ams {
			am.Notify(notification(slo.Firing, time.Now()))
		}
		synctest.Wait()
		// The healthy replica has the alert at once; the other is retrying.
		if upPosts.Load() != 1 {
			t.Errorf("healthy replica got %d posts before the other's retries ended, want 1", upPosts.Load())
		}
		time.Sleep(10 * time.Second) // the retries' backoff, in the bubble's time
		synctest.Wait()
		if got := downPosts.Load(); got != 3 {
			t.Errorf("failing replica got %d attempts, want 3 (max_retries 2)", got)
		}
		if err := n.Shutdown(t.Context()); err != nil {
			t.Fatal(err)
		}
	})
}

func TestAlertmanagerURLsValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg  AlertmanagerConfig
		want string
	}{
		{AlertmanagerConfig{URL: "http://a:9093", URLs: []string{"http://b:9093"}}, "give url or urls, not both"},
		{AlertmanagerConfig{URLs: []string{"http://a:9093", "ftp://b"}}, "alertmanager.urls[1]: must be an http or https URL"},
	} {
		c := Config{Alertmanager: &tc.cfg}
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.cfg, err, tc.want)
		}
	}
}
