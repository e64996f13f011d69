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

// run is the whole CLI, callable in-process by tests.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return execute(ctx, rootCommand(), args[min(1, len(args)):], stdin, stdout, stderr)
}

// rootCommand builds the command tree; every command lives in its own file.
func rootCommand() *command {
	return &command{
		name:     "tailgate",
		synopsis: "COMMAND [ARGS]",
		help: `tailgate is an OpenTelemetry-native reliability control plane: OTLP ingest,
tail sampling, golden signals, SLO budgets and a release gate.

Commands that ask a running tailgate take --server URL (env TAILGATE_SERVER,
default http://127.0.0.1:8080), --token-file FILE (env TAILGATE_TOKEN_FILE,
or the token itself in TAILGATE_TOKEN) and --timeout.

` + exitCodesHelp,
		subs: []*command{
			serveCommand(),
			demoCommand(),
			sloCommand(),
			gateCommand(),
			flagCommand(),
			incidentCommand(),
			canaryCommand(),
			reportCommand(),
			cardinalityCommand(),
			auditCommand(),
			storeCommand(),
			fleetCommand(),
			versionCommand(),
		},
	}
}

// versionCommand prints the version; "tailgate --version" is an alias.
func versionCommand() *command {
	return &command{
		name:    "version",
		aliases: []string{"--version", "-v"},
		summary: "print the version",
		run: func(_ context.Context, inv *invocation) error {
			fmt.Fprintln(inv.stdout, versionString())
			return nil
		},
	}
}
