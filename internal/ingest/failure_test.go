package ingest

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// TestListenerFailureIsReported closes each listener under its server, as a
// dying socket would: the receiver must report it through OnFailure, naming
// the protocol, instead of living on half dead. A Shutdown, by contrast,
// reports nothing.
func TestListenerFailureIsReported(t *testing.T) {
	for _, tc := range []struct {
		name     string
		listener func(*Receiver) interface{ Close() error }
		want     string
	}{
		{"grpc", func(r *Receiver) interface{ Close() error } { return r.grpcLis }, "OTLP/gRPC receiver"},
		{"http", func(r *Receiver) interface{ Close() error } { return r.httpLis }, "OTLP/HTTP receiver"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			failures := make(chan error, 2)
			r, err := New(testConfig(), Settings{Consumer: &recorder{}, OnFailure: func(err error) { failures <- err }})
			if err != nil {
				t.Fatal(err)
			}
			if err := r.Start(t.Context()); err != nil {
				t.Fatal(err)
			}
			if err := tc.listener(r).Close(); err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-failures:
				if !strings.Contains(err.Error(), tc.want) {
					t.Errorf("failure = %q, want it to name %q", err, tc.want)
				}
			case <-time.After(time.Minute): // a readiness bound, not a measurement
				t.Fatal("no failure reported after the listener closed")
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := r.Shutdown(ctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
				t.Logf("shutdown after failure: %v", err)
			}
			r.serving.Wait()
			if len(failures) != 0 {
				t.Errorf("Shutdown reported %v as a failure", <-failures)
			}
		})
	}
}

// TestShutdownIsNoFailure checks that a normal shutdown does not call
// OnFailure.
func TestShutdownIsNoFailure(t *testing.T) {
	failures := make(chan error, 2)
	r, err := New(testConfig(), Settings{Consumer: &recorder{}, OnFailure: func(err error) { failures <- err }})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	r.serving.Wait()
	if len(failures) != 0 {
		t.Errorf("Shutdown reported %v as a failure", <-failures)
	}
}
