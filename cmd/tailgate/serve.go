package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/tailgate-sre/tailgate/internal/config"
	"github.com/tailgate-sre/tailgate/internal/daemon"
	"github.com/tailgate-sre/tailgate/internal/procs"
)

func serveCommand() *command {
	var configPath *string
	var checkOnly *bool
	return &command{
		name:     "serve",
		summary:  "run the daemon",
		synopsis: "[--config FILE] [--check-config]",
		help: `Without --config tailgate runs with the defaults of examples/tailgate.yaml.
--check-config validates the config and exits: 0 valid, 2 invalid.
`,
		flags: func(fs *flag.FlagSet) {
			configPath = fs.String("config", "", "config file (YAML); without it tailgate runs with the defaults of examples/tailgate.yaml")
			checkOnly = fs.Bool("check-config", false, "validate the config and exit: 0 valid, 2 invalid")
		},
		run: func(ctx context.Context, inv *invocation) error {
			return runServe(ctx, inv, *configPath, *checkOnly)
		},
	}
}

func runServe(ctx context.Context, inv *invocation, configPath string, checkOnly bool) error {
	cfg := config.Default()
	if configPath != "" {
		var err error
		if cfg, err = config.Load(configPath); err != nil {
			return err
		}
	} else if err := cfg.Validate(); err != nil {
		return fmt.Errorf("default config: %w", err)
	}
	if checkOnly {
		name := configPath
		if name == "" {
			name = "default config"
		}
		fmt.Fprintf(inv.stdout, "%s: OK\n", name)
		return nil
	}

	log := newLogger(inv.stderr, cfg.Log)
	d, err := daemon.New(ctx, cfg, log)
	if err != nil {
		log.Error("cannot start", "err", err)
		return exitCode(exitFail)
	}
	// GOMAXPROCS is the process's: serve, which owns the process, sets it
	// (a daemon in a test binary shares its process with others).
	defer procs.Start(cfg.Server.GOMAXPROCS, log)()
	// SIGHUP re-reads token and certificate files (see Daemon.Reload);
	// it is caught from before Start, so no SIGHUP kills a serving process.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	waited := make(chan struct{})
	defer close(waited)
	go func() {
		for {
			select {
			case <-hup:
				_ = d.Reload(time.Now()) // logged by Reload
			case <-waited:
				return
			}
		}
	}()
	if err := d.Start(ctx); err != nil {
		log.Error("cannot start", "err", err) // Start stopped what it had started
		return exitCode(exitFail)
	}
	// Wait returns on a signal (nil once stopped cleanly) or when a part
	// died, which the daemon has logged with its component: serving on
	// half dead would look healthy to a supervisor while refusing spans or
	// gate checks.
	if err := d.Wait(ctx); err != nil {
		log.Error("stopped", "err", err)
		return exitCode(exitFail)
	}
	log.Info("stopped")
	return nil
}

func newLogger(w io.Writer, c config.Log) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(c.Level)) // validated by config
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
