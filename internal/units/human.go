package units

import (
	"fmt"
	"math"
	"strings"
	"time"
)

// HumanDuration rounds a duration for people, to a precision that shrinks
// with its size: days and hours from a day on ("3d4h"), hours and minutes
// from an hour on ("2h15m"), minutes and seconds from a minute on ("45m30s"),
// milliseconds below ("1.5s", "250ms"). The size class is decided after
// rounding, so 59.9996s is "1m", not "60s", and 23h59m40s is "1d".
func HumanDuration(d time.Duration) string {
	const day = 24 * time.Hour
	if d < 0 {
		return "-" + HumanDuration(-d)
	}
	if r := d.Round(time.Hour); r >= day {
		days, h := r/day, (r%day)/time.Hour
		if h == 0 {
			return fmt.Sprintf("%dd", days)
		}
		return fmt.Sprintf("%dd%dh", days, h)
	}
	if r := d.Round(time.Minute); r >= time.Hour {
		return FormatDuration(r)
	}
	if r := d.Round(time.Second); r >= time.Minute {
		return FormatDuration(r)
	}
	return d.Round(time.Millisecond).String()
}

// Bar draws frac (0 to 1, clamped; NaN counts as 0) as width cells
// between brackets, fill for the part done and empty for the rest, rounded
// to the nearest cell: Bar(0.25, 8, "#", ".") is "[##......]". The CLI
// draws ASCII so that CI logs show it; the demo's screen draws blocks.
func Bar(frac float64, width int, fill, empty string) string {
	if math.IsNaN(frac) {
		frac = 0
	}
	n := int(math.Round(max(0, min(1, frac)) * float64(width)))
	return "[" + strings.Repeat(fill, n) + strings.Repeat(empty, width-n) + "]"
}
