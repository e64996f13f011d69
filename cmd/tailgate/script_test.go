package main

import (
	"context"
	"errors"
	"log/slog"
	"net/http/httptest"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/tailgate-sre/tailgate/internal/api"
	"github.com/tailgate-sre/tailgate/internal/auth"
	"github.com/tailgate-sre/tailgate/internal/flags"
	"github.com/tailgate-sre/tailgate/internal/gate"
	"github.com/tailgate-sre/tailgate/internal/incident"
	"github.com/tailgate-sre/tailgate/internal/otlptest"
	"github.com/tailgate-sre/tailgate/internal/slo"
	"github.com/tailgate-sre/tailgate/internal/store/pgtest"
	"github.com/tailgate-sre/tailgate/internal/store/sqlite"
	"github.com/tailgate-sre/tailgate/internal/units"
)

// TestMain lets the scripts run "tailgate" as a command: the test binary
// re-executes itself as the CLI, through the same run() main calls.
//
// The top-level run also starts a private PostgreSQL for the fleet tests
// (pgtest), which skip without one.
func TestMain(m *testing.M) {
	testscript.Main(withPostgres{m}, map[string]func(){
		"tailgate": func() {
			os.Exit(run(context.Background(), os.Args, os.Stdin, os.Stdout, os.Stderr))
		},
	})
}

// TestScripts runs testdata/script/*.txtar. Each script gets a tailgate API
// on 127.0.0.1 in this process (SLOs and a gate with fixed budgets, see
// scriptServer) in $TAILGATE_SERVER, and three commands:
//
//	exits CODE tailgate ARGS...  run the CLI and want exactly exit CODE
//	helpall                      run --help and -h of every command in the tree
//	auditstore DIR N|tamper SEQ|delete SEQ  write or damage an audited store
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir: "testdata/script",
		Setup: func(env *testscript.Env) error {
			srv, err := scriptServer(t)
			if err != nil {
				return err
			}
			env.Defer(srv.Close)
			env.Setenv("TAILGATE_SERVER", srv.URL)
			env.Setenv("TAILGATE_TOKEN", "")
			env.Setenv("TAILGATE_TOKEN_FILE", "")
			env.Setenv("TAILGATE_REQUESTED_BY", "")
			// Under -race every process sleeps a second at exit for
			// straggling reports; the scripts start about a hundred.
			env.Setenv("GORACE", strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"exits":      cmdExits,
			"helpall":    cmdHelpAll,
			"auditstore": cmdAuditStore,
		},
	})
}

// cmdExits runs a command and checks its exact exit code, which exec
// alone cannot ("! exec" accepts any failure).
func cmdExits(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: exits CODE COMMAND [ARGS...]")
	}
	want, err := strconv.Atoi(args[0])
	if err != nil {
		ts.Fatalf("exits: bad code %q", args[0])
	}
	got := 0
	if err := ts.Exec(args[1], args[2:]...); err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			ts.Fatalf("exits: %v", err)
		}
		got = ee.ExitCode()
	}
	if got != want {
		ts.Fatalf("%s exited %d, want %d", strings.Join(args[1:], " "), got, want)
	}
}

// cmdHelpAll walks the command tree, so that a new command is covered
// without editing a script: --help and -h of each exit 0 and print the
// usage line on stdout and nothing on stderr.
func cmdHelpAll(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) > 0 {
		ts.Fatalf("usage: helpall")
	}
	var walk func(path []string, c *command)
	n := 0
	walk = func(path []string, c *command) {
		for _, h := range []string{"--help", "-h"} {
			if err := ts.Exec("tailgate", append(path[1:len(path):len(path)], h)...); err != nil {
				ts.Fatalf("%s %s: %v", strings.Join(path, " "), h, err)
			}
			out, errOut := ts.ReadFile("stdout"), ts.ReadFile("stderr")
			if want := "Usage: " + strings.Join(path, " ") + " "; !strings.HasPrefix(out, want) || errOut != "" {
				ts.Fatalf("%s %s: stdout %q, stderr %q; want stdout starting %q and no stderr", strings.Join(path, " "), h, out, errOut, want)
			}
			n++
		}
		for _, s := range c.subs {
			walk(append(path[:len(path):len(path)], s.name), s)
		}
	}
	walk([]string{"tailgate"}, rootCommand())
	ts.Logf("helpall: %d help runs", n)
}

