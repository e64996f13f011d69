package shed

import "net/http"

// Middleware returns next wrapped so that requests are admitted or refused
// by their criticality. A refused request gets 503 Service Unavailable with
// Retry-After and never reaches next. An admitted request reaches next with
// its criticality in the context (FromContext; a Default request may carry
// none, which means the same).
//
// The criticality is, in order: the one the request's context carries
// (WithCriticality), the header Config.Header, the route table
// Config.Routes, else Default.
//
// Put the tracing middleware (such as otelhttp) outside this one, so the
// request's span exists when shed.criticality and shed.reason are set.
func (s *Shedder) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		c, inCtx := FromContext(ctx)
		if !inCtx {
			c = s.httpCriticality(r)
		}
		tok, reason := s.Admit(ctx, c)
		if reason != None {
			h := w.Header()
			h.Set("Retry-After", s.retryHTTP)
			h.Set("Content-Type", "text/plain; charset=utf-8")
			h.Set("X-Content-Type-Options", "nosniff")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write(refusalBody[reason])
			return
		}
		defer tok.Done()
		if !inCtx && c != Default {
			// Default is what an empty context means already; not
			// copying the request saves two allocations.
			r = r.WithContext(WithCriticality(ctx, c))
		}
		next.ServeHTTP(w, r)
	})
}

// refusalBody is the text of a refusal, by reason.
var refusalBody = [numReasons][]byte{
	Limit: []byte("service overloaded: request shed (concurrency_limit), retry later\n"),
	Level: []byte("service overloaded: request shed (shed_level), retry later\n"),
}

// httpCriticality reads a request's criticality from the header, then the
// route table.
func (s *Shedder) httpCriticality(r *http.Request) Criticality {
	if v := r.Header.Get(s.header); v != "" {
		if c, err := ParseCriticality(v); err == nil {
			return c
		}
	}
	if s.mux != nil {
		if _, p := s.mux.Handler(r); p != "" {
			if c, ok := s.routes[p]; ok {
				return c
			}
		}
	}
	return Default
}
