package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"

	"github.com/tailgate-sre/tailgate/internal/otlp"
	"github.com/tailgate-sre/tailgate/internal/signals"
)

// signalsStore is a Store with nothing stored, failing reads when err is set.
type signalsStore struct{ err error }

func (s signalsStore) AppendSignalBuckets(context.Context, []signals.Bucket) error { return s.err }
func (s signalsStore) SignalBuckets(context.Context, signals.BucketFilter) ([]signals.Bucket, error) {
	return nil, s.err
}
func (s signalsStore) OldestSignalBucket(context.Context, time.Duration) (time.Time, bool, error) {
	return time.Time{}, false, s.err
}
func (s signalsStore) ReplaceSignalBuckets(context.Context, time.Time, time.Time, []signals.Bucket) error {
	return s.err
}
func (s signalsStore) AppendErrorOrigins(context.Context, []signals.OriginRow) error { return s.err }
func (s signalsStore) ErrorOrigins(context.Context, string, time.Time, time.Time) ([]signals.OriginRow, error) {
	return nil, s.err
}
func (s signalsStore) DeleteSignalsBefore(context.Context, time.Time) error { return s.err }

// signalsRequest is checkout serving three requests of 10, 20 and 30ms
// ending just now, the last a 503, with a user.id on each.
func signalsRequest(t *testing.T, end time.Time) *otlp.Request {
	t.Helper()
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", "checkout")
	ss := rs.ScopeSpans().AppendEmpty()
	for i := range 3 {
		sp := ss.Spans().AppendEmpty()
		sp.SetTraceID(pcommon.TraceID{7, byte(i + 1)})
		sp.SetSpanID(pcommon.SpanID{7, byte(i + 1)})
		sp.SetName("GET /orders/" + string(rune('1'+i)))
		sp.SetKind(ptrace.SpanKindServer)
		sp.SetStartTimestamp(pcommon.NewTimestampFromTime(end.Add(-time.Duration(10*(i+1)) * time.Millisecond)))
		sp.SetEndTimestamp(pcommon.NewTimestampFromTime(end))
		sp.Attributes().PutStr("user.id", "u"+string(rune('a'+i)))
		if i == 2 {
			sp.Attributes().PutInt("http.response.status_code", 503)
		}
	}
	b, err := ptraceotlp.NewExportRequestFromTraces(td).MarshalProto()
	if err != nil {
		t.Fatal(err)
	}
	var req otlp.Request
	if err := otlp.Parse(b, otlp.Limits{}, &req); err != nil {
		t.Fatal(err)
	}
	return &req
}

// signalsNow is the fixed clock of the service endpoint tests: two and a
// half minutes past a five-minute boundary, so that a series' first step
// is cut by the query's start (see TestServiceEndpoints).
var signalsNow = time.Date(2026, 3, 1, 12, 2, 30, 0, time.UTC)

func newSignalsServer(t *testing.T, store signals.Store) (*Server, *signals.Signals) {
	t.Helper()
	sig, err := signals.New(signals.DefaultConfig(), signals.Settings{Store: store})
	if err != nil {
		t.Fatal(err)
	}
	return New(Deps{Services: sig, Now: func() time.Time { return signalsNow }}), sig
}

func getJSON(t *testing.T, h http.Handler, path string, wantStatus int, out any) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	if rec.Code != wantStatus {
		t.Fatalf("GET %s: status %d, want %d; body %s", path, rec.Code, wantStatus, rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("GET %s: Content-Type %q", path, ct)
	}
	if err := json.Unmarshal(rec.Body.Bytes(), out); err != nil {
		t.Fatalf("GET %s: decode %s: %v", path, rec.Body, err)
	}
}

