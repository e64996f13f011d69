package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/tailgate-sre/tailgate/internal/slo"
	"github.com/tailgate-sre/tailgate/internal/units"
)

func sloCommand() *command {
	return &command{
		name:    "slo",
		summary: "SLOs and error budgets",
		help: `validate reads SLO files locally; with --server (or --live) it also reports
the live traffic warnings of the SLOs a running tailgate knows. list and
status ask the running tailgate at --server (env TAILGATE_SERVER).
`,
		subs: []*command{sloValidateCommand(), sloListCommand(), sloStatusCommand()},
	}
}

func sloValidateCommand() *command {
	var live *bool
	return &command{
		name:     "validate",
		summary:  "check SLO files (own format and OpenSLO v1)",
		synopsis: "[--server URL] FILE|DIR...",
		help:     "Exits 0 when every file is valid, 1 when one is not, 2 for bad usage.\n",
		args:     "FILE|DIR",
		minArgs:  1,
		maxArgs:  -1,
		common:   withClient,
		flags: func(fs *flag.FlagSet) {
			live = fs.Bool("live", false, "also report live traffic warnings from --server (implied by --server)")
		},
		run: func(ctx context.Context, inv *invocation) error {
			return runSLOValidate(ctx, inv, *live || inv.flagSet("server"))
		},
	}
}

func runSLOValidate(ctx context.Context, inv *invocation, live bool) error {
	specs, warns, err := slo.LoadFiles(inv.args...)
	for _, w := range warns {
		fmt.Fprintf(inv.stdout, "warning: %s\n", w)
	}
	if err != nil {
		msgs := []string{err.Error()}
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			msgs = msgs[:0]
			for _, e := range j.Unwrap() {
				msgs = append(msgs, e.Error())
			}
		}
		for _, m := range msgs {
			fmt.Fprintf(inv.stderr, "error: %s\n", m)
		}
		fmt.Fprintf(inv.stderr, "%d error(s)\n", len(msgs))
		return exitCode(exitFail)
	}
	fmt.Fprintf(inv.stdout, "%d SLO(s) valid", len(specs))
	if len(warns) > 0 {
		fmt.Fprintf(inv.stdout, ", %d warning(s)", len(warns))
	}
	fmt.Fprintln(inv.stdout)
	if !live {
		return nil
	}
	c, err := inv.client()
	if err != nil {
		return err
	}
	for _, s := range specs {
		var st slo.Status
		if err := c.do(ctx, "GET", "/api/v1/slos/"+url.PathEscape(s.Name), nil, &st); err != nil {
			if isAPIError(err) {
				fmt.Fprintf(inv.stdout, "live: %s: not running on %s\n", s.Name, c.server)
				continue
			}
			return err
		}
		for _, w := range st.Warnings {
			fmt.Fprintf(inv.stdout, "warning: %s: %s\n", s.Name, w)
		}
	}
	return nil
}

