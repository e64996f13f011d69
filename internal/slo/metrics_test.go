package slo

import (
	"os"
	"regexp"
	"slices"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// TestDashboardUsesExportedMetrics checks that every tailgate_slo_ metric
// the Grafana dashboard queries is one the engine exports.
func TestDashboardUsesExportedMetrics(t *testing.T) {
	b, err := os.ReadFile("../../dashboards/tailgate-slos.json")
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan *prometheus.Desc, 32)
	(&collector{}).Describe(ch)
	close(ch)
	var exported []string
	nameRE := regexp.MustCompile(`fqName: "([a-z_]+)"`)
	for d := range ch {
		exported = append(exported, nameRE.FindStringSubmatch(d.String())[1])
	}
	used := regexp.MustCompile(`tailgate_slo_[a-z_]+`).FindAllString(string(b), -1)
	if len(used) == 0 {
		t.Fatal("the dashboard queries no tailgate_slo_ metric")
	}
	for _, m := range used {
		if !slices.Contains(exported, m) {
			t.Errorf("dashboard queries %s, which the engine does not export (%v)", m, exported)
		}
	}
}
