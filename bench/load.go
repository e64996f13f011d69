// Package bench holds tailgate's end-to-end benchmark and its comparison
// with the OpenTelemetry Collector's tail sampling (see docs/benchmarks.md):
// a load generator of 10-span traces sent as pre-encoded OTLP/gRPC requests,
// which runs in its own process so that the process CPU time of the system
// under test counts only that system's work, and helpers that read a
// process's CPU time and memory from /proc.
package bench

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/mem"
)

// exportMethod is the OTLP/gRPC trace export method.
const exportMethod = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"

// SpansPerTrace is the size of every generated trace: one root server span
// and nine children.
const SpansPerTrace = 10

// LoadConfig describes one run of the load generator.
type LoadConfig struct {
	// Addr is the OTLP/gRPC endpoint (host:port).
	Addr string `json:"addr"`
	// Spans is how many spans to send in all (rounded up to whole requests).
	Spans int `json:"spans"`
	// Rate is the target spans per second over all connections; 0 sends as
	// fast as the server answers.
	Rate int `json:"rate"`
	// Conns is the number of gRPC connections, each with one sender.
	Conns int `json:"conns"`
	// TracesPerRequest is how many traces each request carries.
	TracesPerRequest int `json:"traces_per_request"`
	// NoRoots leaves the root spans out, so that every trace waits for its
	// decision (the memory phase): 9 spans per trace are sent.
	NoRoots bool `json:"no_roots"`
	// Seed makes the trace IDs of one run differ from another's.
	Seed uint64 `json:"seed"`
}

// LoadResult is what a run of the load generator reports.
type LoadResult struct {
	Spans    int64         `json:"spans"`    // spans accepted by the server
	Requests int64         `json:"requests"` // requests accepted
	Retries  int64         `json:"retries"`  // rejected attempts that were retried
	Wall     time.Duration `json:"wall"`
}

// rawCodec sends pre-encoded protobuf bytes as they are and ignores the
// response, so the load generator spends no CPU on encoding.
type rawCodec struct{}

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	b, ok := v.(*[]byte)
	if !ok {
		return nil, fmt.Errorf("rawCodec: cannot marshal %T", v)
	}
	return mem.BufferSlice{mem.SliceBuffer(*b)}, nil
}

func (rawCodec) Unmarshal(mem.BufferSlice, any) error { return nil }

func (rawCodec) Name() string { return "proto" }

// template is one encoded request whose trace IDs are rewritten before each
// send: ids[i] are the offsets of trace i's 16-byte ID in body.
type template struct {
	body []byte
	ids  [][]int
}

// mix is splitmix64: it spreads a counter over 64 bits so that
// ID-hash-based sampling sees uniformly distributed trace IDs.
func mix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// services are the resources of a generated trace, in call order.
var services = [3]string{"frontend", "checkout", "payment"}

// buildTemplate encodes one request of n traces. Trace k of the request
// (counting from first) is an error trace when k%33 == 0 (3%) and a slow
// one (root 1.5s) when k%50 == 7 (2%).
func buildTemplate(n, first int, noRoots bool, now time.Time, rng *rand.Rand) (template, error) {
	td := ptrace.NewTraces()
	var scopes [3]ptrace.SpanSlice
	for i, svc := range services {
		rs := td.ResourceSpans().AppendEmpty()
		rs.Resource().Attributes().PutStr("service.name", svc)
		rs.Resource().Attributes().PutStr("service.version", "1.4.2")
		rs.Resource().Attributes().PutStr("deployment.environment.name", "bench")
		rs.Resource().Attributes().PutStr("host.name", "bench-host-1")
		ss := rs.ScopeSpans().AppendEmpty()
		ss.Scope().SetName("bench")
		scopes[i] = ss.Spans()
	}
	placeholders := make([][16]byte, n)
	for k := range n {
		var tid [16]byte
		binary.BigEndian.PutUint64(tid[:8], rng.Uint64())
		binary.BigEndian.PutUint64(tid[8:], rng.Uint64())
		placeholders[k] = tid
		global := first + k
		isErr := global%33 == 0
		isSlow := global%50 == 7
		rootDur := 80 * time.Millisecond
		if isSlow {
			rootDur = 1500 * time.Millisecond
		}
		start := now.Add(-rootDur)
		var sid uint64 = rng.Uint64()
		spanID := func() pcommon.SpanID {
			sid++
			var s pcommon.SpanID
			binary.BigEndian.PutUint64(s[:], sid)
			return s
		}
		add := func(svc int, parent pcommon.SpanID, name string, kind ptrace.SpanKind, off, dur time.Duration, failed bool, attrs map[string]any) pcommon.SpanID {
			id := spanID()
			sp := scopes[svc].AppendEmpty()
			sp.SetTraceID(pcommon.TraceID(tid))
			sp.SetSpanID(id)
			sp.SetParentSpanID(parent)
			sp.SetName(name)
			sp.SetKind(kind)
			sp.SetStartTimestamp(pcommon.NewTimestampFromTime(start.Add(off)))
			sp.SetEndTimestamp(pcommon.NewTimestampFromTime(start.Add(off + dur)))
			for key, v := range attrs {
				switch v := v.(type) {
				case string:
					sp.Attributes().PutStr(key, v)
				case int:
					sp.Attributes().PutInt(key, int64(v))
				}
			}
			if failed {
				sp.Status().SetCode(ptrace.StatusCodeError)
				sp.Status().SetMessage("payment declined by upstream")
			}
			return id
		}
		code := 200
		if isErr {
			code = 500
		}
		var root pcommon.SpanID
		if noRoots {
			root = spanID() // children point at a root that has not come yet
		} else {
			root = add(0, pcommon.SpanID{}, "POST /api/checkout", ptrace.SpanKindServer, 0, rootDur, isErr,
				map[string]any{"http.request.method": "POST", "http.route": "/api/checkout", "http.response.status_code": code, "url.scheme": "https"})
		}
		d := rootDur / 10
		render := add(0, root, "render cart", ptrace.SpanKindInternal, d/2, d, false, nil)
		add(0, render, "template", ptrace.SpanKindInternal, d/2, d/2, false, nil)
		cli := add(0, root, "POST", ptrace.SpanKindClient, 2*d, 7*d, isErr,
			map[string]any{"http.request.method": "POST", "server.address": "checkout", "http.response.status_code": code})
		srv := add(1, cli, "POST /api/checkout", ptrace.SpanKindServer, 2*d+d/10, 6*d, isErr,
			map[string]any{"http.request.method": "POST", "http.route": "/api/checkout", "http.response.status_code": code})
		add(1, srv, "SELECT carts", ptrace.SpanKindClient, 3*d, d, false,
			map[string]any{"db.system.name": "postgresql", "db.operation.name": "SELECT", "db.collection.name": "carts"})
		add(1, srv, "validate", ptrace.SpanKindInternal, 4*d, d/2, false, nil)
		pcli := add(1, srv, "POST", ptrace.SpanKindClient, 5*d, 2*d, isErr,
			map[string]any{"http.request.method": "POST", "server.address": "payment", "http.response.status_code": code})
		psrv := add(2, pcli, "POST /charge", ptrace.SpanKindServer, 5*d+d/10, 2*d-d/5, isErr,
			map[string]any{"http.request.method": "POST", "http.route": "/charge", "http.response.status_code": code})
		add(2, psrv, "charge card", ptrace.SpanKindInternal, 5*d+d/5, d, isErr, nil)
	}
	body, err := ptraceotlp.NewExportRequestFromTraces(td).MarshalProto()
	if err != nil {
		return template{}, err
	}
	t := template{body: body, ids: make([][]int, n)}
	for k, tid := range placeholders {
		for off := 0; ; {
			i := bytes.Index(body[off:], tid[:])
			if i < 0 {
				break
			}
			t.ids[k] = append(t.ids[k], off+i)
			off += i + 16
		}
		want := SpansPerTrace
		if noRoots {
			want--
		}
		if len(t.ids[k]) != want {
			return template{}, fmt.Errorf("trace %d: found its ID %d times in the encoding, want %d", k, len(t.ids[k]), want)
		}
	}
	return t, nil
}

