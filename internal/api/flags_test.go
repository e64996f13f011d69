package api

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/tailgate-sre/tailgate/internal/auth"
	"github.com/tailgate-sre/tailgate/internal/flags"
	"github.com/tailgate-sre/tailgate/internal/store/sqlite"
)

const (
	flagEvalToken  = "flag-eval-token-5"
	flagWriteToken = "flag-write-token-6"
)

type flagEnv struct {
	srv *httptest.Server
	svc *flags.Service
}

// testFlags: a boolean flag with targeting and a rollout (issue 13's
// example), a string flag without targeting, an object flag.
func testFlags() []flags.Config {
	return []flags.Config{
		{
			Key: "recommendations", Variants: map[string]any{"enabled": true, "disabled": false}, DefaultVariant: "enabled",
			Targeting: []flags.Rule{
				{When: &flags.Condition{Attribute: "plan", In: []any{"enterprise"}}, Variant: "enabled"},
				{Rollout: map[string]float64{"enabled": 10, "disabled": 90}},
			},
		},
		{Key: "theme", Variants: map[string]any{"light": "#fff", "dark": "#000"}, DefaultVariant: "dark"},
		{Key: "limits", Variants: map[string]any{"std": map[string]any{"rps": int64(10)}}, DefaultVariant: "std"},
	}
}

