package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/tailgate-sre/tailgate/internal/gate"
	"github.com/tailgate-sre/tailgate/internal/units"
)

// exitCanary is gate check's answer "allowed only as a canary".
const exitCanary = 3

const gateUsage = `Usage:
  tailgate gate check --service S --change CLASS [flags]   ask the error-budget gate
  tailgate gate override create --service S --change CLASS[,CLASS] --reason R --approved-by P --for 2h
  tailgate gate override list [--service S] [--all]
  tailgate gate override revoke ID
  tailgate gate deploy --service S --version V [--environment E] [--change CLASS]
  tailgate gate decisions [--service S] [--since 24h] [--limit N]

gate check exits 0 allow, 1 deny, 3 canary only, 2 error (bad arguments,
unreachable server). Change classes: feature, fix, security, rollback, config
and any the policy declares.
`

func runGate(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, gateUsage)
		return exitUsage
	}
	switch args[0] {
	case "check":
		return runGateCheck(ctx, args[1:], stdout, stderr)
	case "override", "overrides":
		return runGateOverride(ctx, args[1:], stdout, stderr)
	case "deploy":
		return runGateDeploy(ctx, args[1:], stdout, stderr)
	case "decisions", "audit":
		return runGateDecisions(ctx, args[1:], stdout, stderr)
	case "help", "--help", "-h":
		fmt.Fprint(stdout, gateUsage)
		return exitOK
	default:
		fmt.Fprintf(stderr, "tailgate gate: unknown subcommand %q\n\n%s", args[0], gateUsage)
		return exitUsage
	}
}

