package flags

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Errors of the Service's writes, for the API to map to statuses.
var (
	// ErrUnknownFlag: no flag has that key.
	ErrUnknownFlag = errors.New("unknown flag")
	// ErrInvalid: the change names a variant the flag lacks, or a
	// definition does not validate.
	ErrInvalid = errors.New("invalid flag change")
	// ErrDeclarative: the flag is defined in the config file, which the
	// API can flip and pause but not redefine or delete.
	ErrDeclarative = errors.New("flag is defined in the config file")
)

// Settings are the Service's dependencies.
type Settings struct {
	Logger *slog.Logger
	// Store keeps states, history and API flags; required.
	Store Store
	// Now is the clock of changes; nil means time.Now.
	Now func() time.Time
}

// Service holds every flag, evaluates them and applies changes. Reads
// (evaluations) take no lock: they read an immutable snapshot that each
// change or Refresh replaces.
type Service struct {
	log    *slog.Logger
	store  Store
	now    func() time.Time
	config map[string]*Flag
	order  []string // config keys in file order

	snap atomic.Pointer[snapshot]
	// mu serializes this process's writes and refreshes, so a snapshot is
	// never replaced by an older one.
	mu sync.Mutex
}

type snapshot struct {
	entries map[string]*entry
	keys    []string // sorted
}

type entry struct {
	flag       *Flag
	state      State
	fromConfig bool
}

// View is a flag as the API shows it: its definition, where it was
// defined and its current state.
type View struct {
	Config
	DefinedIn string `json:"defined_in"` // "config" or "api"
	State     State  `json:"state"`
}

// Op says who makes a change and why.
type Op struct {
	Actor  string
	Source string // "operator" or "kill_switch"; "" means operator
	Reason string
	// At is when the change is made; zero means the service's clock. The
	// kill switches pass their evaluation's time.
	At time.Time
}

// NewService validates the config file's flags and loads the states and
// API flags from the store.
func NewService(ctx context.Context, cfgs []Config, set Settings) (*Service, error) {
	if set.Store == nil {
		return nil, errors.New("flags: a store is required")
	}
	if set.Logger == nil {
		set.Logger = slog.New(slog.DiscardHandler)
	}
	if set.Now == nil {
		set.Now = time.Now
	}
	s := &Service{log: set.Logger, store: set.Store, now: set.Now, config: make(map[string]*Flag, len(cfgs))}
	var errs []error
	for i, c := range cfgs {
		f, err := New(c)
		if err != nil {
			errs = append(errs, fmt.Errorf("flags[%d]: %w", i, err))
			continue
		}
		if _, dup := s.config[c.Key]; dup {
			errs = append(errs, fmt.Errorf("flags[%d]: key %q is defined twice", i, c.Key))
			continue
		}
		s.config[c.Key] = f
		s.order = append(s.order, c.Key)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if err := s.Refresh(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// Validate checks the config file's flags without a store.
func Validate(cfgs []Config) error {
	var errs []error
	seen := map[string]bool{}
	for i, c := range cfgs {
		if _, err := New(c); err != nil {
			errs = append(errs, fmt.Errorf("flags[%d]: %w", i, err))
		}
		if seen[c.Key] {
			errs = append(errs, fmt.Errorf("flags[%d]: key %q is defined twice", i, c.Key))
		}
		seen[c.Key] = true
	}
	return errors.Join(errs...)
}

// Refresh reloads states and API flags from the store, so changes made by
// other instances take effect here. Run calls it periodically.
func (s *Service) Refresh(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.refreshLocked(ctx)
}

func (s *Service) refreshLocked(ctx context.Context) error {
	defs, err := s.store.FlagDefinitions(ctx)
	if err != nil {
		return fmt.Errorf("load flag definitions: %w", err)
	}
	states, err := s.store.FlagStates(ctx)
	if err != nil {
		return fmt.Errorf("load flag states: %w", err)
	}
	snap := &snapshot{entries: make(map[string]*entry, len(s.config)+len(defs))}
	for key, f := range s.config {
		snap.entries[key] = &entry{flag: f, fromConfig: true, state: State{Key: key}}
	}
	for _, c := range defs {
		if _, clash := s.config[c.Key]; clash {
			s.log.Warn("a flag defined through the API has the key of a config flag; the config file's wins", "key", c.Key)
			continue
		}
		f, err := New(c)
		if err != nil {
			s.log.Error("stored flag definition does not validate; not served", "key", c.Key, "err", err)
			continue
		}
		snap.entries[c.Key] = &entry{flag: f, state: State{Key: c.Key}}
	}
	for _, st := range states {
		if e, ok := snap.entries[st.Key]; ok {
			e.state = st
		}
	}
	snap.keys = slices.Sorted(maps.Keys(snap.entries))
	s.snap.Store(snap)
	return nil
}

// Run refreshes every interval until ctx is done; a failed refresh keeps
// the last snapshot and is logged.
func (s *Service) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := s.Refresh(ctx); err != nil && ctx.Err() == nil {
				s.log.Warn("refresh flags from the store", "err", err)
			}
		}
	}
}

