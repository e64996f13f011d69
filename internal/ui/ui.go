// Package ui serves tailgate's web dashboard: a single-page application of
// static assets embedded in the binary, which reads the same HTTP API that
// users script against. It needs no build step, no network and no CDN.
package ui

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/http"
	"path"
	"sort"
	"strings"
	"time"
)

// static holds the dashboard: index.html, the app's CSS and JavaScript
// modules, and the vendored chart library (see static/vendor/README.md).
//
//go:embed static
var static embed.FS

// AssetPrefix is the URL path under which the assets other than index.html
// are served.
const AssetPrefix = "/static/"

// ContentType returns the Content-Type the dashboard serves name with, and
// false for an extension it does not know. The table is fixed rather than
// read from the mime package, whose answers the host's /etc/mime.types can
// change: a browser refuses a JavaScript module served under a wrong type.
func ContentType(name string) (string, bool) {
	switch path.Ext(name) {
	case ".html":
		return "text/html; charset=utf-8", true
	case ".js":
		return "text/javascript; charset=utf-8", true
	case ".css":
		return "text/css; charset=utf-8", true
	case ".svg":
		return "image/svg+xml", true
	case ".png":
		return "image/png", true
	case ".md":
		return "text/markdown; charset=utf-8", true
	case "": // LICENSE
		return "text/plain; charset=utf-8", true
	}
	return "", false
}

// asset is one embedded file, ready to serve.
type asset struct {
	body        []byte
	contentType string
	etag        string
}

// handler serves the dashboard's assets from memory.
type handler struct {
	assets map[string]asset // by URL path
}

// Handler returns the dashboard's http.Handler. Mount it at "/": it serves
// index.html at "/" and the assets under AssetPrefix, answers 404 for any
// other path, and 405 for methods other than GET and HEAD. The assets are
// public; the data the page shows comes from the API, which authenticates
// its callers.
func Handler() http.Handler {
	h, err := newHandler(static)
	if err != nil {
		// The embedded files are fixed at build time and covered by tests.
		panic(fmt.Sprintf("ui: embedded assets: %v", err))
	}
	return h
}

func newHandler(fsys fs.FS) (*handler, error) {
	h := &handler{assets: map[string]asset{}}
	err := fs.WalkDir(fsys, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := fs.ReadFile(fsys, p)
		if err != nil {
			return fmt.Errorf("read %s: %w", p, err)
		}
		ct, ok := ContentType(p)
		if !ok {
			return fmt.Errorf("%s: no content type for extension %q", p, path.Ext(p))
		}
		sum := sha256.Sum256(body)
		a := asset{body: body, contentType: ct, etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
		rel := strings.TrimPrefix(p, "static/")
		if rel == "index.html" {
			h.assets["/"] = a
			return nil
		}
		h.assets[AssetPrefix+rel] = a
		return nil
	})
	if err != nil {
		return nil, err
	}
	if _, ok := h.assets["/"]; !ok {
		return nil, fmt.Errorf("no static/index.html")
	}
	return h, nil
}

// Paths returns the URL paths of every asset, sorted.
func Paths() []string {
	h, err := newHandler(static)
	if err != nil {
		return nil
	}
	out := make([]string, 0, len(h.assets))
	for p := range h.assets {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// contentSecurityPolicy allows the page to load nothing but its own
// assets and to talk to nothing but its own origin.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; " +
	"img-src 'self' data:; connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// ServeHTTP implements http.Handler.
func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a, ok := h.assets[r.URL.Path]
	if !ok {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	hd := w.Header()
	hd.Set("Content-Type", a.contentType)
	hd.Set("ETag", a.etag)
	// Revalidate every time: the ETag makes that a 304 after the first
	// load, and a new binary's assets are never mixed with cached ones.
	hd.Set("Cache-Control", "no-cache")
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Referrer-Policy", "no-referrer")
	if r.URL.Path == "/" {
		hd.Set("Content-Security-Policy", contentSecurityPolicy)
		hd.Set("X-Frame-Options", "DENY")
	}
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(a.body))
}
