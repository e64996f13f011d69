// Command tailgate is an OpenTelemetry-native reliability control plane: it
// ingests OTLP traces, keeps the traces that matter, computes SLIs and golden
// signals from every span, and enforces error-budget policy as a release gate.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args, os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// Exit codes shared by the subcommands.
const (
	exitOK    = 0
	exitFail  = 1 // the command ran and its answer is "no" (e.g. a denied gate check) or it failed
	exitUsage = 2 // bad arguments, unreadable config, unreachable server
)

const usage = `tailgate: an OpenTelemetry-native reliability control plane

Usage:
  tailgate serve [--config FILE] [--check-config]   run the daemon
  tailgate demo [--duration D] [--no-tui] [--keep]  the whole loop on a synthetic shop
  tailgate slo list|status|validate ...             SLOs and error budgets
  tailgate gate check --service S --change CLASS    may this change ship? exit 0 allow, 1 deny, 3 canary, 2 error
  tailgate gate override|deploy|decisions ...       overrides, deploy markers, the audit log
  tailgate report risk --service S                  the risk report for the release conversation
  tailgate cardinality [--service S] [--top N]      attribute cardinality report
  tailgate version                                  print the version

Run 'tailgate COMMAND --help' for a command's flags.
`

// run is the whole CLI, callable in-process by tests.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) < 2 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	cmd, rest := args[1], args[2:]
	switch cmd {
	case "serve":
		return runServe(ctx, rest, stdout, stderr)
	case "demo":
		return runDemo(ctx, rest, stdout, stderr)
	case "slo":
		return runSLO(ctx, rest, stdin, stdout, stderr)
	case "cardinality":
		return runCardinality(ctx, rest, stdout, stderr)
	case "gate":
		return runGate(ctx, rest, stdout, stderr)
	case "report":
		return runReport(ctx, rest, stdout, stderr)
	case "version", "--version", "-v":
		fmt.Fprintln(stdout, versionString())
		return exitOK
	case "help", "--help", "-h":
		fmt.Fprint(stdout, usage)
		return exitOK
	default:
		fmt.Fprintf(stderr, "tailgate: unknown command %q\n\n%s", cmd, usage)
		return exitUsage
	}
}
