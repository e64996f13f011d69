package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
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
	resp, err := http.Get("http://" + m[1] + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(body), "\ngo_sched_gomaxprocs_threads 1\n") {
		t.Errorf("/metrics has no go_sched_gomaxprocs_threads 1:\n%s", grepLines(string(body), "gomaxprocs"))
	}
}

// grepLines returns the lines of s that contain sub.
func grepLines(s, sub string) string {
	var out []string
	for l := range strings.Lines(s) {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "")
}