// Evaluate evaluates one flag; an unknown key is an *EvalError with
// ErrFlagNotFound.
func (s *Service) Evaluate(key string, c Context) (Result, error) {
	e, ok := s.snap.Load().entries[key]
	if !ok {
		return Result{Key: key}, &EvalError{Code: ErrFlagNotFound, Detail: fmt.Sprintf("flag %q was not found", key)}
	}
	return e.flag.Evaluate(c, e.state.Forced)
}

// Outcome is one flag's evaluation in a bulk evaluation: a result or an
// error.
type Outcome struct {
	Result Result
	Err    *EvalError
}

// EvaluateAll evaluates every flag for c, in key order.
func (s *Service) EvaluateAll(c Context) []Outcome {
	snap := s.snap.Load()
	out := make([]Outcome, 0, len(snap.keys))
	for _, key := range snap.keys {
		e := snap.entries[key]
		res, err := e.flag.Evaluate(c, e.state.Forced)
		o := Outcome{Result: res}
		if err != nil {
			var ee *EvalError
			if !errors.As(err, &ee) {
				ee = &EvalError{Code: ErrGeneral, Detail: err.Error()}
			}
			o.Err = ee
		}
		out = append(out, o)
	}
	return out
}

// List returns every flag, in key order.
func (s *Service) List() []View {
	snap := s.snap.Load()
	out := make([]View, 0, len(snap.keys))
	for _, key := range snap.keys {
		out = append(out, snap.entries[key].view())
	}
	return out
}

// Get returns one flag.
func (s *Service) Get(key string) (View, bool) {
	e, ok := s.snap.Load().entries[key]
	if !ok {
		return View{}, false
	}
	return e.view(), true
}

func (e *entry) view() View {
	v := View{Config: e.flag.Config(), DefinedIn: "api", State: e.state}
	if e.fromConfig {
		v.DefinedIn = "config"
	}
	return v
}

// Flip forces variant for everyone.
func (s *Service) Flip(ctx context.Context, key, variant string, op Op) (View, error) {
	return s.change(ctx, key, op, func(e *entry, st *State, ch *Change) error {
		if !e.flag.HasVariant(variant) {
			return fmt.Errorf("%w: flag %q has no variant %q (it has %v)", ErrInvalid, key, variant, e.flag.Variants())
		}
		ch.Action, ch.To = ActionFlip, variant
		st.Forced = &Forced{Variant: variant, By: ch.Source}
		return nil
	})
}

// Restore ends a forced variant: the targeting decides again.
func (s *Service) Restore(ctx context.Context, key string, op Op) (View, error) {
	return s.change(ctx, key, op, func(_ *entry, st *State, ch *Change) error {
		ch.Action = ActionRestore
		st.Forced = nil
		return nil
	})
}

// Pause stops (paused) or resumes the flag's kill switch.
func (s *Service) Pause(ctx context.Context, key string, paused bool, op Op) (View, error) {
	return s.change(ctx, key, op, func(_ *entry, st *State, ch *Change) error {
		ch.Action = ActionResume
		if paused {
			ch.Action = ActionPause
		}
		st.Paused = paused
		return nil
	})
}

