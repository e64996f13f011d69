package main

import (
	"bytes"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tailgate-sre/tailgate/internal/api"
	"github.com/tailgate-sre/tailgate/internal/otlptest"
	"github.com/tailgate-sre/tailgate/internal/slo"
	"github.com/tailgate-sre/tailgate/internal/units"
)

func sloRunCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(t.Context(), append([]string{"tailgate"}, args...), strings.NewReader(""), &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestSLOValidateCLI(t *testing.T) {
	code, out, errOut := sloRunCLI(t, "slo", "validate", "../../examples/slos")
	if code != exitOK || !strings.Contains(out, "7 SLO(s) valid") {
		t.Errorf("examples: exit %d\n%s%s", code, out, errOut)
	}

	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("slos:\n  - name: a\n    service: s\n    objective: 100\n    window: 30d\n    sli: {kind: availability}\n"+
		"  - name: b\n    service: s\n    objective: 99\n    window: 30d\n    sli: {kind: latency}\n"), 0o644)
	code, out, errOut = sloRunCLI(t, "slo", "validate", bad)
	if code != exitFail {
		t.Errorf("exit %d, want %d", code, exitFail)
	}
	if !strings.Contains(errOut, "bad.yaml:11: slo \"b\": sli.threshold: required") || !strings.Contains(errOut, "1 error(s)") {
		t.Errorf("stderr:\n%s", errOut)
	}
	if !strings.Contains(out, "bad.yaml:4: objective: SLO \"a\": 100% leaves no error budget") {
		t.Errorf("stdout:\n%s", out)
	}
	if code, _, _ := sloRunCLI(t, "slo", "validate"); code != exitUsage {
		t.Errorf("no files: exit %d", code)
	}
	if code, _, _ := sloRunCLI(t, "slo", "frobnicate"); code != exitUsage {
		t.Errorf("unknown command: exit %d", code)
	}
}

func TestSLOListAndStatusCLI(t *testing.T) {
	e, err := slo.NewEngine([]slo.Spec{
		{Name: "checkout-availability", Service: "checkout", Objective: 99.9, Window: units.Duration(30 * 24 * time.Hour), SLI: slo.SLISpec{Kind: slo.Availability}},
		{Name: "quiet", Service: "quiet", Objective: 99, Window: units.Duration(7 * 24 * time.Hour), SLI: slo.SLISpec{Kind: slo.Availability}},
	}, slo.Settings{})
	if err != nil {
		t.Fatal(err)
	}
	e.Observe(otlptest.EntryRequest(t, "checkout", 4000, 1), time.Now())
	ts := httptest.NewServer(api.New(api.Deps{SLOs: e}))
	defer ts.Close()

	code, out, errOut := sloRunCLI(t, "slo", "list", "--server", ts.URL)
	if code != exitOK {
		t.Fatalf("list: exit %d: %s", code, errOut)
	}
	// 1 bad of 4000 against 4 allowed: 75% left; 1h burn 0.25.
	for _, want := range []string{"NAME", "checkout-availability", "99.9%", "30d", "75.0%", "0.25x", "quiet"} {
		if !strings.Contains(out, want) {
			t.Errorf("list output lacks %q:\n%s", want, out)
		}
	}
	code, out, errOut = sloRunCLI(t, "slo", "status", "checkout-availability", "--server", ts.URL)
	if code != exitOK {
		t.Fatalf("status: exit %d: %s", code, errOut)
	}
	for _, want := range []string{"error budget  [##############################..........]  75.0% left",
		"1 of 4 allowed bad events spent", "SLI           99.9750%", "WINDOW", "1h", "0.25x", "alerts: none"} {
		if !strings.Contains(out, want) {
			t.Errorf("status output lacks %q:\n%s", want, out)
		}
	}
	code, out, _ = sloRunCLI(t, "slo", "status", "--output", "json", "quiet", "--server", ts.URL)
	if code != exitOK || !strings.Contains(out, `"budget_remaining": null`) {
		t.Errorf("status json: exit %d\n%s", code, out)
	}
	if code, _, errOut := sloRunCLI(t, "slo", "status", "nope", "--server", ts.URL); code != exitUsage || !strings.Contains(errOut, "unknown SLO") {
		t.Errorf("unknown SLO: exit %d %s", code, errOut)
	}
	if code, _, _ := sloRunCLI(t, "slo", "list", "--server", "http://127.0.0.1:1"); code != exitUsage {
		t.Errorf("unreachable server: exit %d, want %d", code, exitUsage)
	}
}
