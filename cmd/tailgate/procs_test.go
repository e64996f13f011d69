package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"testing"
)

// TestServeSetsGOMAXPROCS runs serve with server.gomaxprocs: 1: the
// runtime runs on one P while it serves, and /metrics says so.
func TestServeSetsGOMAXPROCS(t *testing.T) {
	if os.Getenv("GOMAXPROCS") != "" {
		t.Skip("GOMAXPROCS in the environment wins over server.gomaxprocs")
	}
	orig := runtime.GOMAXPROCS(0)
	t.Cleanup(func() { runtime.GOMAXPROCS(orig) }) // the setting is the process's, and this process runs the other tests
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "tailgate.yaml")
	if err := os.WriteFile(cfgFile, []byte(fmt.Sprintf(`
server: {api: "127.0.0.1:0", gomaxprocs: 1}
ingest: {otlp_grpc: "127.0.0.1:0", otlp_http: "127.0.0.1:0"}
storage: {path: %q}
`, filepath.Join(dir, "state"))), 0o600); err != nil {
		t.Fatal(err)
	}
	waitLog := serveInProcess(t, cfgFile)
	// serve applies the setting before it starts the daemon.
	m := regexp.MustCompile(`api=(\S+)`).FindStringSubmatch(waitLog("tailgate serving"))
	if m == nil {
		t.Fatal("no API address in serve's log")
	}
	if got := runtime.GOMAXPROCS(0); got != 1 {
		t.Errorf("GOMAXPROCS %d while serving with server.gomaxprocs: 1", got)
	}
	if got := scrapeSample(t, m[1], "go_sched_gomaxprocs_threads"); got != 1 {
		t.Errorf("/metrics: go_sched_gomaxprocs_threads %v, want 1", got)
	}
}
