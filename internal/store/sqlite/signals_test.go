package sqlite

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/tailgate-sre/tailgate/internal/otlp"
	"github.com/tailgate-sre/tailgate/internal/signals"
)

var sigT0 = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

func openSignalsDB(t *testing.T) *DB {
	t.Helper()
	db, err := Open(t.Context(), filepath.Join(t.TempDir(), "data"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func sigBucket(svc, op string, start time.Time, step time.Duration, req, errs uint64) signals.Bucket {
	var sk signals.Sketch
	for i := range req {
		sk.Add(uint64(i+1) * 1e6)
	}
	lat, _ := sk.MarshalBinary()
	return signals.Bucket{Service: svc, Operation: op, Start: start, Step: step, Requests: req, Errors: errs, Latency: lat}
}

func TestSignalBucketsRoundTrip(t *testing.T) {
	db := openSignalsDB(t)
	ctx := t.Context()
	in := []signals.Bucket{
		sigBucket("a", "/x", sigT0, time.Minute, 3, 1),
		sigBucket("a", "/y", sigT0.Add(time.Minute), time.Minute, 1, 0),
		sigBucket("b", "/x", sigT0.Add(time.Minute), time.Minute, 2, 2),
		sigBucket("a", "/x", sigT0.Add(-time.Hour), time.Hour, 10, 0),
	}
	if err := db.AppendSignalBuckets(ctx, in); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		f    signals.BucketFilter
		want []signals.Bucket
	}{
		{"all in range, oldest first", signals.BucketFilter{From: sigT0.Add(-time.Hour), To: sigT0.Add(time.Hour)},
			[]signals.Bucket{in[3], in[0], in[1], in[2]}},
		{"one service", signals.BucketFilter{Service: "a", From: sigT0, To: sigT0.Add(time.Hour)}, []signals.Bucket{in[0], in[1]}},
		{"to is exclusive", signals.BucketFilter{From: sigT0, To: sigT0.Add(time.Minute)}, []signals.Bucket{in[0]}},
		{"one step", signals.BucketFilter{From: sigT0.Add(-2 * time.Hour), To: sigT0.Add(time.Hour), Step: time.Hour}, []signals.Bucket{in[3]}},
		{"none", signals.BucketFilter{Service: "c", From: sigT0, To: sigT0.Add(time.Hour)}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := db.SignalBuckets(ctx, tc.f)
			if err != nil {
				t.Fatal(err)
			}
			// Same service, op and start may come in either order.
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("buckets (-want +got):\n%s", diff)
			}
		})
	}

	oldest, ok, err := db.OldestSignalBucket(ctx, time.Minute)
	if err != nil || !ok || !oldest.Equal(sigT0) {
		t.Errorf("oldest minute sigBucket = %v %v %v, want %v", oldest, ok, err, sigT0)
	}
	if _, ok, err := db.OldestSignalBucket(ctx, 5*time.Minute); err != nil || ok {
		t.Errorf("oldest 5m bucket: ok %v err %v, want none", ok, err)
	}

	// Rollup: the minute buckets of the hour give way to one hour sigBucket.
	hour := sigBucket("a", "/x", sigT0, time.Hour, 6, 3)
	if err := db.ReplaceSignalBuckets(ctx, sigT0, sigT0.Add(time.Hour), []signals.Bucket{hour}); err != nil {
		t.Fatal(err)
	}
	got, err := db.SignalBuckets(ctx, signals.BucketFilter{From: sigT0.Add(-time.Hour), To: sigT0.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]signals.Bucket{in[3], hour}, got); diff != "" {
		t.Errorf("after rollup (-want +got):\n%s", diff)
	}

	if err := db.DeleteSignalsBefore(ctx, sigT0); err != nil {
		t.Fatal(err)
	}
	got, err = db.SignalBuckets(ctx, signals.BucketFilter{From: sigT0.Add(-time.Hour), To: sigT0.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]signals.Bucket{hour}, got); diff != "" {
		t.Errorf("after expiry (-want +got):\n%s", diff)
	}
}

