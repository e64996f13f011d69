package bench

import (
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// threadSwitches reads the calling thread's context switches from
// /proc/thread-self/status, by code separate from ProcSwitches.
func threadSwitches(t *testing.T) int64 {
	t.Helper()
	data, err := os.ReadFile("/proc/thread-self/status")
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) == 2 && strings.HasSuffix(f[0], "ctxt_switches:") {
			v, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil {
				t.Fatal(line, err)
			}
			n += v
		}
	}
	return n
}

// TestProcSwitches blocks this thread in a read(2) of a pipe, which
// usually puts it to sleep until another goroutine writes, and checks that
// the process-wide sum holds at least the thread's own count after it
// (and, since the runtime's threads sleep from the start, more than none).
func TestProcSwitches(t *testing.T) {
	if _, err := os.Stat("/proc/thread-self/status"); err != nil {
		t.Skip("no /proc/thread-self:", err)
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var p [2]int
	if err := syscall.Pipe(p[:]); err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(p[0])
	defer syscall.Close(p[1])

	go func() { _, _ = syscall.Write(p[1], []byte{1}) }()
	if _, err := syscall.Read(p[0], make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	after := threadSwitches(t)
	sum, err := ProcSwitches("self")
	if err != nil {
		t.Fatal(err)
	}
	if sum == 0 || sum < after {
		t.Fatalf("the process made %d context switches, this thread alone %d", sum, after)
	}
	if _, err := ProcSwitches("no-such-process"); err == nil {
		t.Fatal("ProcSwitches of a process that does not exist: no error")
	}
}
