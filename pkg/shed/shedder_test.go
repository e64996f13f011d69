package shed

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// fixedLimit is a Config whose limit cannot move from n.
func fixedLimit(n int) Config {
	return Config{Limit: LimitConfig{Initial: n, Min: n, Max: n}}
}

func mustNew(t *testing.T, cfg Config) *Shedder {
	t.Helper()
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Shutdown(context.Background()) })
	return s
}

func TestSharesRefuseLeastCriticalFirst(t *testing.T) {
	ctx := t.Context()
	// Limit 10 with the default shares: sheddable may fill 5, default 8,
	// critical 10.
	s := mustNew(t, fixedLimit(10))
	var held []Token
	acquire := func(c Criticality) Reason {
		tok, r := s.Acquire(ctx, c)
		if r == None {
			held = append(held, tok)
		}
		return r
	}
	type step struct {
		c    Criticality
		want Reason
	}
	steps := []step{
		{Sheddable, None}, {Sheddable, None}, {Sheddable, None}, {Sheddable, None}, {Sheddable, None},
		{Sheddable, Limit}, // 5 in flight: sheddable's share is used
		{Default, None}, {Default, None}, {Default, None},
		{Default, Limit}, // 8 in flight
		{Sheddable, Limit},
		{Critical, None}, {Critical, None},
		{Critical, Limit}, // 10 in flight
		{Default, Limit},
	}
	for i, st := range steps {
		if got := acquire(st.c); got != st.want {
			t.Fatalf("step %d: Acquire(%s) = %s, want %s", i, st.c, got, st.want)
		}
	}
	if got := s.InFlight(); got != 10 {
		t.Errorf("InFlight = %d, want 10", got)
	}
	held[0].Done() // 9 in flight
	if r := acquire(Sheddable); r != Limit {
		t.Errorf("sheddable at 9 of 10: %s, want %s", r, Limit)
	}
	if r := acquire(Default); r != Limit {
		t.Errorf("default at 9 of 10: %s, want %s", r, Limit)
	}
	if r := acquire(Critical); r != None {
		t.Errorf("critical at 9 of 10: %s, want admitted", r)
	}
	for _, tok := range held[1:] {
		tok.Ignore()
	}
	if got := s.InFlight(); got != 0 {
		t.Errorf("InFlight after release = %d, want 0", got)
	}
	Token{}.Done() // the zero Token holds nothing
}

func TestLevelRefusesExactShareOfSheddable(t *testing.T) {
	ctx := t.Context()
	s := mustNew(t, fixedLimit(1000))
	s.SetSheddablePercent(30)
	var got []int
	for n := 1; n <= 10; n++ {
		tok, r := s.Acquire(ctx, Sheddable)
		switch r {
		case Level:
			got = append(got, n)
		case None:
			tok.Done()
		default:
			t.Fatalf("request %d: reason %s", n, r)
		}
	}
	// 30%: the running count of refusals floor(0.3*n) steps up at n = 4
	// (1.2), 7 (2.1) and 10 (3.0).
	if diff := cmp.Diff([]int{4, 7, 10}, got); diff != "" {
		t.Errorf("refused requests (-want +got):\n%s", diff)
	}
	for _, c := range []Criticality{Critical, Default} {
		for range 10 {
			tok, r := s.Acquire(ctx, c)
			if r != None {
				t.Fatalf("%s refused by the level: %s", c, r)
			}
			tok.Done()
		}
	}
	for _, tt := range []struct{ set, want float64 }{{100, 100}, {150, 100}, {-3, 0}, {12.345, 12.35}} {
		s.SetSheddablePercent(tt.set)
		if got := s.SheddablePercent(); got != tt.want {
			t.Errorf("SetSheddablePercent(%g): level %g, want %g", tt.set, got, tt.want)
		}
	}
	s.SetSheddablePercent(100)
	for range 5 {
		if _, r := s.Acquire(ctx, Sheddable); r != Level {
			t.Fatalf("at 100%% a sheddable request got %s", r)
		}
	}
}

// fakeClock is a clock moved by hand.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func TestLimitMovesWithLatency(t *testing.T) {
	ctx := t.Context()
	clk := &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	s := mustNew(t, Config{
		Limit: LimitConfig{Initial: 10, Min: 1, Max: 100, Window: time.Second, WindowSamples: 10},
		Now:   clk.Now,
	})
	round := func(n int, took time.Duration) {
		t.Helper()
		toks := make([]Token, n)
		for i := range toks {
			var r Reason
			if toks[i], r = s.Acquire(ctx, Critical); r != None {
				t.Fatalf("request %d of %d refused: %s", i, n, r)
			}
		}
		clk.Add(took)
		for _, tok := range toks {
			tok.Done()
		}
	}
	// 10 requests of 1s fill the limit with no queue (minRTT is 1s):
	// grow by beta, 6*max(1, log10 10) = 6.
	round(10, time.Second)
	if got := s.Limit(); got != 16 {
		t.Fatalf("limit after a window without queue = %d, want 16", got)
	}
	// 10 requests of 2s (10 in flight of 16 is over half): queue
	// 16*(1-1/2) = 8 > beta 6*log10(16) = 7.22, shrink by log10(16) = 1.20
	// to 14.8.
	round(10, 2*time.Second)
	if got := s.Limit(); got != 14 {
		t.Fatalf("limit after a queued window = %d, want 14", got)
	}
	// Fewer samples than WindowSamples: the window stays open.
	round(5, 10*time.Second)
	if got := s.Limit(); got != 14 {
		t.Fatalf("limit after a short window = %d, want 14", got)
	}
}

func TestNewValidates(t *testing.T) {
	_, err := New(Config{
		Limit:          LimitConfig{Initial: 5, Min: 10, Max: 8, Smoothing: 2},
		SheddableShare: 1.5,
		Routes:         map[string]Criticality{"/a/{x": Sheddable, "/b": Criticality(9)},
		Methods:        map[string]Criticality{"/s/M": Criticality(7)},
		Level:          LevelConfig{URL: "tailgate:8080"},
	})
	if err == nil {
		t.Fatal("New accepted an invalid config")
	}
	for _, want := range []string{
		"limit.max: must be at least limit.min (10), got 8",
		"limit.initial: must be between",
		"limit.smoothing: must be in (0, 1], got 2",
		"sheddable_share: must be in (0, 1], got 1.5",
		`routes["/b"]: invalid criticality 9`,
		`methods["/s/M"]: invalid criticality 7`,
		`level.url: want an http or https URL, got "tailgate:8080"`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	// A pattern ServeMux rejects is an error, not a panic.
	if _, err := New(Config{Routes: map[string]Criticality{"/a/{x": Sheddable}}); err == nil || !strings.Contains(err.Error(), `routes["/a/{x"]`) {
		t.Errorf("bad route pattern: err = %v", err)
	}
}
