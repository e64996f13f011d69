package api

import (
	"bytes"
	"io"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/tailgate-sre/tailgate/internal/auth"
)

// BenchmarkOFREPEvaluate measures single-flag OFREP evaluations over
// loopback with bearer auth, paced at 2,000 evaluations a second (issue
// 13's load), one request at a time from the client's side: each
// iteration waits for its slot, sends, and records its latency. It
// reports the p50 and p99 latency. Run it with a fixed count, e.g.
// -benchtime 10000x (5 s of load).
func BenchmarkOFREPEvaluate(b *testing.B) {
	tokens := append(testTokens(), auth.Token{Name: "app", SHA256: auth.HashToken(flagEvalToken), Scopes: []auth.Scope{auth.ScopeFlagsEval}})
	e := newFlagEnv(b, auth.Config{Tokens: tokens})
	client := e.srv.Client()
	url := e.srv.URL + "/ofrep/v1/evaluate/flags/recommendations"
	body := []byte(`{"context":{"targetingKey":"user-123","plan":"free","country":"CA"}}`)
	const rate = 2000
	interval := time.Second / rate
	var lat []time.Duration
	b.ReportAllocs()
	next := time.Now()
	for b.Loop() {
		if d := time.Until(next); d > 0 {
			time.Sleep(d)
		}
		next = next.Add(interval)
		start := time.Now()
		req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+flagEvalToken)
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("status %d", resp.StatusCode)
		}
		lat = append(lat, time.Since(start))
	}
	slices.Sort(lat)
	q := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000 }
	b.ReportMetric(q(0.5), "p50-ms")
	b.ReportMetric(q(0.99), "p99-ms")
	b.ReportMetric(0, "ns/op") // paced: time per op is the pacing, not the cost
}