func TestServiceEndpoints(t *testing.T) {
	srv, sig := newSignalsServer(t, signalsStore{})
	now := signalsNow
	sig.Observe(signalsRequest(t, now.Add(-time.Second)), now)

	// from=1h is 11:02:30 by the API's clock; signals aligns it down to
	// the 5m step, 11:00:00, and ends the range at now, 12:02:30. That is
	// 62.5 minutes, so ceil(62.5/5) = 13 points: 11:00, 11:05, ..., 12:00.
	// The three requests (ending 12:02:29) fall in the last, 12:00:00.
	var list signals.ServicesResponse
	getJSON(t, srv, "/api/v1/services?from=1h&step=5m", http.StatusOK, &list)
	if list.Step != "5m" || len(list.Services) != 1 || len(list.Services[0].Series) != 13 {
		t.Fatalf("services = step %s, %+v; want one service with 13 points", list.Step, list.Services)
	}
	svc := list.Services[0]
	if first, last := svc.Series[0], svc.Series[12]; !first.Time.Equal(time.Date(2026, 3, 1, 11, 0, 0, 0, time.UTC)) ||
		!last.Time.Equal(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)) || last.Requests != 3 || first.Requests != 0 {
		t.Errorf("series from %v (%d requests) to %v (%d requests), want 11:00 (0) to 12:00 (3)", first.Time, first.Requests, last.Time, last.Requests)
	}
	if svc.Service != "checkout" || svc.Requests != 3 || svc.Errors != 1 || svc.ErrorRatio == nil || *svc.ErrorRatio != 1.0/3 {
		t.Errorf("checkout = %+v", svc.Stats)
	}

	var detail signals.ServiceDetail
	getJSON(t, srv, "/api/v1/services/checkout", http.StatusOK, &detail)
	if len(detail.Operations) != 1 || detail.Operations[0].Operation != "GET /orders/{id}" || detail.Operations[0].Requests != 3 {
		t.Errorf("operations = %+v", detail.Operations)
	}
	// The median of 10, 20 and 30ms, within the sketch's 1%.
	if p := detail.P50Seconds; p == nil || *p < 0.0198 || *p > 0.0202 {
		t.Errorf("p50 = %v, want 0.02", p)
	}

	var ops signals.OperationsResponse
	getJSON(t, srv, "/api/v1/services/checkout/operations", http.StatusOK, &ops)
	if ops.Service != "checkout" || len(ops.Operations) != 1 || len(ops.Operations[0].Series) == 0 {
		t.Errorf("operations response = %+v", ops)
	}

	sig.ObserveTrace([]signals.TraceSpan{
		{Service: "checkout", Name: "GET /orders/3", Kind: otlp.KindServer, SpanID: otlp.SpanID{1}, Bad: true, HTTPStatus: 503, Start: 1, End: 10},
		{Service: "checkout", Name: "GET stock", Kind: otlp.KindClient, SpanID: otlp.SpanID{2}, ParentSpanID: otlp.SpanID{1}, Bad: true, Timeout: true, Start: 2, End: 9},
		{Service: "inventory", Name: "GET /stock/42", Kind: otlp.KindServer, SpanID: otlp.SpanID{3}, ParentSpanID: otlp.SpanID{2}, Start: 3, End: 20},
	}, now)
	var eo signals.ErrorOrigins
	getJSON(t, srv, "/api/v1/services/checkout/error-origins", http.StatusOK, &eo)
	if want := "checkout: 100% of its 5xx originate in inventory GET /stock/{id} (timeout)"; eo.Summary != want {
		t.Errorf("summary = %q, want %q", eo.Summary, want)
	}

	var card signals.CardinalityReport
	getJSON(t, srv, "/api/v1/cardinality?service=checkout&top=1", http.StatusOK, &card)
	if len(card.Services) != 1 || len(card.Services[0].Keys) != 1 {
		t.Fatalf("cardinality = %+v", card)
	}
	if k := card.Services[0].Keys[0]; k.Key != "user.id" && k.Key != "service.name" {
		t.Errorf("top key = %+v", k)
	}
}

// recordingSource records the query it was given.
type recordingSource struct {
	q    signals.Query
	name string
	top  int
	svc  string
	err  error
}

func (r *recordingSource) Services(_ context.Context, q signals.Query, _ time.Time) (signals.ServicesResponse, error) {
	r.q = q
	return signals.ServicesResponse{}, r.err
}
func (r *recordingSource) Service(_ context.Context, name string, q signals.Query, _ time.Time) (signals.ServiceDetail, error) {
	r.q, r.name = q, name
	return signals.ServiceDetail{}, r.err
}
func (r *recordingSource) Operations(_ context.Context, name string, q signals.Query, _ time.Time) (signals.OperationsResponse, error) {
	r.q, r.name = q, name
	return signals.OperationsResponse{}, r.err
}
func (r *recordingSource) ErrorOrigins(_ context.Context, name string, q signals.Query, _ time.Time) (signals.ErrorOrigins, error) {
	r.q, r.name = q, name
	return signals.ErrorOrigins{}, r.err
}
func (r *recordingSource) Cardinality(service string, top int) signals.CardinalityReport {
	r.svc, r.top = service, top
	return signals.CardinalityReport{}
}

