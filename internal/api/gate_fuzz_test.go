package api

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tailgate-sre/tailgate/internal/gate"
)

// FuzzGateRequests feeds arbitrary bodies to the gate's decoders (check,
// override, deploy, Flagger): never a panic, never a 5xx.
func FuzzGateRequests(f *testing.F) {
	for _, seed := range []string{
		`{"service":"checkout","change_class":"feature","version":"v1","environment":"prod","requested_by":"ci"}`,
		`{"service":"checkout","change_classes":["feature"],"reason":"r","approved_by":"a","expires_at":"2030-01-01T00:00:00Z"}`,
		`{"service":"checkout","version":"v1","time":"2026-03-01T11:00:00Z","change_class":"rollback"}`,
		`{"name":"checkout","namespace":"shop","phase":"Progressing","metadata":{"change_class":"fix","token":"x"}}`,
		`{"service":"` + strings.Repeat("a", 600) + `","change_class":"fix"}`,
		`{"change_class":null}`, `[]`, `"x"`, `{}{}`, "",
	} {
		f.Add(seed)
	}
	budget := 0.3
	g, err := gate.New(nil, gate.Settings{States: gate.StateFunc(func(s string, now time.Time) []gate.SLOState {
		return []gate.SLOState{{Name: s, Objective: 99, Window: time.Hour, BudgetRemaining: &budget, UpdatedAt: now}}
	})})
	if err != nil {
		f.Fatal(err)
	}
	h := New(Deps{Gate: g})
	paths := []string{"/api/v1/gate/check", "/api/v1/gate/overrides", "/api/v1/deploys", "/api/v1/gate/flagger/confirm-promotion"}
	f.Fuzz(func(t *testing.T, body string) {
		for _, p := range paths {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, p, strings.NewReader(body)))
			if rec.Code >= 500 {
				t.Errorf("POST %s %q: %d %s", p, body, rec.Code, rec.Body)
			}
		}
	})
}
