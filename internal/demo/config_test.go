package demo

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestConfigParses(t *testing.T) {
	dir := t.TempDir()
	cfg, err := Config(dir, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range cfg.SLOs {
		names = append(names, s.Name)
		if s.Window.Std() != time.Hour {
			t.Errorf("%s: window %s, want 1h", s.Name, s.Window)
		}
		if s.Alerting.MinCoverage == nil || *s.Alerting.MinCoverage != 0.1 {
			t.Errorf("%s: min_coverage %v, want 0.1", s.Name, s.Alerting.MinCoverage)
		}
		if len(s.Alerting.Tiers) != 4 {
			t.Errorf("%s: %d tiers, want the Workbook's 4", s.Name, len(s.Alerting.Tiers))
		}
	}
	want := []string{"frontend-availability", "checkout-availability", "checkout-latency", "payments-availability", "payments-latency"}
	if diff := cmp.Diff(want, names); diff != "" {
		t.Errorf("SLOs (-want +got):\n%s", diff)
	}
	if cfg.SLOEngine.EvalInterval.Std() != time.Second {
		t.Errorf("eval_interval %s, want 1s", cfg.SLOEngine.EvalInterval)
	}
	if cfg.Export.File == nil || cfg.Storage.Path != dir {
		t.Errorf("export %+v, storage %q: want a file export and storage in %s", cfg.Export, cfg.Storage.Path, dir)
	}
}
