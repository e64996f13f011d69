package kafka

import (
	"context"
	"fmt"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tailgate-sre/tailgate/internal/otlp"
	"github.com/tailgate-sre/tailgate/internal/units"
)

// countingHandler takes every record and settles it at once.
type countingHandler struct {
	records, spans atomic.Int64
}

func (h *countingHandler) Assigned(context.Context, []int32) error { return nil }
func (h *countingHandler) Record(_ context.Context, req *otlp.Request, _ int32, _ int64) error {
	h.records.Add(1)
	h.spans.Add(int64(len(req.Spans)))
	return nil
}
func (h *countingHandler) Revoked(context.Context, []int32) map[int32]int64 { return nil }
func (h *countingHandler) Lost([]int32)                                     {}
func (h *countingHandler) Settled(context.Context) (map[int32]int64, error) { return nil, nil }

// BenchmarkIntake consumes a topic of 20,000 records of 10 spans each
// (the Collector's kafka exporter's otlp_proto, one trace per record)
// from franz-go's in-process broker (kfake), each iteration as a new
// consumer group: fetching, decoding and handing over, with the broker
// sharing the CPUs.
func BenchmarkIntake(b *testing.B) {
	const records, spansPer = 20000, 10
	c := newCluster(b, 4)
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.DefaultProduceTopic(topic), kgo.ProducerLinger(5*time.Millisecond))
	if err != nil {
		b.Fatal(err)
	}
	value := request(b, "checkout", spansPer)
	var recs []*kgo.Record
	for i := range records {
		recs = append(recs, &kgo.Record{Key: fmt.Appendf(nil, "trace-%d", i), Value: value})
	}
	if err := cl.ProduceSync(b.Context(), recs...).FirstErr(); err != nil {
		b.Fatal(err)
	}
	cl.Close()
	b.ReportAllocs()
	b.SetBytes(int64(len(value)) * records)
	group := 0
	cpu0 := cpuTime(b)
	for b.Loop() {
		group++
		h := &countingHandler{}
		in, err := New(Config{Brokers: c.ListenAddrs(), Topic: topic, Group: fmt.Sprint("bench-", group), CommitInterval: units.Duration(time.Hour)},
			Settings{Handler: h})
		if err != nil {
			b.Fatal(err)
		}
		if err := in.Start(b.Context()); err != nil {
			b.Fatal(err)
		}
		for h.records.Load() < records {
			time.Sleep(time.Millisecond)
		}
		if err := in.Shutdown(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
	sec := b.Elapsed().Seconds()
	b.ReportMetric(float64(records*spansPer*b.N)/sec, "spans/s")
	b.ReportMetric(float64(records*b.N)/sec, "records/s")
	// Per CPU-second of the whole process, the in-process broker's work
	// included: a lower bound of the intake's own rate per core.
	b.ReportMetric(float64(records*spansPer*b.N)/(cpuTime(b)-cpu0).Seconds(), "spans/cpu-s")
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
