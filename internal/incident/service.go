package incident

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/tailgate-sre/tailgate/internal/flags"
	"github.com/tailgate-sre/tailgate/internal/gate"
	"github.com/tailgate-sre/tailgate/internal/notify"
	"github.com/tailgate-sre/tailgate/internal/slo"
)

// GateEvents is what the timeline reads from the gate; *gate.Gate
// implements it.
type GateEvents interface {
	Decisions(ctx context.Context, q gate.DecisionQuery) ([]gate.Decision, error)
	Overrides(ctx context.Context, q gate.OverrideQuery) ([]gate.Override, error)
	Deploys(ctx context.Context, q gate.DeployQuery) ([]gate.Deploy, error)
}

// FlagChanges returns the flag changes in [from, to).
type FlagChanges func(ctx context.Context, from, to time.Time) ([]flags.Change, error)

// Origins names where the failed requests of services started in [from,
// to): the service most of them trace back to and a sentence with the
// numbers; ok is false when there were none.
type Origins func(ctx context.Context, services []string, from, to time.Time) (origin, detail string, ok bool)

// Notifier sends events; *notify.Notifiers implements it.
type Notifier interface {
	NotifyEvent(e notify.Event)
}

// Settings are the Service's dependencies. Only Store and SLOs are
// required; a nil source leaves its part out of the timeline.
type Settings struct {
	Logger *slog.Logger
	Store  Store
	// SLOs are the SLO definitions, for the post-mortem's budget math.
	SLOs []slo.Spec
	// Buckets are the SLOs' stored minute counts.
	Buckets slo.BucketStore
	// Alerts are the stored alert transitions (the on-call report's pages).
	Alerts slo.AlertStore
	// Oncall is the oncall: section (rotations, working hours).
	Oncall OncallConfig
	// States gives the SLOs' current state (mitigation suggestions).
	States   gate.StateSource
	Gate     GateEvents
	Flags    FlagChanges
	Origins  Origins
	Notifier Notifier
	// Evidence keeps kept failed traces, listed in post-mortems; nil
	// leaves them out.
	Evidence EvidenceStore
	// Users estimates the distinct users of a service's failed requests
	// from through to; ok false when no user attribute is counted. nil:
	// users are not counted.
	Users UsersEstimate
	Now   func() time.Time
}

// UsersEstimate estimates the distinct users of a service's failed
// requests over a time range.
type UsersEstimate func(ctx context.Context, service string, from, to time.Time) (n uint64, ok bool, err error)

// Service runs incidents.
type Service struct {
	cfg    Config
	oncall OncallConfig
	set    Settings
	log    *slog.Logger
	now    func() time.Time
	slos   map[string]slo.Spec

	// pages queues page notifications for the goroutine that declares
	// and joins incidents; Notify never blocks.
	pages   chan slo.Notification
	mu      sync.Mutex // serializes this process's incident writes
	started bool
	stopCh  chan struct{}
	done    chan struct{}
}

// NewService checks cfg and returns a service; Start begins declaring
// incidents from pages.
func NewService(cfg Config, set Settings) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := set.Oncall.Validate(); err != nil {
		return nil, fmt.Errorf("oncall: %w", err)
	}
	if set.Store == nil {
		return nil, errors.New("incidents: a store is required")
	}
	if set.Logger == nil {
		set.Logger = slog.New(slog.DiscardHandler)
	}
	if set.Now == nil {
		set.Now = time.Now
	}
	if cfg.DeclareOn == "" {
		cfg.DeclareOn = "page"
	}
	if cfg.JoinWindow == 0 {
		cfg.JoinWindow = DefaultConfig().JoinWindow
	}
	s := &Service{cfg: cfg, oncall: set.Oncall, set: set, log: set.Logger, now: set.Now, slos: map[string]slo.Spec{}, pages: make(chan slo.Notification, 1024)}
	for _, sp := range set.SLOs {
		s.slos[sp.Name] = sp
	}
	return s, nil
}

