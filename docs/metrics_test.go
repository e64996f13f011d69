// Package docs_test checks that the documentation, the Grafana dashboard and
// the web UI name the metrics tailgate registers, and only those.
package docs_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// root is the repository root, relative to this package.
const root = ".."

var (
	// metricToken is a metric name, or a prefix ending in "_", in any text.
	metricToken = regexp.MustCompile(`\btailgate_[a-z0-9_]+`)
	// metricLiteral is a metric name as a Go string literal.
	metricLiteral = regexp.MustCompile(`"(tailgate_[a-z0-9_]*[a-z0-9])"`)
	// serviceLabel finds PromQL or a label list that uses a plain service
	// label on a tailgate metric: tailgate_x{service=...}, {service, ...},
	// by (slo, service), label_values(tailgate_x, service).
	serviceLabel = []*regexp.Regexp{
		regexp.MustCompile(`tailgate_[a-z0-9_]+\{(?:[^}]*[,\s])?service\s*[,}=!]`),
		regexp.MustCompile(`\b(?:by|without) \((?:[^)]*[,\s])?service\s*[,)]`),
		regexp.MustCompile(`label_values\(tailgate_[^,]*,\s*service\)`),
	}
)

// renamed maps the names retired when the names were settled to their
// successors. Only the renaming table of docs/operations.md may name them.
var renamed = map[string][]string{
	"tailgate_sampler_spans_dropped_total":     {"tailgate_sampler_spans_not_sampled_total"},
	"tailgate_exporter_dropped_spans_total":    {"tailgate_exporter_abandoned_spans_total"},
	"tailgate_sampler_backpressure_total":      {"tailgate_sampler_backpressure_requests_total"},
	"tailgate_sampler_stress_relief_total":     {"tailgate_sampler_stress_relief_episodes_total", "tailgate_sampler_stress_relief_traces_total"},
	"tailgate_slo_evaluation_duration_seconds": {"tailgate_slo_last_evaluation_duration_seconds"},
	"tailgate_signals_series_overflow_total":   {"tailgate_signals_overflow_requests_total"},
	"tailgate_signals_operations_folded_total": {"tailgate_signals_other_operation_requests_total"},
	"tailgate_signals_services_folded_total":   {"tailgate_signals_other_service_requests_total"},
	"tailgate_kafka_backpressure_total":        {"tailgate_kafka_backpressure_records_total"},
}

// renamingPage is the page whose table lists the renamed metrics.
const renamingPage = "docs/operations.md"

// registered returns every metric name that a non-test Go file under
// internal/ registers: the string literals of files that construct
// collectors. Reading the sources rather than a registry also finds the
// series that exist only once traffic arrives (per-SLO gauges, RED metrics,
// label values created on first use).
func registered(t *testing.T) map[string]string {
	t.Helper()
	names := map[string]string{}
	walk(t, "internal", func(path, text string) {
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return
		}
		if !strings.Contains(text, "prometheus.New") {
			return
		}
		for _, m := range metricLiteral.FindAllStringSubmatch(text, -1) {
			names[m[1]] = path
		}
	})
	if len(names) < 20 {
		t.Fatalf("found only %d registered metrics; did the layout change?", len(names))
	}
	return names
}

