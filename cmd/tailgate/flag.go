package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/tailgate-sre/tailgate/internal/api"
	"github.com/tailgate-sre/tailgate/internal/flags"
)

func flagCommand() *command {
	return &command{
		name:    "flag",
		aliases: []string{"flags"},
		summary: "feature flags and kill switches: list, get, set, history",
		help: `Flags are served to applications over OFREP (POST /ofrep/v1/evaluate/flags/{key});
these commands read them and change their run-time state: force a variant for
everyone, give the decision back to the targeting, pause a kill switch.
Every change is recorded with who made it and why (docs/flags.md).`,
		subs: []*command{flagListCommand(), flagGetCommand(), flagSetCommand(), flagHistoryCommand()},
	}
}

func flagListCommand() *command {
	return &command{
		name:    "list",
		aliases: []string{"ls"},
		summary: "every flag, what it serves and its kill switch",
		common:  withClient | withOutput,
		run: func(ctx context.Context, inv *invocation) error {
			var out struct {
				Flags []flags.View `json:"flags"`
			}
			if err := inv.call(ctx, "GET", "/api/v1/flags", nil, &out); err != nil {
				return err
			}
			if inv.json() {
				return writeJSON(inv.stdout, out)
			}
			if len(out.Flags) == 0 {
				fmt.Fprintln(inv.stdout, "no flags (define them under flags: in the config, or with PUT /api/v1/flags/KEY)")
				return nil
			}
			tw := tabwriter.NewWriter(inv.stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "KEY\tSERVING\tKILL SWITCH\tDEFINED IN")
			for _, v := range out.Flags {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", v.Key, serving(v), killSwitchCell(v), v.DefinedIn)
			}
			return tw.Flush()
		},
	}
}

// serving says what a flag serves now: a forced variant, or its targeting.
func serving(v flags.View) string {
	if f := v.State.Forced; f != nil {
		by := "an operator"
		if f.By == "kill_switch" {
			by = "the kill switch"
		}
		return fmt.Sprintf("%s (forced by %s)", f.Variant, by)
	}
	if len(v.Targeting) > 0 {
		return fmt.Sprintf("targeting (default %s)", v.DefaultVariant)
	}
	return v.DefaultVariant
}

func killSwitchCell(v flags.View) string {
	ks := v.KillSwitch
	if ks == nil {
		if v.Essential {
			return "essential: never flipped"
		}
		return "-"
	}
	on := strings.Join(ks.SLOs, ",")
	if ks.Service != "" {
		on = "service " + ks.Service
	}
	s := fmt.Sprintf("%s on %s", ks.Variant, on)
	if v.State.Paused {
		s += " (paused)"
	}
	return s
}

func flagGetCommand() *command {
	return &command{
		name:     "get",
		aliases:  []string{"show"},
		summary:  "one flag: variants, targeting, kill switch, state",
		synopsis: "KEY [flags]",
		args:     "KEY",
		minArgs:  1,
		maxArgs:  1,
		common:   withClient | withOutput,
		run: func(ctx context.Context, inv *invocation) error {
			var v flags.View
			if err := inv.call(ctx, "GET", "/api/v1/flags/"+url.PathEscape(inv.args[0]), nil, &v); err != nil {
				return err
			}
			if inv.json() {
				return writeJSON(inv.stdout, v)
			}
			writeFlag(inv.stdout, v)
			return nil
		},
	}
}

func writeFlag(w io.Writer, v flags.View) {
	fmt.Fprintf(w, "%s (defined in %s)\n", v.Key, v.DefinedIn)
	if v.Description != "" {
		fmt.Fprintf(w, "  %s\n", v.Description)
	}
	fmt.Fprintf(w, "  serving:  %s\n", serving(v))
	names := make([]string, 0, len(v.Variants))
	for name := range v.Variants {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		b, _ := json.Marshal(v.Variants[name])
		mark := ""
		if name == v.DefaultVariant {
			mark = "  (default)"
		}
		fmt.Fprintf(w, "  variant %s = %s%s\n", name, b, mark)
	}
	for i, r := range v.Targeting {
		b, _ := json.Marshal(r)
		fmt.Fprintf(w, "  targeting[%d] %s\n", i, b)
	}
	fmt.Fprintf(w, "  kill switch: %s\n", killSwitchCell(v))
	if !v.State.Since.IsZero() {
		fmt.Fprintf(w, "  last change: %s (version %d)\n", v.State.Since.UTC().Format(time.RFC3339), v.State.Version)
	}
}

