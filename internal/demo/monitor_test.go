package demo

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
)

func TestGatherSums(t *testing.T) {
	reg := prometheus.NewRegistry()
	kept := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tailgate_sampler_spans_kept_total"}, []string{"rule"})
	kept.WithLabelValues("errors").Add(30)
	kept.WithLabelValues("rest").Add(12)
	buffered := prometheus.NewGauge(prometheus.GaugeOpts{Name: "tailgate_sampler_buffered_spans"})
	buffered.Set(7)
	reg.MustRegister(kept, buffered)
	got, err := gatherSums(reg, "tailgate_sampler_spans_kept_total", "tailgate_sampler_buffered_spans", "absent")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]float64{42, 7, 0}, got); diff != "" {
		t.Errorf("sums (-want +got):\n%s", diff)
	}
}

// fakeAPI answers the endpoints the monitor reads with canned JSON and
// records the bodies it was sent.
func fakeAPI(t *testing.T) (*httptest.Server, *[]string) {
	t.Helper()
	var bodies []string
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/slos", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"slos":[{"name":"checkout-availability","service":"checkout","objective":99.5,"window":"1h",
			"budget_remaining":0.25,"burn_rates":{"5m":2.5,"1h":null},
			"windows":[{"window":"5m","burn_rate":2.5}],
			"alerts":[{"slo":"checkout-availability","name":"page-1h","severity":"page","state":"firing"}]}]}`)
	})
	mux.HandleFunc("GET /api/v1/alerts", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"alerts":[],"transitions":[{"slo":"checkout-availability","alert":"page-1h","severity":"page",
			"from":"inactive","to":"firing","at":"2026-03-01T12:00:00Z","values":{"threshold":14.4}}]}`)
	})
	mux.HandleFunc("POST /api/v1/gate/check", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		bodies = append(bodies, string(b))
		io.WriteString(w, `{"decision":"deny","policy_rule":"page-burn-alert","reasons":["a page fires"],"override":null}`)
	})
	mux.HandleFunc("POST /ofrep/v1/evaluate/flags/recommendations", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"key":"recommendations","value":false,"reason":"STATIC","variant":"disabled","metadata":{"forced_by":"kill_switch"}}`)
	})
	mux.HandleFunc("GET /api/v1/flags/recommendations/history", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"history":[{"key":"recommendations","action":"flip","reason":"kill switch: checkout-availability: alert firing"}]}`)
	})
	mux.HandleFunc("GET /api/v1/incidents", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"incidents":[{"id":"INC-1","title":"checkout is paging: checkout-availability","state":"declared",
			"services":["checkout","payments"],"origin":"payments","source":"page","declared_at":"2026-03-01T12:00:05Z"}]}`)
	})
	mux.HandleFunc("POST /api/v1/deploys", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		bodies = append(bodies, string(b))
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, `{"id":"dep_1"}`)
	})
	mux.HandleFunc("POST /api/v1/gate/overrides", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, `{"error":"invalid request","detail":"expires_at: too far"}`)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv, &bodies
}

func TestPoll(t *testing.T) {
	srv, bodies := fakeAPI(t)
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	m := &monitor{api: newClient(srv.URL), gatherer: prometheus.NewRegistry(), now: func() time.Time { return at }}
	s := m.poll(t.Context())
	if len(s.Errs) > 0 {
		t.Fatalf("errors: %v", s.Errs)
	}
	if !s.At.Equal(at) {
		t.Errorf("snapshot at %v, want the monitor's clock %v", s.At, at)
	}
	if len(s.SLOs) != 1 || len(s.Transitions) != 1 || s.Gate == nil {
		t.Fatalf("snapshot %+v", s)
	}
	o := s.SLOs[0]
	if *o.BudgetRemaining != 0.25 || *o.burn("5m") != 2.5 || o.burn("1h") != nil || o.burn("30m") != nil {
		t.Errorf("SLO %+v", o)
	}
	if got := alertCell(o.Alerts, false); got != "PAGE page-1h" {
		t.Errorf("alert cell %q", got)
	}
	if f := s.Flag; f == nil || f.Variant != "disabled" || f.Value != false || f.Why != "kill switch: checkout-availability: alert firing" {
		t.Errorf("flag %+v: want disabled by the kill switch, with the history's reason", s.Flag)
	}
	if len(s.Incidents) != 1 || s.Incidents[0].ID != "INC-1" || s.Incidents[0].Origin != "payments" || s.Incidents[0].Source != "page" {
		t.Errorf("incidents %+v", s.Incidents)
	}
	if s.Gate.Decision != "deny" || s.Gate.reason() != "a page fires" {
		t.Errorf("gate %+v", s.Gate)
	}
	var q map[string]string
	if err := json.Unmarshal([]byte((*bodies)[0]), &q); err != nil {
		t.Fatal(err)
	}
	if q["service"] != "checkout" || q["change_class"] != "feature" {
		t.Errorf("gate question %v: want checkout, feature", q)
	}
}

func TestWrites(t *testing.T) {
	srv, bodies := fakeAPI(t)
	c := newClient(srv.URL)
	if err := c.recordDeploy(t.Context(), Payments, "2.3.1", "rollback", "roll back"); err != nil {
		t.Fatal(err)
	}
	var d map[string]string
	json.Unmarshal([]byte((*bodies)[0]), &d)
	if d["change_class"] != "rollback" || d["service"] != "payments" || d["version"] != "2.3.1" {
		t.Errorf("deploy marker %v", d)
	}
	_, err := c.createOverride(t.Context(), time.Now())
	if err == nil || !strings.Contains(err.Error(), "HTTP 400") || !strings.Contains(err.Error(), "expires_at: too far") {
		t.Errorf("override error %v: want the API's status and detail", err)
	}
}

func TestPollReportsAnUnreachableServer(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	m := &monitor{api: newClient(url), gatherer: prometheus.NewRegistry(), now: time.Now}
	s := m.poll(t.Context())
	if len(s.Errs) != 5 || s.Gate != nil || s.Flag != nil {
		t.Errorf("errors %v gate %v flag %v: want five failed reads and no answers", s.Errs, s.Gate, s.Flag)
	}
}

func TestWaitSettled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reg := prometheus.NewRegistry()
		var traces atomic.Int64
		traces.Store(3)
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "tailgate_sampler_buffered_traces"},
			func() float64 { return float64(traces.Load()) }))
		go func() {
			time.Sleep(2 * time.Second)
			traces.Store(0)
		}()
		start := time.Now()
		if err := waitSettled(t.Context(), reg); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d < 2*time.Second || d > 3*time.Second {
			t.Errorf("settled after %s, want just after 2s", d)
		}
		traces.Store(1)
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		if err := waitSettled(ctx, reg); err == nil {
			t.Error("no error while a trace stays buffered")
		}
	})
}
