package signals

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/tailgate-sre/tailgate/internal/wal"
)

// markedMem is the test store, keeping the marks its writes carry.
type markedMem struct {
	memStore
	mmu   sync.Mutex
	marks []wal.Mark
}

func (m *markedMem) AppendSignalBucketsMarked(ctx context.Context, b []Bucket, mark wal.Mark) error {
	if err := m.AppendSignalBuckets(ctx, b); err != nil {
		return err
	}
	m.mmu.Lock()
	defer m.mmu.Unlock()
	m.marks = append(m.marks, mark)
	return nil
}

// fakeCut is a checkpoint whose position and time the test sets.
type fakeCut struct {
	pos uint64
	at  time.Time
}

func (f *fakeCut) Cut(fn func(time.Time)) (uint64, time.Time) { fn(f.at); return f.pos, f.at }
func (f *fakeCut) Instance() string                           { return "i" }

// TestWALMarkNeverGoesBack: after a flush of every minute the mark stays
// at its cut, even when a later closed-minute flush finds only older cuts
// before its cutoff; after SetWALFloor (a start) likewise.
func TestWALMarkNeverGoesBack(t *testing.T) {
	store := &markedMem{}
	cp := &fakeCut{}
	cfg := DefaultConfig()
	cfg.MaxLateness = 0
	s, err := New(cfg, Settings{Store: store, Checkpoint: cp})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 12, 3, 10, 0, 10, 0, time.UTC)
	flush := func(pos uint64, at time.Time, all bool) wal.Mark {
		t.Helper()
		cp.pos, cp.at = pos, at
		if err := s.flush(t.Context(), at, all); err != nil {
			t.Fatal(err)
		}
		return store.marks[len(store.marks)-1]
	}
	// A cut in 10:00, then a flush of every minute at position 500 in
	// 10:01, then a closed-minute flush later in 10:01: its cutoff's
	// minute is 10:01, and the only cut in an earlier minute is 10:00's
	// (position 100); the full flush's 500 must hold.
	if m := flush(100, t0, false); m.Pos != 0 {
		t.Fatalf("first flush: mark %d, want 0 (no cut before the cutoff's minute yet)", m.Pos)
	}
	if m := flush(500, t0.Add(time.Minute), true); m.Pos != 500 || m.ClosedBefore != 0 {
		t.Fatalf("flush of every minute: %+v, want position 500", m)
	}
	m := flush(800, t0.Add(time.Minute+30*time.Second), false)
	if m.Pos < 500 {
		t.Errorf("closed-minute flush after a full one: mark %d went back below 500", m.Pos)
	}
	// A start: the stored mark says 900 is whole; nothing lower follows.
	s2, err := New(cfg, Settings{Store: store, Checkpoint: cp})
	if err != nil {
		t.Fatal(err)
	}
	s2.SetWALFloor(900)
	cp.pos, cp.at = 950, t0.Add(3*time.Minute)
	if err := s2.flush(t.Context(), cp.at, false); err != nil {
		t.Fatal(err)
	}
	if m := store.marks[len(store.marks)-1]; m.Pos < 900 {
		t.Errorf("first flush after a start: mark %d below the stored 900", m.Pos)
	}
}
