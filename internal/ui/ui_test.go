package ui_test

import (
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/tailgate-sre/tailgate/internal/api"
	"github.com/tailgate-sre/tailgate/internal/ui"
)

// staticFiles lists the files under static/ on disk: what go:embed takes.
func staticFiles(t *testing.T) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir("static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		out = append(out, filepath.ToSlash(p))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// urlPath is where the dashboard serves a file of static/.
func urlPath(file string) string {
	rel := strings.TrimPrefix(file, "static/")
	if rel == "index.html" {
		return "/"
	}
	return "/static/" + rel
}

// wantContentType is written from the media types' registrations (RFC 9239
// for JavaScript, RFC 2318 for CSS), not from the package's table.
func wantContentType(file string) string {
	switch path.Ext(file) {
	case ".html":
		return "text/html; charset=utf-8"
	case ".js":
		return "text/javascript; charset=utf-8"
	case ".css":
		return "text/css; charset=utf-8"
	case ".md":
		return "text/markdown; charset=utf-8"
	case "":
		return "text/plain; charset=utf-8"
	}
	return "unexpected extension " + path.Ext(file)
}

func TestEveryAssetIsServedWithItsType(t *testing.T) {
	srv := httptest.NewServer(ui.Handler())
	defer srv.Close()
	files := staticFiles(t)
	var paths []string
	for _, f := range files {
		paths = append(paths, urlPath(f))
	}
	slices.Sort(paths)
	if diff := cmp.Diff(paths, ui.Paths()); diff != "" {
		t.Errorf("served paths differ from the files under static/ (-on disk +served):\n%s", diff)
	}
	for _, f := range files {
		t.Run(f, func(t *testing.T) {
			want, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			res, err := http.Get(srv.URL + urlPath(f))
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != http.StatusOK {
				t.Fatalf("GET %s: %s", urlPath(f), res.Status)
			}
			if got := res.Header.Get("Content-Type"); got != wantContentType(f) {
				t.Errorf("Content-Type = %q, want %q", got, wantContentType(f))
			}
			if got := res.Header.Get("X-Content-Type-Options"); got != "nosniff" {
				t.Errorf("X-Content-Type-Options = %q, want nosniff", got)
			}
			if string(body) != string(want) {
				t.Errorf("body of %s differs from the file (%d bytes, want %d)", urlPath(f), len(body), len(want))
			}
			etag := res.Header.Get("ETag")
			if etag == "" {
				t.Fatal("no ETag")
			}
			req, _ := http.NewRequest(http.MethodGet, srv.URL+urlPath(f), nil)
			req.Header.Set("If-None-Match", etag)
			res2, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			res2.Body.Close()
			if res2.StatusCode != http.StatusNotModified {
				t.Errorf("conditional GET with the ETag: %s, want 304", res2.Status)
			}
		})
	}
}

func TestHandlerRefusesWhatItDoesNotServe(t *testing.T) {
	srv := httptest.NewServer(ui.Handler())
	defer srv.Close()
	tests := []struct {
		name, method, path string
		want               int
	}{
		{"unknown asset", http.MethodGet, "/static/js/nope.js", http.StatusNotFound},
		{"directory", http.MethodGet, "/static/", http.StatusNotFound},
		{"index by name", http.MethodGet, "/static/index.html", http.StatusNotFound},
		{"other page", http.MethodGet, "/admin", http.StatusNotFound},
		{"traversal", http.MethodGet, "/static/../ui.go", http.StatusNotFound},
		{"post", http.MethodPost, "/", http.StatusMethodNotAllowed},
		{"delete asset", http.MethodDelete, "/static/app.css", http.StatusMethodNotAllowed},
		{"head", http.MethodHead, "/", http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, srv.URL+tt.path, nil)
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if res.StatusCode != tt.want {
				t.Errorf("%s %s: %d, want %d", tt.method, tt.path, res.StatusCode, tt.want)
			}
		})
	}
}

// externalRef finds anything a browser could fetch from elsewhere: an
// absolute or protocol-relative URL, a CSS import, a remote font.
var externalRef = regexp.MustCompile(`(?i)(https?:|wss?:|ftp:)//|(src|href|action)\s*=\s*["']?//|url\(\s*["']?//|@import`)

// allowedRefs are the only matches that fetch nothing: the SVG namespace
// name and the banner comment of the vendored uPlot.
var allowedRefs = []string{
	`'http://www.w3.org/2000/svg'`,
	`/*! https://github.com/leeoniya/uPlot (v`,
}

func TestDashboardWorksOffline(t *testing.T) {
	for _, f := range staticFiles(t) {
		switch path.Ext(f) {
		case ".html", ".js", ".css":
		default:
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		text := string(b)
		for _, a := range allowedRefs {
			text = strings.ReplaceAll(text, a, "")
		}
		for _, loc := range externalRef.FindAllStringIndex(text, -1) {
			line := 1 + strings.Count(text[:loc[0]], "\n")
			t.Errorf("%s:%d: external reference %q: the dashboard must work offline", f, line, text[loc[0]:min(len(text), loc[1]+40)])
		}
	}
}

// TestReferencesResolve checks that every asset the page or a module
// loads is embedded: a typo would otherwise show only in a browser.
func TestReferencesResolve(t *testing.T) {
	served := map[string]bool{}
	for _, p := range ui.Paths() {
		served[p] = true
	}
	htmlRef := regexp.MustCompile(`(?:src|href)="([^"#:]+)"`)
	importRef := regexp.MustCompile(`(?m)^\s*(?:import|export)\s[^'"]*?from\s+'([^']+)'|^\s*import\s+'([^']+)'`)
	for _, f := range staticFiles(t) {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var refs []string
		switch path.Ext(f) {
		case ".html":
			for _, m := range htmlRef.FindAllStringSubmatch(string(b), -1) {
				refs = append(refs, "/"+m[1]) // relative to the page at /
			}
		case ".js":
			for _, m := range importRef.FindAllStringSubmatch(string(b), -1) {
				ref := m[1] + m[2]
				refs = append(refs, path.Join(path.Dir(urlPath(f)), ref))
			}
		}
		for _, r := range refs {
			if !served[r] {
				t.Errorf("%s refers to %s, which is not served", f, r)
			}
		}
	}
}

// TestAPIServesDashboard checks the mount on the API server: the
// dashboard at /, and the API, metrics and health routes unchanged.
func TestAPIServesDashboard(t *testing.T) {
	srv := httptest.NewServer(api.New(api.Deps{}))
	defer srv.Close()
	tests := []struct {
		path       string
		wantStatus int
		wantType   string
	}{
		{"/", http.StatusOK, "text/html; charset=utf-8"},
		{"/static/js/app.js", http.StatusOK, "text/javascript; charset=utf-8"},
		{"/healthz", http.StatusOK, "application/json"},
		{"/api/v1/nope", http.StatusNotFound, "application/json"},
		{"/api/v1/slos", http.StatusNotFound, "application/json"}, // no SLO source here
		{"/favicon.ico", http.StatusNotFound, "text/plain; charset=utf-8"},
	}
	for _, tt := range tests {
		res, err := http.Get(srv.URL + tt.path)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != tt.wantStatus || res.Header.Get("Content-Type") != tt.wantType {
			t.Errorf("GET %s: %d %q, want %d %q", tt.path, res.StatusCode, res.Header.Get("Content-Type"), tt.wantStatus, tt.wantType)
		}
	}
	res, err := http.Get(srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	csp := res.Header.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'none'", "script-src 'self'", "connect-src 'self'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("Content-Security-Policy %q lacks %q", csp, want)
		}
	}
}
