package slo

import "sort"

// point is one key K (a units.Minute, or a time slice index) of a prefix series
// with the cumulative good and total counts up to and including it.
type point[K ~int64, T uint64 | float64] struct {
	k           K
	good, total T
}

// prefix is a sparse, cumulative series: the counts of any key range are the
// difference of two lookups. Keys only grow, so appending is O(1); lookups
// are O(1) while the series is dense and O(log n) otherwise.
type prefix[K ~int64, T uint64 | float64] struct {
	pts []point[K, T]
	// baseGood and baseTotal are the cumulative counts before pts[0], kept
	// when old points are pruned.
	baseGood, baseTotal T
}

// cumBefore returns the cumulative counts of all keys < x.
func (p *prefix[K, T]) cumBefore(x K) (good, total T) {
	n := len(p.pts)
	if n == 0 || p.pts[0].k >= x {
		return p.baseGood, p.baseTotal
	}
	if last := &p.pts[n-1]; last.k < x {
		return last.good, last.total
	}
	// Dense fast path: key x-1 sits at its offset from the first key.
	if i := x - 1 - p.pts[0].k; i >= 0 && i < K(n) && p.pts[i].k == x-1 {
		return p.pts[i].good, p.pts[i].total
	}
	i := sort.Search(n, func(i int) bool { return p.pts[i].k >= x }) - 1
	return p.pts[i].good, p.pts[i].total
}

// sum returns the counts of keys in [a, b).
func (p *prefix[K, T]) sum(a, b K) (good, total T) {
	if b <= a {
		return 0, 0
	}
	g1, t1 := p.cumBefore(b)
	g0, t0 := p.cumBefore(a)
	return g1 - g0, t1 - t0
}

// add adds counts at key k. Keys normally arrive in increasing order; an
// older key (a late write) is inserted and the cumulative counts after it
// are raised, which costs O(n).
func (p *prefix[K, T]) add(k K, good, total T) {
	if good == 0 && total == 0 {
		return
	}
	n := len(p.pts)
	if n == 0 || p.pts[n-1].k < k {
		g, t := p.baseGood, p.baseTotal
		if n > 0 {
			g, t = p.pts[n-1].good, p.pts[n-1].total
		}
		p.pts = append(p.pts, point[K, T]{k: k, good: g + good, total: t + total})
		return
	}
	i := sort.Search(n, func(i int) bool { return p.pts[i].k >= k })
	if p.pts[i].k != k {
		g, t := p.baseGood, p.baseTotal
		if i > 0 {
			g, t = p.pts[i-1].good, p.pts[i-1].total
		}
		p.pts = append(p.pts, point[K, T]{})
		copy(p.pts[i+1:], p.pts[i:])
		p.pts[i] = point[K, T]{k: k, good: g, total: t}
	}
	for j := i; j < len(p.pts); j++ {
		p.pts[j].good += good
		p.pts[j].total += total
	}
}

// at returns the counts of key k alone.
func (p *prefix[K, T]) at(k K) (good, total T) { return p.sum(k, k+1) }

// last returns the greatest key, or false when empty.
func (p *prefix[K, T]) last() (K, bool) {
	if len(p.pts) == 0 {
		return 0, false
	}
	return p.pts[len(p.pts)-1].k, true
}

// first returns the smallest key, or false when empty.
func (p *prefix[K, T]) first() (K, bool) {
	if len(p.pts) == 0 {
		return 0, false
	}
	return p.pts[0].k, true
}

// prune drops keys < before. The backing array is reallocated when most of
// it would be dead, so memory follows the retained span.
func (p *prefix[K, T]) prune(before K) {
	i := sort.Search(len(p.pts), func(i int) bool { return p.pts[i].k >= before })
	if i == 0 {
		return
	}
	p.baseGood, p.baseTotal = p.pts[i-1].good, p.pts[i-1].total
	rest := p.pts[i:]
	if cap(rest) < cap(p.pts)/2 || len(rest) < cap(p.pts)/4 {
		p.pts = append(make([]point[K, T], 0, len(rest)+len(rest)/4+16), rest...)
	} else {
		p.pts = rest
	}
}

// reset empties the series.
func (p *prefix[K, T]) reset() {
	p.pts = p.pts[:0]
	p.baseGood, p.baseTotal = 0, 0
}
