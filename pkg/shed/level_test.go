package shed

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// ofrepServer is an OFREP server for one endpoint, written from the
// protocol's OpenAPI (service/openapi.yaml, version 0.3.0): POST
// /ofrep/v1/evaluate/flags/{key} with {"context": {...}} (targetingKey
// required), answering evaluationSuccess, 400 evaluationFailure, 401, 404
// flagNotFound, 429 with Retry-After or 500 generalErrorResponse.
type ofrepServer struct {
	token string

	mu       sync.Mutex
	flags    map[string]any // key -> value; a missing value is codeDefault
	fail     int            // status to answer instead, when not 0
	requests int
	contexts []map[string]any
}

func (o *ofrepServer) set(key string, v any) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.flags[key] = v
}

func (o *ofrepServer) setFail(status int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.fail = status
}

func (o *ofrepServer) count() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.requests
}

type codeDefault struct{}

func (o *ofrepServer) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /ofrep/v1/evaluate/flags/{key}", func(w http.ResponseWriter, r *http.Request) {
		o.mu.Lock()
		defer o.mu.Unlock()
		o.requests++
		key := r.PathValue("key")
		reply := func(status int, body any) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			_ = json.NewEncoder(w).Encode(body)
		}
		if o.token != "" && r.Header.Get("Authorization") != "Bearer "+o.token {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		switch o.fail {
		case 0:
		case http.StatusTooManyRequests:
			w.Header().Set("Retry-After", "30")
			w.WriteHeader(o.fail)
			return
		default:
			reply(o.fail, map[string]any{"errorDetails": "store unavailable"})
			return
		}
		if ct := r.Header.Get("Content-Type"); ct != "application/json" {
			reply(http.StatusBadRequest, map[string]any{"key": key, "errorCode": "PARSE_ERROR", "errorDetails": "content type " + ct})
			return
		}
		var req struct {
			Context map[string]any `json:"context"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.Context == nil {
			reply(http.StatusBadRequest, map[string]any{"key": key, "errorCode": "PARSE_ERROR", "errorDetails": "no context"})
			return
		}
		if _, ok := req.Context["targetingKey"].(string); !ok {
			reply(http.StatusBadRequest, map[string]any{"key": key, "errorCode": "TARGETING_KEY_MISSING", "errorDetails": "no targetingKey"})
			return
		}
		o.contexts = append(o.contexts, req.Context)
		v, ok := o.flags[key]
		switch {
		case !ok:
			reply(http.StatusNotFound, map[string]any{"key": key, "errorCode": "FLAG_NOT_FOUND", "errorDetails": "flag '" + key + "' was not found"})
		case v == codeDefault{}:
			reply(http.StatusOK, map[string]any{"key": key, "reason": "DISABLED"})
		default:
			reply(http.StatusOK, map[string]any{"key": key, "value": v, "reason": "STATIC", "variant": "on"})
		}
	})
	return mux
}

func TestPollLevel(t *testing.T) {
	o := &ofrepServer{token: "s3cret", flags: map[string]any{}}
	srv := httptest.NewServer(o.handler()) // 127.0.0.1
	defer srv.Close()
	defer srv.Client().CloseIdleConnections()
	s := mustNew(t, Config{Level: LevelConfig{
		URL:          srv.URL + "/",
		Client:       srv.Client(),
		Token:        "s3cret",
		TargetingKey: "checkout",
		Context:      map[string]any{"service": "checkout"},
	}})
	ctx := t.Context()
	steps := []struct {
		name    string
		value   any // set the flag to this; nil deletes it
		fail    int
		wantErr string
		want    float64
	}{
		{name: "integer", value: 25, want: 25},
		{name: "float", value: 12.5, want: 12.5},
		{name: "string keeps the level", value: "high", wantErr: "is not a number", want: 12.5},
		{name: "out of range keeps the level", value: 120, wantErr: "is not a percentage", want: 12.5},
		{name: "server error keeps the level", value: 50, fail: 500, wantErr: "500 Internal Server Error", want: 12.5},
		{name: "rate limited keeps the level", value: 50, fail: 429, wantErr: "429", want: 12.5},
		{name: "recovers", value: 50, want: 50},
		{name: "code default is 0", value: codeDefault{}, want: 0},
		{name: "back", value: 40, want: 40},
		{name: "not found is 0", wantErr: "flag not found", want: 0},
	}
	for _, st := range steps {
		if st.value == nil {
			o.mu.Lock()
			delete(o.flags, DefaultLevelFlag)
			o.mu.Unlock()
		} else {
			o.set(DefaultLevelFlag, st.value)
		}
		o.setFail(st.fail)
		err := s.PollLevel(ctx)
		switch {
		case st.wantErr == "" && err != nil:
			t.Errorf("%s: %v", st.name, err)
		case st.wantErr != "" && (err == nil || !strings.Contains(err.Error(), st.wantErr)):
			t.Errorf("%s: err = %v, want one containing %q", st.name, err, st.wantErr)
		}
		if got := s.SheddablePercent(); got != st.want {
			t.Errorf("%s: level %g, want %g", st.name, got, st.want)
		}
	}
	if err := s.PollLevel(ctx); !errors.Is(err, ErrFlagNotFound) {
		t.Errorf("missing flag: err = %v, want ErrFlagNotFound", err)
	}
	o.mu.Lock()
	got := o.contexts[0]
	o.mu.Unlock()
	if got["targetingKey"] != "checkout" || got["service"] != "checkout" {
		t.Errorf("evaluation context %v, want targetingKey and service checkout", got)
	}

	// A wrong token is refused by the server.
	bad := mustNew(t, Config{Level: LevelConfig{URL: srv.URL, Client: srv.Client(), Token: "wrong"}})
	if err := bad.PollLevel(ctx); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("wrong token: err = %v, want 401", err)
	}
}

// handlerTransport serves requests with a handler in memory, so the poller
// can run inside a synctest bubble.
type handlerTransport struct{ h http.Handler }

func (t handlerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	w := httptest.NewRecorder()
	if r.Body != nil {
		b := new(bytes.Buffer)
		_, _ = b.ReadFrom(r.Body)
		_ = r.Body.Close()
		r.Body = http.NoBody
		if b.Len() > 0 {
			r = r.Clone(r.Context())
			r.Body = httpBody{b}
		}
	}
	t.h.ServeHTTP(w, r)
	return w.Result(), nil
}

type httpBody struct{ *bytes.Buffer }

func (httpBody) Close() error { return nil }

func TestPollerLoop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		o := &ofrepServer{flags: map[string]any{DefaultLevelFlag: 10}}
		s := mustNew(t, Config{Level: LevelConfig{
			URL:      "http://tailgate.test",
			Interval: 10 * time.Second,
			Client:   &http.Client{Transport: handlerTransport{o.handler()}},
		}, Logger: slog.New(slog.NewTextHandler(t.Output(), nil))})
		if err := s.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if got, n := s.SheddablePercent(), o.count(); got != 10 || n != 1 {
			t.Fatalf("after Start: level %g after %d polls, want 10 after 1", got, n)
		}
		o.set(DefaultLevelFlag, 60)
		time.Sleep(9 * time.Second)
		synctest.Wait()
		if got := s.SheddablePercent(); got != 10 {
			t.Errorf("before the interval: level %g, want 10", got)
		}
		time.Sleep(time.Second)
		synctest.Wait()
		if got, n := s.SheddablePercent(), o.count(); got != 60 || n != 2 {
			t.Errorf("after the interval: level %g after %d polls, want 60 after 2", got, n)
		}
		// Rate limited with Retry-After: 30: the next poll waits 30s,
		// not 10s.
		o.setFail(http.StatusTooManyRequests)
		time.Sleep(10 * time.Second) // poll 3 is refused
		synctest.Wait()
		o.setFail(0)
		time.Sleep(29 * time.Second)
		synctest.Wait()
		if n := o.count(); n != 3 {
			t.Errorf("29s after a 429: %d polls, want 3", n)
		}
		time.Sleep(time.Second)
		synctest.Wait()
		if n := o.count(); n != 4 {
			t.Errorf("30s after a 429: %d polls, want 4", n)
		}
		if err := s.Shutdown(t.Context()); err != nil {
			t.Fatal(err)
		}
		if err := s.Shutdown(t.Context()); err != nil {
			t.Errorf("second Shutdown: %v", err)
		}
		if err := s.Start(t.Context()); !errors.Is(err, ErrShutdown) {
			t.Errorf("Start after Shutdown: %v, want ErrShutdown", err)
		}
		time.Sleep(time.Minute)
		synctest.Wait()
		if n := o.count(); n != 4 {
			t.Errorf("after Shutdown: %d polls, want 4", n)
		}
	})
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 10, 21, 7, 27, 0, 0, time.UTC)
	for _, tt := range []struct {
		h    string
		want time.Duration
	}{
		{"", 0},
		{"30", 30 * time.Second},
		{"-5", 0},
		{"soon", 0},
		{"Wed, 21 Oct 2026 07:28:00 GMT", time.Minute},
		{"2026-10-21T07:29:00Z", 2 * time.Minute},
	} {
		if got := retryAfter(tt.h, now); got != tt.want {
			t.Errorf("retryAfter(%q) = %s, want %s", tt.h, got, tt.want)
		}
	}
}

// FuzzLevelResponse feeds the level reader any answer: it must not panic,
// and the level must stay a percentage.
func FuzzLevelResponse(f *testing.F) {
	f.Add(200, `{"key":"shed.sheddable_percent","value":25,"reason":"STATIC","variant":"q"}`)
	f.Add(200, `{"key":"shed.sheddable_percent","reason":"DISABLED"}`)
	f.Add(200, `{"value":"25"}`)
	f.Add(200, `{"value":1e400}`)
	f.Add(404, `{"key":"x","errorCode":"FLAG_NOT_FOUND"}`)
	f.Add(400, `{"key":"x","errorCode":"INVALID_CONTEXT","errorDetails":"no"}`)
	f.Add(429, ``)
	f.Add(500, `not json`)
	f.Fuzz(func(t *testing.T, status int, body string) {
		if status < 100 || status > 999 {
			return
		}
		h := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(status)
			_, _ = w.Write([]byte(body))
		})
		s, err := New(Config{
			Level:  LevelConfig{URL: "http://tailgate.test", Client: &http.Client{Transport: handlerTransport{h}}},
			Logger: slog.New(slog.DiscardHandler),
		})
		if err != nil {
			t.Fatal(err)
		}
		s.SetSheddablePercent(7)
		_ = s.PollLevel(t.Context())
		if p := s.SheddablePercent(); p < 0 || p > 100 {
			t.Errorf("level %g after status %d body %q", p, status, body)
		}
	})
}
