package gate

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Ratio is a fraction that reads from config as a percentage ("25%") or as a
// fraction no greater than 1 (0.25). A bare number above 1 is rejected, so
// that "25" never silently means 2500%.
type Ratio float64

// ParseRatio reads "25%", "0.25" or "-10%".
func ParseRatio(s string) (Ratio, error) {
	t := strings.TrimSpace(s)
	if p, ok := strings.CutSuffix(t, "%"); ok {
		v, err := strconv.ParseFloat(strings.TrimSpace(p), 64)
		if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
			return 0, fmt.Errorf("invalid percentage %q", s)
		}
		return Ratio(v / 100), nil
	}
	v, err := strconv.ParseFloat(t, 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, fmt.Errorf("invalid ratio %q (write 25%% or 0.25)", s)
	}
	if v > 1 {
		return 0, fmt.Errorf("ratio %q is above 1; write a percentage with %% (e.g. %s%%) or a fraction", s, t)
	}
	return Ratio(v), nil
}

// String writes the ratio as a percentage.
func (r Ratio) String() string {
	return strconv.FormatFloat(float64(r)*100, 'f', -1, 64) + "%"
}

// MarshalText implements encoding.TextMarshaler.
func (r Ratio) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (r *Ratio) UnmarshalText(b []byte) error {
	v, err := ParseRatio(string(b))
	if err != nil {
		return err
	}
	*r = v
	return nil
}

// MarshalJSON writes the ratio as a fraction.
func (r Ratio) MarshalJSON() ([]byte, error) { return json.Marshal(float64(r)) }

// UnmarshalJSON reads a fraction or a percentage string.
func (r *Ratio) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		return r.UnmarshalText([]byte(s))
	}
	return r.UnmarshalText(b)
}
