package auth

import (
	"bytes"
	"errors"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestValidate(t *testing.T) {
	cfg := Config{
		Tokens: []Token{
			{Name: "ci", SHA256: HashToken("x"), Scopes: []Scope{ScopeGateCheck}},
			{Name: "ci", SHA256: "abc", Scopes: []Scope{"write"}},
			{Name: "", File: "/f", SHA256: HashToken("y")},
			{Name: "n"},
		},
		TLS: TLSConfig{CertFile: "c.pem", ClientCAFile: "ca.pem", MinVersion: "1.1"},
	}
	want := []string{
		`tokens[1].name: "ci" is already the name of tokens[0]`,
		`tokens[1].sha256: must be 64 hex digits (the SHA-256 of the token), got 3 characters`,
		`tokens[1].scopes[0]: must be read, gate:check, gate:override, ingest or admin, got "write"`,
		`tokens[2].name: must not be empty`,
		`tokens[2]: set only one of sha256 and file`,
		`tokens[2].scopes: must list at least one of read, gate:check, gate:override, ingest, admin`,
		`tokens[3]: set sha256 (hex SHA-256 of the token) or file (a file holding the token)`,
		`tokens[3].scopes: must list at least one of read, gate:check, gate:override, ingest, admin`,
		`tls: set both cert_file and key_file, or neither`,
		`tls.min_version: must be 1.2 or 1.3, got "1.1"`,
	}
	err := cfg.Validate()
	if err == nil {
		t.Fatal("no error")
	}
	if diff := cmp.Diff(want, strings.Split(err.Error(), "\n")); diff != "" {
		t.Errorf("(-want +got)\n%s", diff)
	}
	empty := DefaultConfig()
	if err := empty.Validate(); err != nil {
		t.Errorf("default config: %v", err)
	}
	ca := Config{TLS: TLSConfig{ClientCAFile: "ca.pem"}}
	if err := ca.Validate(); err == nil || !strings.Contains(err.Error(), "tls.client_ca_file: needs cert_file and key_file") {
		t.Errorf("client CA without TLS: %v", err)
	}
}

func TestAuthenticate(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "token")
	if err := os.WriteFile(file, []byte("  from-a-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	a, err := New(Config{Tokens: []Token{
		{Name: "ci", SHA256: HashToken("s3cret"), Scopes: []Scope{ScopeGateCheck}},
		{Name: "ops", File: file, Scopes: []Scope{ScopeAdmin}},
		{Name: "dash", SHA256: strings.ToUpper(HashToken("dash-token")), Scopes: []Scope{ScopeRead}},
	}}, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if a.Open() || a.PublicRead() || logs.Len() != 0 {
		t.Errorf("open=%v public=%v logs=%q", a.Open(), a.PublicRead(), logs.String())
	}
	cases := []struct {
		header string
		want   string
		err    error
	}{
		{"", "", ErrNoToken},
		{"Basic czNjcmV0", "", ErrNoToken},
		{"Bearer", "", ErrNoToken},
		{"Bearer ", "", ErrNoToken},
		{"Bearer wrong", "", ErrBadToken},
		{"Bearer s3cret", "ci", nil},
		{"bearer s3cret", "ci", nil},
		{"Bearer from-a-file", "ops", nil},
		{"Bearer dash-token", "dash", nil},
		{"Bearer s3cret2", "", ErrBadToken},
	}
	for _, tc := range cases {
		r := httptest.NewRequest("GET", "/", nil)
		if tc.header != "" {
			r.Header.Set("Authorization", tc.header)
		}
		p, err := a.Authenticate(r)
		if !errors.Is(err, tc.err) || p.Name != tc.want {
			t.Errorf("%q: got %q, %v; want %q, %v", tc.header, p.Name, err, tc.want, tc.err)
		}
		if err != nil && strings.Contains(err.Error(), "s3cret") {
			t.Errorf("error leaks the token: %v", err)
		}
	}
}

