package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"syscall"
	"time"

	"golang.org/x/term"

	"github.com/tailgate-sre/tailgate/internal/demo"
)

// demoCommand plays the whole loop on a synthetic system: tailgate with
// embedded storage in a temporary directory, microservices instrumented
// with the OpenTelemetry SDK, a calm phase, a cascading failure and a
// recovery. Exit 0 when the run shows what it should (or was interrupted),
// 1 when a finished run does not or tailgate cannot start, 2 for bad flags.
func demoCommand() *command {
	def := demo.DefaultSchedule()
	var (
		api                            *string
		duration, calm, fail, recovery *time.Duration
		rps                            *float64
		noTUI, keep, override          *bool
		seed                           *uint64
	)
	return &command{
		name:     "demo",
		summary:  "the whole loop on a synthetic shop",
		synopsis: "[flags]",
		help: `Starts tailgate with a synthetic shop (frontend → checkout → payments, checkout → inventory)
exporting real OTLP to it, plays calm traffic, a cascading failure and a recovery, shows
budgets, alerts and the release gate live, and prints a summary. The live screen needs a
terminal; with stdout redirected (or --no-tui) the demo writes plain log lines.
`,
		flags: func(fs *flag.FlagSet) {
			api = fs.String("api", "127.0.0.1:8080", "listen address of the API and dashboard (127.0.0.1:0 picks a free port)")
			duration = fs.Duration("duration", 0, "total length; scales the phases proportionally (default: their sum, "+def.Total().String()+")")
			calm = fs.Duration("calm", def.Calm, "length of the calm phase")
			fail = fs.Duration("failure", def.Failure, "length of the cascading failure")
			recovery = fs.Duration("recovery", def.Recovery, "length of the recovery after the rollback")
			rps = fs.Float64("rps", 40, "frontend requests per second (about 6 spans each)")
			noTUI = fs.Bool("no-tui", false, "plain log lines instead of a redrawn screen (for CI; also when stdout is not a terminal)")
			keep = fs.Bool("keep", false, "keep tailgate running after the traffic stops (until Ctrl-C) and keep its data directory")
			override = fs.Bool("override", true, "create a gate override for checkout's features late in the recovery")
			seed = fs.Uint64("seed", 0, "seed of the traffic's randomness (0: random)")
		},
		run: func(ctx context.Context, inv *invocation) error {
			sched := demo.Schedule{Calm: *calm, Failure: *fail, Recovery: *recovery}
			if err := sched.Validate(); err != nil {
				return &usageError{msg: err.Error()}
			}
			if *duration < 0 {
				return usagef("--duration must be positive, got %s", *duration)
			}
			if *duration > 0 {
				sched = sched.Scale(*duration)
			}
			if !(*rps > 0) || *rps > 5000 {
				return usagef("--rps must be between 0 and 5000, got %v", *rps)
			}
			sum, err := demo.Run(ctx, demo.Options{
				API:      *api,
				Schedule: sched,
				RPS:      *rps,
				Seed:     *seed,
				Keep:     *keep,
				TUI:      !*noTUI && isTerminal(inv.stdout),
				Override: *override,
				Out:      inv.stdout,
			})
			if err != nil {
				if errors.Is(err, syscall.EADDRINUSE) {
					err = fmt.Errorf("%w; pick another address with --api, e.g. --api 127.0.0.1:0 for a free port", err)
				}
				return &failure{err: err}
			}
			if !sum.Interrupted && !sum.Passed() {
				return exitCode(exitFail)
			}
			return nil
		},
	}
}

// isTerminal reports whether w is a terminal, where a redrawn screen makes
// sense; a file, a pipe or a test buffer gets plain lines.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}
