package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tailgate-sre/tailgate/internal/signals"
)

// cardinalityServer answers /api/v1/cardinality with rep and records the
// query it got.
func cardinalityServer(t *testing.T, rep signals.CardinalityReport, query *string) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/cardinality" {
			http.NotFound(w, r)
			return
		}
		*query = r.URL.RawQuery
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(rep)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func cardinalityRun(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(t.Context(), append([]string{"tailgate", "cardinality"}, args...), strings.NewReader(""), &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

var cardinalityReport = signals.CardinalityReport{
	WindowStart: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC), FlagThreshold: 1000, SeriesLimit: 2000, Series: 12,
	Services: []signals.ServiceCardinality{{
		Service: "checkout", Spans: 1_200_000, Series: 3, KeysTracked: 9, Flagged: 1, UntrackedKeys: 2,
		Keys: []signals.KeyCardinality{
			{Key: "user.id", Source: "span", Distinct: 1_001_874, Share: 0.98, SeriesAsLabel: 3_005_622, AddedSeries: 3_005_619,
				Flagged: true, Suggestion: "an identifier: keep it on spans to search traces and use exemplars, never as a metric label"},
			{Key: "http.request.method", Source: "span", Distinct: 4, Share: 1, SeriesAsLabel: 12, AddedSeries: 9},
			{Key: "host.name", Source: "resource", Distinct: 64, DistinctIsLowerBound: true, Share: 0.001, SeriesAsLabel: 64, AddedSeries: 61},
		},
	}},
}

func TestCardinalityCLI(t *testing.T) {
	var query string
	srv := cardinalityServer(t, cardinalityReport, &query)

	code, out, errOut := cardinalityRun(t, "--server", srv.URL, "--service", "checkout", "--top", "3")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if query != "service=checkout&top=3" {
		t.Errorf("query = %q", query)
	}
	want := `Attribute cardinality since 2026-03-01 12:00 UTC (flag at 1000 distinct values)
RED metric series: 12 of 2000

FLAG  SERVICE   KEY                  SOURCE    DISTINCT  SHARE  SERIES AS LABEL
HIGH  checkout  user.id              span      1.0M      98%    3.0M (+3.0M)
      checkout  http.request.method  span      4         100%   12 (+9)
      checkout  host.name            resource  >=64      <1%    64 (+61)
      checkout  (2 more keys not tracked)

Flagged keys (never use them as metric labels):
  checkout user.id: ~1.0M distinct values would add ~3.0M series. An identifier: keep it on spans to search traces and use exemplars, never as a metric label.
`
	if diff := cmp.Diff(want, out); diff != "" {
		t.Errorf("output (-want +got):\n%s", diff)
	}

	code, out, _ = cardinalityRun(t, "--server", srv.URL, "--output", "json", "--top", "0")
	var got signals.CardinalityReport
	if code != exitOK || json.Unmarshal([]byte(out), &got) != nil || got.Services[0].Keys[0].Distinct != 1_001_874 {
		t.Errorf("json output: exit %d, %s", code, out)
	}
	if query != "top=0" {
		t.Errorf("query = %q", query)
	}

	if code, _, _ := cardinalityRun(t, "--server", srv.URL, "--fail-on-flagged"); code != exitFail {
		t.Errorf("--fail-on-flagged with a flagged key: exit %d, want %d", code, exitFail)
	}
}

func TestCardinalityCLIErrors(t *testing.T) {
	var query string
	srv := cardinalityServer(t, signals.CardinalityReport{}, &query)
	down := httptest.NewServer(http.NotFoundHandler())
	downURL := down.URL
	down.Close()
	tests := []struct {
		name string
		args []string
		code int
		err  string
	}{
		{"negative top", []string{"--server", srv.URL, "--top", "-1"}, exitUsage, "--top must not be negative"},
		{"bad output", []string{"--server", srv.URL, "--output", "xml"}, exitUsage, "--output must be text or json"},
		{"stray argument", []string{"--server", srv.URL, "checkout"}, exitUsage, "unexpected argument"},
		{"unknown flag", []string{"--nope"}, exitUsage, "flag provided but not defined"},
		{"server down", []string{"--server", downURL}, exitUsage, "reach tailgate"},
		{"not a tailgate", []string{"--server", srv.URL + "/elsewhere"}, exitUsage, "HTTP 404"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errOut := cardinalityRun(t, tc.args...)
			if code != tc.code || !strings.Contains(errOut, tc.err) {
				t.Errorf("exit %d, stderr %q; want %d and %q", code, errOut, tc.code, tc.err)
			}
		})
	}
	code, out, _ := cardinalityRun(t, "--server", srv.URL)
	if code != exitOK || !strings.Contains(out, "No spans seen yet.") {
		t.Errorf("empty report: exit %d, %q", code, out)
	}
}
