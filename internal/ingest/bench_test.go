package ingest

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/tailgate-sre/tailgate/internal/otlp"
)

// countingConsumer counts spans and keeps nothing.
type countingConsumer struct{ spans int }

func (c *countingConsumer) Consume(_ context.Context, req *otlp.Request) error {
	c.spans += len(req.Spans)
	return nil
}

// benchRequest is a request of 10 traces of 10 spans each, with a few
// attributes per span, from 2 services: a typical SDK batch.
func benchRequest() (body []byte, spans int) {
	var out []byte
	for svc, service := range []string{"checkout", "payments"} {
		var ss []testSpan
		for tr := range 5 {
			traceID := fmt.Sprintf("%02x%02x0000000000000000000000000001", svc+1, tr+1)
			for i := range 10 {
				s := testSpan{
					traceID: mustHex(traceID),
					spanID:  mustHex(fmt.Sprintf("%02x%02x%02x0000000001", svc+1, tr+1, i+1)),
					name:    "GET /api/items/{id}",
					attrs: [][]byte{
						kvString("http.route", "/api/items/{id}"),
						kvString("http.request.method", "GET"),
						kvString("url.scheme", "https"),
						kvString("server.address", "items.internal"),
					},
				}
				if i > 0 {
					s.parent = mustHex(fmt.Sprintf("%02x%02x010000000001", svc+1, tr+1))
				}
				ss = append(ss, s)
				spans++
			}
		}
		out = append(out, encodeRequest(service, ss...)...)
	}
	return out, spans
}

// reusableBody is a request body that can be rewound without allocating.
type reusableBody struct{ bytes.Reader }

func (*reusableBody) Close() error { return nil }

// discardWriter is a ResponseWriter that keeps only the status.
type discardWriter struct {
	header http.Header
	status int
}

func (w *discardWriter) Header() http.Header         { return w.header }
func (w *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *discardWriter) WriteHeader(status int)      { w.status = status }

// BenchmarkHTTPProtobuf measures the OTLP/HTTP protobuf path from request
// bytes to Consume: body read into a pooled buffer, Parse, Consume, response.
func BenchmarkHTTPProtobuf(b *testing.B) {
	payload, spans := benchRequest()
	c := &countingConsumer{}
	r, err := New(testConfig(), Settings{Consumer: c})
	if err != nil {
		b.Fatal(err)
	}
	body := &reusableBody{}
	req := httptest.NewRequest(http.MethodPost, tracesPath, body)
	req.Header.Set("Content-Type", contentTypeProtobuf)
	req.ContentLength = int64(len(payload))
	w := &discardWriter{header: http.Header{}}
	b.SetBytes(int64(len(payload)))
	b.ReportAllocs()
	for b.Loop() {
		body.Reset(payload)
		clear(w.header)
		r.serveTraces(w, req)
		if w.status != http.StatusOK {
			b.Fatalf("status %d", w.status)
		}
	}
	b.ReportMetric(float64(c.spans)/b.Elapsed().Seconds(), "spans/s")
	if c.spans != spans*b.N {
		b.Fatalf("consumed %d spans, want %d", c.spans, spans*b.N)
	}
}

// BenchmarkGRPCExport measures a whole OTLP/gRPC export over loopback,
// client included.
func BenchmarkGRPCExport(b *testing.B) {
	payload, _ := benchRequest()
	c := &countingConsumer{}
	cfg := testConfig()
	cfg.OTLPHTTP = ""
	r, _ := startReceiver(b, cfg, c)
	cc := dialRaw(b, r.GRPCAddr())
	b.SetBytes(int64(len(payload)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := export(b.Context(), cc, payload); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(c.spans)/b.Elapsed().Seconds(), "spans/s")
}
