package sampler

import (
	"encoding/binary"
	"math"
	"strconv"
	"strings"

	"github.com/tailgate-sre/tailgate/internal/otlp"
)

// maxAdjusted is 2^56, the size of the randomness space of the
// OpenTelemetry probability sampling specification.
const maxAdjusted = uint64(1) << 56

// randomness returns R, the low 56 bits of the trace ID (bytes 9..15, big
// endian), which W3C Trace Context level 2 makes random.
func randomness(id otlp.TraceID) uint64 {
	return binary.BigEndian.Uint64(id[8:16]) & (maxAdjusted - 1)
}

// thresholdFor returns T = round((1-p) 2^56) for a probability p in [0,1].
// It is computed as 2^56 - round(p 2^56), which is the same number with
// fewer rounding errors for small p (p 2^56 is exact in float64 while 1-p is
// not); ties, which float64 cannot produce for p of interest, round up.
func thresholdFor(p float64) uint64 {
	switch {
	case p <= 0:
		return maxAdjusted
	case p >= 1:
		return 0
	}
	kept := uint64(math.Round(p * float64(maxAdjusted)))
	return maxAdjusted - min(kept, maxAdjusted)
}

// thresholdHex is the th: value of T: 14 hex digits with trailing zeros
// removed, "0" for T = 0 (keep everything).
func thresholdHex(t uint64) string {
	if t == 0 {
		return "0"
	}
	s := strconv.FormatUint(t, 16)
	s = strings.Repeat("0", 14-len(s)) + s
	return strings.TrimRight(s, "0")
}

// sampledByThreshold reports whether the trace is kept under threshold t.
func sampledByThreshold(id otlp.TraceID, t uint64) bool { return randomness(id) >= t }
