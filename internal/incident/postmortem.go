package incident

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/tailgate-sre/tailgate/internal/flags"
	"github.com/tailgate-sre/tailgate/internal/gate"
	"github.com/tailgate-sre/tailgate/internal/slo"
	"github.com/tailgate-sre/tailgate/internal/units"
)

// impactLookback bounds how far before the declaration the first bad
// minute is looked for.
const impactLookback = time.Hour

// reviewThreshold is the SRE Workbook's rule: an incident that consumed
// more than 20% of the error budget needs a post-mortem.
const reviewThreshold = 0.2

// Impact is one SLO's share of an incident, from the stored minute
// counts, the same ones the error budget is computed from.
type Impact struct {
	SLO       string  `json:"slo"`
	Service   string  `json:"service"`
	Objective float64 `json:"objective"`
	Window    string  `json:"window"`
	// FirstBad is the first minute, within the hour before the
	// declaration, whose error ratio was over 1 - objective; zero when
	// there was none.
	FirstBad time.Time `json:"first_bad,omitzero"`
	// Failed and Requests are counted from FirstBad (or the declaration)
	// through the resolution, whole minutes.
	Failed   uint64 `json:"failed"`
	Requests uint64 `json:"requests"`
	// BudgetConsumed is Failed over the budget of the SLO's window that
	// ends at the resolution: (1 - objective) x its requests.
	BudgetConsumed float64 `json:"budget_consumed"`
	NeedsReview    bool    `json:"needs_review"`
}

// Report is what the post-mortem draft states in numbers.
type Report struct {
	Incident View     `json:"incident"`
	Impacts  []Impact `json:"impacts"`
	// Start is the first bad minute over every SLO (the declaration when
	// none), End the resolution (or now).
	Start, End time.Time
	// Detection is from Start to the declaration.
	Detection time.Duration
	// NeedsReview says one SLO's consumption was over 20% of its budget.
	NeedsReview bool
	// Users are the estimated distinct users of each involved service's
	// failed requests from Start to End; nil when users are not counted
	// (incidents.user_attribute unset).
	Users map[string]uint64 `json:"users_affected,omitempty"`
	// UserAttribute is the attribute they were counted by.
	UserAttribute string `json:"user_attribute,omitempty"`
	// Trigger is the last change before the first bad minute, within
	// triggerLookback: a deploy of an involved service or a flag flip or
	// restore; empty when there was none.
	Trigger string `json:"trigger,omitempty"`
	// Evidence are kept traces with failed requests of the involved
	// services from Start to End, oldest first, at most evidenceLimit.
	Evidence []FailedTrace `json:"evidence,omitempty"`
}

// evidenceLimit bounds the traces a post-mortem lists.
const evidenceLimit = 10

// triggerLookback is how far before the first bad minute a change is
// named as the incident's likely trigger.
const triggerLookback = time.Hour

