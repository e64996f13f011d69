package main

import (
	"bytes"
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
	// server is the first of servers, the one messages name.
	server  string
	servers []string
	token   string
	http    *http.Client
}

// clientFlags registers --server and --token-file on fs and returns a
// function that builds the client after parsing.
func clientFlags(fs *flag.FlagSet) func() (*apiClient, error) {
	var servers []string
	fs.Func("server", "tailgate API base URL (env TAILGATE_SERVER, comma separated); repeat it to fail over to the next on connection errors, timeouts and 502/503/504",
		func(v string) error {
			servers = append(servers, strings.TrimRight(strings.TrimSpace(v), "/"))
			return nil
		})
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
		if len(servers) == 0 {
			for _, v := range strings.Split(envOr("TAILGATE_SERVER", "http://127.0.0.1:8080"), ",") {
				if v = strings.TrimRight(strings.TrimSpace(v), "/"); v != "" {
					servers = append(servers, v)
				}
			}
		}
		if len(servers) == 0 {
			return nil, usagef("--server: give a tailgate API base URL")
		}
		return &apiClient{server: servers[0], servers: servers, token: token, http: &http.Client{Timeout: *timeout}}, nil
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
	var payload []byte
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		payload = b
	}
	servers := c.servers
	if len(servers) == 0 {
		servers = []string{c.server}
	}
	var errs []error
	for _, srv := range servers {
		err := c.doOne(ctx, srv, method, path, body != nil, payload, out)
		var fo *failover
		if !errors.As(err, &fo) {
			return err // an answer, or nothing left to try
		}
		errs = append(errs, fo.err)
		if ctx.Err() != nil {
			break
		}
	}
	if len(errs) == 1 {
		return errs[0]
	}
	return fmt.Errorf("no tailgate answered (%d tried): %w", len(servers), errors.Join(errs...))
}

// failover wraps what makes the client try the next server: no
// connection, a timeout, or 502/503/504 from a proxy or an instance that
// is not ready. An answer (even an error answer) never fails over.
type failover struct{ err error }

func (f *failover) Error() string { return f.err.Error() }
func (f *failover) Unwrap() error { return f.err }

// doOne sends the request to one server.
func (c *apiClient) doOne(ctx context.Context, server, method, path string, hasBody bool, payload []byte, out any) error {
	var rd io.Reader
	if hasBody {
		rd = bytes.NewReader(payload)
	}
	req, err := http.NewRequestWithContext(ctx, method, server+path, rd)
	if err != nil {
		return fmt.Errorf("build request: %w", err)
	}
	if hasBody {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return &failover{fmt.Errorf("reach tailgate at %s: %w", server, err)}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("read response of %s %s: %w", method, path, err)
	}
	switch resp.StatusCode {
	case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return &failover{fmt.Errorf("tailgate at %s: HTTP %d: %s", server, resp.StatusCode, strings.TrimSpace(string(data)))}
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
