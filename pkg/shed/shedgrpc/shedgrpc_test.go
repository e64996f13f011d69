package shedgrpc_test

import (
	"context"
	"net"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.opentelemetry.io/otel/attribute"
	otelcodes "go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	"github.com/tailgate-sre/tailgate/pkg/shed"
	"github.com/tailgate-sre/tailgate/pkg/shed/shedgrpc"
)

// fixedLimit is a shed.Config whose limit cannot move from n.
func fixedLimit(n int) shed.Config {
	return shed.Config{Limit: shed.LimitConfig{Initial: n, Min: n, Max: n}}
}

func mustNew(t *testing.T, cfg shed.Config) *shed.Shedder {
	t.Helper()
	s, err := shed.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Shutdown(context.Background()) })
	return s
}

// grpcHarness serves the gRPC health service behind the interceptors over
// an in-memory connection; seen records the criticality handlers saw.
func grpcHarness(t *testing.T, s *shed.Shedder) (healthpb.HealthClient, *[]shed.Criticality) {
	t.Helper()
	var seen []shed.Criticality
	record := func(ctx context.Context) {
		c, _ := shed.FromContext(ctx)
		seen = append(seen, c)
	}
	lis := bufconn.Listen(1 << 16)
	srv := grpc.NewServer(
		grpc.ChainUnaryInterceptor(shedgrpc.UnaryServerInterceptor(s),
			func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
				record(ctx)
				return h(ctx, req)
			}),
		grpc.ChainStreamInterceptor(shedgrpc.StreamServerInterceptor(s),
			func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
				record(ss.Context())
				return h(srv, ss)
			}),
	)
	healthpb.RegisterHealthServer(srv, health.NewServer())
	go func() { _ = srv.Serve(lis) }()
	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = conn.Close()
		srv.Stop()
	})
	return healthpb.NewHealthClient(conn), &seen
}

func TestGRPCInterceptors(t *testing.T) {
	// Limit 2: sheddable and default may fill 1, critical 2.
	cfg := fixedLimit(2)
	cfg.Methods = map[string]shed.Criticality{
		"/grpc.health.v1.Health/":      shed.Sheddable,
		"/grpc.health.v1.Health/Check": shed.Critical,
	}
	s := mustNew(t, cfg)
	client, seen := grpcHarness(t, s)
	ctx := t.Context()

	// Check is critical by its full method, Watch sheddable by its
	// service.
	if _, err := client.Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatalf("Check: %v", err)
	}
	watch, err := client.Watch(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := watch.Recv(); err != nil {
		t.Fatalf("Watch: %v", err)
	}
	// The open stream holds one of the two places.
	if got := s.InFlight(); got != 1 {
		t.Errorf("InFlight with a stream open = %d, want 1", got)
	}
	// A second sheddable stream is refused.
	watch2, err := client.Watch(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = watch2.Recv()
	if status.Code(err) != codes.ResourceExhausted {
		t.Errorf("second Watch: %v, want RESOURCE_EXHAUSTED", err)
	}
	if got := watch2.Trailer().Get("grpc-retry-pushback-ms"); len(got) != 1 || got[0] != "1000" {
		t.Errorf("stream pushback trailer = %q, want [1000]", got)
	}
	// Metadata over the method table: a sheddable Check is refused, with
	// the pushback trailer.
	var trailer metadata.MD
	shedCtx := metadata.AppendToOutgoingContext(ctx, "x-criticality", "sheddable")
	_, err = client.Check(shedCtx, &healthpb.HealthCheckRequest{}, grpc.Trailer(&trailer))
	if status.Code(err) != codes.ResourceExhausted {
		t.Errorf("sheddable Check: %v, want RESOURCE_EXHAUSTED", err)
	}
	if got := trailer.Get("grpc-retry-pushback-ms"); len(got) != 1 || got[0] != "1000" {
		t.Errorf("unary pushback trailer = %q, want [1000]", got)
	}
	if _, err := client.Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
		t.Errorf("critical Check at 1 of 2: %v", err)
	}
	want := []shed.Criticality{shed.Critical, shed.Sheddable, shed.Critical}
	if len(*seen) != len(want) {
		t.Fatalf("handlers saw %v, want %v", *seen, want)
	}
	for i := range want {
		if (*seen)[i] != want[i] {
			t.Errorf("handler %d saw %s, want %s", i, (*seen)[i], want[i])
		}
	}
}

func TestGRPCRefusalSpan(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	s := mustNew(t, fixedLimit(2))
	ctx, span := tp.Tracer("test").Start(t.Context(), "/pkg.S/M")
	ctx = metadata.NewIncomingContext(ctx, metadata.Pairs("x-criticality", "sheddable"))
	s.SetSheddablePercent(100)
	_, err := shedgrpc.UnaryServerInterceptor(s)(ctx, nil, &grpc.UnaryServerInfo{FullMethod: "/pkg.S/M"},
		func(context.Context, any) (any, error) { t.Error("handler ran"); return nil, nil })
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("err = %v, want RESOURCE_EXHAUSTED", err)
	}
	// What otelgrpc does at the end for RESOURCE_EXHAUSTED: leave the
	// status unset. It must not undo ERROR.
	span.SetStatus(otelcodes.Unset, "")
	span.End()
	got := rec.Ended()[0]
	if got.Status().Code != otelcodes.Error {
		t.Errorf("span status %v, want Error", got.Status())
	}
	attrs := map[attribute.Key]string{}
	for _, kv := range got.Attributes() {
		attrs[kv.Key] = kv.Value.AsString()
	}
	want := map[attribute.Key]string{shed.AttrCriticality: "sheddable", shed.AttrReason: "shed_level"}
	if diff := cmp.Diff(want, attrs); diff != "" {
		t.Errorf("span attributes (-want +got):\n%s", diff)
	}
}
