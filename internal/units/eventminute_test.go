package units

import (
	"testing"
	"time"
)

func TestEventClock(t *testing.T) {
	// now is 10:10:30 on 2025-06-01; minute numbers are counted by hand from
	// the Unix seconds of the whole minutes (seconds / 60).
	now := time.Date(2025, 6, 1, 10, 10, 30, 0, time.UTC)
	at := func(h, m, s int) uint64 {
		return uint64(time.Date(2025, 6, 1, h, m, s, 0, time.UTC).UnixNano())
	}
	minute := func(h, m int) Minute {
		return Minute(time.Date(2025, 6, 1, h, m, 0, 0, time.UTC).Unix() / 60)
	}
	c := NewEventClock(now, 5*time.Minute)
	tests := []struct {
		name    string
		end     uint64
		want    Minute
		clamped bool
	}{
		{"in now's minute", at(10, 10, 5), minute(10, 10), false},
		{"end of now's minute", at(10, 10, 59), minute(10, 10), false},
		{"previous minute", at(10, 9, 59), minute(10, 9), false},
		{"two minutes back", at(10, 8, 0), minute(10, 8), false},
		{"exactly lateness back", at(10, 5, 30), minute(10, 5), false},
		{"a second beyond lateness", at(10, 5, 29), minute(10, 10), true},
		{"next minute (clock ahead)", at(10, 11, 0), minute(10, 10), true},
		{"an hour ahead", at(11, 10, 30), minute(10, 10), true},
		{"no end time", 0, minute(10, 10), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, clamped := c.Minute(tt.end)
			if got != tt.want || clamped != tt.clamped {
				t.Errorf("Minute = %v (%s), %v; want %v (%s), %v",
					got, got.Time().Format("15:04"), clamped, tt.want, tt.want.Time().Format("15:04"), tt.clamped)
			}
		})
	}
	if got, want := c.Now(), minute(10, 10); got != want {
		t.Errorf("Now = %d, want %d", got, want)
	}
}