// RunLoad sends cfg.Spans spans over cfg.Conns connections and returns when
// every request was accepted (rejected ones are retried) or ctx ends.
func RunLoad(ctx context.Context, cfg LoadConfig) (LoadResult, error) {
	if cfg.Conns <= 0 || cfg.TracesPerRequest <= 0 || cfg.Spans <= 0 {
		return LoadResult{}, errors.New("loadgen: conns, traces_per_request and spans must be positive")
	}
	perTrace := SpansPerTrace
	if cfg.NoRoots {
		perTrace--
	}
	perReq := perTrace * cfg.TracesPerRequest
	totalReqs := (cfg.Spans + perReq - 1) / perReq
	const templatesPerConn = 8
	now := time.Now()
	var res LoadResult
	var wg sync.WaitGroup
	errc := make(chan error, cfg.Conns)
	var next atomic.Int64 // request sequence number over all connections
	begin := time.Now()
	for c := range cfg.Conns {
		rng := rand.New(rand.NewPCG(cfg.Seed, uint64(c)))
		tpls := make([]template, templatesPerConn)
		for i := range tpls {
			var err error
			if tpls[i], err = buildTemplate(cfg.TracesPerRequest, (c*templatesPerConn+i)*cfg.TracesPerRequest, cfg.NoRoots, now, rng); err != nil {
				return res, err
			}
		}
		conn, err := grpc.NewClient(cfg.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return res, err
		}
		defer conn.Close()
		wg.Add(1)
		go func() {
			defer wg.Done()
			var reply []byte
			for {
				seq := next.Add(1) - 1
				if seq >= int64(totalReqs) {
					return
				}
				if cfg.Rate > 0 { // open loop: request seq is due at seq*perReq/rate
					due := begin.Add(time.Duration(float64(seq) * float64(perReq) / float64(cfg.Rate) * float64(time.Second)))
					if d := time.Until(due); d > 0 {
						select {
						case <-time.After(d):
						case <-ctx.Done():
							errc <- ctx.Err()
							return
						}
					}
				}
				t := &tpls[seq%templatesPerConn]
				for k, offs := range t.ids {
					n := uint64(seq)*uint64(cfg.TracesPerRequest) + uint64(k)
					hi, lo := mix(cfg.Seed^n), mix(n^0x5bd1e995)
					for _, o := range offs {
						binary.BigEndian.PutUint64(t.body[o:], hi)
						binary.BigEndian.PutUint64(t.body[o+8:], lo)
					}
				}
				for attempt := 0; ; attempt++ {
					err := conn.Invoke(ctx, exportMethod, &t.body, &reply, grpc.ForceCodecV2(rawCodec{}))
					if err == nil {
						break
					}
					if ctx.Err() != nil || attempt == 50 {
						errc <- fmt.Errorf("export request %d: %w", seq, err)
						return
					}
					atomic.AddInt64(&res.Retries, 1)
					select {
					case <-time.After(20 * time.Millisecond):
					case <-ctx.Done():
					}
				}
				atomic.AddInt64(&res.Requests, 1)
				atomic.AddInt64(&res.Spans, int64(perReq))
			}
		}()
	}
	wg.Wait()
	res.Wall = time.Since(begin)
	close(errc)
	return res, <-errc
}
