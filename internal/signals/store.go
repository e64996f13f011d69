package signals

import (
	"context"
	"time"
)

// Bucket is the golden signals of one operation over one time bucket, as
// stored. Buckets are additive: several rows for the same operation and
// start (a late span, another instance) are merged when read.
type Bucket struct {
	Service   string
	Operation string
	// Start is the start of the bucket (a whole minute, or a whole hour for
	// rolled-up buckets).
	Start time.Time
	// Step is the bucket's length: time.Minute, or time.Hour once rolled up.
	Step     time.Duration
	Requests uint64
	Errors   uint64
	// Latency is the encoded Sketch of the request durations
	// (Sketch.MarshalBinary); it also holds their sum, from which in-flight
	// requests follow.
	Latency []byte
}

// BucketFilter selects stored buckets.
type BucketFilter struct {
	// Service, when not empty, selects one service.
	Service string
	// From and To select buckets with From <= Start < To.
	From, To time.Time
	// Step, when not zero, selects buckets of that length.
	Step time.Duration
}

// OriginRow counts failed requests of a service by where their errors
// started, over one minute. Rows are additive like buckets.
type OriginRow struct {
	// Start is the minute the failed requests ended in (the minute they
	// were analysed in when that is no longer open; see units.EventClock).
	Start time.Time
	// Service is the service whose requests failed.
	Service string
	// OriginService and OriginOperation name the span where the error
	// started.
	OriginService   string
	OriginOperation string
	// Reason is why the origin span failed: "timeout", "5xx" or "error".
	Reason string
	// Dependency is set when the origin is a call whose callee sent no spans
	// (an uninstrumented dependency of OriginService).
	Dependency bool
	// Requests is the number of failed requests with this origin; a request
	// whose error started in n places counts 1/n for each.
	Requests float64
	// Requests5xx is the part of Requests that failed with an HTTP 5xx.
	Requests5xx float64
}

// Store keeps buckets and error origins; *sqlite.DB implements it.
type Store interface {
	// AppendSignalBuckets adds buckets.
	AppendSignalBuckets(ctx context.Context, buckets []Bucket) error
	// SignalBuckets returns the buckets that match f.
	SignalBuckets(ctx context.Context, f BucketFilter) ([]Bucket, error)
	// OldestSignalBucket returns the start of the oldest bucket of the
	// given step; ok is false when there is none.
	OldestSignalBucket(ctx context.Context, step time.Duration) (start time.Time, ok bool, err error)
	// ReplaceSignalBuckets deletes the minute buckets that start in
	// [from, to) and adds buckets, in one transaction (a rollup).
	ReplaceSignalBuckets(ctx context.Context, from, to time.Time, buckets []Bucket) error
	// AppendErrorOrigins adds origin rows.
	AppendErrorOrigins(ctx context.Context, rows []OriginRow) error
	// ErrorOrigins returns the origin rows in [from, to) whose Service or
	// OriginService is service.
	ErrorOrigins(ctx context.Context, service string, from, to time.Time) ([]OriginRow, error)
	// DeleteSignalsBefore deletes buckets and origin rows that start before t.
	DeleteSignalsBefore(ctx context.Context, t time.Time) error
}
