package signals

import (
	"strings"
	"testing"
)

func TestNormalizeOperation(t *testing.T) {
	tests := []struct {
		name, raw, want string
	}{
		{"templated route kept", "/api/users/{id}", "/api/users/{id}"},
		{"colon template kept", "/api/users/:id/orders", "/api/users/:id/orders"},
		{"numeric segment", "/api/users/12345", "/api/users/{id}"},
		{"several numeric segments", "/shops/7/orders/901/items/3", "/shops/{id}/orders/{id}/items/{id}"},
		{"uuid", "/carts/3f2504e0-4f89-11d3-9a0c-0305e82c3301/checkout", "/carts/{uuid}/checkout"},
		{"upper-case uuid", "/carts/3F2504E0-4F89-11D3-9A0C-0305E82C3301", "/carts/{uuid}"},
		{"short hex with digit", "/commits/9fceb02d", "/commits/{hex}"},
		{"long hex", "/objects/0123456789abcdef0123456789abcdef", "/objects/{hex}"},
		{"hex-looking word kept", "/api/feedback", "/api/feedback"},
		{"seven hex digits kept", "/a/abc123f", "/a/abc123f"},
		{"token", "/share/aZ3kQ9xY7mB2pL4w", "/share/{token}"},
		{"long word without digits kept", "/documentation/gettingstarted", "/documentation/gettingstarted"},
		{"digit run inside a segment", "/orders/ord-20240611", "/orders/ord-{id}"},
		{"short digits inside a segment kept", "/api/v2/html5", "/api/v2/html5"},
		{"query string dropped", "/search?q=shoes&page=2", "/search"},
		{"fragment dropped", "/docs/intro#install", "/docs/intro"},
		{"method prefix kept", "GET /users/42", "GET /users/{id}"},
		{"raw url", "https://api.example.com/v1/users/42?x=1", "https://api.example.com/v1/users/{id}"},
		{"trailing slash kept", "/users/42/", "/users/{id}/"},
		{"double slash kept", "/a//42", "/a//{id}"},
		{"rpc name kept", "payments.Charge", "payments.Charge"},
		{"grpc path kept", "/shop.v1.PaymentService/Charge", "/shop.v1.PaymentService/Charge"},
		{"plain name with digits kept", "SELECT 1", "SELECT 1"},
		{"empty", "", "unknown"},
		{"only a query", "?a=1", "unknown"},
		{"root", "/", "/"},
		{"long name cut", "/" + strings.Repeat("z", 300), "/" + strings.Repeat("z", 127)},
		{"long name cut on a rune boundary", strings.Repeat("é", 100), strings.Repeat("é", 64)},
		{"many numeric segments cut", strings.Repeat("/1", 100), strings.Repeat("/{id}", 25) + "/{i"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := NormalizeOperation(tc.raw); got != tc.want {
				t.Errorf("NormalizeOperation(%q) = %q, want %q", tc.raw, got, tc.want)
			}
		})
	}
}

func TestAppendNormalizedKeepsPrefix(t *testing.T) {
	got := appendNormalized([]byte("keep:"), []byte("/x/1"))
	if string(got) != "keep:/x/{id}" {
		t.Errorf("got %q", got)
	}
}
