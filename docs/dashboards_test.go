package docs_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

type grafanaDashboard struct {
	UID        string `json:"uid"`
	Title      string `json:"title"`
	Templating struct {
		List []struct {
			Name string `json:"name"`
		} `json:"list"`
	} `json:"templating"`
	Panels []struct {
		ID          int    `json:"id"`
		Type        string `json:"type"`
		Title       string `json:"title"`
		FieldConfig struct {
			Defaults struct {
				Min *float64 `json:"min"`
			} `json:"defaults"`
		} `json:"fieldConfig"`
		Targets []struct {
			Expr    string `json:"expr"`
			Format  string `json:"format"`
			Instant bool   `json:"instant"`
		} `json:"targets"`
	} `json:"panels"`
}

// TestGrafanaDashboards checks the dashboards as Grafana reads them: a
// table of instant queries has each in table format (else Grafana shows one
// time series per query and the merge has nothing to join), every query of
// a dashboard with a service variable follows it, and a budget gauge shows
// an overspent budget below zero rather than clipping it at 0.
func TestGrafanaDashboards(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(root, "dashboards", "*.json"))
	if err != nil || len(files) < 3 {
		t.Fatalf("dashboards %v (%v): want the SLO, health and golden-signals ones", files, err)
	}
	uids := map[string]string{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var d grafanaDashboard
		if err := json.Unmarshal(b, &d); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if d.UID == "" || uids[d.UID] != "" {
			t.Errorf("%s: uid %q empty or shared with %s", f, d.UID, uids[d.UID])
		}
		uids[d.UID] = f
		hasService := false
		for _, v := range d.Templating.List {
			hasService = hasService || v.Name == "service"
		}
		for _, p := range d.Panels {
			if p.Type == "row" {
				continue
			}
			if len(p.Targets) == 0 {
				t.Errorf("%s: panel %q has no query", f, p.Title)
			}
			for _, q := range p.Targets {
				if p.Type == "table" && q.Instant && q.Format != "table" {
					t.Errorf("%s: table %q: query %q is not in table format", f, p.Title, q.Expr)
				}
				if hasService && !strings.Contains(q.Expr, `service_name=~"$service"`) && !strings.Contains(q.Expr, `slo=~"$slo"`) {
					t.Errorf("%s: panel %q ignores $service: %s", f, p.Title, q.Expr)
				}
			}
			if strings.Contains(p.Title, "budget remaining") && p.Type == "bargauge" && (p.FieldConfig.Defaults.Min == nil || *p.FieldConfig.Defaults.Min >= 0) {
				t.Errorf("%s: %q clips an overspent budget at %v", f, p.Title, p.FieldConfig.Defaults.Min)
			}
		}
	}
}