// Report computes the post-mortem's numbers.
func (s *Service) Report(ctx context.Context, id string) (Report, error) {
	v, err := s.Get(ctx, id)
	if err != nil {
		return Report{}, err
	}
	r := Report{Incident: v, Start: v.DeclaredAt, End: s.now().UTC()}
	if v.ResolvedAt != nil {
		r.End = *v.ResolvedAt
	}
	if s.set.Buckets == nil {
		return r, nil
	}
	var longest time.Duration
	for _, name := range v.SLOs {
		if sp, ok := s.slos[name]; ok {
			longest = max(longest, windowOf(sp))
		}
	}
	since := r.End.Add(-longest).Truncate(time.Minute)
	if earliest := v.DeclaredAt.Add(-impactLookback).Truncate(time.Minute); earliest.Before(since) {
		since = earliest
	}
	buckets, err := s.set.Buckets.LoadSLIBuckets(ctx, since)
	if err != nil {
		return r, fmt.Errorf("load SLO counts: %w", err)
	}
	bySLO := map[string][]slo.Bucket{}
	for _, b := range buckets {
		if b.Group == "" {
			bySLO[b.SLO] = append(bySLO[b.SLO], b)
		}
	}
	for _, name := range v.SLOs {
		sp, ok := s.slos[name]
		if !ok {
			continue
		}
		im := impactOf(sp, bySLO[name], v.DeclaredAt, r.End)
		if !im.FirstBad.IsZero() && im.FirstBad.Before(r.Start) {
			r.Start = im.FirstBad
		}
		r.NeedsReview = r.NeedsReview || im.NeedsReview
		r.Impacts = append(r.Impacts, im)
	}
	r.Detection = v.DeclaredAt.Sub(r.Start)
	trigger, err := s.trigger(ctx, v.Services, r.Start)
	if err != nil {
		return r, fmt.Errorf("find the trigger: %w", err)
	}
	r.Trigger = trigger
	if s.set.Evidence != nil {
		if r.Evidence, err = s.set.Evidence.FailedTraces(ctx, v.Services, r.Start, r.End, evidenceLimit); err != nil {
			return r, fmt.Errorf("read the failed traces: %w", err)
		}
	}
	if s.set.Users != nil {
		for _, svc := range v.Services {
			n, ok, err := s.set.Users(ctx, svc, r.Start, r.End)
			if err != nil {
				return r, fmt.Errorf("estimate users affected: %w", err)
			}
			if !ok {
				break
			}
			if r.Users == nil {
				r.Users, r.UserAttribute = map[string]uint64{}, s.cfg.UserAttribute
			}
			r.Users[svc] = n
		}
	}
	return r, nil
}

func windowOf(sp slo.Spec) time.Duration {
	if sp.Window > 0 {
		return sp.Window.Std()
	}
	return 31 * 24 * time.Hour // a calendar month at most
}

// impactOf counts one SLO's failed requests of the incident, and what
// share of its budget they took.
func impactOf(sp slo.Spec, bs []slo.Bucket, declared, end time.Time) Impact {
	allowed := 1 - sp.Objective/100
	im := Impact{SLO: sp.Name, Service: sp.Service, Objective: sp.Objective, Window: units.FormatDuration(windowOf(sp))}
	lookFrom := declared.Add(-impactLookback).Truncate(time.Minute)
	for _, b := range bs {
		if b.Minute.Before(lookFrom) || b.Minute.After(declared) || b.Total == 0 {
			continue
		}
		if float64(b.Total-b.Good)/float64(b.Total) > allowed {
			im.FirstBad = b.Minute.UTC()
			break
		}
	}
	start := declared.Truncate(time.Minute)
	if !im.FirstBad.IsZero() {
		start = im.FirstBad
	}
	windowFrom := end.Add(-windowOf(sp)).Truncate(time.Minute)
	var windowTotal uint64
	for _, b := range bs {
		if !b.Minute.After(end) && !b.Minute.Before(windowFrom) {
			windowTotal += b.Total
		}
		if b.Minute.Before(start) || b.Minute.After(end) {
			continue
		}
		im.Failed += b.Total - b.Good
		im.Requests += b.Total
	}
	if budget := allowed * float64(windowTotal); budget > 0 {
		im.BudgetConsumed = float64(im.Failed) / budget
	}
	im.NeedsReview = im.BudgetConsumed > reviewThreshold
	return im
}