func TestHashTokenIsSHA256Hex(t *testing.T) {
	// printf %s abc | sha256sum
	if got, want := HashToken("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"; got != want {
		t.Errorf("HashToken(abc) = %s, want %s", got, want)
	}
}

func TestScopes(t *testing.T) {
	cases := []struct {
		have []Scope
		need Scope
		want bool
	}{
		{[]Scope{ScopeRead}, ScopeRead, true},
		{[]Scope{ScopeRead}, ScopeGateCheck, false},
		{[]Scope{ScopeGateCheck}, ScopeRead, false},
		{[]Scope{ScopeGateCheck, ScopeGateOverride}, ScopeGateOverride, true},
		{[]Scope{ScopeAdmin}, ScopeGateOverride, true},
		{[]Scope{ScopeAdmin}, ScopeRead, true},
		{nil, ScopeRead, false},
	}
	for _, tc := range cases {
		if got := (Principal{Scopes: tc.have}).Has(tc.need); got != tc.want {
			t.Errorf("%v has %s = %v, want %v", tc.have, tc.need, got, tc.want)
		}
	}
}

func TestNewOpenAndFileErrors(t *testing.T) {
	var logs bytes.Buffer
	a, err := New(Config{}, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil || !a.Open() {
		t.Fatalf("open authenticator: %v", err)
	}
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "no API tokens configured") {
		t.Errorf("no startup warning: %q", logs.String())
	}
	if _, err := New(Config{Tokens: []Token{{Name: "x", File: filepath.Join(t.TempDir(), "missing"), Scopes: []Scope{ScopeRead}}}}, nil); err == nil || !strings.Contains(err.Error(), "auth.tokens[0].file: read token \"x\"") {
		t.Errorf("missing token file: %v", err)
	}
	empty := filepath.Join(t.TempDir(), "empty")
	os.WriteFile(empty, []byte("\n"), 0o600)
	if _, err := New(Config{Tokens: []Token{{Name: "x", File: empty, Scopes: []Scope{ScopeRead}}}}, nil); err == nil || !strings.Contains(err.Error(), "is empty") {
		t.Errorf("empty token file: %v", err)
	}
	var nilAuth *Authenticator
	if !nilAuth.Open() || nilAuth.PublicRead() {
		t.Error("a nil authenticator is open and not public-read")
	}
}

// TestHostAllowed: anonymous writes accept a Host that is an IP address,
// localhost or a listed name, and nothing a rebinding attacker controls.
func TestHostAllowed(t *testing.T) {
	a, err := New(Config{AllowAnonymousWrites: true, AllowedHosts: []string{"Tailgate.LAN"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for host, want := range map[string]bool{
		"127.0.0.1:8080":            true,
		"127.0.0.1":                 true,
		"[::1]:8080":                true,
		"10.1.2.3:80":               true,
		"localhost:8080":            true,
		"LOCALHOST.:8080":           true,
		"app.localhost":             true,
		"tailgate.lan:8080":         true,
		"tailgate.lan.":             true,
		"":                          false,
		"evil.example:8080":         false,
		"localhost.evil.example":    false,
		"tailgate.lan.evil.example": false,
		"127.0.0.1.nip.io":          false,
	} {
		if got := a.HostAllowed(host); got != want {
			t.Errorf("HostAllowed(%q) = %v, want %v", host, got, want)
		}
	}
}

func TestAnonymousWrites(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want bool
	}{
		{"default", Config{}, false},
		{"allowed", Config{AllowAnonymousWrites: true}, true},
	} {
		a, err := New(tc.cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := a.AnonymousWrites(); got != tc.want {
			t.Errorf("%s: AnonymousWrites = %v, want %v", tc.name, got, tc.want)
		}
	}
	var nilAuth *Authenticator
	if nilAuth.AnonymousWrites() || !nilAuth.Open() {
		t.Error("a nil Authenticator is open to reads and closed to writes")
	}
	bad := Config{AllowAnonymousWrites: true, Tokens: []Token{{Name: "ci", SHA256: HashToken("x"), Scopes: []Scope{ScopeRead}}}}
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "allow_anonymous_writes") {
		t.Errorf("anonymous writes with tokens: %v", err)
	}
}
