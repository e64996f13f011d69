package sampler

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"unsafe"
)

// TestHugeWordsAdvised checks that the memory of a filter large enough to
// hold whole huge pages is advised for them: the kernel marks the mapping
// that holds them "hg" in /proc/self/smaps (whether it can then give huge
// pages is the machine's setting, not ours).
func TestHugeWordsAdvised(t *testing.T) {
	w := hugeWords(3 * hugePage / 8) // 6MiB: at least two whole huge pages
	start := uintptr(unsafe.Pointer(unsafe.SliceData(w)))
	mid := (start + hugePage - 1) &^ (hugePage - 1) // inside an advised page
	flags, err := vmFlags(mid)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(" "+flags+" ", " hg ") {
		t.Fatalf("the mapping at %#x has flags %q, want hg (MADV_HUGEPAGE)", mid, flags)
	}
	// The words are usable as ever.
	w[0], w[len(w)-1] = 1, 2
	if w[0]+w[len(w)-1] != 3 {
		t.Fatal("words not writable")
	}
}

// vmFlags returns the VmFlags line of the mapping in /proc/self/smaps
// that contains addr.
func vmFlags(addr uintptr) (string, error) {
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	in := false
	for sc.Scan() {
		line := sc.Text()
		if lo, hi, ok := mappingRange(line); ok {
			in = lo <= addr && addr < hi
			continue
		}
		if in && strings.HasPrefix(line, "VmFlags:") {
			return strings.TrimSpace(strings.TrimPrefix(line, "VmFlags:")), nil
		}
	}
	if err := sc.Err(); err != nil {
		return "", err
	}
	return "", fmt.Errorf("no mapping holds %#x", addr)
}

// mappingRange parses the "lo-hi perms ..." line that starts a mapping.
func mappingRange(line string) (lo, hi uintptr, ok bool) {
	r, _, found := strings.Cut(line, " ")
	a, b, dash := strings.Cut(r, "-")
	if !found || !dash {
		return 0, 0, false
	}
	l, err1 := strconv.ParseUint(a, 16, 64)
	h, err2 := strconv.ParseUint(b, 16, 64)
	if err1 != nil || err2 != nil {
		return 0, 0, false
	}
	return uintptr(l), uintptr(h), true
}