// parseFlags parses fs, letting flags and up to positional arguments come
// in any order ("revoke ID --server URL"), and returns the positional
// arguments.
func parseFlags(fs *flag.FlagSet, args []string, positional int, stderr io.Writer) (ok bool, code int) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return false, exitOK
			}
			return false, exitUsage
		}
		if fs.NArg() == 0 {
			break
		}
		if len(pos) == positional {
			fmt.Fprintf(stderr, "%s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
			return false, exitUsage
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
	// Leave the positional arguments where fs.Arg finds them.
	_ = fs.Parse(append([]string{"--"}, pos...))
	return true, 0
}

func outputFlag(fs *flag.FlagSet) *string {
	return fs.String("output", "text", "output format: text or json")
}

func checkOutput(o string, stderr io.Writer, cmd string) bool {
	if o != "text" && o != "json" {
		fmt.Fprintf(stderr, "%s: --output must be text or json, got %q\n", cmd, o)
		return false
	}
	return true
}

func runGateCheck(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("tailgate gate check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	service := fs.String("service", "", "service whose error budget decides (required)")
	change := fs.String("change", "", "change class: feature, fix, security, rollback, config (required)")
	version := fs.String("version", "", "version being shipped, for the audit log")
	env := fs.String("environment", "", "target environment, e.g. production")
	requestedBy := fs.String("requested-by", os.Getenv("TAILGATE_REQUESTED_BY"), "who asks: a pipeline run, a person (env TAILGATE_REQUESTED_BY)")
	acceptCanary := fs.Bool("accept-canary", false, "exit 0 on a canary-only answer (the deploy itself is a canary)")
	output := outputFlag(fs)
	client := clientFlags(fs)
	if ok, code := parseFlags(fs, args, 0, stderr); !ok {
		return code
	}
	var missing []string
	if *service == "" {
		missing = append(missing, "--service")
	}
	if *change == "" {
		missing = append(missing, "--change")
	}
	if len(missing) > 0 {
		fmt.Fprintf(stderr, "tailgate gate check: %s required\n", strings.Join(missing, " and "))
		return exitUsage
	}
	if !checkOutput(*output, stderr, "tailgate gate check") {
		return exitUsage
	}
	c, err := client()
	if err != nil {
		fmt.Fprintf(stderr, "tailgate gate check: %v\n", err)
		return exitUsage
	}
	req := gate.CheckRequest{Service: *service, ChangeClass: gate.ChangeClass(*change), Version: *version, Environment: *env, RequestedBy: *requestedBy}
	var raw json.RawMessage
	if err := c.do(ctx, "POST", "/api/v1/gate/check", req, &raw); err != nil {
		fmt.Fprintf(stderr, "tailgate gate check: %v\n", err)
		return exitUsage
	}
	var d gate.Decision
	if err := json.Unmarshal(raw, &d); err != nil {
		fmt.Fprintf(stderr, "tailgate gate check: decode the decision: %v\n", err)
		return exitUsage
	}
	if *output == "json" {
		stdout.Write(append(raw, '\n'))
	} else {
		writeDecision(stdout, &d)
	}
	switch d.Verdict {
	case gate.Allow:
		return exitOK
	case gate.Canary:
		if *acceptCanary {
			return exitOK
		}
		return exitCanary
	case gate.Deny:
		return exitFail
	default:
		fmt.Fprintf(stderr, "tailgate gate check: unknown decision %s\n", d.Verdict)
		return exitUsage
	}
}

// writeDecision renders a decision for a CI log or a terminal.
func writeDecision(w io.Writer, d *gate.Decision) {
	what := fmt.Sprintf("%s change to %s", d.ChangeClass, d.Service)
	var extra []string
	if d.Version != "" {
		extra = append(extra, d.Version)
	}
	if d.Environment != "" {
		extra = append(extra, d.Environment)
	}
	if len(extra) > 0 {
		what += " (" + strings.Join(extra, ", ") + ")"
	}
	switch d.Verdict {
	case gate.Allow:
		fmt.Fprintf(w, "ALLOW   %s\n", what)
	case gate.Canary:
		fmt.Fprintf(w, "CANARY  %s: allowed only as a canary, at %s%% of traffic\n", what, strconv.FormatFloat(d.CanaryWeight, 'f', -1, 64))
	case gate.Deny:
		fmt.Fprintf(w, "DENY    %s\n", what)
	}
	fmt.Fprintf(w, "rule:   %s (policy %s)", d.PolicyRule, d.Policy)
	if d.StaleData {
		fmt.Fprint(w, "; SLO data was stale or missing")
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w)
	for _, r := range d.Reasons {
		fmt.Fprintf(w, "  - %s\n", r)
	}
	if len(d.SLOs) > 0 {
		fmt.Fprintln(w)
		writeSLOTable(w, d.SLOs)
	}
	fmt.Fprintf(w, "\ndecision %s at %s, valid for %ds\n", d.ID, d.EvaluatedAt.UTC().Format(time.RFC3339), d.TTLSeconds)
}

// burnWindows are the burn-rate columns, shortest first.
func burnWindows() []string { return []string{"5m", "30m", "1h", "2h", "6h", "1d", "3d"} }

func writeSLOTable(w io.Writer, slos []gate.SLOSummary) {
	nameW := len("SLO")
	for _, s := range slos {
		nameW = max(nameW, len(s.Name))
	}
	// Only the burn windows some SLO reports.
	var wins []string
	for _, win := range burnWindows() {
		for _, s := range slos {
			if _, ok := s.BurnRates[win]; ok {
				wins = append(wins, win)
				break
			}
		}
	}
	fmt.Fprintf(w, "%-*s  %-9s  %-6s  %-40s", nameW, "SLO", "objective", "window", "error budget remaining")
	for _, win := range wins {
		fmt.Fprintf(w, "  %6s", "burn "+win)
	}
	fmt.Fprintf(w, "  %s\n", "exhausted in")
	for _, s := range slos {
		fmt.Fprintf(w, "%-*s  %-9s  %-6s  %-40s", nameW, s.Name, trimFloat(s.Objective)+"%", s.Window, budgetCell(s.BudgetRemaining))
		for _, win := range wins {
			fmt.Fprintf(w, "  %*s", max(6, len("burn "+win)), rateCell(s.BurnRates[win]))
		}
		tte := "-"
		if s.TimeToExhaustionSeconds != nil {
			tte = humanDur(time.Duration(*s.TimeToExhaustionSeconds * float64(time.Second)))
		}
		fmt.Fprintf(w, "  %s", tte)
		if s.Stale {
			fmt.Fprint(w, "  (stale)")
		}
		fmt.Fprintln(w)
		for _, a := range s.AlertsFiring {
			since := ""
			if !a.Since.IsZero() {
				since = " since " + a.Since.UTC().Format(time.RFC3339)
			}
			fmt.Fprintf(w, "%-*s  ! %s alert %s firing%s\n", nameW, "", a.Severity, a.Name, since)
		}
	}
}

// budgetBar draws the remaining budget as 20 cells: "[#####...............]".
func budgetBar(frac float64) string {
	const cells = 20
	n := int(math.Round(math.Max(0, math.Min(1, frac)) * cells))
	return "[" + strings.Repeat("#", n) + strings.Repeat(".", cells-n) + "]"
}

func budgetCell(p *float64) string {
	if p == nil {
		return "[      no data       ]"
	}
	s := budgetBar(*p) + " " + pctText(*p)
	if *p < 0 {
		s += " overspent"
	}
	return s
}

func rateCell(p *float64) string {
	if p == nil {
		return "-"
	}
	return strconv.FormatFloat(*p, 'f', 2, 64) + "x"
}

func pctText(f float64) string { return strconv.FormatFloat(f*100, 'f', 1, 64) + "%" }

func trimFloat(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }

// humanDur rounds for people: "3d4h", "2h15m", "45s".
func humanDur(d time.Duration) string {
	switch {
	case d >= 24*time.Hour:
		days, h := d/(24*time.Hour), (d%(24*time.Hour)).Round(time.Hour)/time.Hour
		if h == 24 {
			days, h = days+1, 0
		}
		if h == 0 {
			return fmt.Sprintf("%dd", days)
		}
		return fmt.Sprintf("%dd%dh", days, h)
	case d >= time.Minute:
		return units.FormatDuration(d.Round(time.Minute))
	default:
		return d.Round(time.Second).String()
	}
}

func runGateOverride(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, gateUsage)
		return exitUsage
	}
	switch args[0] {
	case "create", "add":
		return runOverrideCreate(ctx, args[1:], stdout, stderr)
	case "list", "ls":
		return runOverrideList(ctx, args[1:], stdout, stderr)
	case "revoke", "delete", "rm":
		return runOverrideRevoke(ctx, args[1:], stdout, stderr)
	default:
		fmt.Fprintf(stderr, "tailgate gate override: unknown subcommand %q (create, list, revoke)\n", args[0])
		return exitUsage
	}
}

