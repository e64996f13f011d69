package ingest

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/encoding"
	_ "google.golang.org/grpc/encoding/gzip"  // OTLP clients may gzip; registers the decompressor
	_ "google.golang.org/grpc/encoding/proto" // the codec the health service's messages need
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/tap"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/tailgate-sre/tailgate/internal/otlp"
)

// The OTLP trace service, from
// opentelemetry/proto/collector/trace/v1/trace_service.proto.
const (
	traceServiceName = "opentelemetry.proto.collector.trace.v1.TraceService"
	exportMethod     = "/" + traceServiceName + "/Export"
)

// grpcReadBuffer is the OTLP/gRPC receiver's read buffer per connection
// with bytes to read.
const grpcReadBuffer = 256 << 10

// traceService is the handler type of the hand-written service description.
type traceService interface {
	export(ctx context.Context, dec func(any) error) (any, error)
}

var _ traceService = (*Receiver)(nil)

func (r *Receiver) newGRPCServer() (*grpc.Server, *health.Server) {
	opts := []grpc.ServerOption{
		grpc.ForceServerCodecV2(rawCodec{proto: encoding.GetCodecV2("proto")}),
		// grpc-go enforces this on the received and the decompressed size
		// with RESOURCE_EXHAUSTED when the handler reads the message.
		grpc.MaxRecvMsgSize(int(r.cfg.MaxMessageSize)),
		// A fixed window (ingest.grpc_window) instead of grpc-go's estimate,
		// which between near hosts stays at 64KiB and acknowledges every
		// 16KiB frame: a WINDOW_UPDATE and a ping written per frame.
		grpc.InitialWindowSize(int32(r.cfg.GRPCWindow)),
		grpc.InitialConnWindowSize(int32(r.cfg.GRPCWindow)),
		// A request of a few hundred KiB is read in a few syscalls, not
		// one per 32KiB. grpc-go takes the buffer from a pool only while a
		// connection has bytes to read, so idle connections do not hold it.
		grpc.ReadBufferSize(grpcReadBuffer),
		// Requests run on long-lived goroutines whose stacks have grown to
		// what a request needs, rather than on a new goroutine each that
		// grows its stack again (2.8% of the daemon's CPU under
		// BenchmarkE2E's load). When every worker is busy, grpc-go starts
		// a goroutine as it would without them.
		grpc.NumStreamWorkers(uint32(max(4, runtime.GOMAXPROCS(0)))),
	}
	if r.tls != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(r.tls.ServerConfig("h2"))))
	}
	if r.admit != nil || r.auth != nil {
		opts = append(opts, grpc.InTapHandle(r.tap))
	}
	s := grpc.NewServer(opts...)
	s.RegisterService(&grpc.ServiceDesc{
		ServiceName: traceServiceName,
		HandlerType: (*traceService)(nil),
		Methods: []grpc.MethodDesc{{
			MethodName: "Export",
			Handler: func(srv any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
				// No interceptors are configured on this server.
				return srv.(traceService).export(ctx, dec)
			},
		}},
		Metadata: "opentelemetry/proto/collector/trace/v1/trace_service.proto",
	}, r)
	h := health.NewServer()
	h.SetServingStatus(traceServiceName, healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(s, h)
	return s, h
}

