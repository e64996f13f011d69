// Package units parses the human units of tailgate's configuration: durations
// that may use days ("30d") and byte sizes with IEC or SI suffixes ("64MiB").
package units

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Duration is a time.Duration that reads and writes as text such as "5s",
// "1h30m" or "30d". A bare number is rejected so that "30" never silently
// means 30 nanoseconds.
type Duration time.Duration

// ParseDuration parses a Go duration extended with a "d" (24h) and "w" (7d)
// unit, e.g. "28d", "1w", "1d12h", "250ms".
func ParseDuration(s string) (time.Duration, error) {
	orig := s
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, fmt.Errorf("empty duration")
	}
	var total time.Duration
	// Peel leading day and week components; hand the rest to time.ParseDuration.
	for {
		i := 0
		for i < len(s) && (s[i] >= '0' && s[i] <= '9') {
			i++
		}
		if i == 0 || i >= len(s) || (s[i] != 'd' && s[i] != 'w') {
			break
		}
		n, err := strconv.ParseInt(s[:i], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("invalid duration %q", orig)
		}
		unit := 24 * time.Hour
		if s[i] == 'w' {
			unit *= 7
		}
		if n > math.MaxInt64/int64(unit) {
			return 0, fmt.Errorf("duration %q is too large", orig)
		}
		total += time.Duration(n) * unit
		s = s[i+1:]
		if s == "" {
			return total, nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("invalid duration %q (use units like 500ms, 5s, 10m, 1h, 30d)", orig)
	}
	return total + d, nil
}

// FormatDuration writes d in the shortest form ParseDuration reads back,
// using days when d is a whole number of days.
func FormatDuration(d time.Duration) string {
	const day = 24 * time.Hour
	if d >= day && d%day == 0 {
		return strconv.FormatInt(int64(d/day), 10) + "d"
	}
	s := d.String()
	// time.Duration.String prints "1h0m0s"; trim the zero tails for readability.
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

// Std returns d as a time.Duration.
func (d Duration) Std() time.Duration { return time.Duration(d) }

// String implements fmt.Stringer.
func (d Duration) String() string { return FormatDuration(time.Duration(d)) }

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON reads a duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration must be a string such as \"5s\": %w", err)
	}
	return d.UnmarshalText([]byte(s))
}

// Bytes is a size in bytes that reads as text such as "16MiB", "512KB" or
// "1048576".
type Bytes int64

var byteUnits = []struct {
	suffix string
	mult   int64
}{
	// Longest suffixes first so "MiB" is not read as "B".
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
	{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12},
	{"B", 1},
}

// ParseBytes parses a byte size: an integer with an optional IEC (KiB, MiB,
// GiB, TiB) or SI (KB, MB, GB, TB) suffix.
func ParseBytes(s string) (int64, error) {
	orig := s
	s = strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range byteUnits {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("invalid size %q (use e.g. 512KiB, 16MiB, 1GiB)", orig)
	}
	if n > math.MaxInt64/mult {
		return 0, fmt.Errorf("size %q is too large", orig)
	}
	return n * mult, nil
}

// FormatBytes writes n with the largest IEC suffix that divides it exactly.
func FormatBytes(n int64) string {
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n >= u.mult && n%u.mult == 0 {
			return strconv.FormatInt(n/u.mult, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10) + "B"
}

// String implements fmt.Stringer.
func (b Bytes) String() string { return FormatBytes(int64(b)) }

// MarshalText implements encoding.TextMarshaler.
func (b Bytes) MarshalText() ([]byte, error) { return []byte(b.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler. A plain YAML integer
// arrives here as its text, so both 1048576 and "1MiB" are accepted.
func (b *Bytes) UnmarshalText(t []byte) error {
	v, err := ParseBytes(string(t))
	if err != nil {
		return err
	}
	*b = Bytes(v)
	return nil
}
