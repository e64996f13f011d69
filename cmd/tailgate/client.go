package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"
)

// apiClient talks to a running tailgate's HTTP API for the CLI commands.
type apiClient struct {
	server string
	token  string
	http   *http.Client
}

// clientFlags registers --server and --token-file on fs and returns a
// function that builds the client after parsing.
func clientFlags(fs *flag.FlagSet) func() (*apiClient, error) {
	server := fs.String("server", envOr("TAILGATE_SERVER", "http://127.0.0.1:8080"), "tailgate API base URL (env TAILGATE_SERVER)")
	tokenFile := fs.String("token-file", os.Getenv("TAILGATE_TOKEN_FILE"), "file holding a bearer token (env TAILGATE_TOKEN_FILE; or set TAILGATE_TOKEN)")
	timeout := fs.Duration("timeout", 10*time.Second, "request timeout")
	return func() (*apiClient, error) {
		token := os.Getenv("TAILGATE_TOKEN")
		if *tokenFile != "" {
			b, err := os.ReadFile(*tokenFile)
			if err != nil {
				return nil, fmt.Errorf("read token file: %w", err)
			}
			token = strings.TrimSpace(string(b))
		}
		return &apiClient{server: strings.TrimRight(*server, "/"), token: token, http: &http.Client{Timeout: *timeout}}, nil
	}
}

// apiError is an error response of the API.
type apiError struct {
	Status int
	Msg    string
	Detail string
}

func (e *apiError) Error() string {
	if e.Detail != "" {
		return fmt.Sprintf("%s (HTTP %d): %s", e.Msg, e.Status, e.Detail)
	}
	return fmt.Sprintf("%s (HTTP %d)", e.Msg, e.Status)
}

// do sends a request with an optional JSON body and decodes a JSON answer
// into out (when not nil). A non-2xx answer is returned as *apiError with
// out still decoded, since some endpoints (the gate) answer 403 with a body.
func (c *apiClient) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = strings.NewReader(string(b))
	}
	req, err := http.NewRequestWithContext(ctx, method, c.server+path, rd)
	if err != nil {
		return fmt.Errorf("build request: %w", err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("reach tailgate at %s: %w", c.server, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("read response of %s %s: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		var eb struct {
			Error  string `json:"error"`
			Detail string `json:"detail"`
		}
		_ = json.Unmarshal(data, &eb)
		if out != nil {
			_ = json.Unmarshal(data, out)
		}
		if eb.Error == "" {
			eb.Error = strings.TrimSpace(string(data))
		}
		return &apiError{Status: resp.StatusCode, Msg: eb.Error, Detail: eb.Detail}
	}
	if out == nil {
		return nil
	}
	if raw, ok := out.(*rawBody); ok {
		*raw = data
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("decode response of %s %s: %w", method, path, err)
	}
	return nil
}

// rawBody, passed to do as out, receives the answer's bytes undecoded
// (a Markdown post-mortem).
type rawBody []byte

// isAPIError reports whether err is an answer from the server (as opposed
// to not reaching it).
func isAPIError(err error) bool {
	var ae *apiError
	return errors.As(err, &ae)
}
