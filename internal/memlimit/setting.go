// Package memlimit sets tailgate's soft memory limit (server.memory_limit)
// and tells ingest when the heap is too close to it to take more requests.
package memlimit

import (
	"fmt"
	"strings"

	"github.com/goccy/go-yaml/ast"

	"github.com/tailgate-sre/tailgate/internal/units"
)

// minLimit is the smallest explicit limit: below it the garbage collector
// would run all the time and admission would refuse almost everything.
const minLimit = 64 << 20

// Setting is the value of server.memory_limit: "auto" (the default: 90% of
// the cgroup's memory limit when there is one, none otherwise), "none", or
// a size such as 1GiB.
type Setting struct {
	auto  bool
	bytes units.Bytes // 0 with auto false: none
}

// Auto is the default setting: derive the limit from the cgroup.
func Auto() Setting { return Setting{auto: true} }

// None sets no limit.
func None() Setting { return Setting{} }

// Bytes sets a fixed limit of n bytes.
func Bytes(n int64) Setting { return Setting{bytes: units.Bytes(n)} }

// String returns the setting as it is written in the config file.
func (s Setting) String() string {
	switch {
	case s.auto:
		return "auto"
	case s.bytes == 0:
		return "none"
	}
	return s.bytes.String()
}

// MarshalText implements encoding.TextMarshaler.
func (s Setting) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (s *Setting) UnmarshalText(b []byte) error {
	switch t := strings.TrimSpace(string(b)); t {
	case "auto":
		*s = Auto()
	case "none":
		*s = None()
	default:
		var n units.Bytes
		if err := n.UnmarshalText(b); err != nil {
			return fmt.Errorf("memory limit must be auto, none or a size such as 2GiB: %w", err)
		}
		*s = Bytes(int64(n))
	}
	return nil
}

// UnmarshalYAML reads the setting from a YAML scalar; an error names the
// key and the line, in the "[line:column] key: " form of the YAML decoder.
func (s *Setting) UnmarshalYAML(node ast.Node) error {
	return units.UnmarshalScalar(node, s.UnmarshalText)
}

// Validate reports a fixed limit too small to run with.
func (s Setting) Validate() error {
	if !s.auto && s.bytes != 0 && s.bytes < minLimit {
		return fmt.Errorf("must be auto, none or at least %s, got %s", units.Bytes(minLimit), s.bytes)
	}
	return nil
}
