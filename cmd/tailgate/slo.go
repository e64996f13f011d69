package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/tailgate-sre/tailgate/internal/slo"
)

const sloUsage = `Usage:
  tailgate slo validate [--server URL] FILE|DIR...   check SLO files (own format and OpenSLO v1)
  tailgate slo list [--server URL] [--output text|json]
  tailgate slo status NAME [--server URL] [--output text|json]

validate reads the files locally; with --server it also reports the live
traffic warnings of the SLOs a running tailgate knows. list and status ask
the running tailgate at --server (env TAILGATE_SERVER).
`

func runSLO(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, sloUsage)
		return exitUsage
	}
	switch args[0] {
	case "validate":
		return runSLOValidate(ctx, args[1:], stdout, stderr)
	case "list":
		return runSLOList(ctx, args[1:], stdout, stderr)
	case "status":
		return runSLOStatus(ctx, args[1:], stdout, stderr)
	case "help", "--help", "-h":
		fmt.Fprint(stdout, sloUsage)
		return exitOK
	}
	fmt.Fprintf(stderr, "tailgate slo: unknown command %q\n\n%s", args[0], sloUsage)
	return exitUsage
}

// sloFlags parses a subcommand's flags, which may follow its arguments.
func sloFlags(name string, args []string, stderr io.Writer, setup func(fs *flag.FlagSet)) (*flag.FlagSet, []string, bool) {
	fs := flag.NewFlagSet("tailgate slo "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	setup(fs)
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, nil, false
		}
		if fs.NArg() == 0 {
			return fs, pos, true
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

func runSLOValidate(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var client func() (*apiClient, error)
	live := false
	_, files, ok := sloFlags("validate", args, stderr, func(fs *flag.FlagSet) {
		client = clientFlags(fs)
		fs.BoolFunc("live", "also report live traffic warnings from --server", func(string) error { live = true; return nil })
	})
	if !ok {
		return exitUsage
	}
	if len(files) == 0 {
		fmt.Fprintln(stderr, "tailgate slo validate: name at least one file or directory")
		return exitUsage
	}
	for _, a := range args {
		if strings.HasPrefix(a, "--server") || strings.HasPrefix(a, "-server") {
			live = true
		}
	}
	specs, warns, err := slo.LoadFiles(files...)
	for _, w := range warns {
		fmt.Fprintf(stdout, "warning: %s\n", w)
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
			fmt.Fprintf(stderr, "error: %s\n", m)
		}
		fmt.Fprintf(stderr, "%d error(s)\n", len(msgs))
		return exitFail
	}
	fmt.Fprintf(stdout, "%d SLO(s) valid", len(specs))
	if len(warns) > 0 {
		fmt.Fprintf(stdout, ", %d warning(s)", len(warns))
	}
	fmt.Fprintln(stdout)
	if !live {
		return exitOK
	}
	c, err := client()
	if err != nil {
		fmt.Fprintf(stderr, "tailgate slo validate: %v\n", err)
		return exitUsage
	}
	for _, s := range specs {
		var st slo.Status
		if err := c.do(ctx, "GET", "/api/v1/slos/"+url.PathEscape(s.Name), nil, &st); err != nil {
			if isAPIError(err) {
				fmt.Fprintf(stdout, "live: %s: not running on %s\n", s.Name, c.server)
				continue
			}
			fmt.Fprintf(stderr, "tailgate slo validate: %v\n", err)
			return exitUsage
		}
		for _, w := range st.Warnings {
			fmt.Fprintf(stdout, "warning: %s: %s\n", s.Name, w)
		}
	}
	return exitOK
}

func sloOutput(fs *flag.FlagSet) *string {
	return fs.String("output", "text", "output format: text or json")
}

func runSLOList(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var client func() (*apiClient, error)
	var output *string
	_, pos, ok := sloFlags("list", args, stderr, func(fs *flag.FlagSet) {
		client = clientFlags(fs)
		output = sloOutput(fs)
	})
	if !ok {
		return exitUsage
	}
	if len(pos) > 0 || (*output != "text" && *output != "json") {
		fmt.Fprintf(stderr, "tailgate slo list: takes no arguments and --output text|json\n")
		return exitUsage
	}
	c, err := client()
	if err != nil {
		fmt.Fprintf(stderr, "tailgate slo list: %v\n", err)
		return exitUsage
	}
	var list struct {
		SLOs []slo.Status `json:"slos"`
	}
	if err := c.do(ctx, "GET", "/api/v1/slos", nil, &list); err != nil {
		fmt.Fprintf(stderr, "tailgate slo list: %v\n", err)
		return exitUsage
	}
	if *output == "json" {
		return sloJSON(stdout, stderr, list)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSERVICE\tOBJECTIVE\tWINDOW\tSLI\tBUDGET LEFT\tBURN 1h\tBURN 6h\tALERTS")
	for _, s := range list.SLOs {
		fmt.Fprintf(tw, "%s\t%s\t%s%%\t%s\t%s\t%s\t%s\t%s\t%s\n", s.Name, s.Service, sloNum(s.Objective), s.Window,
			sloPct(s.SLI, 3), sloPct(s.BudgetRemaining, 1), sloRate(s.BurnRates["1h"]), sloRate(s.BurnRates["6h"]), sloAlerts(s.Alerts))
	}
	tw.Flush()
	return exitOK
}

func runSLOStatus(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var client func() (*apiClient, error)
	var output *string
	_, pos, ok := sloFlags("status", args, stderr, func(fs *flag.FlagSet) {
		client = clientFlags(fs)
		output = sloOutput(fs)
	})
	if !ok {
		return exitUsage
	}
	if len(pos) != 1 || (*output != "text" && *output != "json") {
		fmt.Fprintf(stderr, "tailgate slo status: want one SLO name and --output text|json\n")
		return exitUsage
	}
	c, err := client()
	if err != nil {
		fmt.Fprintf(stderr, "tailgate slo status: %v\n", err)
		return exitUsage
	}
	var st slo.Status
	if err := c.do(ctx, "GET", "/api/v1/slos/"+url.PathEscape(pos[0]), nil, &st); err != nil {
		fmt.Fprintf(stderr, "tailgate slo status: %v\n", err)
		if isAPIError(err) {
			return exitFail
		}
		return exitUsage
	}
	if *output == "json" {
		return sloJSON(stdout, stderr, st)
	}
	writeSLOStatus(stdout, &st)
	return exitOK
}

func sloJSON(stdout, stderr io.Writer, v any) int {
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		fmt.Fprintf(stderr, "tailgate slo: %v\n", err)
		return exitFail
	}
	return exitOK
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
	fmt.Fprintf(w, "objective %s%% %s over %s (%s), budgeting %s\n", sloNum(s.Objective), sli, s.Window,
		s.WindowStart.Format("2006-01-02 15:04 MST")+" → "+s.WindowEnd.Format("2006-01-02 15:04 MST"), s.BudgetingMethod)
	fmt.Fprintln(w)
	if s.BudgetRemaining == nil {
		fmt.Fprintf(w, "error budget  [%s]  no data (no requests in the window)\n", strings.Repeat("·", 40))
	} else {
		fmt.Fprintf(w, "error budget  [%s]  %s left\n", sloBar(*s.BudgetRemaining, 40), sloPct(s.BudgetRemaining, 1))
		fmt.Fprintf(w, "              %s of %s allowed bad events spent, %s left\n",
			sloNum(s.Budget.Consumed), sloNum(s.Budget.Total), sloNum(s.Budget.Remaining))
	}
	fmt.Fprintf(w, "SLI           %s (%s good of %s)\n", sloPct(s.SLI, 4), sloNum(s.Good), sloNum(s.Total))
	switch {
	case s.BudgetExhausted:
		fmt.Fprintln(w, "exhaustion    exhausted")
	case s.TimeToExhaustion != nil:
		fmt.Fprintf(w, "exhaustion    in %s at the current 1h burn rate\n", s.TimeToExhaustionText)
	default:
		fmt.Fprintln(w, "exhaustion    not burning")
	}
	fmt.Fprintf(w, "coverage      %s of the window counted (since %s)\n", sloPct(&s.Coverage, 1), s.TrackedSince.Format(time.RFC3339))
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "WINDOW\tREQUESTS\tBAD\tERROR RATE\tBURN RATE\tCOVERAGE\t")
	for _, win := range s.Windows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t\n", win.Window, sloNum(win.Total), sloNum(win.Total-win.Good),
			sloPct(win.ErrorRatio, 3), sloRate(win.BurnRate), sloPct(&win.Coverage, 0))
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
		fmt.Fprintf(w, "correction %d: %s (by %s) excluded %s requests\n", c.ID, c.Reason, sloOr(c.CreatedBy, c.Source), sloNum(float64(c.ExcludedTotal)))
	}
	for _, wr := range s.Warnings {
		fmt.Fprintf(w, "warning: %s\n", wr)
	}
	if len(s.Groups) > 0 {
		fmt.Fprintln(w)
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "GROUP\tREQUESTS\tSLI\tBUDGET LEFT\tBURN 1h")
		for _, g := range s.Groups {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", g.Group, sloNum(g.Total), sloPct(g.SLI, 3), sloPct(g.BudgetRemaining, 1), sloRate(g.BurnRates["1h"]))
		}
		tw.Flush()
	}
}

// sloBar draws the remaining budget fraction as a bar of width cells; an
// overspent budget shows an empty bar.
func sloBar(frac float64, width int) string {
	n := int(math.Round(max(0, min(1, frac)) * float64(width)))
	return strings.Repeat("█", n) + strings.Repeat("░", width-n)
}

func sloPct(p *float64, decimals int) string {
	if p == nil {
		return "-"
	}
	return fmt.Sprintf("%.*f%%", decimals, *p*100)
}

func sloRate(p *float64) string {
	if p == nil {
		return "-"
	}
	return fmt.Sprintf("%.2fx", *p)
}

func sloNum(f float64) string {
	if f == math.Trunc(f) && math.Abs(f) < 1e15 {
		return fmt.Sprintf("%.0f", f)
	}
	return fmt.Sprintf("%.4g", f)
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
