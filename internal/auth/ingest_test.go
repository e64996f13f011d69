package auth

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestGlob(t *testing.T) {
	cases := []struct {
		pattern, name string
		want          bool
	}{
		{"checkout", "checkout", true},
		{"checkout", "checkout2", false},
		{"checkout", "checkou", false},
		{"*", "", true},
		{"*", "any/thing", true},
		{"pay*", "payments", true},
		{"pay*", "pay", true},
		{"pay*", "repay", false},
		{"*-api", "orders-api", true},
		{"*-api", "orders-api-v2", false},
		{"a*b*c", "aXbYbZc", true},
		{"a*b*c", "aXbYbZ", false},
		{"team-*-*", "team-a-b", true},
		{"team-*-*", "team-a", false},
		{"", "", true},
		{"", "x", false},
		// "?" and "[" are literal, unlike path.Match.
		{"a?c", "abc", false},
		{"a?c", "a?c", true},
		{"[ab]", "a", false},
	}
	for _, c := range cases {
		if got := Glob(c.pattern, c.name); got != c.want {
			t.Errorf("Glob(%q, %q) = %v, want %v", c.pattern, c.name, got, c.want)
		}
	}
}

func TestServiceAllowed(t *testing.T) {
	unbound := Principal{Name: "all", Scopes: []Scope{ScopeIngest}}
	bound := Principal{Name: "pay", Scopes: []Scope{ScopeIngest}, Services: []string{"payments", "ledger-*"}}
	for _, c := range []struct {
		p       Principal
		service string
		want    bool
	}{
		{unbound, "anything", true},
		{unbound, "", true},
		{bound, "payments", true},
		{bound, "ledger-writer", true},
		{bound, "checkout", false},
		{bound, "", false},
	} {
		if got := c.p.ServiceAllowed(c.service); got != c.want {
			t.Errorf("%s.ServiceAllowed(%q) = %v, want %v", c.p.Name, c.service, got, c.want)
		}
	}
}

func TestValidateIngestScope(t *testing.T) {
	cfg := Config{Tokens: []Token{
		{Name: "collector", SHA256: HashToken("a"), Scopes: []Scope{ScopeIngest}, Services: []string{"payments"}},
		{Name: "ci", SHA256: HashToken("b"), Scopes: []Scope{ScopeGateCheck}, Services: []string{"payments"}},
		{Name: "ops", SHA256: HashToken("c"), Scopes: []Scope{ScopeAdmin}, Services: []string{"x"}},
		{Name: "empty", SHA256: HashToken("d"), Scopes: []Scope{ScopeIngest}, Services: []string{" "}},
	}}
	want := []string{
		`tokens[1].services: binds OTLP ingest to services, so it needs the ingest scope in tokens[1].scopes; add it, or remove services`,
		`tokens[2].services: binds OTLP ingest to services, so it needs the ingest scope in tokens[2].scopes; add it, or remove services`,
		`tokens[3].services[0]: must not be empty (use "*" for every service, or remove services)`,
	}
	err := cfg.Validate()
	if err == nil {
		t.Fatal("no error")
	}
	if diff := cmp.Diff(want, strings.Split(err.Error(), "\n")); diff != "" {
		t.Errorf("(-want +got)\n%s", diff)
	}
}

func TestAuthenticateIngestToken(t *testing.T) {
	a, err := New(Config{Tokens: []Token{
		{Name: "collector", SHA256: HashToken("col"), Scopes: []Scope{ScopeIngest}, Services: []string{"pay*"}},
		{Name: "ci", SHA256: HashToken("ci"), Scopes: []Scope{ScopeGateCheck}},
	}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	p, err := a.AuthenticateToken("col")
	if err != nil {
		t.Fatal(err)
	}
	if want := (Principal{Name: "collector", Scopes: []Scope{ScopeIngest}, Services: []string{"pay*"}}); !cmp.Equal(p, want) {
		t.Errorf("principal = %+v, want %+v", p, want)
	}
	if !p.Has(ScopeIngest) || p.Has(ScopeRead) {
		t.Errorf("ingest token: Has(ingest)=%v Has(read)=%v, want true false", p.Has(ScopeIngest), p.Has(ScopeRead))
	}
	ci, err := a.AuthenticateToken("ci")
	if err != nil {
		t.Fatal(err)
	}
	if ci.Has(ScopeIngest) {
		t.Error("a gate:check token holds the ingest scope")
	}
}

func TestReloadRereadsTokenFiles(t *testing.T) {
	file := filepath.Join(t.TempDir(), "token")
	write := func(v string) {
		t.Helper()
		if err := os.WriteFile(file, []byte(v), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("old-secret\n")
	a, err := New(Config{Tokens: []Token{
		{Name: "collector", File: file, Scopes: []Scope{ScopeIngest}},
		{Name: "ci", SHA256: HashToken("ci"), Scopes: []Scope{ScopeGateCheck}},
	}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	valid := func(tok string) bool {
		_, err := a.AuthenticateToken(tok)
		return err == nil
	}
	if !valid("old-secret") || valid("new-secret") {
		t.Fatal("before the rotation: old-secret must be valid, new-secret not")
	}
	write("new-secret\n")
	if !valid("old-secret") {
		t.Error("the file is read again only on Reload")
	}
	if err := a.Reload(); err != nil {
		t.Fatal(err)
	}
	if valid("old-secret") || !valid("new-secret") || !valid("ci") {
		t.Errorf("after Reload: old=%v new=%v ci=%v, want false true true", valid("old-secret"), valid("new-secret"), valid("ci"))
	}
	// A broken file keeps the current tokens.
	write("  \n")
	if err := a.Reload(); err == nil || !strings.Contains(err.Error(), "is empty") {
		t.Errorf("Reload of an empty file = %v, want an error", err)
	}
	if !valid("new-secret") {
		t.Error("a failed Reload dropped the current token")
	}
}
