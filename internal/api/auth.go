package api

import (
	"errors"
	"fmt"
	"mime"
	"net"
	"net/http"

	"github.com/tailgate-sre/tailgate/internal/auth"
)

// authorize wraps h so that it runs only for a caller holding scope:
//
//   - no tokens configured (or no Authenticator): everything passes, as
//     the startup warning says;
//   - scope read with public_read: passes without a token (a valid token,
//     when given, still names the caller);
//   - a missing or unknown token: 401 with WWW-Authenticate: Bearer;
//   - a known token without the scope: 403.
//
// Refusals are logged with the method, path, remote address and token
// name, never the token. The handler finds the caller with
// auth.FromContext.
func (s *Server) authorize(scope auth.Scope, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		a := s.deps.Auth
		if a.Open() {
			h(w, r.WithContext(auth.WithPrincipal(r.Context(), auth.Principal{Name: auth.Anonymous})))
			return
		}
		p, err := a.Authenticate(r)
		if scope == auth.ScopeRead && a.PublicRead() {
			if err != nil {
				p = auth.Principal{Name: auth.Anonymous}
			}
			h(w, r.WithContext(auth.WithPrincipal(r.Context(), p)))
			return
		}
		s.authorized(w, r, scope, p, err, h)
	}
}

// write wraps a write endpoint h (overrides, corrections, deploy markers)
// so that it runs only for a request that passes, in this order:
//
//   - the cross-origin check, in every mode: a browser request sent from
//     another site (Sec-Fetch-Site other than same-origin or none, or,
//     without it, an Origin whose host is not the request's Host) is
//     refused with 403, so no web page can make a visitor's browser write;
//   - with tokens configured, a token holding scope, as for any endpoint;
//     with none, auth.allow_anonymous_writes must be on (else 403 naming
//     the fix), and the Host must be an IP address, localhost or one of
//     auth.allowed_hosts (else 403), against DNS rebinding;
//   - a body, when the method has one (POST, PUT, PATCH), must be
//     Content-Type: application/json, else 415: a cross-site form or a
//     text/plain fetch cannot send it without a CORS preflight, which the
//     API never grants. DELETE carries no body and needs no type.
func (s *Server) write(scope auth.Scope, next http.HandlerFunc) http.HandlerFunc {
	h := func(w http.ResponseWriter, r *http.Request) {
		if hasBody(r.Method) {
			if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
				s.refuse(w, r, http.StatusUnsupportedMediaType, "unsupported media type",
					fmt.Sprintf("writes take a JSON body: send Content-Type: application/json, got %q", r.Header.Get("Content-Type")))
				return
			}
		}
		next(w, r)
	}
	return func(w http.ResponseWriter, r *http.Request) {
		if err := s.cop.Check(r); err != nil {
			s.refuse(w, r, http.StatusForbidden, "cross-origin write refused",
				"the API refuses writes a browser sends from another site (Origin "+headerOr(r, "Origin")+", Sec-Fetch-Site "+headerOr(r, "Sec-Fetch-Site")+
					"); send the request from a non-browser client or from the dashboard's own origin")
			return
		}
		a := s.deps.Auth
		if !a.Open() {
			p, err := a.Authenticate(r)
			s.authorized(w, r, scope, p, err, h)
			return
		}
		if !a.AnonymousWrites() {
			s.refuse(w, r, http.StatusForbidden, "anonymous writes are off",
				"no API token is configured (auth.tokens), so reads and gate checks are open and writes are refused: configure a token with the "+
					string(scope)+" scope and send Authorization: Bearer <token>, or set auth.allow_anonymous_writes: true on a trusted network")
			return
		}
		if !a.HostAllowed(r.Host) {
			s.refuse(w, r, http.StatusForbidden, "host not allowed",
				fmt.Sprintf("anonymous writes must name the API by IP address, localhost or a name in auth.allowed_hosts (against DNS rebinding), got Host %q", r.Host))
			return
		}
		h(w, r.WithContext(auth.WithPrincipal(r.Context(), auth.Principal{Name: auth.Anonymous})))
	}
}

// hasBody reports whether requests of method carry a body.
func hasBody(method string) bool {
	switch method {
	case http.MethodPost, http.MethodPut, http.MethodPatch:
		return true
	}
	return false
}

func headerOr(r *http.Request, k string) string {
	if v := r.Header.Get(k); v != "" {
		return fmt.Sprintf("%q", v)
	}
	return "absent"
}

// refuse logs a refused request and answers it with the API's error shape.
func (s *Server) refuse(w http.ResponseWriter, r *http.Request, status int, msg, detail string) {
	s.deps.Logger.Warn("api request refused", "status", status, "method", r.Method, "path", r.URL.Path,
		"remote", remoteHost(r), "reason", msg)
	writeError(w, status, msg, detail)
}

// authorized finishes an authorization whose authentication is done: it
// refuses on err or a missing scope, and runs h otherwise.
func (s *Server) authorized(w http.ResponseWriter, r *http.Request, scope auth.Scope, p auth.Principal, err error, h http.HandlerFunc) {
	if err != nil {
		reason := "missing bearer token"
		if errors.Is(err, auth.ErrBadToken) {
			reason = "unknown bearer token"
		}
		s.deps.Logger.Warn("api request refused", "status", http.StatusUnauthorized, "method", r.Method, "path", r.URL.Path,
			"remote", remoteHost(r), "reason", reason)
		w.Header().Set("WWW-Authenticate", `Bearer realm="tailgate"`)
		writeError(w, http.StatusUnauthorized, "unauthorized", reason+": send Authorization: Bearer <token>")
		return
	}
	if !p.Has(scope) {
		s.deps.Logger.Warn("api request refused", "status", http.StatusForbidden, "method", r.Method, "path", r.URL.Path,
			"remote", remoteHost(r), "token", p.Name, "reason", "missing scope "+string(scope))
		writeError(w, http.StatusForbidden, "forbidden", "token "+p.Name+" lacks the "+string(scope)+" scope")
		return
	}
	h(w, r.WithContext(auth.WithPrincipal(r.Context(), p)))
}

func remoteHost(r *http.Request) string {
	if h, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		return h
	}
	return r.RemoteAddr
}

// principalName is the authenticated caller's name, or "anonymous".
func principalName(r *http.Request) string {
	if p, ok := auth.FromContext(r.Context()); ok && p.Name != "" {
		return p.Name
	}
	return auth.Anonymous
}