func runOverrideCreate(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("tailgate gate override create", flag.ContinueOnError)
	fs.SetOutput(stderr)
	service := fs.String("service", "", "service (required)")
	change := fs.String("change", "", "change classes it lets through, comma separated (required)")
	reason := fs.String("reason", "", "why, for the audit log (required)")
	approvedBy := fs.String("approved-by", "", "who approved it (required)")
	dur := fs.String("for", "", "how long it lasts, e.g. 2h (or --until)")
	until := fs.String("until", "", "when it ends, RFC 3339")
	output := outputFlag(fs)
	client := clientFlags(fs)
	if ok, code := parseFlags(fs, args, 0, stderr); !ok {
		return code
	}
	var expires time.Time
	switch {
	case *dur != "" && *until != "":
		fmt.Fprintln(stderr, "tailgate gate override create: give --for or --until, not both")
		return exitUsage
	case *dur != "":
		d, err := units.ParseDuration(*dur)
		if err != nil || d <= 0 {
			fmt.Fprintf(stderr, "tailgate gate override create: --for: must be a positive duration such as 2h, got %q\n", *dur)
			return exitUsage
		}
		expires = time.Now().Add(d)
	case *until != "":
		t, err := time.Parse(time.RFC3339, *until)
		if err != nil {
			fmt.Fprintf(stderr, "tailgate gate override create: --until: %v\n", err)
			return exitUsage
		}
		expires = t
	default:
		fmt.Fprintln(stderr, "tailgate gate override create: an override is time-boxed: give --for or --until")
		return exitUsage
	}
	if *service == "" || *change == "" || *reason == "" || *approvedBy == "" {
		fmt.Fprintln(stderr, "tailgate gate override create: --service, --change, --reason and --approved-by are required")
		return exitUsage
	}
	if !checkOutput(*output, stderr, "tailgate gate override create") {
		return exitUsage
	}
	var classes []gate.ChangeClass
	for _, c := range strings.Split(*change, ",") {
		if c = strings.TrimSpace(c); c != "" {
			classes = append(classes, gate.ChangeClass(c))
		}
	}
	c, err := client()
	if err != nil {
		fmt.Fprintf(stderr, "tailgate gate override create: %v\n", err)
		return exitUsage
	}
	req := gate.OverrideRequest{Service: *service, ChangeClasses: classes, Reason: *reason, ApprovedBy: *approvedBy, ExpiresAt: expires.UTC().Truncate(time.Second)}
	var o gate.Override
	if err := c.do(ctx, "POST", "/api/v1/gate/overrides", req, &o); err != nil {
		fmt.Fprintf(stderr, "tailgate gate override create: %v\n", err)
		return exitUsage
	}
	if *output == "json" {
		return writeJSONOut(stdout, stderr, o)
	}
	fmt.Fprintf(stdout, "override %s created\n", o.ID)
	writeOverrides(stdout, []gate.Override{o})
	return exitOK
}

