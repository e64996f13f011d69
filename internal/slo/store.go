package slo

import (
	"context"
	"time"
)

// Bucket is one minute of an SLO's (or a group's) counts, as stored.
type Bucket struct {
	SLO   string
	Group string // "" for the SLO as a whole
	// Minute is the start of the minute (UTC).
	Minute time.Time
	Good   uint64
	Total  uint64
}

// BucketStore keeps minute buckets. Writes are additive: adding to a
// minute that exists raises its counts, so several instances (or a restart
// inside a minute) sum.
type BucketStore interface {
	AddSLIBuckets(ctx context.Context, buckets []Bucket) error
	// LoadSLIBuckets returns the buckets from since on, in minute order.
	LoadSLIBuckets(ctx context.Context, since time.Time) ([]Bucket, error)
	// DeleteSLIBucketsBefore drops buckets older than before.
	DeleteSLIBucketsBefore(ctx context.Context, before time.Time) error
	// TrackSLO records that tailgate counts the SLO from now on, unless it
	// already did, and returns when the counting began.
	TrackSLO(ctx context.Context, slo string, now time.Time) (time.Time, error)
}

// CorrectionStore keeps corrections added through the API.
type CorrectionStore interface {
	// AddCorrection stores c and returns it with its ID.
	AddCorrection(ctx context.Context, c Correction) (Correction, error)
	// ListCorrections returns every stored correction, deleted ones
	// included (with DeletedBy and DeletedAt).
	ListCorrections(ctx context.Context) ([]Correction, error)
	// DeleteCorrection marks a correction deleted by the principal by at
	// at, keeping it; false when there was none, or it was already
	// deleted.
	DeleteCorrection(ctx context.Context, slo string, id int64, by string, at time.Time) (bool, error)
}

// AlertStore keeps alert transitions.
type AlertStore interface {
	AddAlertTransitions(ctx context.Context, ts []Transition) error
	// LatestAlertTransitions returns the newest transition of each alert
	// (SLO, group, alert name), to restore alert states after a restart.
	LatestAlertTransitions(ctx context.Context) ([]Transition, error)
	// ListAlertTransitions returns transitions newest first, of one SLO
	// when slo is not empty, at or after since, at most limit.
	ListAlertTransitions(ctx context.Context, slo string, since time.Time, limit int) ([]Transition, error)
}

// Store is what the engine persists to; *sqlite.DB implements it.
type Store interface {
	BucketStore
	CorrectionStore
	AlertStore
}

// Notifier sends alert notifications. Notify must not block: it queues the
// notification (dropping it when its bounded queue is full).
type Notifier interface {
	Notify(n Notification)
}

// Notification is an alert that started firing or resolved, with the SLO
// numbers a receiver shows.
type Notification struct {
	Alert Alert `json:"alert"`
	// Status is firing or resolved.
	Status           AlertState          `json:"status"`
	Objective        float64             `json:"objective"`
	Window           string              `json:"window"`
	BurnRates        map[string]*float64 `json:"burn_rates"`
	BudgetRemaining  *float64            `json:"budget_remaining"`
	TimeToExhaustion *float64            `json:"time_to_exhaustion_seconds"`
	Description      string              `json:"description,omitempty"`
	Labels           map[string]string   `json:"labels,omitempty"`
	// Links point at the API: the SLO's status and the alert list.
	Links map[string]string `json:"links,omitempty"`
	At    time.Time         `json:"at"`
}

// FleetBucketStore is a BucketStore shared by a fleet of instances, each
// of which writes its own rows: LoadSLIBuckets returns this instance's
// buckets and PeerSLIBuckets the sum of the others', so that an engine
// keeps the counts it flushes (its own) apart from those it only reads.
type FleetBucketStore interface {
	// PeerSLIBuckets returns, for each minute from since on whose counts
	// another instance changed at or after changed (the zero time: every
	// minute), the sum of every other instance's counts of that minute;
	// and the store's clock at the read, for the next call's changed.
	PeerSLIBuckets(ctx context.Context, since, changed time.Time) ([]Bucket, time.Time, error)
}