// Postmortem writes the incident's post-mortem draft in Markdown,
// following the Google SRE book's post-mortem template. Numbers are
// filled in; what only people know is marked to be written.
func (s *Service) Postmortem(ctx context.Context, id string, w io.Writer) error {
	r, err := s.Report(ctx, id)
	if err != nil {
		return err
	}
	v := r.Incident
	p := func(format string, args ...any) { fmt.Fprintf(w, format+"\n", args...) }
	todo := "_(to be written)_"
	p("# Post-mortem: %s %s", v.ID, v.Title)
	p("")
	p("**Status:** draft, generated by tailgate from the incident's record at %s.  ", s.now().UTC().Format(time.RFC3339))
	p("**Date:** %s  ", v.DeclaredAt.UTC().Format("2006-01-02"))
	p("**Severity:** %s  ", strings.ToUpper(v.Severity))
	p("**State:** %s  ", v.State)
	var roles []string
	for _, role := range Roles() {
		holder := v.Roles[role]
		if holder == "" {
			holder = "(unassigned)"
		}
		roles = append(roles, roleName(role)+": "+holder)
	}
	p("**Roles:** %s", strings.Join(roles, "; "))
	p("")
	p("## Summary")
	p("")
	services := strings.Join(v.Services, ", ")
	p("%s failed requests of %s for %s (from the first bad minute, %s, to the resolution, %s).%s",
		failedTotal(r), services, units.HumanDuration(r.End.Sub(r.Start)), r.Start.Format("15:04 MST"), r.End.Format("15:04:05 MST"), originSentence(v))
	p("")
	p("## Impact")
	p("")
	p("| SLO | service | objective | failed requests | requests | budget consumed (%s window) | over 20%%? |", windowsLabel(r))
	p("|---|---|---|---|---|---|---|")
	for _, im := range r.Impacts {
		p("| %s | %s | %g%% | %d | %d | %.1f%% | %s |", im.SLO, im.Service, im.Objective, im.Failed, im.Requests, 100*im.BudgetConsumed, yesNo(im.NeedsReview))
	}
	if len(r.Impacts) == 0 {
		p("| (no SLO of the involved services) | | | | | | |")
	}
	p("")
	p("Failed requests are counted from the same per-minute counts as the error budgets, whole minutes from the first bad minute through the resolution.")
	p("%s", usersSentence(r, v.Services))
	p("")
	if r.NeedsReview {
		p("**Review rule (SRE Workbook):** this incident consumed more than 20%% of an error budget, so it needs a post-mortem and a review.")
	} else {
		p("**Review rule (SRE Workbook):** no SLO lost more than 20%% of its error budget to this incident; a post-mortem is optional by that rule.")
	}
	p("")
	p("## Detection")
	p("")
	p("First bad minute %s; incident declared %s (%s, %s later).", r.Start.Format(time.RFC3339), v.DeclaredAt.Format(time.RFC3339), declaredHow(v), units.HumanDuration(r.Detection))
	if v.MitigatedAt != nil {
		p("Mitigated %s, %s after the first bad minute.", v.MitigatedAt.Format(time.RFC3339), units.HumanDuration(v.MitigatedAt.Sub(r.Start)))
	}
	if v.ResolvedAt != nil {
		p("Resolved %s, %s after the first bad minute.", v.ResolvedAt.Format(time.RFC3339), units.HumanDuration(v.ResolvedAt.Sub(r.Start)))
	}
	p("")
	p("## Root causes")
	p("")
	p("%s%s", todo, originSentence(v))
	p("")
	p("## Trigger")
	p("")
	if r.Trigger != "" {
		p("Likely: %s. %s", r.Trigger, "Confirm or correct it.")
	} else {
		p("%s No deploy of the involved services or flag change in the hour before the first bad minute.", todo)
	}
	p("")
	p("## Resolution")
	p("")
	p("%s", todo)
	p("")
	p("## Action items")
	p("")
	p("| action item | type (mitigate, prevent, process) | owner | bug |")
	p("|---|---|---|---|")
	p("| %s | | | |", todo)
	p("")
	p("## Lessons learned")
	p("")
	p("- What went well: %s", todo)
	p("- What went wrong: %s", todo)
	p("- Where we got lucky: %s", todo)
	p("")
	p("## Evidence")
	p("")
	if len(r.Evidence) == 0 {
		p("No kept trace with a failed request of the involved services was recorded in that time.")
	} else {
		p("Kept traces with failed requests (look them up in the trace backend):")
		p("")
		for _, e := range r.Evidence {
			p("- `%s` %s, %s", e.TraceID, e.Service, e.Minute.UTC().Format("15:04"))
		}
	}
	p("")
	p("## Timeline")
	p("")
	p("All times UTC.")
	p("")
	for _, e := range v.Timeline {
		p("- **%s** [%s, %s] %s", e.At.UTC().Format("2006-01-02 15:04:05"), e.Kind, e.Actor, e.Text)
	}
	return nil
}

