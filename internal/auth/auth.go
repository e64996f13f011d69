// Package auth authenticates API callers by bearer token and scope, and
// builds the API listener's TLS (and mTLS) configuration.
//
// Tokens are configured by the SHA-256 of their value (or a file holding
// the value), never in clear in the config. A request's token is hashed and
// compared in constant time against every configured hash. Scopes: read,
// gate:check, gate:override, ingest (OTLP export, when
// ingest.require_token is on) and admin, which implies the others. A token
// with the ingest scope may be bound to services (globs of service.name):
// its spans of any other service are refused.
package auth

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync/atomic"
)

// Scope is a permission a token carries.
type Scope string

// The scopes.
const (
	ScopeRead         Scope = "read"            // every GET endpoint
	ScopeGateCheck    Scope = "gate:check"      // gate checks, deploy markers
	ScopeGateOverride Scope = "gate:override"   // overrides, SLO corrections
	ScopeIngest       Scope = "ingest"          // OTLP exports, when ingest.require_token is on
	ScopeFlagsEval    Scope = "flags:evaluate"  // OFREP flag evaluations
	ScopeFlagsWrite   Scope = "flags:write"     // flag flips, pauses, API flag definitions
	ScopeIncidents    Scope = "incidents:write" // incident changes
	ScopeAdmin        Scope = "admin"           // everything
)

// Scopes returns every scope, in a fixed order.
func Scopes() []Scope {
	return []Scope{ScopeRead, ScopeGateCheck, ScopeGateOverride, ScopeIngest, ScopeFlagsEval, ScopeFlagsWrite, ScopeIncidents, ScopeAdmin}
}

// UnmarshalYAML reads a scope. Inside a flow mapping ({name: ci, scopes:
// [read, gate:check]}) the YAML library reads gate:check as a one-entry
// map, although YAML 1.2 reads it as one plain scalar (the colon is not
// followed by a space); such a map is read back as the scalar it was.
func (s *Scope) UnmarshalYAML(unmarshal func(any) error) error {
	var str string
	if err := unmarshal(&str); err == nil {
		*s = Scope(str)
		return nil
	}
	var m map[string]any
	if err := unmarshal(&m); err == nil && len(m) == 1 {
		for k, v := range m {
			if vs, ok := v.(string); ok && k != "" && vs != "" && !strings.ContainsAny(k+vs, " \t") {
				*s = Scope(k + ":" + vs)
				return nil
			}
		}
	}
	return fmt.Errorf("a scope is a name such as read or gate:check")
}

func (s Scope) valid() bool {
	switch s {
	case ScopeRead, ScopeGateCheck, ScopeGateOverride, ScopeIngest, ScopeFlagsEval, ScopeFlagsWrite, ScopeIncidents, ScopeAdmin:
		return true
	}
	return false
}

// Config is the auth: section of the config file.
type Config struct {
	// Tokens that may call the API. With none, the API is open to anyone
	// who can reach it (a warning is logged at startup).
	Tokens []Token `yaml:"tokens"`
	// PublicRead opens the read endpoints (GET) without a token, for a
	// dashboard on a trusted network. Default false.
	PublicRead bool `yaml:"public_read"`
	// AllowAnonymousWrites lets writes (overrides, corrections, deploy
	// markers) through without a token when no token is configured, for a
	// laptop or a trusted network. Default false: with no tokens, reads and
	// questions (gate checks) are open and writes are refused. It cannot be
	// combined with tokens.
	AllowAnonymousWrites bool `yaml:"allow_anonymous_writes"`
	// AllowedHosts are the host names (besides IP addresses and localhost)
	// an anonymous write may name in its Host header. Anonymous writes to
	// any other name are refused, so that a web page whose name an attacker
	// rebinds to the API's address (DNS rebinding) cannot write.
	AllowedHosts []string `yaml:"allowed_hosts"`
	// TLS serves the API over TLS, optionally requiring client
	// certificates.
	TLS TLSConfig `yaml:"tls"`
}

