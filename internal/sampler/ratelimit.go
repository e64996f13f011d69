package sampler

import (
	"sync"
	"time"
)

// overflowKey is the key shared by traces of keys beyond max_keys; it
// cannot collide with a built key's text because of the leading 0xff byte,
// which is not valid UTF-8.
const overflowKey = "\xffoverflow"

// rateLimiter keeps at most perSecond traces per wall-clock second per key.
// It is shared by all shards and locked once per decided trace.
type rateLimiter struct {
	perSecond float64
	keys      []string
	maxKeys   int

	mu        sync.Mutex
	windows   map[string]*rateWindow
	lastEvict int64
}

// rateWindow counts a key's traces in the current second and remembers the
// previous second's ratio.
type rateWindow struct {
	second     int64
	seen, kept float64
	prevSecond int64
	prevRate   float64 // seen/kept of the previous second, 0 when unknown
}

func newRateLimiter(c *RateLimitConfig) *rateLimiter {
	mk := c.MaxKeys
	if mk == 0 {
		mk = defaultRateLimitMaxKeys
	}
	return &rateLimiter{perSecond: c.PerSecond, keys: c.Key, maxKeys: mk, windows: make(map[string]*rateWindow)}
}

// admit counts a trace of key at now and reports whether it is kept, with
// the sampling rate to record: the key's traces seen in the current second
// divided by those kept (at least 1). Because the current second's count is
// still growing when a trace is kept, the previous second's ratio is used
// when it is larger, so a steadily hot key is re-weighted by what it really
// sends rather than by 1.
func (l *rateLimiter) admit(key []byte, now time.Time) (bool, float64) {
	sec := now.Unix()
	l.mu.Lock()
	defer l.mu.Unlock()
	w := l.windows[string(key)]
	if w == nil {
		if len(l.windows) >= l.maxKeys && l.lastEvict != sec {
			l.lastEvict = sec
			l.evict(sec)
		}
		k := overflowKey
		if len(l.windows) < l.maxKeys {
			k = string(key)
		}
		if w = l.windows[k]; w == nil {
			w = &rateWindow{second: sec}
			l.windows[k] = w
		}
	}
	if w.second != sec {
		if w.kept > 0 && w.second == sec-1 {
			w.prevRate, w.prevSecond = w.seen/w.kept, w.second
		}
		w.second, w.seen, w.kept = sec, 0, 0
	}
	w.seen++
	kept := w.kept+1 <= l.perSecond
	if kept {
		w.kept++
	}
	rate := 1.0
	if w.kept > 0 {
		rate = max(rate, w.seen/w.kept)
	}
	if w.prevSecond == sec-1 {
		rate = max(rate, w.prevRate)
	}
	return kept, rate
}

// evict forgets keys not seen in this or the previous second.
func (l *rateLimiter) evict(sec int64) {
	for k, w := range l.windows {
		if w.second < sec-1 {
			delete(l.windows, k)
		}
	}
}