func failedTotal(r Report) string {
	var parts []string
	for _, im := range r.Impacts {
		parts = append(parts, fmt.Sprintf("%d (%s)", im.Failed, im.SLO))
	}
	if len(parts) == 0 {
		return "An unknown number of"
	}
	return strings.Join(parts, ", ")
}

func windowsLabel(r Report) string {
	seen := map[string]bool{}
	var ws []string
	for _, im := range r.Impacts {
		if !seen[im.Window] {
			seen[im.Window] = true
			ws = append(ws, im.Window)
		}
	}
	if len(ws) == 0 {
		return "SLO"
	}
	return strings.Join(ws, "/")
}

func originSentence(v View) string {
	if v.Origin == "" {
		return ""
	}
	return fmt.Sprintf(" The error origins point at %s as the likely origin.", v.Origin)
}

func declaredHow(v View) string {
	if v.Source == "page" {
		return "automatically, from a page"
	}
	return "by " + v.DeclaredBy
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// usersSentence states the users affected per involved service, or why
// they are not counted.
func usersSentence(r Report, services []string) string {
	if r.Users == nil {
		return "Users affected: not counted (set incidents.user_attribute, e.g. user.id, to estimate them from the failed requests)."
	}
	parts := make([]string, 0, len(services))
	for _, svc := range services {
		if n, ok := r.Users[svc]; ok {
			parts = append(parts, fmt.Sprintf("%s %d", svc, n))
		}
	}
	return fmt.Sprintf("Users affected (distinct %s of the failed requests, estimated within about 3%%): %s.", r.UserAttribute, strings.Join(parts, ", "))
}

// trigger names the last change before start, within triggerLookback: a
// deploy of one of services (not a rollback) or a flag flip or restore.
func (s *Service) trigger(ctx context.Context, services []string, start time.Time) (string, error) {
	from := start.Add(-triggerLookback)
	var at time.Time
	var what string
	if g := s.set.Gate; g != nil {
		for _, svc := range services {
			ds, err := g.Deploys(ctx, gate.DeployQuery{Service: svc, From: from, To: start.Add(time.Minute), Limit: gate.MaxLimit})
			if err != nil {
				return "", err
			}
			for _, d := range ds {
				if d.ChangeClass == gate.Rollback || d.Time.After(start) || !d.Time.After(at) {
					continue
				}
				at = d.Time
				what = fmt.Sprintf("the deploy of %s %s (%s) at %s, %s before the first bad minute", d.Service, d.Version, d.ChangeClass,
					d.Time.UTC().Format("15:04:05"), units.HumanDuration(start.Sub(d.Time)))
				if d.Description != "" {
					what += ": " + d.Description
				}
			}
		}
	}
	if s.set.Flags != nil {
		cs, err := s.set.Flags(ctx, from, start.Add(time.Minute))
		if err != nil {
			return "", err
		}
		for _, c := range cs {
			if c.Action != flags.ActionFlip && c.Action != flags.ActionRestore || c.At.After(start) || !c.At.After(at) || c.Source == "kill_switch" {
				continue
			}
			at = c.At
			what = fmt.Sprintf("flag %s %s by %s at %s, %s before the first bad minute", c.Key, c.Action, c.Actor,
				c.At.UTC().Format("15:04:05"), units.HumanDuration(start.Sub(c.At)))
		}
	}
	return what, nil
}