// walk calls f with the path (relative to the repository root) and text of
// every file under dir.
func walk(t *testing.T, dir string, f func(path, text string)) {
	t.Helper()
	err := filepath.WalkDir(filepath.Join(root, dir), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		f(filepath.ToSlash(rel), string(b))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// known reports whether tok names a registered metric: the name itself, a
// histogram's _bucket, _sum or _count series, or a prefix ending in "_"
// (tailgate_slo_*) that some metric starts with.
func known(names map[string]string, tok string) bool {
	if _, ok := names[tok]; ok {
		return true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(tok, suffix); ok {
			if _, ok := names[base]; ok {
				return true
			}
		}
	}
	if strings.HasSuffix(tok, "_") {
		for n := range names {
			if strings.HasPrefix(n, tok) {
				return true
			}
		}
	}
	return false
}

// TestDocsListEveryMetric fails when a metric the daemon registers is not
// named in full on some page of docs/.
func TestDocsListEveryMetric(t *testing.T) {
	names := registered(t)
	documented := map[string]bool{}
	walk(t, "docs", func(path, text string) {
		if strings.HasSuffix(path, ".md") {
			for _, tok := range metricToken.FindAllString(text, -1) {
				documented[tok] = true
			}
		}
	})
	var missing []string
	for n, path := range names {
		if !documented[n] {
			missing = append(missing, n+" (registered in "+path+")")
		}
	}
	slices.Sort(missing)
	for _, m := range missing {
		t.Errorf("no page of docs/ names %s", m)
	}
}

// TestNoStaleMetricNames fails when the docs, the README, the deploy
// examples, the dashboards, the UI or Go code that reads metrics name a
// metric that is not registered (a rename that forgot a reader), or query
// a plain service label where the metrics label it service_name.
func TestNoStaleMetricNames(t *testing.T) {
	names := registered(t)
	check := func(path, text string) {
		for _, tok := range metricToken.FindAllString(text, -1) {
			if _, old := renamed[tok]; old && path == renamingPage {
				continue
			}
			if !known(names, tok) {
				t.Errorf("%s names %s, which no component registers", path, tok)
			}
		}
		if strings.HasSuffix(path, ".go") {
			return
		}
		for _, re := range serviceLabel {
			for _, m := range re.FindAllString(text, -1) {
				t.Errorf("%s: %q uses the label service; tailgate's metrics label it service_name", path, m)
			}
		}
	}
	for _, dir := range []string{"docs", "dashboards", "deploy", "internal/ui/static/js"} {
		walk(t, dir, func(path, text string) {
			if strings.HasSuffix(path, "_test.go") {
				return
			}
			check(path, text)
		})
	}
	b, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	check("README.md", string(b))
	walk(t, "internal", func(path, text string) {
		if strings.HasSuffix(path, ".go") && !strings.HasSuffix(path, "_test.go") {
			check(path, text)
		}
	})
}

// TestRenamingTable checks that every retired name is in the renaming
// table with its successors, and that the successors exist.
func TestRenamingTable(t *testing.T) {
	names := registered(t)
	b, err := os.ReadFile(filepath.Join(root, renamingPage))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(b), "\n")
	for old, news := range renamed {
		row := ""
		for _, l := range lines {
			if strings.HasPrefix(l, "| `"+old+"`") {
				row = l
			}
		}
		if row == "" {
			t.Errorf("%s has no row in the renaming table of %s", old, renamingPage)
		}
		for _, n := range news {
			if _, ok := names[n]; !ok {
				t.Errorf("%s was renamed to %s, which no component registers", old, n)
			}
			if !strings.Contains(row, "`"+n+"`") {
				t.Errorf("the renaming row of %s does not name %s", old, n)
			}
		}
	}
}

// TestServiceLabelPatterns checks the stale-label patterns against examples
// written by hand, so a pattern that never matches cannot pass silently.
func TestServiceLabelPatterns(t *testing.T) {
	for _, tt := range []struct {
		text  string
		stale bool
	}{
		{`tailgate_slo_burn_rate{service="checkout"}`, true},
		{`tailgate_service_requests_total{service, operation}`, true},
		{`max by (slo, service) (tailgate_slo_alert_firing)`, true},
		{`sum by (service) (x)`, true},
		{`label_values(tailgate_slo_objective_ratio, service)`, true},
		{`tailgate_slo_burn_rate{service_name="checkout"}`, false},
		{`tailgate_slo_objective_ratio{service_name=~\"$service\"}`, false},
		{`max by (slo, service_name) (tailgate_slo_alert_firing)`, false},
		{`label_values(tailgate_slo_objective_ratio, service_name)`, false},
		{`GET /api/v1/cardinality?service=&top=`, false},
	} {
		stale := false
		for _, re := range serviceLabel {
			stale = stale || re.MatchString(tt.text)
		}
		if stale != tt.stale {
			t.Errorf("%q: stale = %v, want %v", tt.text, stale, tt.stale)
		}
	}
}

// TestCountersNameTheirUnit: the counters issue 9 renamed for want of a
// unit (backpressure, stress relief) say what they count (requests,
// records, episodes, traces), so that a name like
// tailgate_x_backpressure_total does not come back with the next intake.
func TestCountersNameTheirUnit(t *testing.T) {
	for n, path := range registered(t) {
		for _, bare := range []string{"_backpressure_total", "_stress_relief_total"} {
			if strings.HasSuffix(n, bare) {
				t.Errorf("%s (registered in %s) ends in %s: name the unit it counts before _total", n, path, bare)
			}
		}
	}
}
