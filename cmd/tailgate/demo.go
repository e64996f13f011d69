package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"syscall"

	"github.com/tailgate-sre/tailgate/internal/demo"
)

// runDemo plays the whole loop on a synthetic system: tailgate with
// embedded storage in a temporary directory, microservices instrumented
// with the OpenTelemetry SDK, a calm phase, a cascading failure and a
// recovery. Exit 0 when the run shows what it should (or was interrupted),
// 1 when a finished run does not or tailgate cannot start, 2 for bad flags.
func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("tailgate demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	def := demo.DefaultSchedule()
	api := fs.String("api", "127.0.0.1:8080", "listen address of the API and dashboard (127.0.0.1:0 picks a free port)")
	duration := fs.Duration("duration", 0, "total length; scales the phases proportionally (default: their sum, "+def.Total().String()+")")
	calm := fs.Duration("calm", def.Calm, "length of the calm phase")
	failure := fs.Duration("failure", def.Failure, "length of the cascading failure")
	recovery := fs.Duration("recovery", def.Recovery, "length of the recovery after the rollback")
	rps := fs.Float64("rps", 40, "frontend requests per second (about 6 spans each)")
	noTUI := fs.Bool("no-tui", false, "plain log lines instead of a redrawn screen (for CI; also when stdout is not a terminal)")
	keep := fs.Bool("keep", false, "keep tailgate running after the traffic stops (until Ctrl-C) and keep its data directory")
	override := fs.Bool("override", true, "create a gate override for checkout's features late in the recovery")
	seed := fs.Uint64("seed", 0, "seed of the traffic's randomness (0: random)")
	fs.Usage = func() {
		fmt.Fprint(stderr, "Usage: tailgate demo [flags]\n\n"+
			"Starts tailgate with a synthetic shop (frontend → checkout → payments, checkout → inventory)\n"+
			"exporting real OTLP to it, plays calm traffic, a cascading failure and a recovery, shows\n"+
			"budgets, alerts and the release gate live, and prints a summary.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "tailgate demo: unexpected argument %q\n", fs.Arg(0))
		return exitUsage
	}
	sched := demo.Schedule{Calm: *calm, Failure: *failure, Recovery: *recovery}
	if err := sched.Validate(); err != nil {
		fmt.Fprintf(stderr, "tailgate demo: %v\n", err)
		return exitUsage
	}
	if *duration < 0 {
		fmt.Fprintf(stderr, "tailgate demo: --duration must be positive, got %s\n", *duration)
		return exitUsage
	}
	if *duration > 0 {
		sched = sched.Scale(*duration)
	}
	if !(*rps > 0) || *rps > 5000 {
		fmt.Fprintf(stderr, "tailgate demo: --rps must be between 0 and 5000, got %v\n", *rps)
		return exitUsage
	}

	sum, err := demo.Run(ctx, demo.Options{
		API:      *api,
		Schedule: sched,
		RPS:      *rps,
		Seed:     *seed,
		Keep:     *keep,
		TUI:      !*noTUI && isTerminal(stdout),
		Override: *override,
		Out:      stdout,
	})
	if err != nil {
		fmt.Fprintf(stderr, "tailgate demo: %v\n", err)
		if errors.Is(err, syscall.EADDRINUSE) {
			fmt.Fprintf(stderr, "tailgate demo: pick another address with --api, e.g. --api 127.0.0.1:0 for a free port\n")
		}
		return exitFail
	}
	if !sum.Interrupted && !sum.Passed() {
		return exitFail
	}
	return exitOK
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
