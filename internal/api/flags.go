package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/tailgate-sre/tailgate/internal/auth"
	"github.com/tailgate-sre/tailgate/internal/flags"
)

// FlagService is what the flag endpoints and OFREP read and change;
// *flags.Service implements it.
type FlagService interface {
	Evaluate(key string, c flags.Context) (flags.Result, error)
	EvaluateAll(c flags.Context) []flags.Outcome
	List() []flags.View
	Get(key string) (flags.View, bool)
	Flip(ctx context.Context, key, variant string, op flags.Op) (flags.View, error)
	Restore(ctx context.Context, key string, op flags.Op) (flags.View, error)
	Pause(ctx context.Context, key string, paused bool, op flags.Op) (flags.View, error)
	Define(ctx context.Context, c flags.Config, op flags.Op) (flags.View, error)
	Delete(ctx context.Context, key string, op flags.Op) error
	History(ctx context.Context, key string, limit int) ([]flags.Change, error)
}

var _ FlagService = (*flags.Service)(nil)

// flagRoutes registers OFREP (questions: scope flags:evaluate) and the
// flag API (reads, and writes with scope flags:write).
func (s *Server) flagRoutes(mux *http.ServeMux) {
	if s.deps.Flags == nil {
		return
	}
	mux.HandleFunc("POST /ofrep/v1/evaluate/flags/{key}", s.authorize(auth.ScopeFlagsEval, s.ofrepEvaluate))
	mux.HandleFunc("POST /ofrep/v1/evaluate/flags", s.authorize(auth.ScopeFlagsEval, s.ofrepBulk))
	mux.HandleFunc("/ofrep/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, ofrepGeneral{ErrorDetails: "no OFREP endpoint " + r.Method + " " + r.URL.Path +
			"; this server implements POST /ofrep/v1/evaluate/flags/{key} and POST /ofrep/v1/evaluate/flags"})
	})
	mux.HandleFunc("GET /api/v1/flags", s.authorize(auth.ScopeRead, s.listFlags))
	mux.HandleFunc("GET /api/v1/flags/{key}", s.authorize(auth.ScopeRead, s.getFlag))
	mux.HandleFunc("GET /api/v1/flags/{key}/history", s.authorize(auth.ScopeRead, s.flagHistory))
	mux.HandleFunc("PUT /api/v1/flags/{key}", s.write(auth.ScopeFlagsWrite, s.defineFlag))
	mux.HandleFunc("DELETE /api/v1/flags/{key}", s.write(auth.ScopeFlagsWrite, s.deleteFlag))
	mux.HandleFunc("POST /api/v1/flags/{key}/{action}", s.write(auth.ScopeFlagsWrite, s.changeFlag))
}

// The OFREP response shapes (open-feature/protocol service/openapi.yaml,
// version 0.3.0).
type (
	ofrepSuccess struct {
		Key      string         `json:"key"`
		Value    any            `json:"value"`
		Reason   flags.Reason   `json:"reason"`
		Variant  string         `json:"variant"`
		Metadata map[string]any `json:"metadata,omitempty"`
	}
	ofrepFailure struct {
		Key          string          `json:"key,omitempty"`
		ErrorCode    flags.ErrorCode `json:"errorCode"`
		ErrorDetails string          `json:"errorDetails,omitempty"`
	}
	ofrepBulkSuccess struct {
		Flags []any `json:"flags"`
	}
	ofrepGeneral struct {
		ErrorDetails string `json:"errorDetails"`
	}
)