func sloListCommand() *command {
	return &command{
		name:     "list",
		aliases:  []string{"ls"},
		summary:  "every SLO with its budget and burn rates",
		synopsis: "[--server URL] [--output text|json]",
		common:   withClient | withOutput,
		run: func(ctx context.Context, inv *invocation) error {
			var list struct {
				SLOs []slo.Status `json:"slos"`
			}
			if err := inv.call(ctx, "GET", "/api/v1/slos", nil, &list); err != nil {
				return err
			}
			if inv.json() {
				return writeJSON(inv.stdout, list)
			}
			tw := tabwriter.NewWriter(inv.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tSERVICE\tOBJECTIVE\tWINDOW\tSLI\tBUDGET LEFT\tBURN 1h\tBURN 6h\tALERTS")
			for _, s := range list.SLOs {
				fmt.Fprintf(tw, "%s\t%s\t%s%%\t%s\t%s\t%s\t%s\t%s\t%s\n", s.Name, s.Service, number(s.Objective), s.Window,
					percent(s.SLI, 3), percent(s.BudgetRemaining, 1), burnRate(s.BurnRates["1h"], 2), burnRate(s.BurnRates["6h"], 2), sloAlerts(s.Alerts))
			}
			return tw.Flush()
		},
	}
}

func sloStatusCommand() *command {
	return &command{
		name:     "status",
		summary:  "one SLO's budget, burn rates, alerts and corrections",
		synopsis: "NAME [--server URL] [--output text|json]",
		args:     "NAME",
		minArgs:  1,
		maxArgs:  1,
		common:   withClient | withOutput,
		run: func(ctx context.Context, inv *invocation) error {
			var st slo.Status
			if err := inv.call(ctx, "GET", "/api/v1/slos/"+url.PathEscape(inv.args[0]), nil, &st); err != nil {
				return err
			}
			if inv.json() {
				return writeJSON(inv.stdout, st)
			}
			writeSLOStatus(inv.stdout, &st)
			return nil
		},
	}
}

// writeSLOStatus prints an SLO's state for a person: the budget bar, the
// burn table and the alerts.
func writeSLOStatus(w io.Writer, s *slo.Status) {
	fmt.Fprintf(w, "%s  (service %s)\n", s.Name, s.Service)
	if s.Description != "" {
		fmt.Fprintf(w, "  %s\n", s.Description)
	}
	sli := s.SLIKind
	if s.Threshold != "" {
		sli += " under " + s.Threshold
	}
	fmt.Fprintf(w, "objective %s%% %s over %s (%s), budgeting %s\n", number(s.Objective), sli, s.Window,
		s.WindowStart.Format("2006-01-02 15:04 MST")+" → "+s.WindowEnd.Format("2006-01-02 15:04 MST"), s.BudgetingMethod)
	fmt.Fprintln(w)
	if s.BudgetRemaining == nil {
		fmt.Fprintf(w, "error budget  %s  no requests in the window\n", budgetBar(nil, 40))
	} else {
		fmt.Fprintf(w, "error budget  %s  %s left\n", budgetBar(s.BudgetRemaining, 40), percent(s.BudgetRemaining, 1))
		fmt.Fprintf(w, "              %s of %s allowed bad events spent, %s left\n",
			number(s.Budget.Consumed), number(s.Budget.Total), number(s.Budget.Remaining))
	}
	fmt.Fprintf(w, "SLI           %s (%s good of %s)\n", percent(s.SLI, 4), number(s.Good), number(s.Total))
	switch {
	case s.BudgetExhausted:
		fmt.Fprintln(w, "exhaustion    exhausted")
	case s.TimeToExhaustion != nil:
		fmt.Fprintf(w, "exhaustion    in %s at the current 1h burn rate\n", units.HumanDuration(secondsDuration(*s.TimeToExhaustion)))
	default:
		fmt.Fprintln(w, "exhaustion    not burning")
	}
	fmt.Fprintf(w, "coverage      %s of the window counted (since %s)\n", percent(&s.Coverage, 1), s.TrackedSince.Format(time.RFC3339))
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "WINDOW\tREQUESTS\tBAD\tERROR RATE\tBURN RATE\tCOVERAGE\t")
	for _, win := range s.Windows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t\n", win.Window, number(win.Total), number(win.Total-win.Good),
			percent(win.ErrorRatio, 3), burnRate(win.BurnRate, 2), percent(&win.Coverage, 0))
	}
	tw.Flush()
	fmt.Fprintln(w)
	if len(s.Alerts) == 0 {
		fmt.Fprintln(w, "alerts: none")
	} else {
		fmt.Fprintln(w, "alerts:")
		for _, a := range s.Alerts {
			since := a.ActiveAt
			if a.State == slo.Firing {
				since = a.FiredAt
			}
			group := ""
			if a.Group != "" {
				group = " [" + a.Group + "]"
			}
			fmt.Fprintf(w, "  %-7s %-6s %s%s since %s: %s\n", strings.ToUpper(a.State.String()), a.Severity, a.Name, group,
				since.Format("2006-01-02 15:04:05 MST"), a.Summary)
		}
	}
	for _, c := range s.Corrections {
		fmt.Fprintf(w, "correction %d: %s (by %s) excluded %s requests\n", c.ID, c.Reason, sloOr(c.CreatedBy, c.Source), number(float64(c.ExcludedTotal)))
	}
	for _, wr := range s.Warnings {
		fmt.Fprintf(w, "warning: %s\n", wr)
	}
	if len(s.Groups) > 0 {
		fmt.Fprintln(w)
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "GROUP\tREQUESTS\tSLI\tBUDGET LEFT\tBURN 1h")
		for _, g := range s.Groups {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", g.Group, number(g.Total), percent(g.SLI, 3), percent(g.BudgetRemaining, 1), burnRate(g.BurnRates["1h"], 2))
		}
		tw.Flush()
	}
}

func sloOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func sloAlerts(as []slo.Alert) string {
	if len(as) == 0 {
		return "-"
	}
	var parts []string
	for _, a := range as {
		parts = append(parts, a.Name+"("+a.State.String()+")")
	}
	return strings.Join(parts, ",")
}
