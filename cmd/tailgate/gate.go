package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/tailgate-sre/tailgate/internal/gate"
	"github.com/tailgate-sre/tailgate/internal/units"
)

func gateCommand() *command {
	return &command{
		name:    "gate",
		summary: "ask the error-budget gate; overrides, deploy markers, the audit log",
		help: `gate check exits 0 allow, 1 deny, 3 canary only, 2 error (bad arguments,
unreachable server, an error answer). Change classes: feature, fix, security,
rollback, config and any the policy declares.
`,
		subs: []*command{gateCheckCommand(), gateOverrideCommand(), gateDeployCommand(), gateDecisionsCommand()},
	}
}

func gateCheckCommand() *command {
	var (
		service, change, version, env, requestedBy *string
		acceptCanary                               *bool
	)
	return &command{
		name:     "check",
		summary:  "may this change ship? exit 0 allow, 1 deny, 3 canary, 2 error",
		synopsis: "--service S --change CLASS [flags]",
		common:   withClient | withOutput,
		flags: func(fs *flag.FlagSet) {
			service = fs.String("service", "", "service whose error budget decides (required)")
			change = fs.String("change", "", "change class: feature, fix, security, rollback, config (required)")
			version = fs.String("version", "", "version being shipped, for the audit log")
			env = fs.String("environment", "", "target environment, e.g. production")
			requestedBy = fs.String("requested-by", os.Getenv("TAILGATE_REQUESTED_BY"), "who asks: a pipeline run, a person (env TAILGATE_REQUESTED_BY)")
			acceptCanary = fs.Bool("accept-canary", false, "exit 0 on a canary-only answer (the deploy itself is a canary)")
		},
		run: func(ctx context.Context, inv *invocation) error {
			if err := required(inv.fs, "service", "change"); err != nil {
				return err
			}
			req := gate.CheckRequest{Service: *service, ChangeClass: gate.ChangeClass(*change), Version: *version, Environment: *env, RequestedBy: *requestedBy}
			var raw json.RawMessage
			if err := inv.call(ctx, "POST", "/api/v1/gate/check", req, &raw); err != nil {
				return err
			}
			var d gate.Decision
			if err := json.Unmarshal(raw, &d); err != nil {
				return fmt.Errorf("decode the decision: %w", err)
			}
			if inv.json() {
				inv.stdout.Write(append(raw, '\n'))
			} else {
				writeDecision(inv.stdout, &d)
			}
			switch d.Verdict {
			case gate.Allow:
				return nil
			case gate.Canary:
				if *acceptCanary {
					return nil
				}
				return exitCode(exitCanary)
			case gate.Deny:
				return exitCode(exitFail)
			default:
				return fmt.Errorf("unknown decision %s", d.Verdict)
			}
		},
	}
}

