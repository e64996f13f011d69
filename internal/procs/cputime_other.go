//go:build !unix

package procs

import (
	"errors"
	"time"
)

// cpuTime is not available here: auto keeps the runtime's default.
func cpuTime() (time.Duration, error) {
	return 0, errors.New("the process's CPU time is not read on this system")
}
