package daemon

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"

	"github.com/tailgate-sre/tailgate/internal/ingest"
	"github.com/tailgate-sre/tailgate/internal/sampler"
	"github.com/tailgate-sre/tailgate/internal/units"
)

// pipeListener is an in-memory listener (net.Pipe connections), so that a
// real receiver can serve inside a synctest bubble, on virtual time.
type pipeListener struct {
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func newPipeListener() *pipeListener {
	return &pipeListener{conns: make(chan net.Conn), done: make(chan struct{})}
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *pipeListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 4318} }

func (l *pipeListener) dial(ctx context.Context, _, _ string) (net.Conn, error) {
	client, server := net.Pipe()
	select {
	case l.conns <- server:
		return client, nil
	case <-l.done:
		return nil, net.ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// spanCounter is an exporter that counts the exported spans of each trace.
type spanCounter struct {
	mu      sync.Mutex
	byTrace map[pcommon.TraceID]int
	err     error
}

func (e *spanCounter) Export(_ context.Context, req []byte, _ int) error {
	r := ptraceotlp.NewExportRequest()
	err := r.UnmarshalProto(req)
	e.mu.Lock()
	defer e.mu.Unlock()
	if err != nil {
		e.err = err
		return nil
	}
	rss := r.Traces().ResourceSpans()
	for i := range rss.Len() {
		sss := rss.At(i).ScopeSpans()
		for j := range sss.Len() {
			spans := sss.At(j).Spans()
			for k := range spans.Len() {
				e.byTrace[spans.At(k).TraceID()]++
			}
		}
	}
	return nil
}

// splitHalf builds one half of n 10-span traces: the first half is five
// children of a root that has not come yet; the second half is four more
// children, the first of which carries the error of an error trace, and
// the root, last.
func splitHalf(ids []pcommon.TraceID, errTrace []bool, second bool, payload string, at time.Time) []byte {
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", "split")
	ss := rs.ScopeSpans().AppendEmpty()
	for i, id := range ids {
		for j := range 5 {
			s := ss.Spans().AppendEmpty()
			s.SetTraceID(id)
			n := j + 2 // span IDs 2..6 in the first half, 7..10 and 1 (the root) in the second
			if second {
				n = j + 7
				if j == 4 {
					n = 1
				}
			}
			var sid pcommon.SpanID
			binary.BigEndian.PutUint64(sid[:], uint64(n))
			s.SetSpanID(sid)
			if n != 1 {
				var parent pcommon.SpanID
				binary.BigEndian.PutUint64(parent[:], 1)
				s.SetParentSpanID(parent)
			}
			s.SetName("work")
			s.SetStartTimestamp(pcommon.NewTimestampFromTime(at))
			s.SetEndTimestamp(pcommon.NewTimestampFromTime(at.Add(time.Millisecond)))
			s.Attributes().PutStr("payload", payload)
			if second && j == 0 && errTrace[i] {
				s.Status().SetCode(ptrace.StatusCodeError)
			}
		}
	}
	b, err := ptraceotlp.NewExportRequestFromTraces(td).MarshalProto()
	if err != nil {
		panic(err)
	}
	return b
}

// TestOverloadSplitTraces is issue 10's overload scenario on virtual time,
// through the real OTLP/HTTP receiver and the sampler with the push_back
// policy: 10-span traces whose two halves arrive 1s apart, the error in
// the second half, from 12 clients sending more than 10x the buffer;
// clients retry on 429 after Retry-After. Every error trace is exported
// whole (none is decided on its first half), the clients saw refusals,
// nothing was decided by stress relief, and the buffered bytes (the
// sampler's own accounting) stay within max_buffered_bytes plus the
// documented overhead: what the intake holds.
func TestOverloadSplitTraces(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const (
			clients, rounds, tracesPerReq = 12, 25, 10
			maxBytes                      = 1 << 20
			intakeSpans                   = 1000
		)
		scfg := sampler.DefaultConfig()
		scfg.Shards = 2
		scfg.MaxBufferedSpans = 1_000_000 // the bytes bind
		scfg.MaxBufferedBytes = maxBytes
		scfg.IntakeSpans = intakeSpans
		scfg.RootGrace = units.Duration(3 * time.Second)
		scfg.DecisionWait = units.Duration(30 * time.Second)
		reg := prometheus.NewRegistry()
		exp := &spanCounter{byTrace: map[pcommon.TraceID]int{}}
		s, err := sampler.New(scfg, sampler.Settings{Exporter: exp, Registerer: reg})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
		lis := newPipeListener()
		icfg := ingest.DefaultConfig()
		icfg.OTLPGRPC = ""
		rcv, err := ingest.New(icfg, ingest.Settings{Consumer: s, Registerer: reg,
			Listen: func(context.Context, string, string) (net.Listener, error) { return lis, nil }})
		if err != nil {
			t.Fatal(err)
		}
		if err := rcv.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
		transport := &http.Transport{DialContext: lis.dial}
		client := &http.Client{Transport: transport}

		var peakMu sync.Mutex
		peak := 0.0
		notePeak := func() {
			v := gatherSum(t, reg, "tailgate_sampler_buffered_bytes")
			peakMu.Lock()
			peak = max(peak, v)
			peakMu.Unlock()
		}

		payload := string(bytes.Repeat([]byte("p"), 200))
		var (
			mu        sync.Mutex
			retries   int
			errTraces []pcommon.TraceID
			sentSpans int
		)
		// post sends one request until it is acknowledged, sleeping
		// Retry-After (virtual time) after each 429.
		post := func(body []byte) error {
			for range 1000 {
				resp, err := client.Post("http://tailgate/v1/traces", "application/x-protobuf", bytes.NewReader(body))
				if err != nil {
					return err
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				notePeak()
				switch resp.StatusCode {
				case http.StatusOK:
					return nil
				case http.StatusTooManyRequests:
					secs, err := strconv.Atoi(resp.Header.Get("Retry-After"))
					if err != nil || secs < 1 {
						return fmt.Errorf("429 with Retry-After %q", resp.Header.Get("Retry-After"))
					}
					mu.Lock()
					retries++
					mu.Unlock()
					time.Sleep(time.Duration(secs) * time.Second)
				default:
					return fmt.Errorf("status %d", resp.StatusCode)
				}
			}
			return errors.New("refused 1000 times in a row")
		}

		var wg sync.WaitGroup
		errs := make(chan error, clients)
		for c := range clients {
			wg.Go(func() {
				var open []pcommon.TraceID // first halves sent, second halves due
				var openErr []bool
				for r := range rounds + 1 {
					if len(open) > 0 {
						if err := post(splitHalf(open, openErr, true, payload, time.Now())); err != nil {
							errs <- fmt.Errorf("client %d round %d, second halves: %w", c, r, err)
							return
						}
					}
					open, openErr = nil, nil
					if r == rounds {
						return
					}
					for i := range tracesPerReq {
						var id pcommon.TraceID
						binary.BigEndian.PutUint64(id[0:8], uint64(c)<<32|uint64(r)<<16|uint64(i)|1<<63)
						// Low bits under the 5% threshold: only an error keeps a trace.
						binary.BigEndian.PutUint64(id[8:16], uint64(c*rounds+r)*7919+uint64(i))
						open = append(open, id)
						openErr = append(openErr, i%5 == 0)
						if i%5 == 0 {
							mu.Lock()
							errTraces = append(errTraces, id)
							mu.Unlock()
						}
					}
					if err := post(splitHalf(open, openErr, false, payload, time.Now())); err != nil {
						errs <- fmt.Errorf("client %d round %d, first halves: %w", c, r, err)
						return
					}
					mu.Lock()
					sentSpans += 10 * tracesPerReq
					mu.Unlock()
					time.Sleep(time.Second) // the halves arrive 1s apart
				}
			})
		}
		done := make(chan struct{})
		var monitor sync.WaitGroup
		monitor.Go(func() {
			for {
				select {
				case <-done:
					return
				case <-time.After(50 * time.Millisecond):
					notePeak()
				}
			}
		})
		wg.Wait()
		close(done)
		monitor.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}

		ctx := context.Background()
		if err := rcv.Shutdown(ctx); err != nil {
			t.Errorf("receiver shutdown: %v", err)
		}
		// A 429 comes from a full buffer (the overload policy) or, on a
		// loaded machine, from a full intake queue as well.
		overloaded := gatherSum(t, reg, "tailgate_sampler_overload_refused_requests_total")
		refused := overloaded + gatherSum(t, reg, "tailgate_sampler_backpressure_requests_total")
		stress := gatherSum(t, reg, "tailgate_sampler_stress_relief_traces_total")
		early := gatherSum(t, reg, "tailgate_sampler_overload_early_traces_total")
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("sampler shutdown: %v", err)
		}
		transport.CloseIdleConnections()

		// What a span costs the buffer, bounded from above: its encoding
		// (about 260 bytes here), the same again for arena slack and its
		// record, and a trace's fixed overhead shared by five spans.
		spanSize := len(splitHalf([]pcommon.TraceID{{1}}, []bool{false}, false, payload, time.Now())) / 5
		overhead := float64(intakeSpans * (2*spanSize + 100))
		if sentSpans < 10*int(maxBytes/(2*spanSize)) {
			t.Errorf("sent %d spans, not 10x the buffer", sentSpans)
		}
		if retries == 0 || float64(retries) != refused {
			t.Errorf("clients retried %d times, the sampler refused %v requests: want the same, > 0", retries, refused)
		}
		if overloaded == 0 {
			t.Error("no request was refused for a full buffer: the test did not reach the limit")
		}
		if stress != 0 {
			t.Errorf("%v traces decided by stress relief under push_back", stress)
		}
		if peak > maxBytes+overhead {
			t.Errorf("buffered bytes peaked at %v, bound %d + %v", peak, maxBytes, overhead)
		}
		exp.mu.Lock()
		defer exp.mu.Unlock()
		if exp.err != nil {
			t.Fatal(exp.err)
		}
		partial := 0
		for _, id := range errTraces {
			if n := exp.byTrace[id]; n != 10 {
				partial++
				if partial <= 5 {
					t.Errorf("error trace %x: %d of 10 spans exported", id, n)
				}
			}
		}
		if partial > 0 {
			t.Errorf("%d of %d error traces not exported whole", partial, len(errTraces))
		}
		t.Logf("%d spans sent by %d clients, %d retries after 429, %v traces decided early (verdict final), "+
			"peak buffered %v bytes (limit %d + overhead %v), %d error traces all exported whole",
			sentSpans, clients, retries, early, peak, maxBytes, overhead, len(errTraces))
	})
}

func gatherSum(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				sum += metricValue(m)
			}
		}
	}
	return sum
}