// change applies edit to the current state of key and stores it, retrying
// once on a concurrent change by another instance.
func (s *Service) change(ctx context.Context, key string, op Op, edit func(*entry, *State, *Change) error) (View, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for attempt := 0; ; attempt++ {
		e, ok := s.snap.Load().entries[key]
		if !ok {
			return View{}, fmt.Errorf("%w %q", ErrUnknownFlag, key)
		}
		now := s.now().UTC()
		if !op.At.IsZero() {
			now = op.At.UTC()
		}
		st := e.state
		st.Key, st.Version, st.Since = key, e.state.Version+1, now
		ch := Change{Key: key, Actor: op.Actor, At: now, Source: op.Source, Reason: op.Reason, From: servedVariant(e.state)}
		if ch.Source == "" {
			ch.Source = "operator"
		}
		if err := edit(e, &st, &ch); err != nil {
			return View{}, err
		}
		if ch.To == "" {
			ch.To = servedVariant(st)
		}
		err := s.store.SetFlagState(ctx, st, ch)
		// A person's change is re-read and tried once more; an automatic
		// one is not: another instance acted first, and the next
		// evaluation sees what it did.
		if errors.Is(err, ErrConflict) && attempt == 0 && ch.Source != "kill_switch" {
			if err := s.refreshLocked(ctx); err != nil {
				return View{}, err
			}
			continue
		}
		if err != nil {
			if errors.Is(err, ErrConflict) {
				_ = s.refreshLocked(ctx) // serve what the other instance stored
			}
			return View{}, fmt.Errorf("store flag %q: %w", key, err)
		}
		if err := s.refreshLocked(ctx); err != nil {
			s.log.Warn("flag changed, but reloading the flags failed", "key", key, "err", err)
		}
		v, _ := s.Get(key)
		return v, nil
	}
}

// servedVariant is the forced variant, or "" when the targeting decides.
func servedVariant(st State) string {
	if st.Forced != nil {
		return st.Forced.Variant
	}
	return ""
}

// Define creates or replaces a flag defined through the API.
func (s *Service) Define(ctx context.Context, c Config, op Op) (View, error) {
	if _, ok := s.config[c.Key]; ok {
		return View{}, fmt.Errorf("%w: %q can be flipped and paused through the API, not redefined", ErrDeclarative, c.Key)
	}
	if _, err := New(c); err != nil {
		return View{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ch := Change{Key: c.Key, Action: ActionDefine, Actor: op.Actor, At: s.now().UTC(), Source: "operator", Reason: op.Reason, Definition: &c}
	if err := s.store.PutFlagDefinition(ctx, c, ch); err != nil {
		return View{}, fmt.Errorf("store flag %q: %w", c.Key, err)
	}
	if err := s.refreshLocked(ctx); err != nil {
		return View{}, err
	}
	v, _ := s.Get(c.Key)
	return v, nil
}

// Delete deletes a flag defined through the API.
func (s *Service) Delete(ctx context.Context, key string, op Op) error {
	if _, ok := s.config[key]; ok {
		return fmt.Errorf("%w: %q is deleted by removing it from the config file", ErrDeclarative, key)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ch := Change{Key: key, Action: ActionDelete, Actor: op.Actor, At: s.now().UTC(), Source: "operator", Reason: op.Reason}
	ok, err := s.store.DeleteFlagDefinition(ctx, key, ch)
	if err != nil {
		return fmt.Errorf("delete flag %q: %w", key, err)
	}
	if !ok {
		return fmt.Errorf("%w %q", ErrUnknownFlag, key)
	}
	return s.refreshLocked(ctx)
}

// History returns a flag's changes, newest first.
func (s *Service) History(ctx context.Context, key string, limit int) ([]Change, error) {
	if _, ok := s.Get(key); !ok {
		if hs, err := s.store.FlagHistory(ctx, key, limit); err != nil || len(hs) == 0 {
			return nil, fmt.Errorf("%w %q", ErrUnknownFlag, key)
		} else {
			return hs, nil // a deleted API flag keeps its history
		}
	}
	return s.store.FlagHistory(ctx, key, limit)
}
