package sampler

import (
	"bytes"
	"encoding/binary"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/tailgate-sre/tailgate/internal/otlp"
	"google.golang.org/protobuf/encoding/protowire"
)

// idAt says where a hand-encoded span puts its trace_id field.
type idAt int

const (
	idFirst idAt = iota
	idMiddle
	idLast
)

// handSpan encodes a Span message with its trace_id field at the given
// place: the sampler stores spans without that field when it comes first
// or last, and must give back exactly these bytes.
func handSpan(id otlp.TraceID, sid, parent uint64, name string, at idAt) []byte {
	var b []byte
	traceField := func() {
		b = protowire.AppendTag(b, 1, protowire.BytesType)
		b = protowire.AppendBytes(b, id[:])
	}
	if at == idFirst {
		traceField()
	}
	var s [8]byte
	binary.BigEndian.PutUint64(s[:], sid)
	b = protowire.AppendTag(b, 2, protowire.BytesType)
	b = protowire.AppendBytes(b, s[:])
	if parent != 0 {
		binary.BigEndian.PutUint64(s[:], parent)
		b = protowire.AppendTag(b, 4, protowire.BytesType)
		b = protowire.AppendBytes(b, s[:])
	}
	b = protowire.AppendTag(b, 5, protowire.BytesType)
	b = protowire.AppendString(b, name)
	if at == idMiddle {
		traceField()
	}
	start := uint64(epoch.UnixNano()) + sid*uint64(time.Millisecond)
	b = protowire.AppendTag(b, 7, protowire.Fixed64Type)
	b = protowire.AppendFixed64(b, start)
	b = protowire.AppendTag(b, 8, protowire.Fixed64Type)
	b = protowire.AppendFixed64(b, start+uint64(time.Millisecond))
	// attribute "k" = "v"+name
	var kv []byte
	kv = protowire.AppendTag(kv, 1, protowire.BytesType)
	kv = protowire.AppendString(kv, "k")
	var av []byte
	av = protowire.AppendTag(av, 1, protowire.BytesType)
	av = protowire.AppendString(av, "v"+name)
	kv = protowire.AppendTag(kv, 2, protowire.BytesType)
	kv = protowire.AppendBytes(kv, av)
	b = protowire.AppendTag(b, 9, protowire.BytesType)
	b = protowire.AppendBytes(b, kv)
	if at == idLast {
		traceField()
	}
	return b
}

// handRequest wraps span encodings in one resource (service "svc") and
// scope.
func handRequest(spans ...[]byte) []byte {
	var av, kv, res, ss, rs, req []byte
	av = protowire.AppendTag(av, 1, protowire.BytesType)
	av = protowire.AppendString(av, "svc")
	kv = protowire.AppendTag(kv, 1, protowire.BytesType)
	kv = protowire.AppendString(kv, "service.name")
	kv = protowire.AppendTag(kv, 2, protowire.BytesType)
	kv = protowire.AppendBytes(kv, av)
	res = protowire.AppendTag(res, 1, protowire.BytesType)
	res = protowire.AppendBytes(res, kv)
	for _, sp := range spans {
		ss = protowire.AppendTag(ss, 2, protowire.BytesType)
		ss = protowire.AppendBytes(ss, sp)
	}
	rs = protowire.AppendTag(rs, 1, protowire.BytesType)
	rs = protowire.AppendBytes(rs, res)
	rs = protowire.AppendTag(rs, 2, protowire.BytesType)
	rs = protowire.AppendBytes(rs, ss)
	req = protowire.AppendTag(req, 1, protowire.BytesType)
	return protowire.AppendBytes(req, rs)
}

// exportedSpans returns the Span messages of exported requests.
func exportedSpans(t *testing.T, reqs [][]byte) [][]byte {
	t.Helper()
	var out [][]byte
	fields := func(b []byte, want protowire.Number, fn func([]byte)) {
		for len(b) > 0 {
			num, typ, n := protowire.ConsumeTag(b)
			if n < 0 {
				t.Fatalf("bad tag in export")
			}
			b = b[n:]
			n = protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				t.Fatalf("bad field in export")
			}
			if num == want && typ == protowire.BytesType {
				v, _ := protowire.ConsumeBytes(b)
				fn(v)
			}
			b = b[n:]
		}
	}
	for _, req := range reqs {
		fields(req, 1, func(rs []byte) {
			fields(rs, 2, func(ss []byte) {
				fields(ss, 2, func(sp []byte) { out = append(out, sp) })
			})
		})
	}
	return out
}

