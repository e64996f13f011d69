package export

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/tailgate-sre/tailgate/internal/retry"
)

// maxResponseBody bounds how much of a response is read; OTLP responses are
// small, and a misbehaving server must not make the exporter buffer much.
const maxResponseBody = 64 << 10

// httpClient sends batches with OTLP/HTTP (binary protobuf).
type httpClient struct {
	url       string
	headers   http.Header
	gzip      bool
	client    *http.Client
	transport *http.Transport
	gzipPool  sync.Pool // *gzip.Writer
}

func newHTTPClient(o *OTLPConfig, ep endpoint, tlsConf *tls.Config, senders int) *httpClient {
	c := &httpClient{
		url:     ep.traceURL(tlsConf == nil),
		headers: http.Header{},
		gzip:    o.gzip(),
	}
	for k, v := range o.Headers {
		c.headers.Set(k, v)
	}
	c.headers.Set("Content-Type", "application/x-protobuf")
	c.headers.Set("User-Agent", userAgent)
	if c.gzip {
		c.headers.Set("Content-Encoding", "gzip")
	}
	c.transport = &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		TLSClientConfig:     tlsConf,
		ForceAttemptHTTP2:   true,
		MaxIdleConnsPerHost: senders,
		IdleConnTimeout:     90 * time.Second,
		TLSHandshakeTimeout: 10 * time.Second,
	}
	// Redirects are not followed: an OTLP endpoint that redirects is
	// misconfigured, and following would resend the batch elsewhere.
	c.client = &http.Client{
		Transport: c.transport,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
	return c
}

func (c *httpClient) start(context.Context) error { return nil }

// body encodes a batch once for all its attempts. The buffer is not reused:
// net/http may still read a request body after Do returns.
func (c *httpClient) body(b *batch) ([]byte, error) {
	if !c.gzip {
		return b.bytes(), nil
	}
	var buf bytes.Buffer
	buf.Grow(b.size/4 + 64)
	zw, _ := c.gzipPool.Get().(*gzip.Writer)
	if zw == nil {
		zw = gzip.NewWriter(&buf)
	} else {
		zw.Reset(&buf)
	}
	defer c.gzipPool.Put(zw)
	for _, r := range b.reqs {
		if _, err := zw.Write(r); err != nil {
			return nil, fmt.Errorf("gzip batch: %w", err)
		}
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("gzip batch: %w", err)
	}
	return buf.Bytes(), nil
}

func (c *httpClient) send(ctx context.Context, b *batch) (partialSuccess, error) {
	body := b.body
	if body == nil {
		enc, err := c.body(b)
		if err != nil {
			return partialSuccess{}, permanent(err)
		}
		b.body = enc
		body = enc
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, bytes.NewReader(body))
	if err != nil {
		return partialSuccess{}, permanent(fmt.Errorf("HTTP export: %w", err))
	}
	req.Header = c.headers.Clone()
	req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	resp, err := c.client.Do(req)
	if err != nil {
		// Connection refused, reset, timeout: the server may come back.
		return partialSuccess{}, retryable(fmt.Errorf("HTTP export: %w", err), 0)
	}
	data, readErr := io.ReadAll(io.LimitReader(resp.Body, maxResponseBody))
	// Drain a little more so the connection can be reused, then close.
	_, _ = io.CopyN(io.Discard, resp.Body, maxResponseBody)
	resp.Body.Close()

	if resp.StatusCode >= 200 && resp.StatusCode <= 299 {
		if readErr != nil || !isProtobuf(resp.Header.Get("Content-Type")) {
			return partialSuccess{}, nil
		}
		ps, err := parsePartialSuccess(data)
		if err != nil {
			return partialSuccess{}, nil
		}
		return ps, nil
	}
	msg := http.StatusText(resp.StatusCode)
	if isProtobuf(resp.Header.Get("Content-Type")) {
		if m, ok := parseStatusMessage(data); ok && m != "" {
			msg = m
		}
	} else if len(data) > 0 && strings.HasPrefix(resp.Header.Get("Content-Type"), "text/") {
		msg = strings.TrimSpace(string(data))
	}
	err = fmt.Errorf("HTTP export: status %d: %s", resp.StatusCode, truncate(msg, maxMessageLen))
	if retryableHTTPStatus(resp.StatusCode) {
		throttle, _ := retry.ParseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
		return partialSuccess{}, retryable(err, throttle)
	}
	return partialSuccess{}, permanent(err)
}

func isProtobuf(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && mt == "application/x-protobuf"
}

func (c *httpClient) shutdown(context.Context) error {
	c.transport.CloseIdleConnections()
	return nil
}