func TestErrorOriginsRoundTrip(t *testing.T) {
	db := openSignalsDB(t)
	ctx := t.Context()
	rows := []signals.OriginRow{
		{Start: sigT0, Service: "checkout", OriginService: "payments", OriginOperation: "/charge", Reason: "timeout", Requests: 2.5, Requests5xx: 2},
		{Start: sigT0, Service: "checkout", OriginService: "checkout", OriginOperation: "SELECT", Reason: "error", Dependency: true, Requests: 1},
		{Start: sigT0.Add(time.Minute), Service: "frontend", OriginService: "checkout", OriginOperation: "/cart", Reason: "5xx", Requests: 1, Requests5xx: 1},
		{Start: sigT0, Service: "search", OriginService: "index", OriginOperation: "/q", Reason: "error", Requests: 1},
	}
	if err := db.AppendErrorOrigins(ctx, rows); err != nil {
		t.Fatal(err)
	}
	got, err := db.ErrorOrigins(ctx, "checkout", sigT0, sigT0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(rows[:3], got); diff != "" {
		t.Errorf("checkout's rows (-want +got):\n%s", diff)
	}
	if err := db.DeleteSignalsBefore(ctx, sigT0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	got, err = db.ErrorOrigins(ctx, "checkout", sigT0, sigT0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(rows[2:3], got); diff != "" {
		t.Errorf("after expiry (-want +got):\n%s", diff)
	}
}

func TestSignalWritesHonourContext(t *testing.T) {
	db := openSignalsDB(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := db.AppendSignalBuckets(ctx, []signals.Bucket{sigBucket("a", "/x", sigT0, time.Minute, 1, 0)}); err == nil {
		t.Error("append with a cancelled context succeeded")
	}
}

// TestSignalsSurviveRestart runs golden signals and error origins through
// signals.Signals into the store, then reads them back from a new instance
// on the same file, as after a restart.
func TestSignalsSurviveRestart(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	ctx := t.Context()
	db, err := Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	s, err := signals.New(signals.DefaultConfig(), signals.Settings{Store: db})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().Truncate(time.Minute).Add(-2 * time.Minute)
	req := sigExportRequest(now, 20)
	var parsed otlp.Request
	if err := otlp.Parse(req, otlp.Limits{}, &parsed); err != nil {
		t.Fatal(err)
	}
	s.Observe(&parsed, now.Add(time.Second))
	s.ObserveTrace([]signals.TraceSpan{
		{Service: "checkout", Name: "POST /pay", Kind: otlp.KindServer, SpanID: otlp.SpanID{1}, Bad: true, HTTPStatus: 502, Start: 1, End: 10},
		{Service: "checkout", Name: "POST payments", Kind: otlp.KindClient, SpanID: otlp.SpanID{2}, ParentSpanID: otlp.SpanID{1}, Bad: true, Start: 2, End: 9},
		{Service: "payments", Name: "/charge", Kind: otlp.KindServer, SpanID: otlp.SpanID{3}, ParentSpanID: otlp.SpanID{2}, Bad: true, HTTPStatus: 500, Start: 3, End: 8},
	}, now.Add(time.Second))
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	db.Close()

	db2, err := Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	s2, err := signals.New(signals.DefaultConfig(), signals.Settings{Store: db2})
	if err != nil {
		t.Fatal(err)
	}
	q := signals.Query{From: now.Add(-time.Hour), To: now.Add(time.Hour)}
	detail, err := s2.Service(ctx, "checkout", q, now.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	// 20 requests of 1..20ms, every fourth one a 500.
	if detail.Requests != 20 || detail.Errors != 5 || detail.MaxSeconds == nil || *detail.MaxSeconds != 0.020 {
		t.Errorf("checkout after restart: %d requests, %d errors, max %v; want 20, 5, 0.02", detail.Requests, detail.Errors, detail.MaxSeconds)
	}
	if len(detail.Operations) != 1 || detail.Operations[0].Operation != "GET /orders/{id}" {
		t.Errorf("operations = %+v", detail.Operations)
	}
	want := "checkout: 100% of its 5xx originate in payments /charge (5xx)"
	if detail.ErrorOrigins.Summary != want {
		t.Errorf("summary = %q, want %q", detail.ErrorOrigins.Summary, want)
	}
}

// sigExportRequest encodes n SERVER spans of checkout ending at end-1ms·i.
func sigExportRequest(end time.Time, n int) []byte {
	var spans [][]byte
	for i := range n {
		status := 200
		if i%4 == 0 {
			status = 500
		}
		spans = append(spans, sigEncodeSpan(uint64(i+1), fmt.Sprintf("GET /orders/%d", 1000+i),
			end.Add(-time.Duration(i+1)*time.Millisecond), end, status))
	}
	return sigEncodeRequest("checkout", spans)
}

func sigKVString(k, v string) []byte {
	var any []byte
	any = protowire.AppendTag(any, 1, protowire.BytesType)
	any = protowire.AppendString(any, v)
	return sigKV(k, any)
}

func sigKVInt(k string, v int64) []byte {
	var any []byte
	any = protowire.AppendTag(any, 3, protowire.VarintType)
	any = protowire.AppendVarint(any, uint64(v))
	return sigKV(k, any)
}

func sigKV(k string, any []byte) []byte {
	var b []byte
	b = protowire.AppendTag(b, 1, protowire.BytesType)
	b = protowire.AppendString(b, k)
	b = protowire.AppendTag(b, 2, protowire.BytesType)
	return protowire.AppendBytes(b, any)
}

// sigEncodeSpan writes a SERVER span with an HTTP status.
func sigEncodeSpan(id uint64, name string, start, end time.Time, status int) []byte {
	var sp []byte
	sp = protowire.AppendTag(sp, 1, protowire.BytesType)
	sp = protowire.AppendBytes(sp, []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16})
	sp = protowire.AppendTag(sp, 2, protowire.BytesType)
	sp = protowire.AppendBytes(sp, []byte{0, 0, 0, 0, 0, 0, byte(id >> 8), byte(id)})
	sp = protowire.AppendTag(sp, 5, protowire.BytesType)
	sp = protowire.AppendString(sp, name)
	sp = protowire.AppendTag(sp, 6, protowire.VarintType)
	sp = protowire.AppendVarint(sp, 2)
	sp = protowire.AppendTag(sp, 7, protowire.Fixed64Type)
	sp = protowire.AppendFixed64(sp, uint64(start.UnixNano()))
	sp = protowire.AppendTag(sp, 8, protowire.Fixed64Type)
	sp = protowire.AppendFixed64(sp, uint64(end.UnixNano()))
	sp = protowire.AppendTag(sp, 9, protowire.BytesType)
	sp = protowire.AppendBytes(sp, sigKVInt("http.response.status_code", int64(status)))
	return sp
}

func sigEncodeRequest(service string, spans [][]byte) []byte {
	var ss []byte
	for _, sp := range spans {
		ss = protowire.AppendTag(ss, 2, protowire.BytesType)
		ss = protowire.AppendBytes(ss, sp)
	}
	var res []byte
	res = protowire.AppendTag(res, 1, protowire.BytesType)
	res = protowire.AppendBytes(res, sigKVString("service.name", service))
	var rs []byte
	rs = protowire.AppendTag(rs, 1, protowire.BytesType)
	rs = protowire.AppendBytes(rs, res)
	rs = protowire.AppendTag(rs, 2, protowire.BytesType)
	rs = protowire.AppendBytes(rs, ss)
	var req []byte
	req = protowire.AppendTag(req, 1, protowire.BytesType)
	return protowire.AppendBytes(req, rs)
}
