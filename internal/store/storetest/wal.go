package storetest

import (
	"testing"
	"time"

	"github.com/tailgate-sre/tailgate/internal/signals"
	"github.com/tailgate-sre/tailgate/internal/slo"
	"github.com/tailgate-sre/tailgate/internal/wal"
)

// runMarks checks the write-ahead log marks: stored with the counts,
// per instance and consumer, and never without them.
func runMarks(t *testing.T, open func(t *testing.T) Stores) {
	s := open(t)
	sm, ok1 := s.SLO.(slo.MarkedBucketStore)
	gm, ok2 := s.Signals.(signals.MarkedStore)
	ms, ok3 := s.SLO.(wal.MarkStore)
	if !ok1 || !ok2 || !ok3 {
		t.Skip("store keeps no write-ahead log marks")
	}
	ctx := t.Context()
	b := slo.Bucket{SLO: "a", Minute: base.Truncate(time.Minute), Good: 9, Total: 10}
	if err := sm.AddSLIBucketsMarked(ctx, []slo.Bucket{b}, wal.Mark{Instance: "i1", Consumer: "slo", Pos: 7}); err != nil {
		t.Fatal(err)
	}
	if err := sm.AddSLIBucketsMarked(ctx, nil, wal.Mark{Instance: "i1", Consumer: "slo", Pos: 9}); err != nil {
		t.Fatal(err)
	}
	sig := signals.Bucket{Service: "svc", Operation: "op", Start: base.Truncate(time.Minute), Step: time.Minute, Requests: 3, Latency: []byte{}}
	closed := base.Truncate(time.Minute).UnixNano()
	if err := gm.AppendSignalBucketsMarked(ctx, []signals.Bucket{sig}, wal.Mark{Instance: "i1", Consumer: "signals", Pos: 5, ClosedBefore: closed}); err != nil {
		t.Fatal(err)
	}
	if err := sm.AddSLIBucketsMarked(ctx, nil, wal.Mark{Instance: "i2", Consumer: "slo", Pos: 100}); err != nil {
		t.Fatal(err)
	}
	// A cancelled write stores neither its buckets nor its mark.
	err := sm.AddSLIBucketsMarked(cancelled(t), []slo.Bucket{b}, wal.Mark{Instance: "i1", Consumer: "slo", Pos: 50})
	got, rerr := ms.WALMarks(ctx, "i1")
	if rerr != nil {
		t.Fatal(rerr)
	}
	want := map[string]wal.Mark{
		"slo":     {Instance: "i1", Consumer: "slo", Pos: 9},
		"signals": {Instance: "i1", Consumer: "signals", Pos: 5, ClosedBefore: closed},
	}
	if err == nil && got["slo"].Pos == 50 {
		want["slo"] = wal.Mark{Instance: "i1", Consumer: "slo", Pos: 50}
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("mark %s = %+v, want %+v", k, got[k], w)
		}
	}
	bs, err2 := s.SLO.LoadSLIBuckets(ctx, base.Add(-time.Hour))
	if err2 != nil {
		t.Fatal(err2)
	}
	var total uint64
	for _, x := range bs {
		total += x.Total
	}
	if wantTotal := uint64(10); err == nil && got["slo"].Pos == 50 {
		if total != 20 {
			t.Errorf("a write that stored its mark stored %d events, want its buckets too (20)", total)
		}
	} else if total != wantTotal {
		t.Errorf("a refused write left %d events, want %d", total, wantTotal)
	}
	other, _ := ms.WALMarks(ctx, "i2")
	if len(other) != 1 || other["slo"].Pos != 100 {
		t.Errorf("instance i2's marks %+v", other)
	}

	// Source marks (Kafka partitions) go under their own instance, with
	// the counts, and move on with each write.
	kafka := func(p string, pos uint64) wal.Mark {
		return wal.Mark{Instance: "kafka:g", Consumer: "slo:spans/" + p, Pos: pos}
	}
	if err := sm.AddSLIBucketsMarked(ctx, []slo.Bucket{b}, wal.Mark{Instance: "i2", Consumer: "slo", Pos: 101}, kafka("0", 40), kafka("3", 7)); err != nil {
		t.Fatal(err)
	}
	if err := sm.AddSLIBucketsMarked(ctx, nil, wal.Mark{Instance: "i2", Consumer: "slo", Pos: 102}, kafka("0", 41)); err != nil {
		t.Fatal(err)
	}
	ks, err := ms.WALMarks(ctx, "kafka:g")
	if err != nil {
		t.Fatal(err)
	}
	wantK := map[string]wal.Mark{"slo:spans/0": kafka("0", 41), "slo:spans/3": kafka("3", 7)}
	if len(ks) != len(wantK) || ks["slo:spans/0"] != wantK["slo:spans/0"] || ks["slo:spans/3"] != wantK["slo:spans/3"] {
		t.Errorf("source marks = %+v, want %+v", ks, wantK)
	}
	if other, _ := ms.WALMarks(ctx, "i2"); len(other) != 1 || other["slo"].Pos != 102 {
		t.Errorf("instance i2's marks after source marks %+v", other)
	}
}
