package shed

import (
	"context"
	"strings"

	otelcodes "go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// UnaryServerInterceptor returns a gRPC interceptor that admits or refuses
// unary calls by their criticality, as Middleware does for HTTP. A refused
// call fails with RESOURCE_EXHAUSTED and the trailer
// grpc-retry-pushback-ms, and its span's status is set to ERROR so that it
// counts as bad for availability. The criticality is, in order: the context's, the
// metadata key Config.Header (in lower case), Config.Methods, else Default.
func (s *Shedder) UnaryServerInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		c, ctx, tok, err := s.admitRPC(ctx, info.FullMethod)
		if err != nil {
			_ = grpc.SetTrailer(ctx, metadata.Pairs("grpc-retry-pushback-ms", s.pushback))
			return nil, err
		}
		defer tok.Done()
		return handler(WithCriticality(ctx, c), req)
	}
}

// StreamServerInterceptor returns a gRPC interceptor that admits or refuses
// streams by their criticality, as UnaryServerInterceptor does for unary
// calls. A stream holds its place in the limit until it ends, but its
// duration is not taken as a latency sample (see Token.Ignore).
func (s *Shedder) StreamServerInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		c, ctx, tok, err := s.admitRPC(ss.Context(), info.FullMethod)
		if err != nil {
			ss.SetTrailer(metadata.Pairs("grpc-retry-pushback-ms", s.pushback))
			return err
		}
		defer tok.Ignore()
		return handler(srv, &criticalStream{ServerStream: ss, ctx: WithCriticality(ctx, c)})
	}
}

// admitRPC decides a call; err is the RESOURCE_EXHAUSTED status when it is
// refused.
func (s *Shedder) admitRPC(ctx context.Context, method string) (Criticality, context.Context, Token, error) {
	c, ok := FromContext(ctx)
	if !ok {
		c = s.rpcCriticality(ctx, method)
	}
	span := trace.SpanFromContext(ctx)
	recording := span.IsRecording()
	tok, reason := s.Acquire(ctx, c)
	if reason != None {
		msg := "service overloaded: request shed (" + reason.String() + ")"
		if recording {
			span.SetAttributes(AttrCriticality.String(c.String()), AttrReason.String(reason.String()))
			// RESOURCE_EXHAUSTED is not a server fault to tailgate or to
			// otelgrpc, which leaves the status unset; a shed call failed
			// for the server's reasons, as a shed HTTP request's 503
			// says. ERROR outranks the later unset status.
			span.SetStatus(otelcodes.Error, msg)
		}
		return c, ctx, Token{}, status.Error(codes.ResourceExhausted, msg)
	}
	if recording {
		span.SetAttributes(AttrCriticality.String(c.String()))
	}
	return c, ctx, tok, nil
}

// rpcCriticality reads a call's criticality from the metadata, then the
// method table (the full method, then its service prefix).
func (s *Shedder) rpcCriticality(ctx context.Context, method string) Criticality {
	if vs := metadata.ValueFromIncomingContext(ctx, s.grpcHeader); len(vs) > 0 {
		if c, err := ParseCriticality(vs[0]); err == nil {
			return c
		}
	}
	if len(s.methods) > 0 {
		if c, ok := s.methods[method]; ok {
			return c
		}
		if i := strings.LastIndexByte(method, '/'); i > 0 {
			if c, ok := s.methods[method[:i+1]]; ok {
				return c
			}
		}
	}
	return Default
}

// criticalStream is a ServerStream whose context carries the criticality.
type criticalStream struct {
	grpc.ServerStream
	ctx context.Context
}

// Context returns the stream's context with its criticality.
func (s *criticalStream) Context() context.Context { return s.ctx }
