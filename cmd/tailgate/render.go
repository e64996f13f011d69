package main

import (
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/tailgate-sre/tailgate/internal/units"
)

// This file is the one place where the CLI turns budgets, rates, counts and
// durations into text, so that gate check, slo status and report risk show
// the same number the same way.

// budgetBar draws a remaining error-budget fraction as width cells between
// brackets, "#" for what is left: "[#####...............]". An overspent
// budget shows an empty bar; nil (no traffic yet) shows "no data". ASCII,
// so that CI logs render it like a terminal does.
func budgetBar(frac *float64, width int) string {
	if frac == nil {
		const text = "no data"
		if width < len(text) {
			return "[" + strings.Repeat(" ", width) + "]"
		}
		left := (width - len(text)) / 2
		return "[" + strings.Repeat(" ", left) + text + strings.Repeat(" ", width-len(text)-left) + "]"
	}
	return units.Bar(*frac, width, "#", ".")
}

// secondsDuration converts an API's float seconds to a duration.
func secondsDuration(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

// latency formats a latency in seconds to a tenth of a millisecond:
// "12.5ms", "1.5s".
func latency(s float64) string { return secondsDuration(s).Round(100 * time.Microsecond).String() }

// percent writes a fraction as a percentage with decimals places, "-" for
// nil: 0.75 → "75.0%".
func percent(p *float64, decimals int) string {
	if p == nil {
		return "-"
	}
	return strconv.FormatFloat(*p*100, 'f', decimals, 64) + "%"
}

// pct is percent with one decimal for a value that is always there.
func pct(f float64) string { return percent(&f, 1) }

// burnRate writes a burn rate with decimals places, "-" for nil: "0.25x".
func burnRate(p *float64, decimals int) string {
	if p == nil {
		return "-"
	}
	return strconv.FormatFloat(*p, 'f', decimals, 64) + "x"
}

// number writes whole numbers without decimals and others with four
// significant digits.
func number(f float64) string {
	if f == math.Trunc(f) && math.Abs(f) < 1e15 {
		return strconv.FormatFloat(f, 'f', 0, 64)
	}
	return strconv.FormatFloat(f, 'g', 4, 64)
}

// trimFloat writes f in the fewest digits that read back as f: "99.9".
func trimFloat(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }

// count writes a number rounded to a whole with thousands separators.
func count(v float64) string {
	neg := v < 0
	s := strconv.FormatFloat(math.Round(math.Abs(v)), 'f', 0, 64)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg && s != "0" {
		return "-" + b.String()
	}
	return b.String()
}