// required names every required flag left empty, in the order given.
func required(fs *flag.FlagSet, names ...string) error {
	var missing []string
	for _, name := range names {
		if f := fs.Lookup(name); f != nil && f.Value.String() == "" {
			missing = append(missing, "--"+name)
		}
	}
	switch len(missing) {
	case 0:
		return nil
	case 1:
		return usagef("missing %s (required)", missing[0])
	}
	return usagef("missing %s and %s (required)", strings.Join(missing[:len(missing)-1], ", "), missing[len(missing)-1])
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
			fmt.Fprintf(w, "  %*s", max(6, len("burn "+win)), burnRate(s.BurnRates[win], 2))
		}
		tte := "-"
		if s.TimeToExhaustionSeconds != nil {
			tte = units.HumanDuration(secondsDuration(*s.TimeToExhaustionSeconds))
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

// budgetCell is the budget column of the gate's SLO table: a 20-cell bar
// and the percentage left.
func budgetCell(p *float64) string {
	if p == nil {
		return budgetBar(nil, 20)
	}
	s := budgetBar(p, 20) + " " + pct(*p)
	if *p < 0 {
		s += " overspent"
	}
	return s
}

func gateOverrideCommand() *command {
	return &command{
		name:    "override",
		aliases: []string{"overrides"},
		summary: "time-boxed exceptions to the policy: create, list, revoke",
		subs:    []*command{overrideCreateCommand(), overrideListCommand(), overrideRevokeCommand()},
	}
}

func overrideCreateCommand() *command {
	var service, change, reason, approvedBy, dur, until *string
	return &command{
		name:     "create",
		aliases:  []string{"add"},
		summary:  "let change classes of a service through until a time",
		synopsis: "--service S --change CLASS[,CLASS] --reason R --approved-by P --for 2h [flags]",
		common:   withClient | withOutput,
		flags: func(fs *flag.FlagSet) {
			service = fs.String("service", "", "service (required)")
			change = fs.String("change", "", "change classes it lets through, comma separated (required)")
			reason = fs.String("reason", "", "why, for the audit log (required)")
			approvedBy = fs.String("approved-by", "", "who approved it (required)")
			dur = fs.String("for", "", "how long it lasts, e.g. 2h (or --until)")
			until = fs.String("until", "", "when it ends, RFC 3339")
		},
		run: func(ctx context.Context, inv *invocation) error {
			var expires time.Time
			switch {
			case *dur != "" && *until != "":
				return usagef("give --for or --until, not both")
			case *dur != "":
				d, err := units.ParseDuration(*dur)
				if err != nil || d <= 0 {
					return usagef("--for must be a positive duration such as 2h, got %q", *dur)
				}
				expires = time.Now().Add(d)
			case *until != "":
				t, err := parseTime("until", *until)
				if err != nil {
					return err
				}
				expires = t
			default:
				return usagef("an override is time-boxed: give --for or --until")
			}
			if err := required(inv.fs, "service", "change", "reason", "approved-by"); err != nil {
				return err
			}
			var classes []gate.ChangeClass
			for _, c := range strings.Split(*change, ",") {
				if c = strings.TrimSpace(c); c != "" {
					classes = append(classes, gate.ChangeClass(c))
				}
			}
			req := gate.OverrideRequest{Service: *service, ChangeClasses: classes, Reason: *reason, ApprovedBy: *approvedBy, ExpiresAt: expires.UTC().Truncate(time.Second)}
			var o gate.Override
			if err := inv.call(ctx, "POST", "/api/v1/gate/overrides", req, &o); err != nil {
				return err
			}
			if inv.json() {
				return writeJSON(inv.stdout, o)
			}
			fmt.Fprintf(inv.stdout, "override %s created\n", o.ID)
			writeOverrides(inv.stdout, []gate.Override{o})
			return nil
		},
	}
}

func overrideListCommand() *command {
	var service *string
	var all *bool
	return &command{
		name:     "list",
		aliases:  []string{"ls"},
		summary:  "the active overrides (--all: expired and revoked too)",
		synopsis: "[--service S] [--all] [flags]",
		common:   withClient | withOutput,
		flags: func(fs *flag.FlagSet) {
			service = fs.String("service", "", "only this service")
			all = fs.Bool("all", false, "include expired and revoked overrides")
		},
		run: func(ctx context.Context, inv *invocation) error {
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
			if err := inv.call(ctx, "GET", "/api/v1/gate/overrides?"+q.Encode(), nil, &out); err != nil {
				return err
			}
			if inv.json() {
				return writeJSON(inv.stdout, out)
			}
			if len(out.Overrides) == 0 {
				fmt.Fprintln(inv.stdout, "no overrides")
				return nil
			}
			writeOverrides(inv.stdout, out.Overrides)
			return nil
		},
	}
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

func overrideRevokeCommand() *command {
	return &command{
		name:     "revoke",
		aliases:  []string{"delete", "rm"},
		summary:  "end an override now",
		synopsis: "ID [flags]",
		args:     "ID",
		minArgs:  1,
		maxArgs:  1,
		common:   withClient | withOutput,
		run: func(ctx context.Context, inv *invocation) error {
			var o gate.Override
			if err := inv.call(ctx, "DELETE", "/api/v1/gate/overrides/"+url.PathEscape(inv.args[0]), nil, &o); err != nil {
				return err
			}
			if inv.json() {
				return writeJSON(inv.stdout, o)
			}
			fmt.Fprintf(inv.stdout, "override %s revoked\n", o.ID)
			writeOverrides(inv.stdout, []gate.Override{o})
			return nil
		},
	}
}

func gateDeployCommand() *command {
	var service, version, env, change, by, at, desc, rollback *string
	return &command{
		name:     "deploy",
		summary:  "record a deploy marker",
		synopsis: "--service S --version V [--environment E] [--change CLASS] [flags]",
		common:   withClient,
		flags: func(fs *flag.FlagSet) {
			service = fs.String("service", "", "service deployed (required)")
			version = fs.String("version", "", "version deployed (required)")
			env = fs.String("environment", "", "environment")
			change = fs.String("change", "", "change class of the deploy (rollback markers feed the change failure rate)")
			by = fs.String("deployed-by", os.Getenv("TAILGATE_REQUESTED_BY"), "who deployed")
			at = fs.String("time", "", "when, RFC 3339 (default now)")
			desc = fs.String("description", "", "free text")
			rollback = fs.String("rollback-command", "", "the command that undoes this deploy (a regression verdict names it)")
		},
		run: func(ctx context.Context, inv *invocation) error {
			if err := required(inv.fs, "service", "version"); err != nil {
				return err
			}
			d := gate.Deploy{Service: *service, Version: *version, Environment: *env, ChangeClass: gate.ChangeClass(*change), DeployedBy: *by,
				Description: *desc, RollbackCommand: *rollback}
			if *at != "" {
				t, err := parseTime("time", *at)
				if err != nil {
					return err
				}
				d.Time = t
			}
			var out gate.Deploy
			if err := inv.call(ctx, "POST", "/api/v1/deploys", d, &out); err != nil {
				return err
			}
			fmt.Fprintf(inv.stdout, "deploy %s recorded: %s %s at %s\n", out.ID, out.Service, out.Version, out.Time.UTC().Format(time.RFC3339))
			return nil
		},
	}
}

func gateDecisionsCommand() *command {
	var service, since *string
	var limit *int
	return &command{
		name:     "decisions",
		aliases:  []string{"audit"},
		summary:  "the audit log of gate decisions, newest first",
		synopsis: "[--service S] [--since 24h] [--limit N] [flags]",
		common:   withClient | withOutput,
		flags: func(fs *flag.FlagSet) {
			service = fs.String("service", "", "only this service")
			since = fs.String("since", "", "only decisions since: a duration (24h, 7d) or an RFC 3339 time")
			limit = fs.Int("limit", 50, "at most this many, newest first")
		},
		run: func(ctx context.Context, inv *invocation) error {
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
			if err := inv.call(ctx, "GET", "/api/v1/gate/decisions?"+q.Encode(), nil, &out); err != nil {
				return err
			}
			if inv.json() {
				return writeJSON(inv.stdout, out)
			}
			for _, d := range out.Decisions {
				who := d.RequestedBy
				if who == "" {
					who = d.Principal
				}
				fmt.Fprintf(inv.stdout, "%s  %-6s  %-9s %-14s %-22s %s %s\n", d.EvaluatedAt.UTC().Format(time.RFC3339), d.Verdict, d.ChangeClass, d.Service, d.PolicyRule, d.Version, who)
			}
			return nil
		},
	}
}

// writeJSON writes v indented, for --output json.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("write JSON: %w", err)
	}
	return nil
}
