package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"

	"github.com/tailgate-sre/tailgate/internal/gate"
	"github.com/tailgate-sre/tailgate/internal/incident"
	"github.com/tailgate-sre/tailgate/internal/units"
)

func reportCommand() *command {
	return &command{
		name:    "report",
		summary: "reports for people: the release risk, the on-call load",
		subs:    []*command{reportRiskCommand(), reportOncallCommand()},
	}
}

func reportRiskCommand() *command {
	var service *string
	return &command{
		name:     "risk",
		summary:  "release risk of a service, for the release conversation",
		synopsis: "--service S [--output text|json] [flags]",
		common:   withClient | withOutput,
		flags: func(fs *flag.FlagSet) {
			service = fs.String("service", "", "service (required)")
		},
		run: func(ctx context.Context, inv *invocation) error {
			if err := required(inv.fs, "service"); err != nil {
				return err
			}
			var raw json.RawMessage
			if err := inv.call(ctx, "GET", "/api/v1/services/"+url.PathEscape(*service)+"/risk", nil, &raw); err != nil {
				return err
			}
			if inv.json() {
				_, err := inv.stdout.Write(append(raw, '\n'))
				return err
			}
			var r gate.RiskReport
			if err := json.Unmarshal(raw, &r); err != nil {
				return fmt.Errorf("decode the report: %w", err)
			}
			writeRisk(inv.stdout, &r)
			return nil
		},
	}
}

// writeRisk renders the risk report in sentences a product manager reads.
func writeRisk(w io.Writer, r *gate.RiskReport) {
	fmt.Fprintf(w, "Release risk for %s, %s\n\n", r.Service, r.GeneratedAt.UTC().Format("2006-01-02 15:04 MST"))
	verdict := map[gate.Verdict]string{gate.Allow: "ALLOWED", gate.Canary: "allowed only as a CANARY", gate.Deny: "DENIED"}[r.FeatureDecision]
	fmt.Fprintf(w, "Gate now: feature releases are %s (rule %s).\n", verdict, r.FeatureRule)
	if len(r.FeatureReasons) > 0 {
		fmt.Fprintf(w, "  %s\n", r.FeatureReasons[0])
	}
	money := r.Money
	for _, s := range r.SLOs {
		fmt.Fprintf(w, "\n%s (%s%% over %s)\n", s.Name, trimFloat(s.Objective), s.Window)
		if s.Total == 0 || s.BudgetRemaining == nil {
			fmt.Fprintln(w, "  No traffic in the window yet: nothing to measure the budget against.")
			continue
		}
		left := fmt.Sprintf("%s left", pct(*s.BudgetRemaining))
		if *s.BudgetRemaining < 0 {
			left = fmt.Sprintf("overspent by %s", pct(-*s.BudgetRemaining))
		}
		fmt.Fprintf(w, "  Error budget: %s %s", budgetBar(s.BudgetRemaining, 20), left)
		if s.BudgetRemainingEvents != nil {
			if *s.BudgetRemainingEvents >= 0 {
				fmt.Fprintf(w, ": %s more failed requests allowed of %s this window", count(*s.BudgetRemainingEvents), count(s.BudgetEvents))
			} else {
				fmt.Fprintf(w, ": %s failed requests over the %s allowed this window", count(-*s.BudgetRemainingEvents), count(s.BudgetEvents))
			}
		}
		fmt.Fprintln(w, ".")
		if s.BurnRateNow != nil {
			fmt.Fprintf(w, "  Burning at %sx the sustainable rate (last %s)", strconv.FormatFloat(*s.BurnRateNow, 'f', 1, 64), s.BurnRateWindow)
			switch {
			case s.TimeToExhaustionSeconds != nil:
				fmt.Fprintf(w, "; at this pace the budget runs out in %s.\n", units.HumanDuration(secondsDuration(*s.TimeToExhaustionSeconds)))
			case *s.BurnRateNow <= 1:
				fmt.Fprintln(w, ": sustainable.")
			default:
				fmt.Fprintln(w, ".")
			}
		}
		for _, a := range s.AlertsFiring {
			fmt.Fprintf(w, "  Alert firing: %s (%s).\n", a.Name, a.Severity)
		}
		if rc := s.Release; rc != nil {
			fmt.Fprintf(w, "  A typical release has cost %s of the budget (median of %d, measured %s after each; worst %s).\n",
				pct(rc.Median), rc.Releases, rc.After, pct(rc.Max))
		}
		if s.OutageHourBudget != nil {
			fmt.Fprintf(w, "  One hour of full outage would burn %s of the budget", pct(*s.OutageHourBudget))
			if s.FailedReleaseBudget != nil && money != nil {
				fmt.Fprintf(w, "; a failed release (%s of requests failing for %s) %s", pct(money.FailedReleaseImpact), money.FailedReleaseDuration, pct(*s.FailedReleaseBudget))
			} else if s.FailedReleaseBudget != nil {
				fmt.Fprintf(w, "; a failed release %s", pct(*s.FailedReleaseBudget))
			}
			fmt.Fprintln(w, ".")
		}
		if s.Stale {
			fmt.Fprintln(w, "  (This SLO's data is stale.)")
		}
	}
	fmt.Fprintln(w)
	if r.Deploys > 0 {
		fmt.Fprintf(w, "Releases: %d deploys in the window, %d rolled back", r.Deploys, r.Rollbacks)
		if r.ChangeFailureRate != nil {
			fmt.Fprintf(w, " (change failure rate %s)", pct(*r.ChangeFailureRate))
		}
		fmt.Fprintln(w, ".")
	}
	if m := money; m != nil {
		fmt.Fprintf(w, "\nMoney (%s):\n", m.Currency)
		fmt.Fprintf(w, "  An hour of full outage costs about %s", moneyText(m.Currency, m.OutageHour.Total))
		writeCostSplit(w, m, m.OutageHour)
		fmt.Fprintf(w, "  A failed release costs about %s", moneyText(m.Currency, m.FailedRelease.Total))
		writeCostSplit(w, m, m.FailedRelease)
		if m.ExpectedReleaseCost != nil && r.ChangeFailureRate != nil {
			fmt.Fprintf(w, "  Expected cost of the next release at the %s change failure rate: %s.\n", pct(*r.ChangeFailureRate), moneyText(m.Currency, *m.ExpectedReleaseCost))
		}
		if m.SLAAvailability != nil && m.SLACreditNow != nil {
			fmt.Fprintf(w, "  SLA (%s): availability %s%% now", m.SLASLO, strconv.FormatFloat(*m.SLAAvailability, 'f', 3, 64))
			if *m.SLACreditNow > 0 {
				fmt.Fprintf(w, ", credits of %s already owed", moneyText(m.Currency, *m.SLACreditNow))
			} else {
				fmt.Fprint(w, ", no credit owed")
			}
			fmt.Fprintln(w, ".")
		}
	}
	if len(r.Notes) > 0 {
		fmt.Fprintln(w, "\nNotes:")
		for _, n := range r.Notes {
			fmt.Fprintf(w, "  - %s\n", n)
		}
	}
}

