package otlptest

import (
	"bytes"
	"net/http"
	"testing"
)

// HTTPStatus posts an empty OTLP/HTTP protobuf export with a bearer token
// to the receiver at addr and returns the HTTP status: how an auth test
// asks whether a token is accepted (200) or refused (401, 403).
func HTTPStatus(t testing.TB, client *http.Client, addr, token string) int {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, "http://"+addr+"/v1/traces", bytes.NewReader(nil))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-protobuf")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