// Token is one API token. Exactly one of SHA256 and File is set.
type Token struct {
	// Name identifies the token in logs and audit records.
	Name string `yaml:"name"`
	// SHA256 is the hex SHA-256 of the token's value, e.g. the output of
	// `printf %s "$TOKEN" | sha256sum`.
	SHA256 string `yaml:"sha256"`
	// File holds the token's value (surrounding whitespace is ignored),
	// e.g. a mounted Kubernetes secret.
	File   string  `yaml:"file"`
	Scopes []Scope `yaml:"scopes"`
	// Services, when set, binds an ingest token to the services whose
	// service.name matches one of these globs ("*" matches any run of
	// characters, everything else matches itself): the token's spans of
	// any other service are refused (OTLP partial success). Empty means
	// every service. Valid only on a token that lists the ingest scope.
	Services []string `yaml:"services"`
}

// DefaultConfig is no tokens, no TLS (TLS 1.2 at least once it is on).
func DefaultConfig() Config { return Config{TLS: TLSConfig{MinVersion: "1.2"}} }

// Validate reports every problem at once, each naming its key relative to
// the auth section, e.g. "tokens[1].scopes[0]: ...". It opens no file.
func (c *Config) Validate() error {
	var errs []error
	names := map[string]int{}
	for i, t := range c.Tokens {
		k := fmt.Sprintf("tokens[%d]", i)
		if t.Name == "" {
			errs = append(errs, fmt.Errorf("%s.name: must not be empty", k))
		} else if j, dup := names[t.Name]; dup {
			errs = append(errs, fmt.Errorf("%s.name: %q is already the name of tokens[%d]", k, t.Name, j))
		} else {
			names[t.Name] = i
		}
		switch {
		case t.SHA256 == "" && t.File == "":
			errs = append(errs, fmt.Errorf("%s: set sha256 (hex SHA-256 of the token) or file (a file holding the token)", k))
		case t.SHA256 != "" && t.File != "":
			errs = append(errs, fmt.Errorf("%s: set only one of sha256 and file", k))
		case t.SHA256 != "":
			if b, err := hex.DecodeString(t.SHA256); err != nil || len(b) != sha256.Size {
				errs = append(errs, fmt.Errorf("%s.sha256: must be 64 hex digits (the SHA-256 of the token), got %d characters", k, len(t.SHA256)))
			}
		}
		if len(t.Scopes) == 0 {
			errs = append(errs, fmt.Errorf("%s.scopes: must list at least one of read, gate:check, gate:override, ingest, admin", k))
		}
		for j, s := range t.Scopes {
			if !s.valid() {
				errs = append(errs, fmt.Errorf("%s.scopes[%d]: must be read, gate:check, gate:override, ingest or admin, got %q", k, j, s))
			}
		}
		if len(t.Services) > 0 && !slices.Contains(t.Scopes, ScopeIngest) {
			errs = append(errs, fmt.Errorf("%s.services: binds OTLP ingest to services, so it needs the ingest scope in %s.scopes; add it, or remove services", k, k))
		}
		for j, g := range t.Services {
			if strings.TrimSpace(g) == "" {
				errs = append(errs, fmt.Errorf("%s.services[%d]: must not be empty (use \"*\" for every service, or remove services)", k, j))
			}
		}
	}
	if c.AllowAnonymousWrites && len(c.Tokens) > 0 {
		errs = append(errs, errors.New("allow_anonymous_writes: applies only when no tokens are configured; remove it, or give the writers a token with the gate:override or gate:check scope"))
	}
	for i, h := range c.AllowedHosts {
		if h == "" || strings.ContainsAny(h, ":/ ") {
			errs = append(errs, fmt.Errorf("allowed_hosts[%d]: must be a host name without port or scheme, got %q", i, h))
		}
	}
	errs = append(errs, c.TLS.validate()...)
	return errors.Join(errs...)
}