func runOverrideList(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("tailgate gate override list", flag.ContinueOnError)
	fs.SetOutput(stderr)
	service := fs.String("service", "", "only this service")
	all := fs.Bool("all", false, "include expired and revoked overrides")
	output := outputFlag(fs)
	client := clientFlags(fs)
	if ok, code := parseFlags(fs, args, 0, stderr); !ok {
		return code
	}
	if !checkOutput(*output, stderr, "tailgate gate override list") {
		return exitUsage
	}
	c, err := client()
	if err != nil {
		fmt.Fprintf(stderr, "tailgate gate override list: %v\n", err)
		return exitUsage
	}
	q := url.Values{}
	if *service != "" {
		q.Set("service", *service)
	}
	if *all {
		q.Set("all", "true")
	}
	var out struct {
		Overrides []gate.Override `json:"overrides"`
	}
	if err := c.do(ctx, "GET", "/api/v1/gate/overrides?"+q.Encode(), nil, &out); err != nil {
		fmt.Fprintf(stderr, "tailgate gate override list: %v\n", err)
		return exitUsage
	}
	if *output == "json" {
		return writeJSONOut(stdout, stderr, out)
	}
	if len(out.Overrides) == 0 {
		fmt.Fprintln(stdout, "no overrides")
		return exitOK
	}
	writeOverrides(stdout, out.Overrides)
	return exitOK
}

func writeOverrides(w io.Writer, os []gate.Override) {
	for _, o := range os {
		classes := make([]string, len(o.ChangeClasses))
		for i, c := range o.ChangeClasses {
			classes[i] = string(c)
		}
		fmt.Fprintf(w, "%s  %-8s  %s  %s  until %s\n", o.ID, o.Status, o.Service, strings.Join(classes, ","), o.ExpiresAt.UTC().Format(time.RFC3339))
		fmt.Fprintf(w, "    approved by %s, created by %s at %s: %s\n", o.ApprovedBy, o.CreatedBy, o.CreatedAt.UTC().Format(time.RFC3339), o.Reason)
		if o.RevokedAt != nil {
			fmt.Fprintf(w, "    revoked by %s at %s\n", o.RevokedBy, o.RevokedAt.UTC().Format(time.RFC3339))
		}
	}
}

func runOverrideRevoke(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("tailgate gate override revoke", flag.ContinueOnError)
	fs.SetOutput(stderr)
	output := outputFlag(fs)
	client := clientFlags(fs)
	if ok, code := parseFlags(fs, args, 1, stderr); !ok {
		return code
	}
	if fs.NArg() != 1 || !checkOutput(*output, stderr, "tailgate gate override revoke") {
		fmt.Fprintln(stderr, "usage: tailgate gate override revoke [flags] ID")
		return exitUsage
	}
	c, err := client()
	if err != nil {
		fmt.Fprintf(stderr, "tailgate gate override revoke: %v\n", err)
		return exitUsage
	}
	var o gate.Override
	if err := c.do(ctx, "DELETE", "/api/v1/gate/overrides/"+url.PathEscape(fs.Arg(0)), nil, &o); err != nil {
		fmt.Fprintf(stderr, "tailgate gate override revoke: %v\n", err)
		return exitUsage
	}
	if *output == "json" {
		return writeJSONOut(stdout, stderr, o)
	}
	fmt.Fprintf(stdout, "override %s revoked\n", o.ID)
	writeOverrides(stdout, []gate.Override{o})
	return exitOK
}

