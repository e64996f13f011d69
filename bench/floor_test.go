package bench

import (
	"context"
	"net"
	"runtime"
	"sync/atomic"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/mem"

	"github.com/tailgate-sre/tailgate/internal/ingest"
)

// countingCodec receives a request's bytes as tailgate's receiver does
// (into one contiguous slice) and does nothing else with them.
type countingCodec struct{ bytes *atomic.Int64 }

func (countingCodec) Marshal(any) (mem.BufferSlice, error) { return nil, nil }

func (c countingCodec) Unmarshal(data mem.BufferSlice, _ any) error {
	b := data.Materialize()
	c.bytes.Add(int64(len(b)))
	return nil
}

func (countingCodec) Name() string { return "proto" }

// BenchmarkGRPCFloor measures what BenchmarkE2E's load costs a grpc-go
// server that only receives it: the OTLP trace service's Export with
// tailgate's server options (internal/ingest/grpc.go: the default
// ingest.grpc_window and max_message_size, a 256KiB read buffer, stream
// workers), whose handler reads the message and answers an empty
// response. It is the floor under any OTLP/gRPC receiver written with
// grpc-go on this machine: the transport, the scheduler's hand-offs and
// the kernel, without parsing a byte.
func BenchmarkGRPCFloor(b *testing.B) {
	lis := floorListener(b)
	var received atomic.Int64
	ic := ingest.DefaultConfig()
	s := grpc.NewServer(
		grpc.ForceServerCodecV2(countingCodec{&received}),
		grpc.MaxRecvMsgSize(int(ic.MaxMessageSize)),
		grpc.InitialWindowSize(int32(ic.GRPCWindow)),
		grpc.InitialConnWindowSize(int32(ic.GRPCWindow)),
		grpc.ReadBufferSize(256<<10), // internal/ingest's grpcReadBuffer
		grpc.NumStreamWorkers(uint32(max(4, runtime.GOMAXPROCS(0)))),
	)
	s.RegisterService(&grpc.ServiceDesc{
		ServiceName: "opentelemetry.proto.collector.trace.v1.TraceService",
		HandlerType: (*any)(nil),
		Methods: []grpc.MethodDesc{{
			MethodName: "Export",
			Handler: func(_ any, _ context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
				var req []byte
				return []byte(nil), dec(&req)
			},
		}},
	}, struct{}{})
	served := make(chan error, 1)
	go func() { served <- s.Serve(lis) }()
	defer func() {
		s.Stop()
		if err := <-served; err != nil {
			b.Error(err)
		}
	}()

	measureFloor(b, lis.Addr().String(), &received)
}

// floorListener skips a floor benchmark under -short, else listens on a
// loopback port for its server.
func floorListener(b *testing.B) net.Listener {
	if testing.Short() {
		b.Skip("end-to-end benchmark")
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	return lis
}

// measureFloor sends BenchmarkE2E's load to a floor server at addr once per
// iteration and reports the process's spans per CPU-second and context
// switches per request; received counts the request bytes the server read.
func measureFloor(b *testing.B, addr string, received *atomic.Int64) {
	opts := loadOptions(b)
	var perCPU, perReq []float64
	seed := uint64(0)
	for b.Loop() {
		seed++
		runtime.GC()
		cpu0, sw0 := cpuSelf(b), switches(b, "self")
		res := spawnLoad(b, LoadConfig{Addr: addr, Spans: opts.spans, Rate: opts.rate, Conns: opts.conns, TracesPerRequest: opts.tracesPerReq, Seed: seed})
		cpu, sw := cpuSelf(b)-cpu0, perRequest(switches(b, "self")-sw0, res)
		if res.Requests == 0 || received.Load() == 0 {
			b.Fatalf("the server received %d requests, %d bytes", res.Requests, received.Load())
		}
		b.Logf("run %d: %d spans in %d requests (%.0f bytes each), %v CPU: %.0f spans/cpu-s, %.1f context switches per request",
			seed, res.Spans, res.Requests, float64(received.Swap(0))/float64(res.Requests), cpu, float64(res.Spans)/cpu.Seconds(), sw)
		perCPU = append(perCPU, float64(res.Spans)/cpu.Seconds())
		perReq = append(perReq, sw)
	}
	b.ReportMetric(median(perCPU), "spans/cpu-s")
	b.ReportMetric(median(perReq), "switches/request")
}