func newFlagEnv(t testing.TB, cfg auth.Config) *flagEnv {
	t.Helper()
	db, err := sqlite.Open(t.Context(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	svc, err := flags.NewService(t.Context(), testFlags(), flags.Settings{Store: db})
	if err != nil {
		t.Fatal(err)
	}
	a, err := auth.New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	e := &flagEnv{svc: svc, srv: httptest.NewServer(New(Deps{Flags: svc, Auth: a}))}
	t.Cleanup(e.srv.Close)
	return e
}

type flagAnswer struct {
	status int
	header http.Header
	body   []byte
	obj    map[string]any
}

func (e *flagEnv) call(t *testing.T, method, path, token, body string, header ...string) flagAnswer {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	r, err := http.NewRequestWithContext(t.Context(), method, e.srv.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	r.Header.Set("Content-Type", "application/json")
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(header); i += 2 {
		r.Header.Set(header[i], header[i+1])
	}
	resp, err := e.srv.Client().Do(r)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	a := flagAnswer{status: resp.StatusCode, header: resp.Header}
	a.body, _ = io.ReadAll(resp.Body)
	if len(a.body) > 0 {
		_ = json.Unmarshal(a.body, &a.obj)
	}
	return a
}

// The OFREP schema's required fields and enums (service/openapi.yaml
// 0.3.0), checked by hand for each answer.
var (
	ofrepReasons = []string{"STATIC", "TARGETING_MATCH", "SPLIT", "DISABLED", "UNKNOWN"}
	ofrepErrors  = []string{"PARSE_ERROR", "TARGETING_KEY_MISSING", "INVALID_CONTEXT", "GENERAL"}
)

func checkSuccess(t *testing.T, o map[string]any, key string, value any, reason, variant string) {
	t.Helper()
	if o["key"] != key || !slices.Contains(ofrepReasons, o["reason"].(string)) || o["reason"] != reason || o["variant"] != variant {
		t.Errorf("evaluation %v: want key %s, reason %s, variant %s", o, key, reason, variant)
	}
	got, _ := json.Marshal(o["value"])
	want, _ := json.Marshal(value)
	if string(got) != string(want) {
		t.Errorf("value %s, want %s", got, want)
	}
	if _, hasErr := o["errorCode"]; hasErr {
		t.Errorf("a success carries errorCode: %v", o)
	}
}

func checkFailure(t *testing.T, o map[string]any, key, code string) {
	t.Helper()
	if key != "" && o["key"] != key {
		t.Errorf("failure %v: key %v, want %s", o, o["key"], key)
	}
	if o["errorCode"] != code {
		t.Errorf("failure %v: errorCode %v, want %s", o, o["errorCode"], code)
	}
	if code != "FLAG_NOT_FOUND" && !slices.Contains(ofrepErrors, code) {
		t.Errorf("%s is not an OFREP evaluationFailure code", code)
	}
	if d, _ := o["errorDetails"].(string); d == "" {
		t.Errorf("failure %v has no errorDetails", o)
	}
}

func TestOFREPSingle(t *testing.T) {
	e := newFlagEnv(t, auth.Config{})
	path := "/ofrep/v1/evaluate/flags/"
	for _, tc := range []struct {
		name, key, body string
		status          int
		check           func(t *testing.T, o map[string]any)
	}{
		{"targeting match", "recommendations", `{"context":{"targetingKey":"u1","plan":"enterprise"}}`, 200,
			func(t *testing.T, o map[string]any) {
				checkSuccess(t, o, "recommendations", true, "TARGETING_MATCH", "enabled")
			}},
		{"static string", "theme", `{"context":{}}`, 200,
			func(t *testing.T, o map[string]any) { checkSuccess(t, o, "theme", "#000", "STATIC", "dark") }},
		{"object value", "limits", `{"context":{"targetingKey":"x"}}`, 200,
			func(t *testing.T, o map[string]any) {
				checkSuccess(t, o, "limits", map[string]any{"rps": 10}, "STATIC", "std")
			}},
		{"not found", "nope", `{"context":{"targetingKey":"u1"}}`, 404,
			func(t *testing.T, o map[string]any) { checkFailure(t, o, "nope", "FLAG_NOT_FOUND") }},
		{"parse error", "theme", `{"context":`, 400,
			func(t *testing.T, o map[string]any) { checkFailure(t, o, "theme", "PARSE_ERROR") }},
		{"no context", "theme", `{}`, 400,
			func(t *testing.T, o map[string]any) { checkFailure(t, o, "theme", "INVALID_CONTEXT") }},
		{"context not an object", "theme", `{"context":[1]}`, 400,
			func(t *testing.T, o map[string]any) { checkFailure(t, o, "theme", "INVALID_CONTEXT") }},
		{"targetingKey not a string", "theme", `{"context":{"targetingKey":7}}`, 400,
			func(t *testing.T, o map[string]any) { checkFailure(t, o, "theme", "INVALID_CONTEXT") }},
		{"targeting key missing", "recommendations", `{"context":{"plan":"free"}}`, 400,
			func(t *testing.T, o map[string]any) { checkFailure(t, o, "recommendations", "TARGETING_KEY_MISSING") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := e.call(t, "POST", path+tc.key, "", tc.body)
			if a.status != tc.status {
				t.Fatalf("status %d, want %d: %s", a.status, tc.status, a.body)
			}
			if ct := a.header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			tc.check(t, a.obj)
		})
	}
	// A split is deterministic: the same targeting key gets the same
	// variant on every call.
	first := e.call(t, "POST", path+"recommendations", "", `{"context":{"targetingKey":"user-42","plan":"free"}}`)
	if first.status != 200 || first.obj["reason"] != "SPLIT" {
		t.Fatalf("rollout: %d %s", first.status, first.body)
	}
	for range 5 {
		again := e.call(t, "POST", path+"recommendations", "", `{"context":{"targetingKey":"user-42","plan":"free"}}`)
		if again.obj["variant"] != first.obj["variant"] {
			t.Fatalf("user-42 got %v then %v", first.obj["variant"], again.obj["variant"])
		}
	}
}

func TestOFREPBulkETag(t *testing.T) {
	e := newFlagEnv(t, auth.Config{AllowAnonymousWrites: true})
	path := "/ofrep/v1/evaluate/flags"
	// No targeting key: the rollout flag fails alone, the others succeed.
	a := e.call(t, "POST", path, "", `{"context":{"plan":"free"}}`)
	if a.status != 200 {
		t.Fatalf("bulk: %d %s", a.status, a.body)
	}
	var bulk struct {
		Flags []map[string]any `json:"flags"`
	}
	if err := json.Unmarshal(a.body, &bulk); err != nil {
		t.Fatal(err)
	}
	if len(bulk.Flags) != 3 {
		t.Fatalf("bulk flags %d, want 3: %s", len(bulk.Flags), a.body)
	}
	byKey := map[string]map[string]any{}
	for _, f := range bulk.Flags {
		byKey[f["key"].(string)] = f
	}
	checkFailure(t, byKey["recommendations"], "recommendations", "TARGETING_KEY_MISSING")
	checkSuccess(t, byKey["theme"], "theme", "#000", "STATIC", "dark")
	etag := a.header.Get("ETag")
	if !strings.HasPrefix(etag, `"`) || !strings.HasSuffix(etag, `"`) || len(etag) < 4 {
		t.Fatalf("ETag %q, want a quoted entity tag", etag)
	}
	// Unchanged: 304 with no body, for the tag as sent and as a weak tag
	// in a list.
	for _, inm := range []string{etag, `"other", W/` + etag} {
		nm := e.call(t, "POST", path, "", `{"context":{"plan":"free"}}`, "If-None-Match", inm)
		if nm.status != http.StatusNotModified || len(nm.body) != 0 {
			t.Errorf("If-None-Match %s: %d %q, want 304 and no body", inm, nm.status, nm.body)
		}
	}
	// Another context evaluates differently: a new tag.
	other := e.call(t, "POST", path, "", `{"context":{"targetingKey":"u1","plan":"enterprise"}}`, "If-None-Match", etag)
	if other.status != 200 || other.header.Get("ETag") == etag {
		t.Errorf("another context: %d, ETag %s; want 200 and another tag", other.status, other.header.Get("ETag"))
	}
	// A flip changes the answer: 200 with a new tag.
	if f := e.call(t, "POST", "/api/v1/flags/theme/flip", "", `{"variant":"light","reason":"test"}`); f.status != 200 {
		t.Fatalf("flip: %d %s", f.status, f.body)
	}
	after := e.call(t, "POST", path, "", `{"context":{"plan":"free"}}`, "If-None-Match", etag)
	if after.status != 200 || after.header.Get("ETag") == etag {
		t.Fatalf("after a flip: %d, ETag %s; want 200 and a new tag", after.status, after.header.Get("ETag"))
	}
	if !strings.Contains(string(after.body), `"value":"#fff"`) || !strings.Contains(string(after.body), `"forced_by":"operator"`) {
		t.Errorf("after the flip, theme should be #fff forced by the operator: %s", after.body)
	}
	// A request that fails as a whole: bulkEvaluationFailure.
	bad := e.call(t, "POST", path, "", `not json`)
	if bad.status != 400 {
		t.Fatalf("bad bulk body: %d", bad.status)
	}
	checkFailure(t, bad.obj, "", "PARSE_ERROR")
}

func TestOFREPAuth(t *testing.T) {
	tokens := append(testTokens(),
		auth.Token{Name: "app", SHA256: auth.HashToken(flagEvalToken), Scopes: []auth.Scope{auth.ScopeFlagsEval}},
		auth.Token{Name: "oncall", SHA256: auth.HashToken(flagWriteToken), Scopes: []auth.Scope{auth.ScopeFlagsWrite, auth.ScopeRead}},
	)
	e := newFlagEnv(t, auth.Config{Tokens: tokens})
	body := `{"context":{"targetingKey":"u1"}}`
	for _, tc := range []struct {
		method, path, token, body string
		want                      int
	}{
		{"POST", "/ofrep/v1/evaluate/flags/theme", "", body, 401},
		{"POST", "/ofrep/v1/evaluate/flags/theme", "wrong", body, 401},
		{"POST", "/ofrep/v1/evaluate/flags/theme", ciToken, body, 403},
		{"POST", "/ofrep/v1/evaluate/flags/theme", flagEvalToken, body, 200},
		{"POST", "/ofrep/v1/evaluate/flags", flagEvalToken, body, 200},
		{"POST", "/ofrep/v1/evaluate/flags", readerToken, body, 403},
		{"POST", "/ofrep/v1/evaluate/flags/theme", adminToken, body, 200},
		// Flag writes need flags:write.
		{"POST", "/api/v1/flags/theme/flip", flagEvalToken, `{"variant":"light","reason":"r"}`, 403},
		{"POST", "/api/v1/flags/theme/flip", flagWriteToken, `{"variant":"light","reason":"r"}`, 200},
		{"GET", "/api/v1/flags/theme/history", readerToken, "", 200},
	} {
		a := e.call(t, tc.method, tc.path, tc.token, tc.body)
		if a.status != tc.want {
			t.Errorf("%s %s with token %q: %d, want %d (%s)", tc.method, tc.path, tc.token, a.status, tc.want, a.body)
		}
	}
	hs, err := e.svc.History(t.Context(), "theme", 10)
	if err != nil || len(hs) != 1 || hs[0].Actor != "oncall" {
		t.Errorf("history %+v, %v: want one flip by the token's name, oncall", hs, err)
	}
}

func TestFlagAPIWrites(t *testing.T) {
	open := newFlagEnv(t, auth.Config{})
	if a := open.call(t, "POST", "/api/v1/flags/theme/flip", "", `{"variant":"light","reason":"r"}`); a.status != 403 {
		t.Errorf("anonymous flip without allow_anonymous_writes: %d, want 403", a.status)
	}
	e := newFlagEnv(t, auth.Config{AllowAnonymousWrites: true})
	for _, tc := range []struct {
		method, path, body string
		want               int
		contains           string
	}{
		{"POST", "/api/v1/flags/theme/flip", `{"variant":"light"}`, 400, "reason"},
		{"POST", "/api/v1/flags/theme/flip", `{"variant":"blue","reason":"r"}`, 400, "has no variant"},
		{"POST", "/api/v1/flags/nope/flip", `{"variant":"light","reason":"r"}`, 404, "unknown flag"},
		{"POST", "/api/v1/flags/theme/explode", `{"reason":"r"}`, 404, "want flip, restore, pause or resume"},
		{"PUT", "/api/v1/flags/theme", `{"variants":{"a":1},"default_variant":"a","reason":"r"}`, 409, "config file"},
		{"PUT", "/api/v1/flags/banner", `{"variants":{"on":true},"default_variant":"off","reason":"r"}`, 400, "default_variant"},
		{"PUT", "/api/v1/flags/banner", `{"key":"other","variants":{"on":true},"default_variant":"on"}`, 400, "the path"},
		{"DELETE", "/api/v1/flags/theme", "", 409, "config file"},
		{"DELETE", "/api/v1/flags/never", "", 404, "unknown flag"},
	} {
		a := e.call(t, tc.method, tc.path, "", tc.body)
		if a.status != tc.want || !strings.Contains(string(a.body), tc.contains) {
			t.Errorf("%s %s %s: %d %s; want %d mentioning %q", tc.method, tc.path, tc.body, a.status, a.body, tc.want, tc.contains)
		}
	}
	if hs, _ := e.svc.History(t.Context(), "theme", 10); len(hs) != 0 {
		t.Errorf("refused writes left history %+v", hs)
	}
	// An API flag: defined, evaluated, deleted.
	if a := e.call(t, "PUT", "/api/v1/flags/banner", "", `{"variants":{"on":true,"off":false},"default_variant":"on","reason":"launch"}`); a.status != 200 || a.obj["defined_in"] != "api" {
		t.Fatalf("define: %d %s", a.status, a.body)
	}
	if a := e.call(t, "POST", "/ofrep/v1/evaluate/flags/banner", "", `{"context":{}}`); a.status != 200 || a.obj["value"] != true {
		t.Fatalf("evaluate the API flag: %d %s", a.status, a.body)
	}
	if a := e.call(t, "DELETE", "/api/v1/flags/banner?reason=done", "", ""); a.status != 204 {
		t.Fatalf("delete: %d %s", a.status, a.body)
	}
	if a := e.call(t, "POST", "/ofrep/v1/evaluate/flags/banner", "", `{"context":{}}`); a.status != 404 {
		t.Errorf("deleted flag: %d, want 404", a.status)
	}
	a := e.call(t, "GET", "/api/v1/flags/banner/history", "", "")
	if a.status != 200 || !strings.Contains(string(a.body), `"action": "delete"`) || !strings.Contains(string(a.body), `"action": "define"`) {
		t.Errorf("history of a deleted API flag: %d %s", a.status, a.body)
	}
	// Pause and resume, then the list.
	if a := e.call(t, "POST", "/api/v1/flags/recommendations/pause", "", `{"reason":"investigating"}`); a.status != 200 {
		t.Fatalf("pause: %d %s", a.status, a.body)
	}
	l := e.call(t, "GET", "/api/v1/flags", "", "")
	if l.status != 200 || !strings.Contains(string(l.body), `"paused": true`) || !strings.Contains(string(l.body), `"defined_in": "config"`) {
		t.Errorf("list: %d %s", l.status, l.body)
	}
}