// export serves TraceService/Export.
func (r *Receiver) export(ctx context.Context, dec func(any) error) (any, error) {
	if !r.acquire(protocolGRPC) {
		r.count(protocolGRPC, outcomeBackpressure)
		return nil, retryStatus(codes.ResourceExhausted, "too many concurrent requests", defaultRetryAfter)
	}
	defer r.release(protocolGRPC)

	buf := r.getBuffer()
	defer r.putBuffer(buf)
	// grpc-go reads the message here, so the concurrency slot taken above
	// also bounds the memory of messages being received.
	if err := dec(buf); err != nil {
		o := outcomeInvalid
		if status.Code(err) == codes.ResourceExhausted {
			o = outcomeTooLarge // over MaxRecvMsgSize, compressed or not
		}
		r.count(protocolGRPC, o)
		r.logInvalid(ctx, protocolGRPC, peerAddr(ctx), err.Error())
		return nil, err
	}
	r.metrics.by[protocolGRPC].bytes.Observe(float64(len(buf.b)))
	res := r.process(ctx, protocolGRPC, buf.b)
	r.count(protocolGRPC, res.outcome)
	switch res.outcome {
	case outcomeOK:
		return []byte(nil), nil
	case outcomePartial:
		return otlp.AppendPartialSuccess(nil, int64(res.rejected), res.message), nil
	case outcomeInvalid:
		r.logInvalid(ctx, protocolGRPC, peerAddr(ctx), res.message)
		return nil, status.Error(codes.InvalidArgument, res.message)
	case outcomeBackpressure:
		return nil, retryStatus(codes.ResourceExhausted, res.message, res.retry)
	default:
		return nil, status.Error(codes.Unavailable, res.message)
	}
}

// tap authenticates an Export (ingest.require_token) and refuses it while
// memory is short. It runs when the stream's headers arrive, before
// grpc-go reads the message (which it does before the handler runs), so a
// refused request costs no buffer. The context it returns, carrying the
// principal, is the handler's. The health service needs no token.
func (r *Receiver) tap(ctx context.Context, info *tap.Info) (context.Context, error) {
	if info.FullMethodName != exportMethod {
		return ctx, nil
	}
	var header string
	if v := info.Header.Get("authorization"); len(v) > 0 {
		header = v[0]
	}
	ctx, o, msg := r.authenticate(ctx, header)
	if o != outcomeOK {
		r.logInvalid(ctx, protocolGRPC, peerAddr(ctx), msg)
	}
	switch o {
	case outcomeUnauthenticated:
		r.count(protocolGRPC, o)
		return ctx, status.Error(codes.Unauthenticated, msg)
	case outcomeForbidden:
		r.count(protocolGRPC, o)
		return ctx, status.Error(codes.PermissionDenied, msg)
	}
	if r.admitted(protocolGRPC) {
		return ctx, nil
	}
	r.count(protocolGRPC, outcomeBackpressure)
	return ctx, retryStatus(codes.ResourceExhausted, errMemoryShort, defaultRetryAfter)
}

func peerAddr(ctx context.Context) string {
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		return p.Addr.String()
	}
	return ""
}

// retryStatus is a gRPC status carrying a google.rpc.RetryInfo, which OTLP
// clients need to treat RESOURCE_EXHAUSTED as retryable.
func retryStatus(code codes.Code, msg string, after time.Duration) error {
	st, err := status.New(code, msg).WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(after)})
	if err != nil {
		return status.Error(code, msg)
	}
	return st.Err()
}

// rawCodec hands the Export request over as bytes (into a *buffer the
// receiver owns) and writes []byte responses as they are. Other messages,
// those of the health service, go through the standard proto codec.
type rawCodec struct{ proto encoding.CodecV2 }

// Name is "proto": the request and response are protobuf messages, we just
// do not decode them here.
func (c rawCodec) Name() string { return "proto" }

func (c rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	if b, ok := v.([]byte); ok {
		if len(b) == 0 {
			return nil, nil
		}
		return mem.BufferSlice{mem.SliceBuffer(b)}, nil
	}
	if c.proto == nil {
		return nil, fmt.Errorf("raw codec: cannot marshal %T", v)
	}
	return c.proto.Marshal(v)
}

func (c rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	if buf, ok := v.(*buffer); ok {
		// grpc frees data when we return, so copy into memory we own.
		n := data.Len()
		buf.b = slices.Grow(buf.b[:0], n)[:n]
		data.CopyTo(buf.b)
		return nil
	}
	if c.proto == nil {
		return fmt.Errorf("raw codec: cannot unmarshal into %T", v)
	}
	return c.proto.Unmarshal(data, v)
}