// Start starts the goroutine that turns page notifications into incidents.
func (s *Service) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		return nil
	}
	s.started = true
	stop, done := make(chan struct{}), make(chan struct{})
	s.stopCh, s.done = stop, done
	// A page being handled is finished even when Shutdown begins: its
	// store write does not take the run's cancellation.
	work := context.WithoutCancel(ctx)
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			case n := <-s.pages:
				if err := s.onPage(work, n); err != nil {
					s.log.Error("incident from a page", "slo", n.Alert.SLO, "alert", n.Alert.Name, "err", err)
				}
			}
		}
	}()
	return nil
}

// Shutdown stops the page loop after the page it is handling, then
// handles the pages still queued within ctx.
func (s *Service) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	started, stop, done := s.started, s.stopCh, s.done
	s.started = false
	s.mu.Unlock()
	if started {
		close(stop)
		select {
		case <-done:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	for {
		select {
		case n := <-s.pages:
			if err := s.onPage(ctx, n); err != nil {
				return fmt.Errorf("incident from a page on %s: %w", n.Alert.SLO, err)
			}
		default:
			return nil
		}
	}
}

// Notify implements slo.Notifier: page alerts that fire or resolve are
// queued for the incident loop. It never blocks; a full queue drops the
// page (logged).
func (s *Service) Notify(n slo.Notification) {
	if s.cfg.DeclareOn != "page" || n.Alert.Severity != slo.Page || n.Alert.Group != "" {
		return
	}
	select {
	case s.pages <- n:
	default:
		s.log.Error("incident queue full; a page was not turned into an incident", "slo", n.Alert.SLO, "alert", n.Alert.Name)
	}
}

// onPage declares an incident for a firing page, or joins the open one of
// its cascade, and records resolutions on the incident.
func (s *Service) onPage(ctx context.Context, n slo.Notification) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := n.Alert
	at := n.At
	if at.IsZero() {
		at = s.now()
	}
	at = at.UTC()
	open, err := s.set.Store.ListIncidents(ctx, true, 100)
	if err != nil {
		return err
	}
	burn := burnText(n)
	if n.Status == slo.Resolved {
		for _, inc := range open {
			if slices.Contains(inc.SLOs, a.SLO) {
				return s.set.Store.AddIncidentEntries(ctx, inc.ID, []Entry{{At: at, Kind: KindAlertClear, Source: "tailgate", Actor: "tailgate",
					Text: fmt.Sprintf("alert %s resolved on %s", a.Name, a.SLO), Fields: map[string]any{"slo": a.SLO, "alert": a.Name}}})
			}
		}
		return nil
	}
	fired := Entry{At: at, Kind: KindAlertFiring, Source: "tailgate", Actor: "tailgate",
		Text:   fmt.Sprintf("PAGE %s firing on %s (%s)%s", a.Name, a.SLO, a.Service, burn),
		Fields: map[string]any{"slo": a.SLO, "alert": a.Name, "service": a.Service, "burn_rates": n.BurnRates, "budget_remaining": n.BudgetRemaining}}
	// The newest open incident declared within the join window takes it.
	for _, inc := range open {
		if at.Sub(inc.DeclaredAt) > s.cfg.JoinWindow.Std() || inc.State == Resolved {
			continue
		}
		if slices.Contains(inc.SLOs, a.SLO) {
			return s.set.Store.AddIncidentEntries(ctx, inc.ID, []Entry{fired})
		}
		inc.Version++
		entries := []Entry{fired, {At: at, Kind: KindJoined, Source: "tailgate", Actor: "tailgate",
			Text: fmt.Sprintf("%s joins the incident: its page fired %s after the declaration, within incidents.join_window (%s)",
				a.Service, at.Sub(inc.DeclaredAt).Round(time.Second), s.cfg.JoinWindow)}}
		inc.SLOs = appendNew(inc.SLOs, a.SLO)
		inc.Services = appendNew(inc.Services, a.Service)
		entries = append(entries, s.originEntry(ctx, &inc, at)...)
		if err := s.set.Store.UpdateIncident(ctx, inc, entries); err != nil {
			return err
		}
		return nil
	}
	inc := Incident{
		Title:    fmt.Sprintf("%s is paging: %s", a.Service, a.SLO),
		Severity: "sev2", State: Declared, Services: []string{a.Service}, SLOs: []string{a.SLO},
		Roles: map[Role]string{}, Source: "page", DeclaredBy: "tailgate", DeclaredAt: at, Version: 1,
	}
	entries := []Entry{fired, {At: at, Kind: KindDeclared, Source: "tailgate", Actor: "tailgate",
		Text: fmt.Sprintf("incident declared from the page on %s (incidents.declare_on: page)", a.SLO)}}
	entries = append(entries, s.originEntry(ctx, &inc, at)...)
	created, err := s.set.Store.CreateIncident(ctx, inc, entries)
	if err != nil {
		return err
	}
	s.log.Warn("incident declared from a page", "incident", created.ID, "slo", a.SLO, "service", a.Service)
	s.event("incident.declared", created, fmt.Sprintf("%s declared: %s%s. No commander yet: tailgate incident assign %s --role commander --to NAME",
		created.ID, created.Title, burn, created.ID), at)
	return nil
}

