package daemon

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"

	"github.com/tailgate-sre/tailgate/internal/otlptest"
	"github.com/tailgate-sre/tailgate/internal/slo"
	"github.com/tailgate-sre/tailgate/internal/units"
)

// TestMetricNames gathers the metrics of a running daemon that has seen
// traffic and checks them against Prometheus's naming lint (promlint: base
// units, _total only on counters, no type suffix on the wrong type), that no
// tailgate metric has a label named service (the Prometheus Operator's
// target label would rename it to exported_service; the label is
// service_name), and that docs/ names every one of them.
// docs/metrics_test.go checks the same from the sources, including metrics
// that appear only with other traffic.
func TestMetricNames(t *testing.T) {
	sink := otlptest.NewSink(t)
	cfg := testConfig(t, sink, t.TempDir())
	cfg.SLOs = []slo.Spec{{Name: "checkout-availability", Service: "checkout", Objective: 99.9,
		Window: units.Duration(24 * time.Hour), SLI: slo.SLISpec{Kind: slo.Availability}}}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	d := startDaemon(t, cfg)
	defer stopDaemon(t, d)
	sendTraces(t, d, 20, 5, 0)

	mfs, err := d.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	docs := documentedNames(t)
	seen := map[string]bool{}
	for _, mf := range mfs {
		name := mf.GetName()
		if !strings.HasPrefix(name, "tailgate_") {
			continue
		}
		seen[name] = true
		if !docs[name] {
			t.Errorf("%s is registered but no page of docs/ names it", name)
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "service" {
					t.Errorf("%s has a label named service; name it service_name", name)
				}
			}
		}
	}
	// The families that only exist with traffic or configured SLOs must be
	// here, or the checks above proved little.
	for _, want := range []string{"tailgate_service_requests_total", "tailgate_slo_burn_rate",
		"tailgate_sampler_spans_kept_total", "tailgate_exporter_sent_spans_total", "tailgate_ingest_requests_total"} {
		if !seen[want] {
			t.Errorf("%s not gathered", want)
		}
	}
	problems, err := promlint.NewWithMetricFamilies(mfs).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		if strings.HasPrefix(p.Metric, "tailgate_") {
			t.Errorf("promlint: %s: %s", p.Metric, p.Text)
		}
	}
}

// documentedNames returns every tailgate_ name written on a page of docs/.
func documentedNames(t *testing.T) map[string]bool {
	t.Helper()
	pages, err := filepath.Glob("../../docs/*.md")
	if err != nil || len(pages) == 0 {
		t.Fatalf("no docs pages found (%v)", err)
	}
	re := regexp.MustCompile(`\btailgate_[a-z0-9_]+`)
	names := map[string]bool{}
	for _, p := range pages {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range re.FindAllString(string(b), -1) {
			names[n] = true
		}
	}
	return names
}
