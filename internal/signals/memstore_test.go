package signals

import (
	"cmp"
	"context"
	"slices"
	"sync"
	"time"
)

// NewTestMemStore returns the in-memory Store that the package's tests
// use, for the conformance suite (internal/store/storetest), which runs
// from the external test package.
func NewTestMemStore() Store { return &memStore{} }

// memStore is an in-memory Store for tests.
type memStore struct {
	mu       sync.Mutex
	buckets  []Bucket
	origins  []OriginRow
	failNext int // fail this many writes
	appends  int
}

var _ Store = (*memStore)(nil)

func (m *memStore) AppendSignalBuckets(_ context.Context, b []Bucket) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.failNext > 0 {
		m.failNext--
		return context.DeadlineExceeded
	}
	m.appends++
	m.buckets = appendCopies(m.buckets, b)
	return nil
}

func (m *memStore) SignalBuckets(_ context.Context, f BucketFilter) ([]Bucket, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Bucket
	for _, b := range m.buckets {
		if (f.Service == "" || b.Service == f.Service) && !b.Start.Before(f.From) && b.Start.Before(f.To) && (f.Step == 0 || b.Step == f.Step) {
			out = append(out, b)
		}
	}
	return out, nil
}

func (m *memStore) OldestSignalBucket(_ context.Context, step time.Duration) (time.Time, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var oldest time.Time
	ok := false
	for _, b := range m.buckets {
		if b.Step == step && (!ok || b.Start.Before(oldest)) {
			oldest, ok = b.Start, true
		}
	}
	return oldest, ok, nil
}

func (m *memStore) ReplaceSignalBuckets(_ context.Context, from, to time.Time, b []Bucket) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.buckets = slices.DeleteFunc(m.buckets, func(x Bucket) bool {
		return x.Step == time.Minute && !x.Start.Before(from) && x.Start.Before(to)
	})
	m.buckets = appendCopies(m.buckets, b)
	return nil
}

func (m *memStore) AppendErrorOrigins(_ context.Context, rows []OriginRow) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.failNext > 0 {
		m.failNext--
		return context.DeadlineExceeded
	}
	m.origins = append(m.origins, rows...)
	return nil
}

func (m *memStore) ErrorOrigins(_ context.Context, service string, from, to time.Time) ([]OriginRow, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []OriginRow
	for _, r := range m.origins {
		if (r.Service == service || r.OriginService == service) && !r.Start.Before(from) && r.Start.Before(to) {
			out = append(out, r)
		}
	}
	return out, nil
}

func (m *memStore) DeleteSignalsBefore(_ context.Context, t time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.buckets = slices.DeleteFunc(m.buckets, func(b Bucket) bool { return b.Start.Before(t) })
	m.origins = slices.DeleteFunc(m.origins, func(r OriginRow) bool { return r.Start.Before(t) })
	return nil
}

// appendCopies appends bs to dst with their own copies of the latency
// sketches: a caller may reuse its buffers once the write returned.
func appendCopies(dst, bs []Bucket) []Bucket {
	for _, b := range bs {
		b.Latency = slices.Clone(b.Latency)
		dst = append(dst, b)
	}
	return dst
}

// storedBuckets returns the stored buckets sorted.
func (m *memStore) storedBuckets() []Bucket {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := slices.Clone(m.buckets)
	slices.SortFunc(out, func(a, b Bucket) int {
		return cmp.Or(a.Start.Compare(b.Start), cmp.Compare(a.Service, b.Service), cmp.Compare(a.Operation, b.Operation))
	})
	return out
}