func writeCostSplit(w io.Writer, m *gate.MoneyRisk, c gate.Cost) {
	var parts []string
	if c.Revenue > 0 {
		parts = append(parts, moneyText(m.Currency, c.Revenue)+" lost revenue")
	}
	if c.SLACredit > 0 {
		parts = append(parts, moneyText(m.Currency, c.SLACredit)+" SLA credit")
	}
	if len(parts) > 0 {
		fmt.Fprintf(w, ": %s", strings.Join(parts, " + "))
	}
	if c.SLAAvailabilityAfter != nil {
		fmt.Fprintf(w, " (SLA availability would fall to %s%%", strconv.FormatFloat(*c.SLAAvailabilityAfter, 'f', 3, 64))
		if c.SLACredit == 0 {
			fmt.Fprint(w, ", no new credit tier")
		}
		fmt.Fprint(w, ")")
	}
	fmt.Fprintln(w, ".")
}

// moneyText writes "USD 12,345" (whole units; cents do not matter here).
func moneyText(currency string, v float64) string {
	return currency + " " + count(v)
}

func reportOncallCommand() *command {
	var since *string
	return &command{
		name:     "oncall",
		summary:  "on-call load per rotation: pages, off-hours pages, incidents per shift, toil",
		synopsis: "[--since 7d] [--output text|json] [flags]",
		help: `Flags a rotation above 2 incidents per shift or an estimated 50% of working time
in incidents (the Google SRE book's limits) and recommends a stability sprint.
Rotations and working hours come from the oncall: section of the config.`,
		common: withClient | withOutput,
		flags: func(fs *flag.FlagSet) {
			since = fs.String("since", "7d", "the report's period: a duration back from now, or an RFC 3339 time")
		},
		run: func(ctx context.Context, inv *invocation) error {
			var rep incident.OncallReport
			if err := inv.call(ctx, "GET", "/api/v1/reports/oncall?from="+url.QueryEscape(*since), nil, &rep); err != nil {
				return err
			}
			if inv.json() {
				return writeJSON(inv.stdout, rep)
			}
			writeOncall(inv.stdout, rep)
			return nil
		},
	}
}

func writeOncall(w io.Writer, rep incident.OncallReport) {
	fmt.Fprintf(w, "on-call load %s to %s (working hours %s, %s)\n", rep.From.UTC().Format("2006-01-02 15:04"), rep.To.UTC().Format("2006-01-02 15:04 MST"), rep.WorkingHours, rep.TimeZone)
	if len(rep.Rotations) == 0 {
		fmt.Fprintln(w, "no rotations configured (oncall.rotations); pages by service:")
	}
	for _, l := range rep.Rotations {
		state := "ok"
		if l.Overloaded {
			state = "OVERLOADED"
		}
		fmt.Fprintf(w, "%s (%s; %s shifts): %s\n", l.Name, strings.Join(l.Services, ", "), l.Shift, state)
		fmt.Fprintf(w, "  pages %d (%d outside working hours), %.1f a week\n", l.Pages, l.PagesOffHours, l.PagesPerWeek)
		fmt.Fprintf(w, "  incidents %d, %.2f per shift (limit 2), %.1fh in incidents, toil about %.0f%% (limit 50%%)\n",
			l.Incidents, l.IncidentsPerShift, l.IncidentHours, 100*l.ToilShare)
		for _, r := range l.Reasons {
			fmt.Fprintf(w, "  ! %s\n", r)
		}
		if l.Recommendation != "" {
			fmt.Fprintf(w, "  recommendation: %s\n", l.Recommendation)
		}
	}
	if len(rep.Rotations) == 0 {
		for svc, n := range rep.PagesBy {
			fmt.Fprintf(w, "  %s: %d pages\n", svc, n)
		}
	}
}
