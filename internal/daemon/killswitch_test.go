package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/tailgate-sre/tailgate/internal/flags"
	"github.com/tailgate-sre/tailgate/internal/gate"
	"github.com/tailgate-sre/tailgate/internal/notify"
	"github.com/tailgate-sre/tailgate/internal/otlptest"
	"github.com/tailgate-sre/tailgate/internal/slo"
	"github.com/tailgate-sre/tailgate/internal/units"
)

// TestKillSwitchEndToEnd: a service's errors exhaust its SLO's budget, the kill
// switch flips the flag, OFREP serves the kill variant, and the flip is in
// the flag's history, the audit log and a webhook notification.
func TestKillSwitchEndToEnd(t *testing.T) {
	sink := otlptest.NewSink(t)
	var mu sync.Mutex
	var events []notify.EventPayload
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var ev notify.EventPayload
		if json.Unmarshal(b, &ev) == nil && ev.Kind == "event" {
			mu.Lock()
			events = append(events, ev)
			mu.Unlock()
		}
	}))
	defer hook.Close()

	cfg := testConfig(t, sink, t.TempDir())
	cfg.SLOEngine.EvalInterval = units.Duration(100 * time.Millisecond)
	cfg.SLOs = []slo.Spec{{Name: "checkout-availability", Service: "checkout", Objective: 99.9,
		Window: units.Duration(30 * 24 * time.Hour), SLI: slo.SLISpec{Kind: slo.Availability}}}
	cfg.Notify.Webhooks = []notify.WebhookConfig{{URL: hook.URL}}
	cfg.Flags = []flags.Config{{
		Key: "recommendations", Variants: map[string]any{"enabled": true, "disabled": false}, DefaultVariant: "enabled",
		KillSwitch: &flags.KillSwitch{SLOs: []string{"checkout-availability"}, When: gate.Conditions{BudgetExhausted: true}, Variant: "disabled"},
	}}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	d := startDaemon(t, cfg)
	defer stopDaemon(t, d)

	evaluate := func() map[string]any {
		resp, err := http.Post("http://"+d.APIAddr()+"/ofrep/v1/evaluate/flags/recommendations", "application/json",
			bytes.NewReader([]byte(`{"context":{"targetingKey":"user-1"}}`)))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
			t.Fatal(err)
		}
		return out
	}
	if v := evaluate()["value"]; v != true {
		t.Fatalf("before any traffic: %v, want true", v)
	}

	// Half of checkout's requests fail: 100 bad of 200 where 0.2 are
	// allowed.
	tp := otlptest.Provider(t, d.GRPCAddr(), "checkout", false)
	tr := tp.Tracer("test")
	for i := range 200 {
		_, sp := tr.Start(context.Background(), "POST /api/checkout", trace.WithSpanKind(trace.SpanKindServer))
		if i%2 == 0 {
			sp.SetStatus(codes.Error, "boom")
		}
		sp.End()
	}
	if err := tp.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}

	deadline := time.Now().Add(30 * time.Second)
	var got map[string]any
	for got = evaluate(); got["value"] != false && time.Now().Before(deadline); got = evaluate() {
		time.Sleep(20 * time.Millisecond)
	}
	if got["value"] != false || got["variant"] != "disabled" || got["reason"] != "STATIC" {
		t.Fatalf("after the budget ran out: %v, want disabled (STATIC, forced by the kill switch)", got)
	}
	if md, _ := got["metadata"].(map[string]any); md["forced_by"] != "kill_switch" {
		t.Errorf("metadata %v, want forced_by kill_switch", got["metadata"])
	}
	hs, err := d.flags.svc.History(t.Context(), "recommendations", 10)
	if err != nil || len(hs) != 1 {
		t.Fatalf("history %+v, %v; want one flip", hs, err)
	}
	if h := hs[0]; h.Action != flags.ActionFlip || h.Source != "kill_switch" || h.Actor != "kill-switch" ||
		!strings.Contains(h.Reason, "checkout-availability: error budget exhausted") {
		t.Errorf("flip recorded as %+v", h)
	}
	rs, err := d.store.AuditRecords(t.Context(), 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	flips := 0
	for _, r := range rs {
		if r.Kind == gate.AuditFlagChange {
			flips++
		}
	}
	if rep, err := gate.VerifyAudit(t.Context(), d.store); err != nil || rep.Broken != nil || flips != 1 {
		t.Errorf("audit: %d flag rows, %+v, %v; want 1 row, intact", flips, rep, err)
	}
	for time.Now().Before(deadline) {
		mu.Lock()
		n := len(events)
		mu.Unlock()
		if n > 0 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(events) != 1 || events[0].Event != "flag.flip" || events[0].Subject != "recommendations" ||
		!strings.Contains(events[0].Text, "flipped flag recommendations to disabled") {
		t.Errorf("webhook events %+v, want one flag.flip for recommendations", events)
	}
}