func TestServiceQueryParameters(t *testing.T) {
	from := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		path    string
		want    signals.Query
		name    string
		svc     string
		top     int
		checkTo bool
	}{
		{path: "/api/v1/services", want: signals.Query{}},
		{path: "/api/v1/services?from=2026-03-01T12:00:00Z&to=1772370000&step=5m",
			want: signals.Query{From: from, To: time.Unix(1772370000, 0), Step: 5 * time.Minute}, checkTo: true},
		{path: "/api/v1/services/a%2Fb?step=1h", want: signals.Query{Step: time.Hour}, name: "a/b"},
		{path: "/api/v1/services/checkout/operations?from=2026-03-01T12:00:00Z", want: signals.Query{From: from}, name: "checkout"},
		{path: "/api/v1/services/checkout/error-origins?step=2m", want: signals.Query{Step: 2 * time.Minute}, name: "checkout"},
		{path: "/api/v1/cardinality", top: 10},
		{path: "/api/v1/cardinality?service=checkout&top=0", svc: "checkout", top: 0},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			src := &recordingSource{top: -1}
			rec := httptest.NewRecorder()
			New(Deps{Services: src}).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, tc.path, nil))
			if rec.Code != http.StatusOK {
				t.Fatalf("status %d: %s", rec.Code, rec.Body)
			}
			if strings.HasPrefix(tc.path, "/api/v1/cardinality") {
				if src.svc != tc.svc || src.top != tc.top {
					t.Errorf("cardinality(%q, %d), want (%q, %d)", src.svc, src.top, tc.svc, tc.top)
				}
				return
			}
			if diff := cmp.Diff(tc.want, src.q, cmp.Comparer(func(a, b time.Time) bool { return a.Equal(b) })); diff != "" {
				t.Errorf("query (-want +got):\n%s", diff)
			}
			if src.name != tc.name {
				t.Errorf("service = %q, want %q", src.name, tc.name)
			}
		})
	}
}

func TestServiceEndpointErrors(t *testing.T) {
	srv, _ := newSignalsServer(t, signalsStore{})
	failing, _ := newSignalsServer(t, signalsStore{err: errors.New("disk on fire")})
	tests := []struct {
		name   string
		h      http.Handler
		path   string
		status int
		error  string
	}{
		{"bad from", srv, "/api/v1/services?from=yesterday", 400, "invalid request"},
		{"bad to", srv, "/api/v1/services?to=soon", 400, "invalid request"},
		{"bad step", srv, "/api/v1/services?step=often", 400, "invalid request"},
		{"sub-minute step", srv, "/api/v1/services?step=30s", 400, "invalid request"},
		{"from after to", srv, "/api/v1/services?from=1h&to=2h", 400, "invalid request"},
		{"too many points", srv, "/api/v1/services?from=48h&step=1m&to=0h", 400, "invalid request"},
		{"unknown service", srv, "/api/v1/services/nope", 404, "unknown service"},
		{"unknown service operations", srv, "/api/v1/services/nope/operations", 404, "unknown service"},
		{"unknown service origins", srv, "/api/v1/services/nope/error-origins", 404, "unknown service"},
		{"bad top", srv, "/api/v1/cardinality?top=-1", 400, "invalid request"},
		{"huge top", srv, "/api/v1/cardinality?top=100000", 400, "invalid request"},
		{"store down", failing, "/api/v1/services", 500, "internal error"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			tc.h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, tc.path, nil))
			if rec.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", rec.Code, tc.status, rec.Body)
			}
			var body ErrorBody
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || body.Error != tc.error || body.Detail == "" {
				t.Errorf("body = %s, want error %q with a detail", rec.Body, tc.error)
			}
		})
	}
}

func TestServiceRoutesAbsentWithoutSource(t *testing.T) {
	rec := httptest.NewRecorder()
	New(Deps{}).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/api/v1/services", nil))
	if rec.Code != http.StatusNotFound {
		t.Errorf("status %d, want 404", rec.Code)
	}
}
