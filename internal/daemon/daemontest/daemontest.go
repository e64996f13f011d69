// Package daemontest runs a real tailgate daemon inside a test.
package daemontest

import (
	"context"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/tailgate-sre/tailgate/internal/config"
	"github.com/tailgate-sre/tailgate/internal/daemon"
)

// Start builds and starts a daemon from cfg (whose addresses should be
// 127.0.0.1:0) and shuts it down gracefully when the test ends. Its log is
// discarded unless the test runs with -v, when warnings go to stderr.
func Start(tb testing.TB, cfg config.Config) *daemon.Daemon {
	tb.Helper()
	log := slog.New(slog.DiscardHandler)
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	d, err := daemon.New(tb.Context(), cfg, log)
	if err != nil {
		tb.Fatal(err)
	}
	if err := d.Start(tb.Context()); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := d.Shutdown(ctx); err != nil {
			tb.Errorf("daemon shutdown: %v", err)
		}
	})
	return d
}
