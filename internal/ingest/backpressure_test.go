package ingest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// fullError is a consumer error that asks the client to come back later.
type fullError struct{ after time.Duration }

func (e fullError) Error() string             { return "sampler buffer is full" }
func (e fullError) RetryAfter() time.Duration { return e.after }

var _ Backpressure = fullError{}

func TestConsumerErrors(t *testing.T) {
	tests := []struct {
		name string
		err  error

		wantCode       codes.Code
		wantRetryInfo  time.Duration // 0: no RetryInfo detail
		wantHTTP       int
		wantRetryAfter string
		wantMsg        string
		wantOutcome    outcome
	}{
		{
			name: "backpressure", err: fullError{2500 * time.Millisecond},
			wantCode: codes.ResourceExhausted, wantRetryInfo: 2500 * time.Millisecond,
			wantHTTP: 429, wantRetryAfter: "3", // 2.5s rounded up
			wantMsg: "sampler buffer is full", wantOutcome: outcomeBackpressure,
		},
		{
			name: "wrapped backpressure", err: fmt.Errorf("sampler: %w", fullError{time.Second}),
			wantCode: codes.ResourceExhausted, wantRetryInfo: time.Second,
			wantHTTP: 429, wantRetryAfter: "1",
			wantMsg: "sampler: sampler buffer is full", wantOutcome: outcomeBackpressure,
		},
		{
			name: "backpressure without a delay", err: fullError{0},
			wantCode: codes.ResourceExhausted, wantRetryInfo: time.Second,
			wantHTTP: 429, wantRetryAfter: "1",
			wantMsg: "sampler buffer is full", wantOutcome: outcomeBackpressure,
		},
		{
			name: "other error", err: errors.New("pipeline is shutting down"),
			wantCode: codes.Unavailable,
			wantHTTP: 503, wantRetryAfter: "1",
			wantMsg: "pipeline is shutting down", wantOutcome: outcomeUnavailable,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recorder{err: tt.err}
			r, _ := startReceiver(t, testConfig(), rec)

			_, err := export(t.Context(), dialRaw(t, r.GRPCAddr()), validRequest())
			st := status.Convert(err)
			if st.Code() != tt.wantCode || st.Message() != tt.wantMsg {
				t.Errorf("gRPC status = (%v, %q), want (%v, %q)", st.Code(), st.Message(), tt.wantCode, tt.wantMsg)
			}
			var gotRetry time.Duration
			for _, d := range st.Details() {
				if ri, ok := d.(*errdetails.RetryInfo); ok {
					gotRetry = ri.GetRetryDelay().AsDuration()
				}
			}
			if gotRetry != tt.wantRetryInfo {
				t.Errorf("RetryInfo delay = %v, want %v", gotRetry, tt.wantRetryInfo)
			}

			res := postHTTP(t, newHTTPClient(t), r.HTTPAddr(), http.MethodPost, contentTypeProtobuf, "", bytes.NewReader(validRequest()))
			if res.status != tt.wantHTTP || res.retryAfter != tt.wantRetryAfter {
				t.Errorf("HTTP = %d Retry-After %q, want %d Retry-After %q", res.status, res.retryAfter, tt.wantHTTP, tt.wantRetryAfter)
			}
			hst := decodeHTTPStatus(t, res)
			if codes.Code(hst.GetCode()) != tt.wantCode || hst.GetMessage() != tt.wantMsg {
				t.Errorf("HTTP body status = (%v, %q), want (%v, %q)", codes.Code(hst.GetCode()), hst.GetMessage(), tt.wantCode, tt.wantMsg)
			}

			for _, p := range []protocol{protocolGRPC, protocolHTTP} {
				if got := requestCount(r, p, tt.wantOutcome); got != 1 {
					t.Errorf("%s requests_total{outcome=%s} = %v, want 1", p, tt.wantOutcome, got)
				}
				// Refused spans are not accepted: the client sends them again.
				if got := metricValue(r.metrics.by[p].accepted); got != 0 {
					t.Errorf("%s spans_accepted_total = %v, want 0", p, got)
				}
			}
		})
	}
}

// TestConcurrencyLimit holds max_concurrent_requests requests inside the
// consumer and checks that one more gets backpressure on each protocol.
func TestConcurrencyLimit(t *testing.T) {
	const limit = 2
	rec := &recorder{entered: make(chan struct{}, 2*limit), block: make(chan struct{})}
	cfg := testConfig()
	cfg.MaxConcurrentRequests = limit
	r, _ := startReceiver(t, cfg, rec)
	cc := dialRaw(t, r.GRPCAddr())
	hc := newHTTPClient(t)

	done := make(chan error, 2*limit)
	for range limit {
		go func() {
			_, err := export(context.Background(), cc, validRequest())
			done <- err
		}()
		go func() {
			req, err := newPost(r.HTTPAddr(), validRequest())
			if err != nil {
				done <- err
				return
			}
			resp, err := hc.Do(req)
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode != 200 {
					err = fmt.Errorf("status %d", resp.StatusCode)
				}
			}
			done <- err
		}()
	}
	for range 2 * limit {
		<-rec.entered
	}
	for _, p := range []protocol{protocolGRPC, protocolHTTP} {
		if got := metricValue(r.metrics.by[p].inflight); got != limit {
			t.Errorf("%s inflight_requests = %v, want %d", p, got, limit)
		}
	}

	_, err := export(t.Context(), cc, validRequest())
	st := status.Convert(err)
	if st.Code() != codes.ResourceExhausted || len(st.Details()) != 1 {
		t.Errorf("gRPC request over the limit = %v with details %v, want RESOURCE_EXHAUSTED with RetryInfo", err, st.Details())
	}
	res := postHTTP(t, hc, r.HTTPAddr(), http.MethodPost, contentTypeProtobuf, "", bytes.NewReader(validRequest()))
	if res.status != http.StatusTooManyRequests || res.retryAfter != "1" {
		t.Errorf("HTTP request over the limit = %d Retry-After %q, want 429 Retry-After 1", res.status, res.retryAfter)
	}

	close(rec.block)
	for range 2 * limit {
		if err := <-done; err != nil {
			t.Errorf("request within the limit: %v", err)
		}
	}
	if diff := cmp.Diff(2*limit, len(rec.take())); diff != "" {
		t.Errorf("spans consumed (-want +got):\n%s", diff)
	}
	for _, p := range []protocol{protocolGRPC, protocolHTTP} {
		if got := requestCount(r, p, outcomeBackpressure); got != 1 {
			t.Errorf("%s requests_total{outcome=backpressure} = %v, want 1", p, got)
		}
		if got := metricValue(r.metrics.by[p].inflight); got != 0 {
			t.Errorf("%s inflight_requests after = %v, want 0", p, got)
		}
	}
}
