package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"

	"github.com/tailgate-sre/tailgate/internal/config"
	"github.com/tailgate-sre/tailgate/internal/daemon"
)

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("tailgate serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "config file (YAML); without it tailgate runs with the defaults of examples/tailgate.yaml")
	checkOnly := fs.Bool("check-config", false, "validate the config and exit: 0 valid, 2 invalid")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "tailgate serve: unexpected argument %q\n", fs.Arg(0))
		return exitUsage
	}

	cfg := config.Default()
	if *configPath != "" {
		var err error
		if cfg, err = config.Load(*configPath); err != nil {
			fmt.Fprintf(stderr, "tailgate: %v\n", err)
			return exitUsage
		}
	} else if err := cfg.Validate(); err != nil {
		fmt.Fprintf(stderr, "tailgate: default config: %v\n", err)
		return exitUsage
	}
	if *checkOnly {
		name := *configPath
		if name == "" {
			name = "default config"
		}
		fmt.Fprintf(stdout, "%s: OK\n", name)
		return exitOK
	}

	log := newLogger(stderr, cfg.Log)
	d, err := daemon.New(ctx, cfg, log)
	if err != nil {
		log.Error("cannot start", "err", err)
		return exitFail
	}
	if err := d.Start(ctx); err != nil {
		log.Error("cannot start", "err", err) // Start stopped what it had started
		return exitFail
	}
	select {
	case <-ctx.Done():
	case <-d.Failed():
		// A listener died: serving on half dead would look healthy to a
		// process supervisor while refusing spans or gate checks.
		log.Error("shutting down after a failure", "err", d.Err(), "deadline", cfg.Server.ShutdownTimeout.String())
		shutdown(d, cfg, log)
		return exitFail
	}
	log.Info("shutting down", "deadline", cfg.Server.ShutdownTimeout.String())
	if err := shutdown(d, cfg, log); err != nil {
		return exitFail
	}
	log.Info("stopped")
	return exitOK
}

// shutdown runs the daemon's graceful shutdown under the configured
// deadline, detached from the (already cancelled) signal context.
func shutdown(d *daemon.Daemon, cfg config.Config, log *slog.Logger) error {
	ctx, cancel := context.WithTimeout(context.Background(), cfg.Server.ShutdownTimeout.Std())
	defer cancel()
	err := d.Shutdown(ctx)
	if err != nil {
		log.Error("shutdown incomplete", "err", err)
	}
	return err
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
