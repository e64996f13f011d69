// Package shedgrpc admits or refuses gRPC calls with a [shed.Shedder]: the
// gRPC server interceptors of package shed, apart so that HTTP services do
// not link gRPC.
package shedgrpc

import (
	"context"
	"strconv"
	"strings"

	otelcodes "go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/tailgate-sre/tailgate/pkg/shed"
)

// pushbackKey is the trailer gRPC clients with a retry policy read for
// how long to wait before retrying.
const pushbackKey = "grpc-retry-pushback-ms"

// UnaryServerInterceptor returns an interceptor that admits or refuses
// unary calls by their criticality, as shed's Middleware does for HTTP.
// A refused call fails with RESOURCE_EXHAUSTED and the trailer
// grpc-retry-pushback-ms, and its span's status is set to ERROR so that it
// counts as bad for availability. The criticality is, in order: the
// context's (shed.WithCriticality), the metadata key Config.Header in
// lower case, Config.Methods, else Default.
func UnaryServerInterceptor(s *shed.Shedder) grpc.UnaryServerInterceptor {
	a := newAdmitter(s)
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		c, tok, err := a.admit(ctx, info.FullMethod)
		if err != nil {
			_ = grpc.SetTrailer(ctx, metadata.Pairs(pushbackKey, a.pushback))
			return nil, err
		}
		defer tok.Done()
		return handler(shed.WithCriticality(ctx, c), req)
	}
}

// StreamServerInterceptor returns an interceptor that admits or refuses
// streams by their criticality, as UnaryServerInterceptor does for unary
// calls. A stream holds its place in the limit until it ends, but its
// duration is not taken as a latency sample (see shed.Token.Ignore).
func StreamServerInterceptor(s *shed.Shedder) grpc.StreamServerInterceptor {
	a := newAdmitter(s)
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		ctx := ss.Context()
		c, tok, err := a.admit(ctx, info.FullMethod)
		if err != nil {
			ss.SetTrailer(metadata.Pairs(pushbackKey, a.pushback))
			return err
		}
		defer tok.Ignore()
		return handler(srv, &criticalStream{ServerStream: ss, ctx: shed.WithCriticality(ctx, c)})
	}
}

// admitter decides calls for one interceptor.
type admitter struct {
	s        *shed.Shedder
	header   string // metadata key, lower case
	pushback string // grpc-retry-pushback-ms value
}

func newAdmitter(s *shed.Shedder) *admitter {
	return &admitter{
		s:        s,
		header:   strings.ToLower(s.Header()),
		pushback: strconv.FormatInt(s.RetryAfter().Milliseconds(), 10),
	}
}

// admit decides a call; err is the RESOURCE_EXHAUSTED status when it is
// refused.
func (a *admitter) admit(ctx context.Context, method string) (shed.Criticality, shed.Token, error) {
	c, ok := shed.FromContext(ctx)
	if !ok {
		c = a.criticality(ctx, method)
	}
	tok, reason := a.s.Admit(ctx, c)
	if reason == shed.None {
		return c, tok, nil
	}
	msg := "service overloaded: request shed (" + reason.String() + ")"
	// RESOURCE_EXHAUSTED is not a server fault to tailgate or to otelgrpc,
	// which leaves the span status unset; a shed call failed for the
	// server's reasons, as a shed HTTP request's 503 says. ERROR outranks
	// the unset status set later.
	if span := trace.SpanFromContext(ctx); span.IsRecording() {
		span.SetStatus(otelcodes.Error, msg)
	}
	return c, shed.Token{}, status.Error(codes.ResourceExhausted, msg)
}

// criticality reads a call's criticality from the metadata, then the
// method table.
func (a *admitter) criticality(ctx context.Context, method string) shed.Criticality {
	if vs := metadata.ValueFromIncomingContext(ctx, a.header); len(vs) > 0 {
		if c, err := shed.ParseCriticality(vs[0]); err == nil {
			return c
		}
	}
	c, _ := a.s.MethodCriticality(method)
	return c
}

// criticalStream is a ServerStream whose context carries the criticality.
type criticalStream struct {
	grpc.ServerStream
	ctx context.Context
}

// Context returns the stream's context with its criticality.
func (s *criticalStream) Context() context.Context { return s.ctx }
