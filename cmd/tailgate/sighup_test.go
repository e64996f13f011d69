package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tailgate-sre/tailgate/internal/otlptest"
)

// serveInProcess runs tailgate serve with the config file in this
// process until the test ends (serve must then exit 0), and returns a
// function that waits for the first line of serve's log containing s.
func serveInProcess(t *testing.T, cfgFile string) (waitLog func(s string) string) {
	t.Helper()
	pr, pw := io.Pipe()
	lines := make(chan string, 1024)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"tailgate", "serve", "--config", cfgFile}, strings.NewReader(""), io.Discard, pw)
		pw.Close()
	}()
	t.Cleanup(func() {
		cancel()
		// Keep reading serve's log, or its shutdown lines would block it.
		go func() {
			for range lines {
			}
		}()
		if code := <-done; code != 0 {
			t.Errorf("serve exited %d", code)
		}
	})
	return func(s string) string {
		t.Helper()
		for l := range lines {
			if strings.Contains(l, s) {
				return l
			}
		}
		t.Fatalf("serve's log ended before %q", s)
		return ""
	}
}

// TestServeReloadsOnSIGHUP runs serve in-process with ingest tokens read
// from a file, rotates the file and sends the process SIGHUP: the new token
// is accepted and the old one refused, without a restart.
func TestServeReloadsOnSIGHUP(t *testing.T) {
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "otlp.token")
	if err := os.WriteFile(tokenFile, []byte("old-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfgFile := filepath.Join(dir, "tailgate.yaml")
	if err := os.WriteFile(cfgFile, []byte(fmt.Sprintf(`
server: {api: "127.0.0.1:0"}
ingest: {otlp_grpc: "127.0.0.1:0", otlp_http: "127.0.0.1:0", require_token: true}
storage: {path: %q}
auth:
  tokens: [{name: collector, file: %q, scopes: [ingest]}]
`, filepath.Join(dir, "state"), tokenFile)), 0o600); err != nil {
		t.Fatal(err)
	}

	waitLog := serveInProcess(t, cfgFile)
	m := regexp.MustCompile(`addr=(\S+)`).FindStringSubmatch(waitLog("OTLP/HTTP receiver listening"))
	if m == nil {
		t.Fatal("no address in the receiver's log line")
	}
	addr := m[1]

	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	status := func(token string) int { return otlptest.HTTPStatus(t, client, addr, token) }
	if got := status("old-secret"); got != http.StatusOK {
		t.Fatalf("old token before SIGHUP: %d, want 200", got)
	}
	if err := os.WriteFile(tokenFile, []byte("new-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitLog("reloaded token files")
	if got, want := [2]int{status("old-secret"), status("new-secret")}, [2]int{http.StatusUnauthorized, http.StatusOK}; got != want {
		t.Errorf("after SIGHUP: old, new token = %d, want %d", got, want)
	}
}