func runGateDeploy(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("tailgate gate deploy", flag.ContinueOnError)
	fs.SetOutput(stderr)
	service := fs.String("service", "", "service deployed (required)")
	version := fs.String("version", "", "version deployed (required)")
	env := fs.String("environment", "", "environment")
	change := fs.String("change", "", "change class of the deploy (rollback markers feed the change failure rate)")
	by := fs.String("deployed-by", os.Getenv("TAILGATE_REQUESTED_BY"), "who deployed")
	at := fs.String("time", "", "when, RFC 3339 (default now)")
	desc := fs.String("description", "", "free text")
	client := clientFlags(fs)
	if ok, code := parseFlags(fs, args, 0, stderr); !ok {
		return code
	}
	if *service == "" || *version == "" {
		fmt.Fprintln(stderr, "tailgate gate deploy: --service and --version are required")
		return exitUsage
	}
	d := gate.Deploy{Service: *service, Version: *version, Environment: *env, ChangeClass: gate.ChangeClass(*change), DeployedBy: *by, Description: *desc}
	if *at != "" {
		t, err := time.Parse(time.RFC3339, *at)
		if err != nil {
			fmt.Fprintf(stderr, "tailgate gate deploy: --time: %v\n", err)
			return exitUsage
		}
		d.Time = t
	}
	c, err := client()
	if err != nil {
		fmt.Fprintf(stderr, "tailgate gate deploy: %v\n", err)
		return exitUsage
	}
	var out gate.Deploy
	if err := c.do(ctx, "POST", "/api/v1/deploys", d, &out); err != nil {
		fmt.Fprintf(stderr, "tailgate gate deploy: %v\n", err)
		return exitUsage
	}
	fmt.Fprintf(stdout, "deploy %s recorded: %s %s at %s\n", out.ID, out.Service, out.Version, out.Time.UTC().Format(time.RFC3339))
	return exitOK
}

func runGateDecisions(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("tailgate gate decisions", flag.ContinueOnError)
	fs.SetOutput(stderr)
	service := fs.String("service", "", "only this service")
	since := fs.String("since", "", "only decisions since: a duration (24h, 7d) or an RFC 3339 time")
	limit := fs.Int("limit", 50, "at most this many, newest first")
	output := outputFlag(fs)
	client := clientFlags(fs)
	if ok, code := parseFlags(fs, args, 0, stderr); !ok {
		return code
	}
	if !checkOutput(*output, stderr, "tailgate gate decisions") {
		return exitUsage
	}
	c, err := client()
	if err != nil {
		fmt.Fprintf(stderr, "tailgate gate decisions: %v\n", err)
		return exitUsage
	}
	q := url.Values{"limit": {strconv.Itoa(*limit)}}
	if *service != "" {
		q.Set("service", *service)
	}
	if *since != "" {
		q.Set("from", *since)
	}
	var out struct {
		Decisions []gate.Decision `json:"decisions"`
	}
	if err := c.do(ctx, "GET", "/api/v1/gate/decisions?"+q.Encode(), nil, &out); err != nil {
		fmt.Fprintf(stderr, "tailgate gate decisions: %v\n", err)
		return exitUsage
	}
	if *output == "json" {
		return writeJSONOut(stdout, stderr, out)
	}
	for _, d := range out.Decisions {
		who := d.RequestedBy
		if who == "" {
			who = d.Principal
		}
		fmt.Fprintf(stdout, "%s  %-6s  %-9s %-14s %-22s %s %s\n", d.EvaluatedAt.UTC().Format(time.RFC3339), d.Verdict, d.ChangeClass, d.Service, d.PolicyRule, d.Version, who)
	}
	return exitOK
}

func writeJSONOut(stdout, stderr io.Writer, v any) int {
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		fmt.Fprintf(stderr, "tailgate: write JSON: %v\n", err)
		return exitFail
	}
	return exitOK
}
