package daemon

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tailgate-sre/tailgate/internal/ingest/kafka"
	"github.com/tailgate-sre/tailgate/internal/otlp"
	"github.com/tailgate-sre/tailgate/internal/units"
	"github.com/tailgate-sre/tailgate/internal/wal"
)

// markStore is the store's source marks, which flush writes as the SLO
// engine would: the marks sourceMarks gives inside the cut.
type markStore struct {
	mu    sync.Mutex
	marks map[string]wal.Mark
}

func (m *markStore) WALMarks(_ context.Context, instance string) (map[string]wal.Mark, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string]wal.Mark{}
	for k, v := range m.marks {
		if v.Instance == instance {
			out[k] = v
		}
	}
	return out, nil
}

// kafkaRig is a kafkaSource on fakes: a clock, a sampler that can push
// back, a counter, an exporter watermark and a store of marks.
type kafkaRig struct {
	s       *kafkaSource
	store   *markStore
	now     time.Time
	busy    bool
	sampled []int64 // the offsets the sampler took
	counted []int64 // the offsets counted
	held    time.Time
}

func newKafkaRig(t *testing.T) *kafkaRig {
	t.Helper()
	r := &kafkaRig{store: &markStore{marks: map[string]wal.Mark{}}, now: time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)}
	cfg := &kafka.Config{Topic: "otlp_spans", Group: "g", SettleMargin: units.Duration(5 * time.Second)}
	s := newKafkaSource(nil, cfg, 10*time.Second, r.store, slog.New(slog.DiscardHandler))
	s.now = func() time.Time { return r.now }
	s.sample = func(_ context.Context, req *otlp.Request) error {
		if r.busy {
			return errors.New("busy")
		}
		r.sampled = append(r.sampled, int64(len(req.Spans)))
		return nil
	}
	s.count = func(req *otlp.Request, _ time.Time, at func()) {
		r.counted = append(r.counted, int64(len(req.Spans)))
		at()
	}
	s.oldest = func() (time.Time, bool) { return r.held, !r.held.IsZero() }
	s.flush = func(context.Context) error {
		r.store.mu.Lock()
		defer r.store.mu.Unlock()
		for _, m := range s.sourceMarks() {
			r.store.marks[m.Consumer] = m
		}
		return nil
	}
	r.s = s
	return r
}

// record offers offset of partition p as a request of offset spans, so
// that what was sampled and counted tells the offsets apart.
func (r *kafkaRig) record(t *testing.T, p int32, offset int64) error {
	t.Helper()
	req := &otlp.Request{Spans: make([]otlp.Span, offset)}
	return r.s.Record(t.Context(), req, p, offset)
}

func TestKafkaSourceCountsOncePerGroup(t *testing.T) {
	r := newKafkaRig(t)
	// An earlier owner counted partition 0 up to offset 4 and stored it.
	r.store.marks["slo:otlp_spans/0"] = wal.Mark{Instance: "kafka:g", Consumer: "slo:otlp_spans/0", Pos: 5}
	r.store.marks["slo"] = wal.Mark{Instance: "host-1", Consumer: "slo", Pos: 99} // another instance's WAL mark
	if err := r.s.Assigned(t.Context(), []int32{0, 1}); err != nil {
		t.Fatal(err)
	}
	for _, off := range []int64{3, 4, 5, 6} {
		if err := r.record(t, 0, off); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.record(t, 1, 2); err != nil {
		t.Fatal(err)
	}
	if want := []int64{3, 4, 5, 6, 2}; !slices.Equal(r.sampled, want) {
		t.Errorf("sampled %v, want every record %v (the traces of records not committed were not surely exported)", r.sampled, want)
	}
	if want := []int64{5, 6, 2}; !slices.Equal(r.counted, want) {
		t.Errorf("counted %v, want %v: records below the stored mark are counted already", r.counted, want)
	}
	got := map[string]uint64{}
	for _, m := range r.s.sourceMarks() {
		if m.Instance != "kafka:g" {
			t.Errorf("mark %+v under the wrong instance", m)
		}
		got[m.Consumer] = m.Pos
	}
	if want := map[string]uint64{"slo:otlp_spans/0": 7, "slo:otlp_spans/1": 3}; !maps.Equal(got, want) {
		t.Errorf("source marks %v, want %v", got, want)
	}

	// Pushed back: not taken, not counted, offered again by the intake.
	r.busy = true
	if err := r.record(t, 1, 3); err == nil {
		t.Fatal("Record with a busy sampler returned nil")
	}
	if len(r.counted) != 3 {
		t.Errorf("a refused record was counted: %v", r.counted)
	}
}

func TestKafkaSourceSettled(t *testing.T) {
	r := newKafkaRig(t)
	if err := r.s.Assigned(t.Context(), []int32{0}); err != nil {
		t.Fatal(err)
	}
	t0 := r.now
	for off := range int64(4) { // offsets 0..3, one a second
		r.now = t0.Add(time.Duration(off) * time.Second)
		if err := r.record(t, 0, off); err != nil {
			t.Fatal(err)
		}
	}
	settled := func() map[int32]int64 {
		t.Helper()
		got, err := r.s.Settled(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	// Long after, but nothing stored: nothing may be committed.
	r.now = t0.Add(time.Minute)
	if got := settled(); len(got) != 0 {
		t.Errorf("settled %v before any count was stored", got)
	}
	// Stored up to offset 3, but the decisions of the last 15s
	// (decision_wait 10s + settle_margin 5s) may be pending: taken at
	// t0+0..3s, at t0+17.5s only offsets 0..2 are surely decided.
	if err := r.s.flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	r.now = t0.Add(17500 * time.Millisecond)
	if got := settled(); !maps.Equal(got, map[int32]int64{0: 2}) {
		t.Errorf("settled %v, want offset 2", got)
	}
	// The exporter still holds a request handed over at t0+16s: only
	// records decided before t0+1s are surely exported.
	r.now = t0.Add(time.Minute)
	r.held = t0.Add(16 * time.Second)
	if got := settled(); len(got) != 0 {
		t.Errorf("settled %v while the exporter holds what offset 2 and 3 decided; offset 2 was returned already, want nothing new", got)
	}
	r.held = time.Time{}
	if got := settled(); !maps.Equal(got, map[int32]int64{0: 3}) {
		t.Errorf("settled %v once the exporter is done, want offset 3", got)
	}
}

func TestKafkaSourceRevoked(t *testing.T) {
	r := newKafkaRig(t)
	if err := r.s.Assigned(t.Context(), []int32{0, 1}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []int32{0, 1} {
		if err := r.record(t, p, 0); err != nil {
			t.Fatal(err)
		}
	}
	r.now = r.now.Add(time.Minute)
	// Revoking stores the counts first (flush), so the next owner's
	// Assigned reads where counting stands.
	got := r.s.Revoked(t.Context(), []int32{1})
	if !maps.Equal(got, map[int32]int64{1: 0}) {
		t.Errorf("Revoked = %v, want partition 1's offset 0", got)
	}
	if m := r.store.marks["slo:otlp_spans/1"]; m.Pos != 1 {
		t.Errorf("partition 1's stored mark %+v, want 1", m)
	}
	for _, m := range r.s.sourceMarks() {
		if m.Consumer == "slo:otlp_spans/1" {
			t.Errorf("a revoked partition's mark is still written: %+v", m)
		}
	}
	r.s.Lost([]int32{0})
	if ms := r.s.sourceMarks(); len(ms) != 0 {
		t.Errorf("marks after every partition went: %+v", ms)
	}
}
