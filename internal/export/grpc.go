package export

import (
	"context"
	"crypto/tls"
	"fmt"
	"strings"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding/gzip" // registers the gzip compressor
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

const traceExportMethod = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"

// rawCodec passes request bytes through to gRPC without a protobuf
// round trip: a *batch goes out as its requests' bytes, one buffer each (no
// copy), and a response arrives as *[]byte.
type rawCodec struct{}

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	b, ok := v.(*batch)
	if !ok {
		return nil, fmt.Errorf("raw codec: cannot marshal %T", v)
	}
	out := make(mem.BufferSlice, len(b.reqs))
	for i, r := range b.reqs {
		// SliceBuffer's Free is a no-op: the bytes stay ours, and a batch's
		// bytes are never reused, so gRPC may hold them as long as it likes.
		out[i] = mem.SliceBuffer(r)
	}
	return out, nil
}

func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	p, ok := v.(*[]byte)
	if !ok {
		return fmt.Errorf("raw codec: cannot unmarshal into %T", v)
	}
	*p = data.Materialize()
	return nil
}

// Name is "proto" so the content type is application/grpc+proto, which
// every OTLP receiver accepts.
func (rawCodec) Name() string { return "proto" }

// grpcClient sends batches with OTLP/gRPC.
type grpcClient struct {
	target string
	creds  credentials.TransportCredentials
	md     metadata.MD
	opts   []grpc.CallOption
	conn   *grpc.ClientConn
}

func newGRPCClient(o *OTLPConfig, ep endpoint, tlsConf *tls.Config) *grpcClient {
	c := &grpcClient{
		target: ep.hostPort,
		creds:  insecure.NewCredentials(),
		opts:   []grpc.CallOption{grpc.ForceCodecV2(rawCodec{})},
	}
	if tlsConf != nil {
		c.creds = credentials.NewTLS(tlsConf)
	}
	if o.gzip() {
		c.opts = append(c.opts, grpc.UseCompressor(gzip.Name))
	}
	if len(o.Headers) > 0 {
		c.md = metadata.MD{}
		for k, v := range o.Headers {
			c.md.Append(strings.ToLower(k), v)
		}
	}
	return c
}

func (c *grpcClient) start(context.Context) error {
	// NewClient connects lazily, on the first call, and reconnects by itself.
	conn, err := grpc.NewClient(c.target,
		grpc.WithTransportCredentials(c.creds),
		grpc.WithUserAgent(userAgent))
	if err != nil {
		return fmt.Errorf("create gRPC client for %s: %w", c.target, err)
	}
	c.conn = conn
	return nil
}

func (c *grpcClient) send(ctx context.Context, b *batch) (partialSuccess, error) {
	if c.md != nil {
		ctx = metadata.NewOutgoingContext(ctx, c.md)
	}
	var resp []byte
	err := c.conn.Invoke(ctx, traceExportMethod, b, &resp, c.opts...)
	if err == nil {
		ps, perr := parsePartialSuccess(resp)
		if perr != nil {
			// The batch was accepted; an unreadable response only loses
			// the partial success detail.
			return partialSuccess{}, nil
		}
		return ps, nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return partialSuccess{}, retryable(err, 0)
	}
	var throttle time.Duration
	hasRetryInfo := false
	for _, d := range st.Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok && ri.GetRetryDelay() != nil {
			hasRetryInfo = true
			throttle = max(ri.GetRetryDelay().AsDuration(), 0)
		}
	}
	err = fmt.Errorf("gRPC export: %s: %s", st.Code(), truncate(st.Message(), maxMessageLen))
	switch st.Code() {
	case codes.Canceled, codes.DeadlineExceeded, codes.Aborted, codes.OutOfRange, codes.Unavailable, codes.DataLoss:
		return partialSuccess{}, retryable(err, throttle)
	case codes.ResourceExhausted:
		// Per the OTLP spec, only retryable when the server says when.
		if hasRetryInfo {
			return partialSuccess{}, retryable(err, throttle)
		}
	}
	return partialSuccess{}, permanent(err)
}

func (c *grpcClient) shutdown(context.Context) error {
	if c.conn == nil {
		return nil
	}
	if err := c.conn.Close(); err != nil {
		return fmt.Errorf("close gRPC client: %w", err)
	}
	return nil
}
