// Package procs sizes the Go scheduler's parallelism (GOMAXPROCS) to the
// process's load: server.gomaxprocs.
//
// Whenever a goroutine becomes ready while a P is idle, the runtime wakes
// a thread to look for work on it. Under a light load, the usual one for
// a replica of a fleet, almost every request does that several times (a
// gRPC request is handed from the connection's reader to a worker, its
// answer to the connection's writer): in a profile of the end-to-end
// benchmark on two Ps, the wake-ups and the search took a quarter of the
// daemon's CPU. With one P the ready goroutine runs next on the only P
// and no thread is woken. Auto, the default, keeps as few Ps as the load
// needs and adds them as soon as it needs more.
package procs

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/goccy/go-yaml/ast"

	"github.com/tailgate-sre/tailgate/internal/units"
)

// Setting is the value of server.gomaxprocs: "auto" (the default) or a
// fixed number of Ps.
type Setting struct {
	n int // 0: auto
}

// Auto is the default setting: as many Ps as the load needs, up to the
// runtime's default (the CPUs the process may use, or its cgroup's CPU
// limit).
func Auto() Setting { return Setting{} }

// Fixed runs on n Ps whatever the load.
func Fixed(n int) Setting { return Setting{n: n} }

// String returns the setting as it is written in the config file.
func (s Setting) String() string {
	if s.n == 0 {
		return "auto"
	}
	return strconv.Itoa(s.n)
}

// MarshalText implements encoding.TextMarshaler.
func (s Setting) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (s *Setting) UnmarshalText(b []byte) error {
	t := strings.TrimSpace(string(b))
	if t == "auto" {
		*s = Auto()
		return nil
	}
	n, err := strconv.Atoi(t)
	if err != nil || n < 1 {
		return fmt.Errorf("gomaxprocs must be auto or a number of Ps of at least 1, got %q", t)
	}
	*s = Fixed(n)
	return nil
}

// UnmarshalYAML reads the setting from a YAML scalar; an error names the
// key and the line.
func (s *Setting) UnmarshalYAML(node ast.Node) error {
	return units.UnmarshalScalar(node, s.UnmarshalText)
}

// System is what Apply and the Controller read and change; production
// passes the process's own (OS).
type System struct {
	// LookupEnv reads an environment variable (GOMAXPROCS).
	LookupEnv func(key string) (string, bool)
	// GOMAXPROCS is runtime.GOMAXPROCS: it sets n Ps (n > 0) and returns
	// the previous number.
	GOMAXPROCS func(n int) int
	// CPUTime returns the CPU time, user and system, the process has
	// used so far.
	CPUTime func() (time.Duration, error)
}

// The controller's policy. A P busier than upBusy on average over an
// interval means the load wants more Ps, at once; the Ps are reduced only
// when fewer would each stay under downBusy for holdIntervals in a row.
// The gap between the two keeps a load near a boundary from flapping.
const (
	upBusy        = 0.5
	downBusy      = 0.4
	holdIntervals = 5
	// Interval is how often the controller measures the load.
	Interval = time.Second
)

// Apply resolves s: a fixed setting is set at once; auto returns a
// Controller for the caller to Run. GOMAXPROCS in the environment wins
// over both (the runtime has applied it): Apply leaves it and returns nil.
func Apply(s Setting, sys System, log *slog.Logger) *Controller {
	if v, ok := sys.LookupEnv("GOMAXPROCS"); ok && v != "" {
		log.Info("GOMAXPROCS from the environment; server.gomaxprocs ignored", "GOMAXPROCS", v, "procs", sys.GOMAXPROCS(0))
		return nil
	}
	if s.n > 0 {
		sys.GOMAXPROCS(s.n)
		log.Info("GOMAXPROCS set", "procs", s.n, "source", "server.gomaxprocs")
		return nil
	}
	most := sys.GOMAXPROCS(0)
	if most <= 1 {
		log.Info("GOMAXPROCS is 1: nothing to adapt", "procs", most)
		return nil
	}
	log.Info("GOMAXPROCS adapts to the load", "max_procs", most, "source", "server.gomaxprocs: auto")
	// The hold guards against flapping after a busy spell; at the start
	// there was none, and one quiet interval is enough to go down.
	return &Controller{sys: sys, log: log, max: most, cur: most, low: holdIntervals - 1}
}

// Controller adjusts GOMAXPROCS to the load, between 1 and the runtime's
// default at startup (a CPU limit changed while the process runs takes
// effect at its next start).
type Controller struct {
	sys System
	log *slog.Logger
	max int
	cur int
	// low counts the intervals in a row in which fewer Ps would have
	// done; lowPeak is the most any of them needed.
	low, lowPeak int
}

// Run measures the load every Interval and sets GOMAXPROCS to what it
// needs, until ctx is done; it then gives the process its maximum back.
// A failure to read the CPU time stops the adapting (logged) and leaves
// the maximum.
func (c *Controller) Run(ctx context.Context) {
	defer c.sys.GOMAXPROCS(c.max)
	t := time.NewTicker(Interval)
	defer t.Stop()
	last, err := c.sys.CPUTime()
	if err != nil {
		c.log.Warn("cannot read the process's CPU time; GOMAXPROCS stays at its maximum", "err", err, "procs", c.max)
		return
	}
	lastAt := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			used, err := c.sys.CPUTime()
			if err != nil {
				c.log.Warn("cannot read the process's CPU time; GOMAXPROCS back at its maximum", "err", err, "procs", c.max)
				return
			}
			elapsed := now.Sub(lastAt)
			if elapsed <= 0 {
				continue
			}
			busy := (used - last).Seconds() / elapsed.Seconds() // in CPUs
			// Read before observe changes it.
			was := c.cur
			if n := c.observe(busy); n != was {
				c.sys.GOMAXPROCS(n)
				c.log.Debug("GOMAXPROCS changed", "from", was, "to", n, "busy_cpus", busy)
			}
			last, lastAt = used, now
		}
	}
}

// Start applies s to this process and, for auto, runs a Controller until
// stop is called; stop returns once the controller has given the process
// its maximum back. The Ps in force are go_sched_gomaxprocs_threads in
// /metrics.
func Start(s Setting, log *slog.Logger) (stop func()) {
	c := Apply(s, OS(), log)
	if c == nil {
		return func() {}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.Run(ctx)
	}()
	return func() {
		cancel()
		<-done
	}
}

// OS is the process's own System.
func OS() System {
	return System{LookupEnv: os.LookupEnv, GOMAXPROCS: runtime.GOMAXPROCS, CPUTime: cpuTime}
}

// observe takes the CPUs the process kept busy on average over the last
// interval and returns how many Ps it should run on next.
func (c *Controller) observe(busy float64) int {
	if up := c.need(busy, upBusy); up > c.cur {
		c.cur, c.low, c.lowPeak = up, 0, 0
		return c.cur
	}
	down := c.need(busy, downBusy)
	if down >= c.cur {
		c.low, c.lowPeak = 0, 0
		return c.cur
	}
	c.low++
	c.lowPeak = max(c.lowPeak, down)
	if c.low >= holdIntervals {
		c.cur, c.low, c.lowPeak = c.lowPeak, 0, 0
	}
	return c.cur
}

// need is how many Ps keep each under perP busy with busy CPUs of work,
// between 1 and the maximum.
func (c *Controller) need(busy, perP float64) int {
	n := math.Ceil(busy / perP)
	if n < 1 || math.IsNaN(n) {
		return 1
	}
	if n > float64(c.max) {
		return c.max
	}
	return int(n)
}
