package demo

import (
	"fmt"
	"time"
)

// Phase is a stage of the demo's story.
type Phase int

// The phases, in the order they are played.
const (
	// Calm is normal traffic: a few client errors, budgets barely move.
	Calm Phase = iota
	// Failure is a bad payments release: payments slows down and fails,
	// checkout's calls time out and the errors cascade to the frontend.
	Failure
	// Recovery follows the rollback of the bad release: traffic is
	// healthy again while the burn windows drain.
	Recovery
	// Done is after the last phase.
	Done
)

// String returns the phase's name.
func (p Phase) String() string {
	switch p {
	case Calm:
		return "calm"
	case Failure:
		return "failure"
	case Recovery:
		return "recovery"
	case Done:
		return "done"
	}
	return fmt.Sprintf("Phase(%d)", int(p))
}

// Schedule is how long each phase lasts.
type Schedule struct {
	Calm, Failure, Recovery time.Duration
}

// DefaultSchedule is about three minutes: long enough for a page alert to
// fire during the failure and to resolve during the recovery, whose burn
// windows (one to two minutes for a one-hour SLO) must first drain.
func DefaultSchedule() Schedule {
	return Schedule{Calm: 30 * time.Second, Failure: 40 * time.Second, Recovery: 110 * time.Second}
}

// Total returns the length of the whole run.
func (s Schedule) Total() time.Duration { return s.Calm + s.Failure + s.Recovery }

// Length returns how long phase p lasts.
func (s Schedule) Length(p Phase) time.Duration {
	switch p {
	case Calm:
		return s.Calm
	case Failure:
		return s.Failure
	case Recovery:
		return s.Recovery
	}
	return 0
}

// Start returns when phase p begins, from the start of the run.
func (s Schedule) Start(p Phase) time.Duration {
	var d time.Duration
	for q := Calm; q < p && q < Done; q++ {
		d += s.Length(q)
	}
	return d
}

// At returns the phase played at elapsed time since the start, and how far
// into it (0..1). A phase of zero length is skipped.
func (s Schedule) At(elapsed time.Duration) (Phase, float64) {
	if elapsed < 0 {
		elapsed = 0
	}
	var from time.Duration
	for p := Calm; p < Done; p++ {
		l := s.Length(p)
		if elapsed < from+l {
			return p, float64(elapsed-from) / float64(l)
		}
		from += l
	}
	return Done, 1
}

// Scale returns the schedule stretched or shrunk to last total, keeping the
// phases' proportions (rounded to the millisecond; the recovery absorbs the
// rounding). A schedule of zero length is returned unchanged.
func (s Schedule) Scale(total time.Duration) Schedule {
	t := s.Total()
	if t <= 0 || total <= 0 {
		return s
	}
	f := float64(total) / float64(t)
	scale := func(d time.Duration) time.Duration {
		return time.Duration(float64(d) * f).Round(time.Millisecond)
	}
	out := Schedule{Calm: scale(s.Calm), Failure: scale(s.Failure)}
	out.Recovery = max(0, total-out.Calm-out.Failure)
	return out
}

// Validate reports a negative phase or a schedule of zero length.
func (s Schedule) Validate() error {
	for p := Calm; p < Done; p++ {
		if s.Length(p) < 0 {
			return fmt.Errorf("phase %s: must not be negative, got %s", p, s.Length(p))
		}
	}
	if s.Total() <= 0 {
		return fmt.Errorf("the phases add up to %s: nothing to play", s.Total())
	}
	return nil
}

// String describes the schedule, e.g. "calm 30s, failure 40s, recovery 1m50s".
func (s Schedule) String() string {
	return fmt.Sprintf("calm %s, failure %s, recovery %s", short(s.Calm), short(s.Failure), short(s.Recovery))
}

// short formats a duration without trailing zero units: 1m30s, 45s, 2m.
func short(d time.Duration) string {
	d = d.Round(time.Second)
	if d < time.Minute {
		return fmt.Sprintf("%ds", int(d/time.Second))
	}
	m, s := int(d/time.Minute), int((d%time.Minute)/time.Second)
	if s == 0 {
		return fmt.Sprintf("%dm", m)
	}
	return fmt.Sprintf("%dm%02ds", m, s)
}

// clock formats an elapsed time as m:ss.
func clock(d time.Duration) string {
	d = max(0, d).Truncate(time.Second)
	return fmt.Sprintf("%d:%02d", int(d/time.Minute), int((d%time.Minute)/time.Second))
}
