package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/tailgate-sre/tailgate/internal/daemon"
)

// sendVersion sends n checkout requests of one version through the OTel
// SDK, bad of them failed.
func sendVersion(t *testing.T, d *daemon.Daemon, version string, n, bad int) {
	t.Helper()
	exp, err := otlptracegrpc.New(t.Context(), otlptracegrpc.WithEndpoint(d.GRPCAddr()), otlptracegrpc.WithInsecure())
	if err != nil {
		t.Fatal(err)
	}
	res := resource.NewSchemaless(attribute.String("service.name", "checkout"), attribute.String("service.version", version))
	tp := sdktrace.NewTracerProvider(sdktrace.WithResource(res), sdktrace.WithBatcher(exp, sdktrace.WithBlocking()))
	tr := tp.Tracer("test")
	for i := range n {
		_, sp := tr.Start(context.Background(), "POST /api/checkout", trace.WithSpanKind(trace.SpanKindServer))
		if i < bad {
			sp.SetStatus(codes.Error, "boom")
		}
		sp.End()
	}
	if err := tp.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestCanaryEndToEnd: OTel SDK services of two versions through the
// daemon; the canary is judged through the CLI (exit codes), the Argo
// Rollouts web metric and the Flagger webhook.
func TestCanaryEndToEnd(t *testing.T) {
	d, api := startE2E(t, e2eConfig(t))
	cli := func(args ...string) (int, string) {
		var out, errb bytes.Buffer
		code := run(t.Context(), append([]string{"tailgate", "canary", "check", "--service", "checkout", "--server", api}, args...), strings.NewReader(""), &out, &errb)
		return code, out.String() + errb.String()
	}
	// Before any traffic: inconclusive (3).
	if code, out := cli("--canary", "2.4.0"); code != exitCanary || !strings.Contains(out, "inconclusive") {
		t.Fatalf("no traffic: exit %d\n%s", code, out)
	}
	// The baseline is healthy; the canary fails 30% of its requests. The
	// baseline serves after the canary started too: the comparison runs
	// from the canary's first minute, and a minute boundary between the
	// two sends must not leave the baseline without requests.
	sendVersion(t, d, "2.3.1", 1500, 1)
	sendVersion(t, d, "2.4.0", 300, 90)
	sendVersion(t, d, "2.3.1", 1500, 2)
	// The counts are taken when the request is acknowledged, which the
	// SDK's shutdown waited for.
	code, out := cli("--canary", "2.4.0", "--baseline", "2.3.1")
	if code != exitFail || !strings.Contains(out, "fail: canary 2.4.0 of checkout against 2.3.1") || !strings.Contains(out, "canary    300 requests, 90 errors (30.00%)") ||
		!strings.Contains(out, "latency   canary p50 ") || !strings.Contains(out, "(this instance's requests)") {
		t.Fatalf("bad canary: exit %d\n%s", code, out)
	}
	// The baseline judged against the canary's version is no worse: not a
	// fail (too few errors to pass at once: inconclusive or pass).
	if code, out := cli("--canary", "2.3.1", "--baseline", "2.4.0"); code == exitFail || code == exitUsage {
		t.Errorf("healthy version against the bad one: exit %d\n%s", code, out)
	}
	// Argo Rollouts' web metric: jsonPath {$.verdict}.
	resp, err := http.Get(api + "/api/v1/canary/argo?service=checkout&canary=2.4.0")
	if err != nil {
		t.Fatal(err)
	}
	var argo map[string]any
	json.NewDecoder(resp.Body).Decode(&argo)
	resp.Body.Close()
	if resp.StatusCode != 200 || argo["verdict"] != "fail" || argo["rule"] != "error_ratio" {
		t.Errorf("argo: %d %v", resp.StatusCode, argo)
	}
	// Flagger's rollout webhook: non-2xx on fail, so Flagger rolls back.
	flagger := func(version string) int {
		body := `{"name":"checkout","namespace":"shop","phase":"Progressing","metadata":{"service":"checkout","canary":"` + version + `"}}`
		resp, err := http.Post(api+"/api/v1/canary/flagger/rollout", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := flagger("2.4.0"); got != http.StatusPreconditionFailed {
		t.Errorf("flagger, bad canary: %d, want 412", got)
	}
	if got := flagger("2.3.1"); got != http.StatusOK {
		t.Errorf("flagger, healthy version: %d, want 200", got)
	}
	// Bad usage: exit 2.
	if code, out := cli("--canary", ""); code != exitUsage {
		t.Errorf("no canary version: exit %d\n%s", code, out)
	}
}

// TestGateDeniesAFailedCanary: a feature release of a version whose
// canary failed is denied, naming the verdict; its rollback is not.
func TestGateDeniesAFailedCanary(t *testing.T) {
	d, api := startE2E(t, e2eConfig(t))
	// Baseline traffic on both sides of the canary's start (see
	// TestCanaryEndToEnd).
	sendVersion(t, d, "2.3.1", 1500, 1)
	sendVersion(t, d, "2.4.0", 300, 90)
	sendVersion(t, d, "2.3.1", 1500, 2)
	gate := func(change, version string) (int, string) {
		var out, errb bytes.Buffer
		code := run(t.Context(), []string{"tailgate", "gate", "check", "--service", "checkout", "--change", change, "--version", version, "--server", api},
			strings.NewReader(""), &out, &errb)
		return code, out.String() + errb.String()
	}
	if code, out := gate("feature", "2.4.0"); code != exitFail || !strings.Contains(out, "canary-failed") || !strings.Contains(out, "version 2.4.0 failed as a canary") {
		t.Errorf("feature 2.4.0: exit %d\n%s", code, out)
	}
	if code, out := gate("rollback", "2.4.0"); code != exitOK {
		t.Errorf("rollback: exit %d\n%s", code, out)
	}
}
