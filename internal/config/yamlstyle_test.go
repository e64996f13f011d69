package config

import (
	"slices"
	"strings"
	"testing"

	"github.com/tailgate-sre/tailgate/internal/auth"
)

// TestScopesInEveryYAMLStyle: gate:check is one scope however the list is
// written; YAML 1.2 reads it as a plain scalar, also inside a flow mapping.
func TestScopesInEveryYAMLStyle(t *testing.T) {
	hash := strings.Repeat("ab", 32)
	for name, doc := range map[string]string{
		"flow in flow":  "auth:\n  tokens:\n    - {name: ci, sha256: " + hash + ", scopes: [read, gate:check, flags:evaluate]}\n",
		"flow in block": "auth:\n  tokens:\n    - name: ci\n      sha256: " + hash + "\n      scopes: [read, gate:check, flags:evaluate]\n",
		"block":         "auth:\n  tokens:\n    - name: ci\n      sha256: " + hash + "\n      scopes:\n        - read\n        - gate:check\n        - flags:evaluate\n",
		"quoted":        "auth:\n  tokens:\n    - {name: ci, sha256: " + hash + ", scopes: [\"read\", \"gate:check\", 'flags:evaluate']}\n",
	} {
		cfg, err := Parse([]byte(doc))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		want := []auth.Scope{auth.ScopeRead, auth.ScopeGateCheck, auth.ScopeFlagsEval}
		if got := cfg.Auth.Tokens[0].Scopes; !slices.Equal(got, want) {
			t.Errorf("%s: scopes %v, want %v", name, got, want)
		}
	}
	// A mapping that is not a scope is still refused, with its place.
	_, err := Parse([]byte("auth:\n  tokens:\n    - {name: ci, sha256: " + hash + ", scopes: [{gate: [check]}]}\n"))
	if err == nil || !strings.Contains(err.Error(), "a scope is a name such as read or gate:check") {
		t.Errorf("a list as a scope: %v", err)
	}
}
