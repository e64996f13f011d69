// Package users estimates how many distinct users the failed requests of
// a service had, for an incident's post-mortem: the value of a span
// attribute naming the user (incidents.user_attribute, e.g. user.id) of
// every failed entry span goes into a HyperLogLog sketch per service and
// ten minutes. Sketches merge by taking each register's maximum, so the
// instances of a fleet each store their own and a reader merges them all,
// with no count taken twice.
package users

import (
	"context"
	"math"
	"sync"
	"time"

	"github.com/tailgate-sre/tailgate/internal/hll"
	"github.com/tailgate-sre/tailgate/internal/otlp"
	"github.com/tailgate-sre/tailgate/internal/units"
)

// precision is the sketch's register index bits: 2^10 registers, a
// standard error of 1.04/sqrt(1024), about 3.25%.
const precision = 10

// Registers is the size of a sketch, in bytes.
const Registers = 1 << precision

// BucketLength is the time one sketch covers.
const BucketLength = 10 * time.Minute

// Sketch is a HyperLogLog sketch of user IDs.
type Sketch [Registers]uint8

// Add counts the user whose ID hashes to h.
func (s *Sketch) Add(h uint64) { hll.Add(s[:], precision, h) }

// Merge adds o's users to s.
func (s *Sketch) Merge(o *Sketch) { hll.Merge(s[:], o[:]) }

// Estimate returns the number of distinct users added.
func (s *Sketch) Estimate() uint64 { return uint64(math.Round(hll.Estimate(s[:]))) }

// hash is FNV-1a with a final mix (splitmix64), the same in every
// process, so that the sketches of a fleet's instances merge.
func hash(b []byte) uint64 {
	h := uint64(14695981039346656037)
	for _, c := range b {
		h ^= uint64(c)
		h *= 1099511628211
	}
	h ^= h >> 30
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 27
	h *= 0x94d049bb133111eb
	h ^= h >> 31
	return h
}

// Row is one sketch as stored: each instance writes its own (replacing
// the last write), readers merge every instance's.
type Row struct {
	Service string
	// Start is the start of the sketch's ten minutes.
	Start  time.Time
	Sketch Sketch
}

// Store keeps the sketches of a fleet's instances.
type Store interface {
	// PutUserSketches writes this instance's sketches, replacing its
	// earlier ones of the same service and ten minutes.
	PutUserSketches(ctx context.Context, rows []Row) error
	// UserSketches returns every instance's sketches of service whose ten
	// minutes overlap [from, to].
	UserSketches(ctx context.Context, service string, from, to time.Time) ([]Row, error)
	// PruneUserSketches deletes the sketches of ten minutes starting before
	// cut.
	PruneUserSketches(ctx context.Context, cut time.Time) error
}

// Counter sketches the users of failed requests. It is safe for
// concurrent use.
type Counter struct {
	attr      string
	retention time.Duration

	mu      sync.Mutex
	buckets map[key]*bucket
	scratch []byte
}

type key struct {
	service string
	start   units.Minute
}

type bucket struct {
	sk    Sketch
	dirty bool
}

// NewCounter returns a counter of the attribute attr (of the span, else
// of its resource), keeping retention of sketches in memory; nil when attr
// is empty (nothing is counted).
func NewCounter(attr string, retention time.Duration) *Counter {
	if attr == "" {
		return nil
	}
	return &Counter{attr: attr, retention: retention, buckets: map[key]*bucket{}}
}

// bucketOf returns the ten minutes holding minute m.
func bucketOf(m units.Minute) units.Minute {
	const n = units.Minute(BucketLength / time.Minute)
	return m - m%n
}

// Observe counts the users of req's failed entry spans, in the minute
// each ends (clamped to now's, as the SLIs count).
func (c *Counter) Observe(req *otlp.Request, now time.Time) {
	if c == nil {
		return
	}
	var clock units.EventClock
	started := false
	for i := range req.Spans {
		sp := &req.Spans[i]
		if !sp.Kind.IsEntry() || !sp.Bad() {
			continue
		}
		v, ok := req.SpanAttrs(sp).Get(c.attr)
		rs := &req.Resources[req.Scopes[sp.Scope].Resource]
		if !ok {
			v, ok = req.ResourceAttrs(rs).Get(c.attr)
		}
		if !ok {
			continue
		}
		if !started {
			clock, started = units.NewEventClock(now, time.Minute), true
		}
		m, _ := clock.Minute(sp.EndUnixNano)
		c.mu.Lock()
		c.scratch = v.AppendText(c.scratch[:0])
		k := key{rs.ServiceName, bucketOf(m)}
		b := c.buckets[k]
		if b == nil {
			b = &bucket{}
			c.buckets[k] = b
		}
		b.sk.Add(hash(c.scratch))
		b.dirty = true
		c.mu.Unlock()
	}
}

// Unstored returns the sketches changed since they were last stored.
func (c *Counter) Unstored() []Row {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	var rows []Row
	for k, b := range c.buckets {
		if b.dirty {
			rows = append(rows, Row{Service: k.service, Start: k.start.Time(), Sketch: b.sk})
			b.dirty = false
		}
	}
	return rows
}

// Unmark marks rows (from Unstored) as not stored again, after a failed
// write.
func (c *Counter) Unmark(rows []Row) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, r := range rows {
		if b := c.buckets[key{r.Service, units.MinuteOf(r.Start)}]; b != nil {
			b.dirty = true
		}
	}
}

// Prune drops the sketches older than the retention.
func (c *Counter) Prune(now time.Time) {
	if c == nil {
		return
	}
	cut := bucketOf(units.MinuteOf(now.Add(-c.retention)))
	c.mu.Lock()
	defer c.mu.Unlock()
	for k := range c.buckets {
		if k.start < cut {
			delete(c.buckets, k)
		}
	}
}

// Estimate returns the distinct users of service's failed requests from
// from through to (in ten-minute steps: the sketches overlapping them),
// merging this instance's sketches in memory with every instance's in st
// (nil: memory only). false when no user attribute is counted.
func (c *Counter) Estimate(ctx context.Context, st Store, service string, from, to time.Time) (uint64, bool, error) {
	if c == nil {
		return 0, false, nil
	}
	var all Sketch
	if st != nil {
		rows, err := st.UserSketches(ctx, service, from, to)
		if err != nil {
			return 0, true, err
		}
		for i := range rows {
			all.Merge(&rows[i].Sketch)
		}
	}
	lo, hi := bucketOf(units.MinuteOf(from)), bucketOf(units.MinuteOf(to))
	c.mu.Lock()
	for k, b := range c.buckets {
		if k.service == service && k.start >= lo && k.start <= hi {
			all.Merge(&b.sk)
		}
	}
	c.mu.Unlock()
	return all.Estimate(), true, nil
}
