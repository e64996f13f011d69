package canary

import (
	"math/bits"
	"slices"
	"time"

	"github.com/tailgate-sre/tailgate/internal/units"
)

// latencyBuckets is the number of buckets of a latency histogram: four per
// power of two of microseconds (about 19% wide), from 4 µs to 2^24 µs
// (16.8 s); longer requests count in the last bucket.
const latencyBuckets = 96

// latencyHist counts one version's requests of one minute by duration.
type latencyHist struct {
	m units.Minute
	n [latencyBuckets]uint32
}

// latencyBucket returns the bucket of a duration: for d of 2^e to 2^(e+1)
// µs, 4(e−1) plus its next two bits, so that bucket b starts at
// bucketLow(b).
func latencyBucket(d time.Duration) int {
	us := uint64(d / time.Microsecond)
	if us < 4 {
		return 0
	}
	e := bits.Len64(us) - 1 // us is in [2^e, 2^(e+1))
	b := 4*(e-1) + int(us>>(e-2)&3)
	return min(b, latencyBuckets-1)
}

// bucketLow returns the shortest duration of bucket b (buckets 1 to 3
// are empty: bucket 0 holds everything under 4 µs).
func bucketLow(b int) time.Duration {
	if b == 0 {
		return 0
	}
	if b < 4 {
		return 4 * time.Microsecond
	}
	e := b/4 + 1
	return time.Duration((4+uint64(b%4))<<(e-2)) * time.Microsecond
}

// bucketMid returns a duration that stands for bucket b: about the
// geometric middle of its bounds, within 12% of any duration in it.
func bucketMid(b int) time.Duration {
	lo, hi := bucketLow(b), bucketLow(b+1)
	if b == 0 {
		return hi / 2
	}
	// The geometric mean of lo and hi, by the ratio of two close numbers.
	return lo + (hi-lo)*45/100
}

// hist returns the version's histogram of minute m, kept in order.
func (vc *versionCounts) hist(m units.Minute) *latencyHist {
	n := len(vc.latency)
	if n > 0 && vc.latency[n-1].m == m {
		return vc.latency[n-1]
	}
	i, found := slices.BinarySearchFunc(vc.latency, m, func(a *latencyHist, m units.Minute) int { return int(a.m - m) })
	if !found {
		vc.latency = slices.Insert(vc.latency, i, &latencyHist{m: m})
	}
	return vc.latency[i]
}

// Quantiles are latency quantiles of one side's requests.
type Quantiles struct {
	// Requests is how many requests they are from.
	Requests uint64  `json:"requests"`
	P50      float64 `json:"p50_seconds"`
	P90      float64 `json:"p90_seconds"`
	P99      float64 `json:"p99_seconds"`
}

// LatencyQuantiles explain a verdict's latency side: both versions'
// quantiles over the same minutes, from this instance's requests only
// (each instance of a fleet sees a share of both versions' requests, so
// the quantiles are those of a sample); the verdict itself is from the
// fleet's counts.
type LatencyQuantiles struct {
	Canary   Quantiles `json:"canary"`
	Baseline Quantiles `json:"baseline"`
	Scope    string    `json:"scope"`
}

// Quantiles returns the latency quantiles of the service's versions that
// match, over the minutes from from's through to's, from this instance's
// own requests; ok is false without any.
func (r *Recorder) Quantiles(service string, match func(version string) bool, from, to time.Time) (Quantiles, bool) {
	var sum [latencyBuckets]uint64
	var total uint64
	lo, hi := units.MinuteOf(from), units.MinuteOf(to)
	r.mu.Lock()
	if svc := r.services[service]; svc != nil {
		for v, vc := range svc.versions {
			if !match(v) {
				continue
			}
			i, _ := slices.BinarySearchFunc(vc.latency, lo, func(a *latencyHist, m units.Minute) int { return int(a.m - m) })
			for ; i < len(vc.latency) && vc.latency[i].m <= hi; i++ {
				for b, n := range vc.latency[i].n {
					sum[b] += uint64(n)
					total += uint64(n)
				}
			}
		}
	}
	r.mu.Unlock()
	if total == 0 {
		return Quantiles{}, false
	}
	q := func(p float64) float64 {
		rank := uint64(p*float64(total-1)) + 1 // the rank-th shortest request
		var seen uint64
		for b, n := range sum {
			if seen += n; seen >= rank {
				return bucketMid(b).Seconds()
			}
		}
		return bucketMid(latencyBuckets - 1).Seconds()
	}
	return Quantiles{Requests: total, P50: q(0.5), P90: q(0.9), P99: q(0.99)}, true
}