// scriptBudgets serves fixed SLO states to the gate: "checkout" healthy
// (80% left), "search" low (10% left: canary for features), "payments"
// spent (-50%: features denied).
type scriptBudgets struct{}

func (scriptBudgets) SLOStates(service string, now time.Time) []gate.SLOState {
	left := map[string]float64{"checkout": 0.8, "search": 0.1, "payments": -0.5}
	v, ok := left[service]
	if !ok {
		return nil
	}
	return []gate.SLOState{{
		Name: service + "-availability", Service: service, Objective: 99.9, Window: 30 * 24 * time.Hour,
		BudgetRemaining: &v, Coverage: 1, Good: 999_000, Total: 1_000_000, UpdatedAt: now,
	}}
}

// scriptServer is the API the scripts talk to: an SLO engine with one
// observed availability SLO and a gate over scriptBudgets.
func scriptServer(t *testing.T) (*httptest.Server, error) {
	e, err := slo.NewEngine([]slo.Spec{
		{Name: "checkout-availability", Service: "checkout", Objective: 99.9, Window: units.Duration(30 * 24 * time.Hour), SLI: slo.SLISpec{Kind: slo.Availability}},
	}, slo.Settings{})
	if err != nil {
		return nil, err
	}
	// 1 bad of 4000 against 4 allowed: 75% of the budget left.
	e.Observe(otlptest.EntryRequest(t, "checkout", 4000, 1), time.Now())
	g, err := gate.New(nil, gate.Settings{States: scriptBudgets{}, Store: gate.NewMemoryStore()})
	if err != nil {
		return nil, err
	}
	db, err := sqlite.Open(t.Context(), t.TempDir())
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { db.Close() })
	fs, err := flags.NewService(t.Context(), []flags.Config{{
		Key: "recommendations", Description: "product recommendations on the checkout page",
		Variants: map[string]any{"enabled": true, "disabled": false}, DefaultVariant: "enabled",
		Targeting:  []flags.Rule{{Rollout: map[string]float64{"enabled": 10, "disabled": 90}}},
		KillSwitch: &flags.KillSwitch{SLOs: []string{"checkout-availability"}, When: gate.Conditions{AlertFiring: gate.SeverityPage}, Variant: "disabled"},
	}}, flags.Settings{Store: db})
	if err != nil {
		return nil, err
	}
	// Writes pass anonymously, as on a laptop, so the scripts can change flags.
	a, err := auth.New(auth.Config{AllowAnonymousWrites: true}, slog.New(slog.DiscardHandler))
	if err != nil {
		return nil, err
	}
	is, err := incident.NewService(incident.DefaultConfig(), incident.Settings{Store: db, Buckets: db, Gate: db, Alerts: db,
		Oncall: incident.OncallConfig{Rotations: []incident.Rotation{{Name: "checkout-primary", Services: []string{"checkout"}}}},
		SLOs:   []slo.Spec{{Name: "checkout-availability", Service: "checkout", Objective: 99.9, Window: units.Duration(30 * 24 * time.Hour), SLI: slo.SLISpec{Kind: slo.Availability}}}})
	if err != nil {
		return nil, err
	}
	return httptest.NewServer(api.New(api.Deps{SLOs: e, Gate: g, Flags: fs, Incidents: is, Auth: a})), nil
}

// pg is the fleet tests' PostgreSQL server, started by TestMain.
var pg pgtest.Server

// withPostgres runs the tests with pg started.
type withPostgres struct{ m *testing.M }

func (w withPostgres) Run() int { return pgtest.Main(w.m, &pg) }