// TestSpanBytesRoundTrip checks that spans come out of the buffer, to the
// exporter and to OnDecision, with exactly the bytes they came in with,
// wherever their trace_id field was, and that the rules read their names
// and attributes from the stored bytes.
func TestSpanBytesRoundTrip(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		id := traceID(42, 7)
		in := [][]byte{
			handSpan(id, 1, 0, "root", idFirst),
			handSpan(id, 2, 1, "mid", idMiddle),
			handSpan(id, 3, 1, "last", idLast),
		}
		late := handSpan(id, 4, 1, "late", idLast)
		// Kept only when the attribute and the name of the idLast span read
		// right from what the buffer holds.
		vlast := Scalar("vlast")
		cfg := testConfig(RuleConfig{Name: "by-attr", Keep: true, When: &WhenConfig{
			Attribute: &AttributeConfig{Key: "k", Equals: &vlast, On: "span"},
			SpanName:  StringList{"last"},
		}})
		var fromHook [][]byte
		var names []string
		hook := func(tr *Trace, _ Decision) {
			for i := range tr.Len() {
				s := tr.Span(i)
				fromHook = append(fromHook, bytes.Clone(s.Raw()))
				names = append(names, string(s.Name()))
			}
		}
		env := startEnv(t, cfg, Settings{OnDecision: hook})
		ctx := t.Context()
		if err := env.s.Consume(ctx, parse(t, handRequest(in...))); err != nil {
			t.Fatal(err)
		}
		time.Sleep(3 * time.Second) // past root_grace: decided and kept
		synctest.Wait()
		if err := env.s.Consume(ctx, parse(t, handRequest(late))); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Second)
		synctest.Wait()

		if len(fromHook) != 3 {
			t.Fatalf("OnDecision saw %d spans, want 3 (trace not decided?)", len(fromHook))
		}
		for i := range in {
			if !bytes.Equal(fromHook[i], in[i]) {
				t.Errorf("span %d: Raw() = %x\nwant %x", i, fromHook[i], in[i])
			}
		}
		if want := []string{"root", "mid", "last"}; !slices.Equal(names, want) {
			t.Errorf("names %q, want %q", names, want)
		}
		env.exp.mu.Lock()
		reqs := env.exp.reqs
		env.exp.mu.Unlock()
		out := exportedSpans(t, reqs)
		want := append(in, late)
		if len(out) != len(want) {
			t.Fatalf("exported %d spans, want %d", len(out), len(want))
		}
		// The exporter appends the sampling attributes after each span's
		// own bytes.
		for i := range want {
			if !bytes.HasPrefix(out[i], want[i]) {
				t.Errorf("exported span %d = %x\ndoes not start with %x", i, out[i], want[i])
			}
		}
	})
}

func TestStripTraceID(t *testing.T) {
	id := traceID(1, 2)
	// A last field that merely ends in the bytes of a trace_id field: the
	// attribute value "v" + name ends with tag, length and the trace ID
	// (printable, as a span name must be UTF-8).
	text := otlp.TraceID([]byte("0123456789abcdef"))
	lookalike := "\x0a\x10" + string(text[:])
	for _, tt := range []struct {
		name      string
		raw       []byte
		wantFlags uint8
		wantCut   int // bytes not stored
	}{
		{"first", handSpan(id, 1, 0, "a", idFirst), spanIDFront, 18},
		{"last", handSpan(id, 1, 0, "a", idLast), spanIDBack, 18},
		{"middle", handSpan(id, 1, 0, "a", idMiddle), 0, 0},
		{"look-alike last field", handSpan(text, 1, 0, lookalike, idMiddle), 0, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			sp, err := otlp.ParseSpan(tt.raw)
			if err != nil {
				t.Fatal(err)
			}
			st, flags := stripTraceID(&sp)
			if flags != tt.wantFlags || len(st) != len(tt.raw)-tt.wantCut {
				t.Fatalf("flags %b stored %d bytes, want %b and %d", flags, len(st), tt.wantFlags, len(tt.raw)-tt.wantCut)
			}
			if got := appendSpanEncoding(nil, &sp.TraceID, st, flags); !bytes.Equal(got, tt.raw) {
				t.Errorf("rebuilt %x\nwant    %x", got, tt.raw)
			}
		})
	}
}

// TestInterleavedTraces sends one request of many traces over three
// services, so each trace's spans come in three runs and the shard's cache
// of recently seen traces has collisions, and checks that every span
// lands in its own trace.
func TestInterleavedTraces(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const traces = 300
		var specs []spanSpec
		for _, svc := range []string{"a", "b", "c"} {
			for i := range traces {
				id := traceID(uint64(i+1), uint64(i)*0x9e3779b9)
				s := spanSpec{trace: id, id: uint64(svc[0]), parent: 'a', name: svc, service: svc, dur: time.Millisecond}
				if svc == "a" {
					s.parent = 0
				}
				specs = append(specs, s)
			}
		}
		var mu sync.Mutex
		got := map[otlp.TraceID][]string{}
		hook := func(tr *Trace, _ Decision) {
			mu.Lock()
			defer mu.Unlock()
			for i := range tr.Len() {
				s := tr.Span(i)
				got[tr.ID()] = append(got[tr.ID()], string(s.Name())+"/"+s.ServiceName())
			}
		}
		env := startEnv(t, testConfig(keepAll("all")), Settings{OnDecision: hook})
		if err := env.consume(t, specs); err != nil {
			t.Fatal(err)
		}
		time.Sleep(3 * time.Second)
		synctest.Wait()
		mu.Lock()
		defer mu.Unlock()
		if len(got) != traces {
			t.Fatalf("%d traces decided, want %d", len(got), traces)
		}
		for id, spans := range got {
			slices.Sort(spans)
			if want := []string{"a/a", "b/b", "c/c"}; !slices.Equal(spans, want) {
				t.Errorf("trace %x: spans %q, want %q", id, spans, want)
			}
		}
		if n := env.exp.spanCount(); n != 3*traces {
			t.Errorf("exported %d spans, want %d", n, 3*traces)
		}
	})
}