func flagSetCommand() *command {
	var variant, reason *string
	var restore, pause, resume *bool
	return &command{
		name:     "set",
		summary:  "force a variant, restore the targeting, pause or resume a kill switch",
		synopsis: "KEY (--variant V | --restore | --pause | --resume) --reason R [flags]",
		help: `--variant serves V to everyone until --restore gives the decision back to the
targeting; a kill switch never restores a variant a person forced. --pause
stops the flag's kill switch from flipping or restoring it; --resume lets it.`,
		args:    "KEY",
		minArgs: 1,
		maxArgs: 1,
		common:  withClient | withOutput,
		flags: func(fs *flag.FlagSet) {
			variant = fs.String("variant", "", "the variant to serve to everyone")
			restore = fs.Bool("restore", false, "give the decision back to the targeting")
			pause = fs.Bool("pause", false, "pause the flag's kill switch")
			resume = fs.Bool("resume", false, "resume the flag's kill switch")
			reason = fs.String("reason", "", "why, for the flag's history and the audit log (required)")
		},
		run: func(ctx context.Context, inv *invocation) error {
			action, n := "", 0
			for name, on := range map[string]bool{"flip": *variant != "", "restore": *restore, "pause": *pause, "resume": *resume} {
				if on {
					action, n = name, n+1
				}
			}
			if n != 1 {
				return usagef("give exactly one of --variant, --restore, --pause, --resume")
			}
			if err := required(inv.fs, "reason"); err != nil {
				return err
			}
			var v flags.View
			req := api.FlagChangeRequest{Variant: *variant, Reason: *reason}
			if err := inv.call(ctx, "POST", "/api/v1/flags/"+url.PathEscape(inv.args[0])+"/"+action, req, &v); err != nil {
				return err
			}
			if inv.json() {
				return writeJSON(inv.stdout, v)
			}
			writeFlag(inv.stdout, v)
			return nil
		},
	}
}

func flagHistoryCommand() *command {
	var limit *int
	return &command{
		name:     "history",
		summary:  "a flag's changes, newest first: who, when, why, from what to what",
		synopsis: "KEY [--limit N] [flags]",
		args:     "KEY",
		minArgs:  1,
		maxArgs:  1,
		common:   withClient | withOutput,
		flags: func(fs *flag.FlagSet) {
			limit = fs.Int("limit", 20, "at most this many changes")
		},
		run: func(ctx context.Context, inv *invocation) error {
			if *limit < 1 {
				return usagef("--limit must be at least 1, got %d", *limit)
			}
			var out struct {
				History []flags.Change `json:"history"`
			}
			path := "/api/v1/flags/" + url.PathEscape(inv.args[0]) + "/history?limit=" + strconv.Itoa(*limit)
			if err := inv.call(ctx, "GET", path, nil, &out); err != nil {
				return err
			}
			if inv.json() {
				return writeJSON(inv.stdout, out)
			}
			if len(out.History) == 0 {
				fmt.Fprintln(inv.stdout, "no changes")
				return nil
			}
			for _, c := range out.History {
				what := orTargeting(c.From) + " -> " + orTargeting(c.To)
				switch c.Action {
				case flags.ActionPause, flags.ActionResume, flags.ActionDefine, flags.ActionDelete:
					what = "serving " + orTargeting(c.To)
				}
				fmt.Fprintf(inv.stdout, "%s  %-7s  %s  by %s (%s)\n", c.At.UTC().Format(time.RFC3339), c.Action, what, c.Actor, c.Source)
				if c.Reason != "" {
					fmt.Fprintf(inv.stdout, "    %s\n", c.Reason)
				}
			}
			return nil
		},
	}
}

func orTargeting(v string) string {
	if v == "" {
		return "targeting"
	}
	return v
}
