package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/tailgate-sre/tailgate/internal/gate"
)

const reportUsage = `Usage:
  tailgate report risk --service S [--output text|json]   release risk, for the release conversation
`

func runReport(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, reportUsage)
		return exitUsage
	}
	switch args[0] {
	case "risk":
		return runReportRisk(ctx, args[1:], stdout, stderr)
	case "help", "--help", "-h":
		fmt.Fprint(stdout, reportUsage)
		return exitOK
	default:
		fmt.Fprintf(stderr, "tailgate report: unknown report %q\n\n%s", args[0], reportUsage)
		return exitUsage
	}
}

func runReportRisk(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("tailgate report risk", flag.ContinueOnError)
	fs.SetOutput(stderr)
	service := fs.String("service", "", "service (required)")
	output := outputFlag(fs)
	client := clientFlags(fs)
	if ok, code := parseFlags(fs, args, 0, stderr); !ok {
		return code
	}
	if *service == "" {
		fmt.Fprintln(stderr, "tailgate report risk: --service is required")
		return exitUsage
	}
	if !checkOutput(*output, stderr, "tailgate report risk") {
		return exitUsage
	}
	c, err := client()
	if err != nil {
		fmt.Fprintf(stderr, "tailgate report risk: %v\n", err)
		return exitUsage
	}
	var raw json.RawMessage
	if err := c.do(ctx, "GET", "/api/v1/services/"+url.PathEscape(*service)+"/risk", nil, &raw); err != nil {
		fmt.Fprintf(stderr, "tailgate report risk: %v\n", err)
		return exitUsage
	}
	if *output == "json" {
		stdout.Write(append(raw, '\n'))
		return exitOK
	}
	var r gate.RiskReport
	if err := json.Unmarshal(raw, &r); err != nil {
		fmt.Fprintf(stderr, "tailgate report risk: decode the report: %v\n", err)
		return exitUsage
	}
	writeRisk(stdout, &r)
	return exitOK
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
		left := fmt.Sprintf("%s left", pctText(*s.BudgetRemaining))
		if *s.BudgetRemaining < 0 {
			left = fmt.Sprintf("overspent by %s", pctText(-*s.BudgetRemaining))
		}
		fmt.Fprintf(w, "  Error budget: %s %s", budgetBar(*s.BudgetRemaining), left)
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
				fmt.Fprintf(w, "; at this pace the budget runs out in %s.\n", humanDur(time.Duration(*s.TimeToExhaustionSeconds*float64(time.Second))))
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
				pctText(rc.Median), rc.Releases, rc.After, pctText(rc.Max))
		}
		if s.OutageHourBudget != nil {
			fmt.Fprintf(w, "  One hour of full outage would burn %s of the budget", pctText(*s.OutageHourBudget))
			if s.FailedReleaseBudget != nil && money != nil {
				fmt.Fprintf(w, "; a failed release (%s of requests failing for %s) %s", pctText(money.FailedReleaseImpact), money.FailedReleaseDuration, pctText(*s.FailedReleaseBudget))
			} else if s.FailedReleaseBudget != nil {
				fmt.Fprintf(w, "; a failed release %s", pctText(*s.FailedReleaseBudget))
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
			fmt.Fprintf(w, " (change failure rate %s)", pctText(*r.ChangeFailureRate))
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
			fmt.Fprintf(w, "  Expected cost of the next release at the %s change failure rate: %s.\n", pctText(*r.ChangeFailureRate), moneyText(m.Currency, *m.ExpectedReleaseCost))
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

// count writes a number rounded to a whole with thousands separators.
func count(v float64) string {
	neg := v < 0
	s := strconv.FormatFloat(math.Round(math.Abs(v)), 'f', 0, 64)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}