// Errors of Authenticate; neither carries the token.
var (
	ErrNoToken  = errors.New("no bearer token")
	ErrBadToken = errors.New("unknown bearer token")
)

// Principal is an authenticated caller.
type Principal struct {
	Name   string
	Scopes []Scope
	// Services are the globs of service.name the principal may send spans
	// of; empty means every service.
	Services []string
}

// ServiceAllowed reports whether the principal may send spans of the
// service named name.
func (p Principal) ServiceAllowed(name string) bool {
	if len(p.Services) == 0 {
		return true
	}
	for _, g := range p.Services {
		if Glob(g, name) {
			return true
		}
	}
	return false
}

// Glob reports whether name matches pattern, in which "*" matches any run
// of characters (none included) and every other character matches itself.
func Glob(pattern, name string) bool {
	// The classic greedy match with one backtrack point: linear in
	// practice, never exponential.
	p, n := 0, 0
	star, mark := -1, 0
	for n < len(name) {
		switch {
		case p < len(pattern) && pattern[p] == '*':
			star, mark = p, n
			p++
		case p < len(pattern) && pattern[p] == name[n]:
			p++
			n++
		case star >= 0:
			p = star + 1
			mark++
			n = mark
		default:
			return false
		}
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}

// Anonymous is the principal of a request let through without a token.
const Anonymous = "anonymous"

// Has reports whether the principal holds scope; admin holds every scope.
func (p Principal) Has(s Scope) bool {
	for _, have := range p.Scopes {
		if have == s || have == ScopeAdmin {
			return true
		}
	}
	return false
}

type entry struct {
	name     string
	hash     [sha256.Size]byte
	scopes   []Scope
	services []string
}

// Authenticator checks bearer tokens. It is safe for concurrent use,
// Reload included.
type Authenticator struct {
	// cfg is the configured tokens, kept to re-read their files.
	cfg []Token
	// tokens is the current []entry, replaced whole by Reload.
	tokens          atomic.Pointer[[]entry]
	publicRead      bool
	anonymousWrites bool
	allowedHosts    []string
}

// New reads the token files of a validated cfg and returns the
// Authenticator. Only the hashes are kept. With no tokens configured it
// logs a warning: the API is open.
func New(cfg Config, log *slog.Logger) (*Authenticator, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	a := &Authenticator{publicRead: cfg.PublicRead, anonymousWrites: cfg.AllowAnonymousWrites}
	for _, h := range cfg.AllowedHosts {
		a.allowedHosts = append(a.allowedHosts, strings.ToLower(strings.TrimSuffix(h, ".")))
	}
	a.cfg = slices.Clone(cfg.Tokens)
	tokens, err := loadTokens(a.cfg)
	if err != nil {
		return nil, err
	}
	a.tokens.Store(&tokens)
	switch {
	case len(tokens) > 0:
	case a.anonymousWrites:
		log.Warn("no API tokens configured (auth.tokens) and auth.allow_anonymous_writes is on: every endpoint, including gate overrides and SLO corrections, is open to anyone who can reach the API")
	default:
		log.Warn("no API tokens configured (auth.tokens): reads and gate checks are open to anyone who can reach the API; writes (overrides, corrections, deploy markers) are refused")
	}
	return a, nil
}

// loadTokens reads the token files and decodes the hashes of cfg.
func loadTokens(cfg []Token) ([]entry, error) {
	tokens := make([]entry, 0, len(cfg))
	for i, t := range cfg {
		e := entry{name: t.Name, scopes: slices.Clone(t.Scopes), services: slices.Clone(t.Services)}
		if t.File != "" {
			b, err := os.ReadFile(t.File)
			if err != nil {
				return nil, fmt.Errorf("auth.tokens[%d].file: read token %q: %w", i, t.Name, err)
			}
			v := strings.TrimSpace(string(b))
			if v == "" {
				return nil, fmt.Errorf("auth.tokens[%d].file: %s is empty", i, t.File)
			}
			e.hash = sha256.Sum256([]byte(v))
		} else {
			b, err := hex.DecodeString(t.SHA256)
			if err != nil || len(b) != sha256.Size {
				return nil, fmt.Errorf("auth.tokens[%d].sha256: must be 64 hex digits", i)
			}
			copy(e.hash[:], b)
		}
		tokens = append(tokens, e)
	}
	return tokens, nil
}

// Reload re-reads the token files (auth.tokens[].file), so a rotated
// secret takes effect without a restart; requests being checked see the
// old set or the new one, never a mix. On an error (a file missing or
// empty) every token keeps its current value. Tokens given as sha256 come
// from the config file, which Reload does not re-read.
func (a *Authenticator) Reload() error {
	if a == nil {
		return nil
	}
	tokens, err := loadTokens(a.cfg)
	if err != nil {
		return err
	}
	a.tokens.Store(&tokens)
	return nil
}

// Open reports whether no token is configured, so reads and questions
// pass without one.
func (a *Authenticator) Open() bool { return a == nil || len(a.cfg) == 0 }

// AnonymousWrites reports whether writes pass without a token: no token is
// configured and auth.allow_anonymous_writes is on.
func (a *Authenticator) AnonymousWrites() bool { return a.Open() && a != nil && a.anonymousWrites }

// HostAllowed reports whether an anonymous write may name host (a Host
// header, with or without port): an IP address, localhost or a name under
// .localhost, or one of auth.allowed_hosts. Any other name may be a
// rebinding of an attacker's domain to the API's address.
func (a *Authenticator) HostAllowed(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.ToLower(strings.TrimSuffix(strings.Trim(host, "[]"), "."))
	if host == "" {
		return false
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return true
	}
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	return a != nil && slices.Contains(a.allowedHosts, host)
}

// PublicRead reports whether read endpoints need no token.
func (a *Authenticator) PublicRead() bool { return a != nil && a.publicRead }

// Authenticate finds the principal of the request's bearer token.
func (a *Authenticator) Authenticate(r *http.Request) (Principal, error) {
	return a.AuthenticateHeader(r.Header.Get("Authorization"))
}

// AuthenticateHeader finds the principal of an Authorization header's
// value (or gRPC authorization metadata), "Bearer <token>".
func (a *Authenticator) AuthenticateHeader(h string) (Principal, error) {
	scheme, tok, ok := strings.Cut(h, " ")
	tok = strings.TrimSpace(tok)
	if h == "" || !ok || !strings.EqualFold(scheme, "Bearer") || tok == "" {
		return Principal{}, ErrNoToken
	}
	return a.AuthenticateToken(tok)
}

// AuthenticateToken finds the principal of a token value. Every configured
// hash is compared, in constant time, so the time taken says nothing about
// which token (if any) nearly matched.
func (a *Authenticator) AuthenticateToken(tok string) (Principal, error) {
	if tok == "" {
		return Principal{}, ErrNoToken
	}
	sum := sha256.Sum256([]byte(tok))
	var tokens []entry
	if a != nil {
		if p := a.tokens.Load(); p != nil {
			tokens = *p
		}
	}
	found := -1
	for i := range tokens {
		if subtle.ConstantTimeCompare(sum[:], tokens[i].hash[:]) == 1 {
			found = i
		}
	}
	if found < 0 {
		return Principal{}, ErrBadToken
	}
	e := tokens[found]
	return Principal{Name: e.name, Scopes: e.scopes, Services: e.services}, nil
}

// HashToken returns the hex SHA-256 of a token, the form the config holds.
func HashToken(tok string) string {
	sum := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(sum[:])
}

type principalKey struct{}

// WithPrincipal returns ctx carrying p.
func WithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// FromContext returns the principal a request was authenticated as.
func FromContext(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok
}
