//go:build !linux

package sampler

// hugeWords returns n zeroed words (huge pages are asked for on Linux only).
func hugeWords(n int) []uint64 { return make([]uint64, n) }
