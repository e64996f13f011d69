package export

import "time"

// flights remembers the batches senders have taken and not finished, with
// the time the oldest request of each was handed to Export: together with
// the oldest waiting request it tells how far back everything is done
// (Exporter.Oldest). Its owner's lock guards it.
type flights map[*batch]time.Time

func (f *flights) add(b *batch, at time.Time) {
	if *f == nil {
		*f = flights{}
	}
	(*f)[b] = at
}

func (f flights) done(b *batch) { delete(f, b) }

// oldest returns the earliest hand-over time among waiting (the oldest
// waiting request's, if ok) and the batches in flight.
func (f flights) oldest(waiting time.Time, ok bool) (time.Time, bool) {
	for _, at := range f {
		if !ok || at.Before(waiting) {
			waiting, ok = at, true
		}
	}
	return waiting, ok
}

// Oldest returns when the oldest request the exporter still holds
// (waiting, being sent or retried) was handed to Export; false when it
// holds none. Every request handed over before that time is finished:
// sent, refused for good, or (memory queue) dropped at shutdown. A
// request restored from the persistent queue after a restart counts as
// handed over at the zero time. The Kafka intake commits offsets behind it.
func (e *Exporter) Oldest() (time.Time, bool) { return e.q.oldest() }
