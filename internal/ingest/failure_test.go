package ingest

import (
	"bytes"
	"context"
	"errors"
	"net/http"
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

// TestMaxSpansPerRequest sends 11 empty spans with a limit of 10: the
// request is refused whole with 400 naming the limit, nothing reaches the
// consumer, and a valid request is served afterwards.
func TestMaxSpansPerRequest(t *testing.T) {
	cfg := testConfig()
	cfg.MaxSpansPerRequest = 10
	rec := &recorder{}
	r, _ := startReceiver(t, cfg, rec)
	var body []byte
	for range 11 {
		body = append(body, 0x12, 0x00) // ScopeSpans.spans, an empty span
	}
	body = append([]byte{0x12, byte(len(body))}, body...) // ResourceSpans.scope_spans
	body = append([]byte{0x0a, byte(len(body))}, body...) // request.resource_spans
	client := newHTTPClient(t)
	res := postHTTP(t, client, r.HTTPAddr(), http.MethodPost, contentTypeProtobuf, "", bytes.NewReader(body))
	if res.status != http.StatusBadRequest || !strings.Contains(string(res.body), "more than 10 spans") {
		t.Errorf("11 spans: HTTP %d %q, want 400 naming the limit", res.status, res.body)
	}
	if n := rec.callCount(); n != 0 {
		t.Errorf("consumer called %d times for a refused request", n)
	}
	if res := postHTTP(t, client, r.HTTPAddr(), http.MethodPost, contentTypeProtobuf, "", bytes.NewReader(validRequest())); res.status != http.StatusOK {
		t.Errorf("valid request afterwards: HTTP %d %q", res.status, res.body)
	}
}
