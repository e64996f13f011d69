package units

import "time"

// Minute is a Unix minute: whole minutes since 1970-01-01T00:00:00Z. SLI
// and golden-signal counts are kept per Minute of a span's end time (event
// time), so replaying a log or a Kafka partition lands every count in the
// same Minute again. It is its own type so that a Unix second or a minute
// index of a window cannot be passed where a Minute is meant.
type Minute int64

// MinuteOf returns the Minute holding t (floor, also before 1970).
func MinuteOf(t time.Time) Minute {
	s := t.Unix()
	if s < 0 {
		return Minute((s - 59) / 60)
	}
	return Minute(s / 60)
}

// MinuteOfUnixNano returns the Minute holding the Unix time ns, as OTLP
// timestamps give it (nanoseconds since the epoch, unsigned).
func MinuteOfUnixNano(ns uint64) Minute { return Minute(ns / uint64(time.Minute)) }

// Time returns the start of m in UTC.
func (m Minute) Time() time.Time { return time.Unix(int64(m)*60, 0).UTC() }

// Unix returns the start of m in seconds since the epoch.
func (m Minute) Unix() int64 { return int64(m) * 60 }
