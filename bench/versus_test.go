package bench

import "testing"

// BenchmarkVersusCollector runs BenchmarkE2E's and BenchmarkCollector's
// iterations in pairs, alternating which goes first, and reports the
// median over the pairs of tailgate's spans per CPU-second divided by the
// Collector's (warm and fresh) and of tailgate's heap per buffered span
// divided by the Collector's. Issue 9's goals are a warm ratio of at
// least 5 and a heap ratio of at most 0.25. A pair runs minutes apart at
// most, so a machine that is slower for a while (another VM on the host)
// weighs on both sides of a ratio, where medians of separate blocks of
// iterations can differ by a fifth from one block to the next.
func BenchmarkVersusCollector(b *testing.B) {
	if testing.Short() {
		b.Skip("end-to-end benchmark")
	}
	bin := collectorBinary(b)
	opts := loadOptions(b)
	var warm, fresh, heap []float64
	for b.Loop() {
		seed := uint64(len(warm) + 1)
		var tg, col figures
		if seed%2 == 1 {
			tg = runTailgate(b, opts, seed)
			col = runCollector(b, bin, opts, seed)
		} else {
			col = runCollector(b, bin, opts, seed)
			tg = runTailgate(b, opts, seed)
		}
		w, f, h := tg.spansPerCPUSec/col.spansPerCPUSec, tg.freshPerCPUSec/col.freshPerCPUSec, tg.heapPerBuffered/col.heapPerBuffered
		b.Logf("pair %d: warm CPU %v against %v: %.2fx; fresh %v against %v: %.2fx; heap %.0f against %.0f B per buffered span: %.3fx; %.1f against %.1f switches per request",
			seed, tg.cpu, col.cpu, w, tg.freshCPU, col.freshCPU, f, tg.heapPerBuffered, col.heapPerBuffered, h, tg.switchesPerReq, col.switchesPerReq)
		warm, fresh, heap = append(warm, w), append(fresh, f), append(heap, h)
	}
	b.ReportMetric(median(warm), "warm-x")
	b.ReportMetric(median(fresh), "fresh-x")
	b.ReportMetric(median(heap), "heap-x")
}
