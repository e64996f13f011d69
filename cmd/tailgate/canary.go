package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/tailgate-sre/tailgate/internal/canary"
	"github.com/tailgate-sre/tailgate/internal/units"
)

func canaryCommand() *command {
	return &command{
		name:    "canary",
		summary: "judge a canary against its baseline from their requests",
		subs:    []*command{canaryCheckCommand()},
	}
}

func canaryCheckCommand() *command {
	var service, canaryV, baseline, wait, every *string
	return &command{
		name:     "check",
		summary:  "pass, fail or inconclusive, valid however often it is asked",
		synopsis: "--service S --canary VERSION [--baseline VERSION] [--wait 10m] [flags]",
		help: `Compares the canary version's requests with the baseline's (every other version
when --baseline is not given): error ratio, requests over the latency SLO's
threshold, and the canary's own burn rate. Exit 0 pass, 1 fail, 3
inconclusive, 2 error. With --wait, asks every --every until a pass or fail
or the wait ends (then inconclusive), printing a progress line each time.`,
		common: withClient | withOutput,
		flags: func(fs *flag.FlagSet) {
			service = fs.String("service", "", "the service (required)")
			canaryV = fs.String("canary", "", "the canary's version (required)")
			baseline = fs.String("baseline", "", "the baseline's version; default every other version")
			wait = fs.String("wait", "", "keep asking until a verdict or this long, e.g. 10m")
			every = fs.String("every", "10s", "how often to ask with --wait")
		},
		run: func(ctx context.Context, inv *invocation) error {
			if err := required(inv.fs, "service", "canary"); err != nil {
				return err
			}
			var deadline time.Time
			step := 10 * time.Second
			if *wait != "" {
				d, err := units.ParseDuration(*wait)
				if err != nil || d <= 0 {
					return usagef("--wait must be a positive duration such as 10m, got %q", *wait)
				}
				if step, err = units.ParseDuration(*every); err != nil || step <= 0 {
					return usagef("--every must be a positive duration such as 10s, got %q", *every)
				}
				deadline = time.Now().Add(d)
			}
			req := canary.CheckRequest{Service: *service, Canary: *canaryV, Baseline: *baseline}
			for {
				var res canary.CheckResult
				if err := inv.call(ctx, "POST", "/api/v1/canary/check", req, &res); err != nil {
					return err
				}
				last := deadline.IsZero() || res.Verdict.Verdict != canary.Inconclusive || !time.Now().Add(step).Before(deadline)
				if !last {
					fmt.Fprintf(inv.stderr, "%s canary %s: inconclusive, %d canary requests (%.2f%% errors) against %d (%.2f%%); %s\n",
						time.Now().UTC().Format("15:04:05"), res.CanaryVersion, res.Canary.Requests, 100*res.Canary.ErrorRatio,
						res.Baseline.Requests, 100*res.Baseline.ErrorRatio, res.Reason)
					select {
					case <-ctx.Done():
						return ctx.Err()
					case <-time.After(step):
					}
					continue
				}
				if inv.json() {
					if err := writeJSON(inv.stdout, res); err != nil {
						return err
					}
				} else {
					writeCanary(inv.stdout, res)
				}
				switch res.Verdict.Verdict {
				case canary.Pass:
					return nil
				case canary.Fail:
					return exitCode(exitFail)
				default:
					return exitCode(exitCanary)
				}
			}
		},
	}
}

func writeCanary(w io.Writer, r canary.CheckResult) {
	v := r.Verdict
	fmt.Fprintf(w, "%s: canary %s of %s against %s since %s (%s)\n", v.Verdict, r.CanaryVersion, r.Service, r.BaselineVersion,
		r.Since.Format(time.RFC3339), v.Rule)
	fmt.Fprintf(w, "  %s\n", v.Reason)
	fmt.Fprintf(w, "  canary    %d requests, %d errors (%.2f%%)\n", v.Canary.Requests, v.Canary.Errors, 100*v.Canary.ErrorRatio)
	fmt.Fprintf(w, "  baseline  %d requests, %d errors (%.2f%%)\n", v.Baseline.Requests, v.Baseline.Errors, 100*v.Baseline.ErrorRatio)
	fmt.Fprintf(w, "  error ratio difference %+.2f points, %.0f%% always-valid interval [%+.2f, %+.2f]\n",
		100*v.ErrorRatio.Diff, 100*(1-v.Alpha), 100*v.ErrorRatio.Lower, 100*v.ErrorRatio.Upper)
	if l := v.Latency; l != nil && v.Canary.SlowRatio != nil && v.Baseline.SlowRatio != nil {
		fmt.Fprintf(w, "  over the latency threshold: canary %.2f%%, baseline %.2f%%, interval [%+.2f, %+.2f]\n",
			100**v.Canary.SlowRatio, 100**v.Baseline.SlowRatio, 100*l.Lower, 100*l.Upper)
	}
	if q := r.LatencyQuantiles; q != nil {
		ms := func(x canary.Quantiles) string {
			return fmt.Sprintf("p50 %s, p90 %s, p99 %s", latency(x.P50), latency(x.P90), latency(x.P99))
		}
		fmt.Fprintf(w, "  latency   canary %s; baseline %s (%s)\n", ms(q.Canary), ms(q.Baseline), q.Scope)
	}
	if b := v.Budget; b != nil {
		fmt.Fprintf(w, "  the canary's own burn rate %.1fx [%.1f, %.1f] against %g%%\n", b.BurnRate, b.Lower, b.Upper, b.Objective)
	}
	if v.Verdict == canary.Inconclusive && v.RequestsNeeded > 0 {
		fmt.Fprintf(w, "  about %d more canary requests needed at these rates\n", v.RequestsNeeded)
	}
}
