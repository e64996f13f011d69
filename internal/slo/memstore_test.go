package slo

import (
	"context"
	"slices"
	"sync"
	"time"
)

// NewTestMemStore returns the in-memory Store that the package's tests
// use, for the conformance suite (internal/store/storetest), which runs
// from the external test package.
func NewTestMemStore() Store { return newMemStore() }

// memStore is an in-memory Store.
type memStore struct {
	mu      sync.Mutex
	buckets map[[2]string]map[int64]cnt
	since   map[string]time.Time
	corrs   []Correction
	trans   []Transition
	writes  int
	lastID  int64 // IDs are never reused, as in a database sequence
}

func newMemStore() *memStore {
	return &memStore{buckets: map[[2]string]map[int64]cnt{}, since: map[string]time.Time{}}
}

func (m *memStore) AddSLIBuckets(_ context.Context, bs []Bucket) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.writes++
	for _, b := range bs {
		k := [2]string{b.SLO, b.Group}
		if m.buckets[k] == nil {
			m.buckets[k] = map[int64]cnt{}
		}
		c := m.buckets[k][b.Minute.Unix()]
		m.buckets[k][b.Minute.Unix()] = cnt{c.good + b.Good, c.total + b.Total}
	}
	return nil
}

func (m *memStore) LoadSLIBuckets(_ context.Context, since time.Time) ([]Bucket, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Bucket
	for k, byMin := range m.buckets {
		for t, c := range byMin {
			if t >= since.Unix() {
				out = append(out, Bucket{SLO: k[0], Group: k[1], Minute: time.Unix(t, 0).UTC(), Good: c.good, Total: c.total})
			}
		}
	}
	slices.SortFunc(out, func(a, b Bucket) int { return a.Minute.Compare(b.Minute) })
	return out, nil
}

func (m *memStore) DeleteSLIBucketsBefore(_ context.Context, before time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, byMin := range m.buckets {
		for t := range byMin {
			if t < before.Unix() {
				delete(byMin, t)
			}
		}
	}
	return nil
}

func (m *memStore) TrackSLO(_ context.Context, slo string, now time.Time) (time.Time, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if t, ok := m.since[slo]; ok {
		return t, nil
	}
	m.since[slo] = now
	return now, nil
}

func (m *memStore) AddCorrection(_ context.Context, c Correction) (Correction, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.lastID == 0 {
		m.lastID = 99 // IDs from 100 show in the tests' output as store-made
	}
	m.lastID++
	c.ID = m.lastID
	m.corrs = append(m.corrs, c)
	return c, nil
}

func (m *memStore) ListCorrections(context.Context) ([]Correction, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.corrs), nil
}

func (m *memStore) DeleteCorrection(_ context.Context, slo string, id int64, by string, at time.Time) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i, c := range m.corrs {
		if c.SLO == slo && c.ID == id && !c.Deleted() {
			m.corrs[i].DeletedBy, m.corrs[i].DeletedAt = by, at
			return true, nil
		}
	}
	return false, nil
}

func (m *memStore) AddAlertTransitions(_ context.Context, ts []Transition) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.trans = append(m.trans, ts...)
	return nil
}

func (m *memStore) LatestAlertTransitions(context.Context) ([]Transition, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	last := map[[3]string]Transition{}
	var keys [][3]string
	for _, t := range m.trans {
		k := [3]string{t.SLO, t.Group, t.Alert}
		if _, ok := last[k]; !ok {
			keys = append(keys, k)
		}
		last[k] = t
	}
	var out []Transition
	for _, k := range keys {
		out = append(out, last[k])
	}
	return out, nil
}

func (m *memStore) ListAlertTransitions(_ context.Context, slo string, since time.Time, limit int) ([]Transition, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := []Transition{}
	for i := len(m.trans) - 1; i >= 0 && (limit <= 0 || len(out) < limit); i-- {
		t := m.trans[i]
		if (slo == "" || t.SLO == slo) && !t.At.Before(since) {
			out = append(out, t)
		}
	}
	return out, nil
}

func (m *memStore) total(slo string) (good, total uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, c := range m.buckets[[2]string{slo, ""}] {
		good += c.good
		total += c.total
	}
	return good, total
}
