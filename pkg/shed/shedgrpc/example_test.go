package shedgrpc_test

import (
	"context"
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/tailgate-sre/tailgate/pkg/shed"
	"github.com/tailgate-sre/tailgate/pkg/shed/shedgrpc"
)

func ExampleUnaryServerInterceptor() {
	s, err := shed.New(shed.Config{
		Methods: map[string]shed.Criticality{
			"/shop.Checkout/Pay": shed.Critical,
			"/shop.Reports/":     shed.Sheddable, // every method of the service
		},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Shutdown(context.Background())
	srv := grpc.NewServer(
		// grpc.StatsHandler(otelgrpc.NewServerHandler()) first, for the spans.
		grpc.ChainUnaryInterceptor(shedgrpc.UnaryServerInterceptor(s)),
		grpc.ChainStreamInterceptor(shedgrpc.StreamServerInterceptor(s)),
	)
	defer srv.Stop()
	// Register the services on srv and serve.

	// What a call meets, here without a network:
	s.SetSheddablePercent(100)
	intercept := shedgrpc.UnaryServerInterceptor(s)
	handler := func(ctx context.Context, _ any) (any, error) {
		c, _ := shed.FromContext(ctx)
		return "served as " + c.String(), nil
	}
	for _, method := range []string{"/shop.Checkout/Pay", "/shop.Reports/Daily"} {
		resp, err := intercept(context.Background(), nil, &grpc.UnaryServerInfo{FullMethod: method}, handler)
		fmt.Println(method, resp, status.Code(err))
	}
	// A caller's metadata comes before the method table.
	ctx := metadata.NewIncomingContext(context.Background(), metadata.Pairs("x-criticality", "critical"))
	resp, err := intercept(ctx, nil, &grpc.UnaryServerInfo{FullMethod: "/shop.Reports/Daily"}, handler)
	fmt.Println("/shop.Reports/Daily with x-criticality: critical:", resp, status.Code(err))
	// Output:
	// /shop.Checkout/Pay served as critical OK
	// /shop.Reports/Daily <nil> ResourceExhausted
	// /shop.Reports/Daily with x-criticality: critical: served as critical OK
}