// originEntry updates inc.Origin from the error origins and returns the
// timeline entry when it changed.
func (s *Service) originEntry(ctx context.Context, inc *Incident, at time.Time) []Entry {
	if s.set.Origins == nil {
		return nil
	}
	origin, detail, ok := s.set.Origins(ctx, inc.Services, at.Add(-10*time.Minute), at.Add(time.Minute))
	if !ok || origin == inc.Origin {
		return nil
	}
	inc.Origin = origin
	return []Entry{{At: at, Kind: KindOrigin, Source: "tailgate", Actor: "tailgate",
		Text: "likely origin: " + origin + " (" + detail + ")", Fields: map[string]any{"origin": origin}}}
}

func burnText(n slo.Notification) string {
	var parts []string
	for _, w := range []string{"5m", "1h", "6h"} {
		if r := n.BurnRates[w]; r != nil {
			parts = append(parts, fmt.Sprintf("%.1fx over %s", *r, w))
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return ": burn " + strings.Join(parts, ", ")
}

func appendNew(list []string, v string) []string {
	if slices.Contains(list, v) {
		return list
	}
	return append(list, v)
}

func (s *Service) event(kind string, inc Incident, text string, at time.Time) {
	if s.set.Notifier == nil {
		return
	}
	svc := ""
	if len(inc.Services) > 0 {
		svc = inc.Services[0]
	}
	s.set.Notifier.NotifyEvent(notify.Event{Kind: kind, Subject: inc.ID, Service: svc, Text: text, At: at,
		Fields: map[string]any{"state": inc.State, "severity": inc.Severity, "services": inc.Services, "roles": inc.Roles},
		Links:  map[string]string{"incident": "/api/v1/incidents/" + inc.ID}})
}

// DeclareRequest is a person's declaration.
type DeclareRequest struct {
	Service   string `json:"service"`
	Title     string `json:"title"`
	Severity  string `json:"severity,omitempty"`
	Commander string `json:"commander,omitempty"`
}

// Declare opens an incident for a person (actor).
func (s *Service) Declare(ctx context.Context, req DeclareRequest, actor string) (Incident, error) {
	req.Service, req.Title = strings.TrimSpace(req.Service), strings.TrimSpace(req.Title)
	if req.Service == "" || req.Title == "" {
		return Incident{}, fmt.Errorf("%w: service and title are required", ErrInvalid)
	}
	if len(req.Title) > 200 {
		return Incident{}, fmt.Errorf("%w: title is %d characters, at most 200", ErrInvalid, len(req.Title))
	}
	sev := strings.ToLower(req.Severity)
	if sev == "" {
		sev = "sev2"
	}
	if !slices.Contains(severities, sev) {
		return Incident{}, fmt.Errorf("%w: severity %q, want one of %s", ErrInvalid, req.Severity, strings.Join(severities, ", "))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	at := s.now().UTC()
	inc := Incident{Title: req.Title, Severity: sev, State: Declared, Services: []string{req.Service}, Roles: map[Role]string{},
		Source: "manual", DeclaredBy: actor, DeclaredAt: at, Version: 1}
	for name, sp := range s.slos {
		if sp.Service == req.Service {
			inc.SLOs = append(inc.SLOs, name)
		}
	}
	slices.Sort(inc.SLOs)
	entries := []Entry{{At: at, Kind: KindDeclared, Source: "api", Actor: actor, Text: fmt.Sprintf("incident declared by %s: %s", actor, req.Title)}}
	if req.Commander != "" {
		inc.Roles[Commander] = req.Commander
		entries = append(entries, Entry{At: at, Kind: KindRole, Source: "api", Actor: actor,
			Text: fmt.Sprintf("%s is Incident Commander", req.Commander), Fields: map[string]any{"role": Commander, "to": req.Commander}})
	}
	entries = append(entries, s.originEntry(ctx, &inc, at)...)
	created, err := s.set.Store.CreateIncident(ctx, inc, entries)
	if err != nil {
		return Incident{}, err
	}
	s.event("incident.declared", created, fmt.Sprintf("%s declared by %s: %s", created.ID, actor, created.Title), at)
	return created, nil
}

// change loads an incident, applies edit and stores it with the entries
// edit returns, retrying once if another instance changed it meanwhile.
func (s *Service) change(ctx context.Context, id string, edit func(inc *Incident, at time.Time) ([]Entry, error)) (Incident, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for attempt := 0; ; attempt++ {
		inc, err := s.set.Store.GetIncident(ctx, id)
		if err != nil {
			return Incident{}, err
		}
		at := s.now().UTC()
		entries, err := edit(&inc, at)
		if err != nil {
			return Incident{}, err
		}
		inc.Version++
		err = s.set.Store.UpdateIncident(ctx, inc, entries)
		if errors.Is(err, ErrConflict) && attempt == 0 {
			continue
		}
		return inc, err
	}
}

// Assign gives role to a person; a change of holder is a handoff, recorded
// with whom it passed from.
func (s *Service) Assign(ctx context.Context, id string, role Role, to, actor string) (Incident, error) {
	to = strings.TrimSpace(to)
	if to == "" {
		return Incident{}, fmt.Errorf("%w: name who takes the role", ErrInvalid)
	}
	if _, err := ParseRole(string(role)); err != nil {
		return Incident{}, err
	}
	return s.change(ctx, id, func(inc *Incident, at time.Time) ([]Entry, error) {
		if !inc.Open() {
			return nil, fmt.Errorf("%w: %s is resolved", ErrTransition, id)
		}
		from := inc.Roles[role]
		if from == to {
			return nil, fmt.Errorf("%w: %s already holds %s", ErrInvalid, to, role)
		}
		if inc.Roles == nil {
			inc.Roles = map[Role]string{}
		}
		inc.Roles[role] = to
		text := fmt.Sprintf("%s is %s (assigned by %s)", to, roleName(role), actor)
		if from != "" {
			text = fmt.Sprintf("handoff: %s passes %s to %s (by %s)", from, roleName(role), to, actor)
		}
		return []Entry{{At: at, Kind: KindRole, Source: "api", Actor: actor, Text: text,
			Fields: map[string]any{"role": role, "from": from, "to": to}}}, nil
	})
}

func roleName(r Role) string {
	switch r {
	case Commander:
		return "Incident Commander"
	case Comms:
		return "Communications lead"
	case Ops:
		return "Operations lead"
	}
	return string(r)
}

// Note adds a person's line to the timeline.
func (s *Service) Note(ctx context.Context, id, text, actor string) error {
	text = strings.TrimSpace(text)
	if text == "" || len(text) > 4000 {
		return fmt.Errorf("%w: a note has 1 to 4000 characters", ErrInvalid)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.set.Store.GetIncident(ctx, id); err != nil {
		return err
	}
	return s.set.Store.AddIncidentEntries(ctx, id, []Entry{{At: s.now().UTC(), Kind: KindNote, Source: "api", Actor: actor, Text: text}})
}

// Update records a status update and sends it through the notifiers.
func (s *Service) Update(ctx context.Context, id, text, actor string) error {
	text = strings.TrimSpace(text)
	if text == "" || len(text) > 4000 {
		return fmt.Errorf("%w: a status update has 1 to 4000 characters", ErrInvalid)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	inc, err := s.set.Store.GetIncident(ctx, id)
	if err != nil {
		return err
	}
	at := s.now().UTC()
	if err := s.set.Store.AddIncidentEntries(ctx, id, []Entry{{At: at, Kind: KindUpdate, Source: "api", Actor: actor, Text: text}}); err != nil {
		return err
	}
	s.event("incident.update", inc, fmt.Sprintf("[%s %s, %s] %s (%s)", inc.ID, strings.ToUpper(inc.Severity), inc.State, text, actor), at)
	return nil
}

// Mitigate marks the impact stopped.
func (s *Service) Mitigate(ctx context.Context, id, actor, note string) (Incident, error) {
	inc, err := s.change(ctx, id, func(inc *Incident, at time.Time) ([]Entry, error) {
		if inc.State != Declared {
			return nil, fmt.Errorf("%w: %s is %s; only a declared incident can be mitigated", ErrTransition, id, inc.State)
		}
		inc.State, inc.MitigatedAt = Mitigated, &at
		return []Entry{stateEntry(at, actor, "mitigated", note)}, nil
	})
	if err == nil {
		s.event("incident.mitigated", inc, fmt.Sprintf("%s mitigated by %s", inc.ID, actor), *inc.MitigatedAt)
	}
	return inc, err
}

// Resolve closes the incident.
func (s *Service) Resolve(ctx context.Context, id, actor, note string) (Incident, error) {
	inc, err := s.change(ctx, id, func(inc *Incident, at time.Time) ([]Entry, error) {
		if inc.State == Resolved {
			return nil, fmt.Errorf("%w: %s is already resolved", ErrTransition, id)
		}
		if inc.MitigatedAt == nil {
			inc.MitigatedAt = &at
		}
		inc.State, inc.ResolvedAt = Resolved, &at
		return []Entry{stateEntry(at, actor, "resolved", note)}, nil
	})
	if err == nil {
		s.event("incident.resolved", inc, fmt.Sprintf("%s resolved by %s; post-mortem draft: tailgate incident postmortem %s", inc.ID, actor, inc.ID), *inc.ResolvedAt)
	}
	return inc, err
}

func stateEntry(at time.Time, actor, state, note string) Entry {
	text := "state: " + state + " (by " + actor + ")"
	if note = strings.TrimSpace(note); note != "" {
		text += ": " + note
	}
	return Entry{At: at, Kind: KindState, Source: "api", Actor: actor, Text: text, Fields: map[string]any{"state": state}}
}

// List returns incidents, newest first.
func (s *Service) List(ctx context.Context, openOnly bool, limit int) ([]Incident, error) {
	return s.set.Store.ListIncidents(ctx, openOnly, limit)
}

// View is an incident with its whole timeline and a mitigation
// suggestion.
type View struct {
	Incident
	Timeline []Entry `json:"timeline"`
	// SuggestMitigated says every involved SLO's 5m burn rate is under 1
	// while the incident is still declared.
	SuggestMitigated string `json:"suggest_mitigated,omitempty"`
}

// Get returns an incident with its timeline: the recorded entries merged
// with the deploys, gate decisions (changes of answer), overrides and
// flag changes of its services in its time range.
func (s *Service) Get(ctx context.Context, id string) (View, error) {
	inc, err := s.set.Store.GetIncident(ctx, id)
	if err != nil {
		return View{}, err
	}
	entries, err := s.set.Store.IncidentEntries(ctx, id)
	if err != nil {
		return View{}, err
	}
	now := s.now()
	from, to := inc.DeclaredAt.Add(-s.cfg.JoinWindow.Std()), now
	if inc.ResolvedAt != nil {
		to = inc.ResolvedAt.Add(time.Second)
	}
	more, err := s.related(ctx, inc, from, to)
	if err != nil {
		s.log.Warn("incident timeline: related events", "incident", id, "err", err)
	}
	entries = append(entries, more...)
	slices.SortStableFunc(entries, func(a, b Entry) int { return a.At.Compare(b.At) })
	v := View{Incident: inc, Timeline: entries}
	if inc.State == Declared && s.set.States != nil {
		v.SuggestMitigated = s.suggestMitigated(inc, now)
	}
	return v, nil
}

// related reads the events other parts store, for the incident's services.
func (s *Service) related(ctx context.Context, inc Incident, from, to time.Time) ([]Entry, error) {
	var out []Entry
	var errs []error
	if g := s.set.Gate; g != nil {
		for _, svc := range inc.Services {
			ds, err := g.Deploys(ctx, gate.DeployQuery{Service: svc, From: from, To: to, Limit: gate.MaxLimit})
			errs = append(errs, err)
			for _, d := range ds {
				out = append(out, Entry{At: d.Time.UTC(), Kind: KindDeploy, Source: "tailgate", Actor: orAnon(d.Principal),
					Text:   fmt.Sprintf("deploy: %s %s (%s) by %s%s", d.Service, d.Version, d.ChangeClass, orAnon(d.DeployedBy), suffix(d.Description)),
					Fields: map[string]any{"service": d.Service, "version": d.Version, "change_class": d.ChangeClass}})
			}
			decs, err := g.Decisions(ctx, gate.DecisionQuery{Service: svc, From: from, To: to, Limit: gate.MaxLimit})
			errs = append(errs, err)
			slices.SortFunc(decs, func(a, b gate.Decision) int { return a.EvaluatedAt.Compare(b.EvaluatedAt) })
			last := map[gate.ChangeClass]string{}
			for _, d := range decs {
				key := d.Verdict.String() + "/" + d.PolicyRule
				if last[d.ChangeClass] == key {
					continue // only changes of the answer
				}
				last[d.ChangeClass] = key
				reason := ""
				if len(d.Reasons) > 0 {
					reason = ": " + d.Reasons[0]
				}
				out = append(out, Entry{At: d.EvaluatedAt.UTC(), Kind: KindGate, Source: "tailgate", Actor: orAnon(d.Principal),
					Text:   fmt.Sprintf("gate: %s %s -> %s (%s)%s", d.Service, d.ChangeClass, d.Verdict, d.PolicyRule, reason),
					Fields: map[string]any{"decision_id": d.ID}})
			}
			ovs, err := g.Overrides(ctx, gate.OverrideQuery{Service: svc, Limit: gate.MaxLimit})
			errs = append(errs, err)
			for _, o := range ovs {
				if o.CreatedAt.Before(from) || !o.CreatedAt.Before(to) {
					continue
				}
				out = append(out, Entry{At: o.CreatedAt.UTC(), Kind: KindOverride, Source: "tailgate", Actor: orAnon(o.CreatedBy),
					Text: fmt.Sprintf("gate override %s for %s until %s, approved by %s: %s", o.ID, o.Service, o.ExpiresAt.UTC().Format(time.RFC3339), o.ApprovedBy, o.Reason)})
			}
		}
	}
	if s.set.Flags != nil {
		chs, err := s.set.Flags(ctx, from, to)
		errs = append(errs, err)
		for _, c := range chs {
			text := fmt.Sprintf("flag %s: %s %s -> %s by %s", c.Key, c.Action, orTargeting(c.From), orTargeting(c.To), c.Actor)
			if c.Reason != "" {
				text += ": " + c.Reason
			}
			out = append(out, Entry{At: c.At.UTC(), Kind: KindFlag, Source: "tailgate", Actor: c.Actor, Text: text,
				Fields: map[string]any{"flag": c.Key, "action": c.Action, "source": c.Source}})
		}
	}
	return out, errors.Join(errs...)
}

func orAnon(s string) string {
	if s == "" {
		return "anonymous"
	}
	return s
}

func orTargeting(s string) string {
	if s == "" {
		return "targeting"
	}
	return s
}

func suffix(s string) string {
	if s == "" {
		return ""
	}
	return ": " + s
}

// suggestMitigated says why mitigation can be declared, or "".
func (s *Service) suggestMitigated(inc Incident, now time.Time) string {
	var parts []string
	for _, svc := range inc.Services {
		for _, st := range s.set.States.SLOStates(svc, now) {
			if !slices.Contains(inc.SLOs, st.Name) {
				continue
			}
			r := st.BurnRates["5m"]
			if r == nil || *r >= 1 {
				return ""
			}
			parts = append(parts, fmt.Sprintf("%s burns %.2fx over 5m", st.Name, *r))
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return "every involved SLO burns under 1x over 5m (" + strings.Join(parts, ", ") + "): the impact has stopped; tailgate incident mitigate " + inc.ID
}
