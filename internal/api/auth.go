package api

import (
	"errors"
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
