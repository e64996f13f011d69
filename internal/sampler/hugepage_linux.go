package sampler

import (
	"syscall"
	"unsafe"
)

// hugePage is the size of a transparent huge page on x86-64 (and on arm64
// with 4KiB pages).
const hugePage = 2 << 20

// hugeWords returns n zeroed words whose whole 2MiB pages the kernel is
// asked to back with transparent huge pages (madvise(MADV_HUGEPAGE); the
// kernel's default "madvise" mode gives them only to memory that asks).
// A Bloom filter is probed at random: on 4KiB pages nearly every add or
// lookup in a filter of several MiB misses the TLB as well as the cache,
// and a page walk under virtualisation costs several more memory
// accesses; each first touch of a page is also a fault of its own. Where
// the kernel gives no huge pages, nothing changes.
func hugeWords(n int) []uint64 {
	w := make([]uint64, n)
	if n == 0 {
		return w
	}
	start := uintptr(unsafe.Pointer(unsafe.SliceData(w)))
	first := (start + hugePage - 1) &^ (hugePage - 1)
	last := (start + uintptr(n)*8) &^ (hugePage - 1)
	if last <= first {
		return w
	}
	b := unsafe.Slice((*byte)(unsafe.Add(unsafe.Pointer(unsafe.SliceData(w)), first-start)), last-first)
	_ = syscall.Madvise(b, syscall.MADV_HUGEPAGE) // advice: an error leaves 4KiB pages
	return w
}