// ofrepContext reads an OFREP request body, {"context": {...}}. On failure
// it returns the error to answer with.
func ofrepContext(w http.ResponseWriter, r *http.Request) (flags.Context, *flags.EvalError) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		return flags.Context{}, &flags.EvalError{Code: flags.ErrParse, Detail: "read body: " + err.Error()}
	}
	var req struct {
		Context json.RawMessage `json:"context"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&req); err != nil {
		return flags.Context{}, &flags.EvalError{Code: flags.ErrParse, Detail: "the body is not a JSON object: " + err.Error()}
	}
	if dec.More() {
		return flags.Context{}, &flags.EvalError{Code: flags.ErrParse, Detail: "trailing data after the JSON object"}
	}
	raw := bytes.TrimSpace(req.Context)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return flags.Context{}, &flags.EvalError{Code: flags.ErrInvalidContext, Detail: `the body has no "context" object`}
	}
	var m map[string]any
	if raw[0] != '{' || json.Unmarshal(raw, &m) != nil {
		return flags.Context{}, &flags.EvalError{Code: flags.ErrInvalidContext, Detail: `"context" must be a JSON object`}
	}
	c, err := flags.ContextFromJSON(m)
	if err != nil {
		var ee *flags.EvalError
		if errors.As(err, &ee) {
			return c, ee
		}
		return c, &flags.EvalError{Code: flags.ErrInvalidContext, Detail: err.Error()}
	}
	return c, nil
}

func ofrepResult(res flags.Result) ofrepSuccess {
	out := ofrepSuccess{Key: res.Key, Value: res.Value, Reason: res.Reason, Variant: res.Variant}
	if res.ForcedBy != "" {
		out.Metadata = map[string]any{"forced_by": res.ForcedBy}
	}
	return out
}

// ofrepEvaluate answers POST /ofrep/v1/evaluate/flags/{key}.
func (s *Server) ofrepEvaluate(w http.ResponseWriter, r *http.Request) {
	key := r.PathValue("key")
	c, ee := ofrepContext(w, r)
	if ee != nil {
		writeJSON(w, http.StatusBadRequest, ofrepFailure{Key: key, ErrorCode: ee.Code, ErrorDetails: ee.Detail})
		return
	}
	res, err := s.deps.Flags.Evaluate(key, c)
	if err != nil {
		var ee *flags.EvalError
		if !errors.As(err, &ee) {
			writeJSON(w, http.StatusInternalServerError, ofrepGeneral{ErrorDetails: err.Error()})
			return
		}
		status := http.StatusBadRequest
		if ee.Code == flags.ErrFlagNotFound {
			status = http.StatusNotFound
		}
		writeJSON(w, status, ofrepFailure{Key: key, ErrorCode: ee.Code, ErrorDetails: ee.Detail})
		return
	}
	writeJSON(w, http.StatusOK, ofrepResult(res))
}

// ofrepBulk answers POST /ofrep/v1/evaluate/flags: every flag for one
// context, with an ETag of the answer so that a client polling with
// If-None-Match gets 304 until a flag or its value for this context
// changes.
func (s *Server) ofrepBulk(w http.ResponseWriter, r *http.Request) {
	c, ee := ofrepContext(w, r)
	if ee != nil {
		writeJSON(w, http.StatusBadRequest, ofrepFailure{ErrorCode: ee.Code, ErrorDetails: ee.Detail})
		return
	}
	out := ofrepBulkSuccess{Flags: []any{}}
	for _, o := range s.deps.Flags.EvaluateAll(c) {
		if o.Err != nil {
			out.Flags = append(out.Flags, ofrepFailure{Key: o.Result.Key, ErrorCode: o.Err.Code, ErrorDetails: o.Err.Detail})
			continue
		}
		out.Flags = append(out.Flags, ofrepResult(o.Result))
	}
	body, err := json.Marshal(out)
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, ofrepGeneral{ErrorDetails: err.Error()})
		return
	}
	sum := sha256.Sum256(body)
	etag := `"` + hex.EncodeToString(sum[:12]) + `"`
	w.Header().Set("ETag", etag)
	if etagMatch(r.Header.Get("If-None-Match"), etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}

// etagMatch implements If-None-Match's weak comparison (RFC 9110 13.1.2)
// against one current ETag.
func etagMatch(header, etag string) bool {
	if header == "" {
		return false
	}
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimSpace(t)
		if t == "*" || strings.TrimPrefix(t, "W/") == etag {
			return true
		}
	}
	return false
}

func (s *Server) listFlags(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"flags": s.deps.Flags.List()})
}

func (s *Server) getFlag(w http.ResponseWriter, r *http.Request) {
	v, ok := s.deps.Flags.Get(r.PathValue("key"))
	if !ok {
		writeError(w, http.StatusNotFound, "not found", "no flag "+strconv.Quote(r.PathValue("key")))
		return
	}
	writeJSON(w, http.StatusOK, v)
}

func (s *Server) flagHistory(w http.ResponseWriter, r *http.Request) {
	limit := 100
	if q := r.URL.Query().Get("limit"); q != "" {
		n, err := strconv.Atoi(q)
		if err != nil || n < 1 || n > 10000 {
			writeError(w, http.StatusBadRequest, "invalid request", "limit: want a whole number from 1 to 10000, got "+strconv.Quote(q))
			return
		}
		limit = n
	}
	hs, err := s.deps.Flags.History(r.Context(), r.PathValue("key"), limit)
	if err != nil {
		s.flagError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"history": hs})
}

// FlagChangeRequest is the body of POST /api/v1/flags/{key}/{action}.
type FlagChangeRequest struct {
	// Variant to force (flip only).
	Variant string `json:"variant,omitempty"`
	// Reason is recorded in the flag's history and the audit log.
	Reason string `json:"reason"`
}

// changeFlag answers flip, restore, pause and resume.
func (s *Server) changeFlag(w http.ResponseWriter, r *http.Request) {
	var req FlagChangeRequest
	if !decodeJSON(w, r, &req) {
		return
	}
	key, action := r.PathValue("key"), r.PathValue("action")
	if strings.TrimSpace(req.Reason) == "" {
		writeError(w, http.StatusBadRequest, "invalid request", "reason: say why the flag changes; it goes into its history and the audit log")
		return
	}
	op := flags.Op{Actor: principalName(r), Source: "operator", Reason: req.Reason}
	var v flags.View
	var err error
	switch action {
	case "flip":
		if req.Variant == "" {
			writeError(w, http.StatusBadRequest, "invalid request", "variant: name the variant to serve")
			return
		}
		v, err = s.deps.Flags.Flip(r.Context(), key, req.Variant, op)
	case "restore":
		v, err = s.deps.Flags.Restore(r.Context(), key, op)
	case "pause":
		v, err = s.deps.Flags.Pause(r.Context(), key, true, op)
	case "resume":
		v, err = s.deps.Flags.Pause(r.Context(), key, false, op)
	default:
		writeError(w, http.StatusNotFound, "not found", "no flag action "+strconv.Quote(action)+"; want flip, restore, pause or resume")
		return
	}
	if err != nil {
		s.flagError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

// FlagDefineRequest is the body of PUT /api/v1/flags/{key}.
type FlagDefineRequest struct {
	flags.Config
	Reason string `json:"reason"`
}

func (s *Server) defineFlag(w http.ResponseWriter, r *http.Request) {
	var req FlagDefineRequest
	if !decodeJSON(w, r, &req) {
		return
	}
	key := r.PathValue("key")
	if req.Key == "" {
		req.Key = key
	}
	if req.Key != key {
		writeError(w, http.StatusBadRequest, "invalid request", "key: the body names "+strconv.Quote(req.Key)+" but the path "+strconv.Quote(key))
		return
	}
	v, err := s.deps.Flags.Define(r.Context(), req.Config, flags.Op{Actor: principalName(r), Reason: req.Reason})
	if err != nil {
		s.flagError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

func (s *Server) deleteFlag(w http.ResponseWriter, r *http.Request) {
	err := s.deps.Flags.Delete(r.Context(), r.PathValue("key"), flags.Op{Actor: principalName(r), Reason: r.URL.Query().Get("reason")})
	if err != nil {
		s.flagError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// flagError maps a flags error to its status.
func (s *Server) flagError(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, flags.ErrUnknownFlag):
		writeError(w, http.StatusNotFound, "not found", err.Error())
	case errors.Is(err, flags.ErrInvalid):
		writeError(w, http.StatusBadRequest, "invalid request", err.Error())
	case errors.Is(err, flags.ErrDeclarative):
		writeError(w, http.StatusConflict, "flag defined in the config file", err.Error())
	case errors.Is(err, context.Canceled):
	default:
		s.deps.Logger.Error("flag request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		writeError(w, http.StatusInternalServerError, "internal error", err.Error())
	}
}
