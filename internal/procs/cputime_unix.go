//go:build unix

package procs

import (
	"fmt"
	"syscall"
	"time"
)

// cpuTime returns the user and system CPU time of the process, all its
// threads, from getrusage(2).
func cpuTime() (time.Duration, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, fmt.Errorf("getrusage: %w", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), nil
}
