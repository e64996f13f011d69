package memlimit

import (
	"fmt"
	"io/fs"
	"log/slog"
	"math"
)

// autoPercent is the share of the cgroup limit that auto sets as the soft
// limit, leaving room for memory the cgroup charges but the Go runtime's
// limit does not cover: the binary's text, kernel socket buffers, the page
// cache of the store's files.
const autoPercent = 90

// System is what Apply reads and changes; production passes the process's
// own (os.LookupEnv, os.DirFS("/"), debug.SetMemoryLimit).
type System struct {
	// LookupEnv reads an environment variable (GOMEMLIMIT).
	LookupEnv func(key string) (string, bool)
	// FS is the root file system, for the cgroup files.
	FS fs.FS
	// SetMemoryLimit is runtime/debug.SetMemoryLimit.
	SetMemoryLimit func(limit int64) int64
}

// Apply resolves s and sets it as the Go runtime's soft memory limit,
// unless GOMEMLIMIT is set, which then wins (the runtime has already
// applied it). It returns the limit in force, 0 for none, which admission
// control measures the heap against, and logs where it came from.
func Apply(s Setting, sys System, log *slog.Logger) (int64, error) {
	if v, ok := sys.LookupEnv("GOMEMLIMIT"); ok && v != "" {
		limit := sys.SetMemoryLimit(-1) // -1 reads without changing it
		if limit == math.MaxInt64 {
			limit = 0
		}
		log.Info("soft memory limit from GOMEMLIMIT; server.memory_limit ignored", "GOMEMLIMIT", v, "limit_bytes", limit)
		return limit, nil
	}
	limit, source, err := s.resolve(sys.FS)
	if err != nil {
		return 0, err
	}
	if limit == 0 {
		log.Info("no soft memory limit", "server.memory_limit", s.String(), "source", source)
		return 0, nil
	}
	sys.SetMemoryLimit(limit)
	log.Info("soft memory limit set", "limit_bytes", limit, "source", source)
	return limit, nil
}

// resolve returns the limit s asks for (0: none) and where it came from.
func (s Setting) resolve(fsys fs.FS) (int64, string, error) {
	if !s.auto {
		if s.bytes == 0 {
			return 0, "server.memory_limit", nil
		}
		return int64(s.bytes), "server.memory_limit", nil
	}
	cg, ok, err := CgroupLimit(fsys)
	if err != nil {
		return 0, "", fmt.Errorf("server.memory_limit auto: %w", err)
	}
	if !ok {
		return 0, "auto: no cgroup memory limit", nil
	}
	return percentOf(cg, autoPercent), fmt.Sprintf("auto: %d%% of the cgroup memory limit %d", autoPercent, cg), nil
}

// percentOf returns floor(n*p/100) without overflowing for any int64 n.
func percentOf(n int64, p int) int64 {
	return n/100*int64(p) + n%100*int64(p)/100
}
