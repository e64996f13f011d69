package ingest

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/tailgate-sre/tailgate/internal/auth"
	"github.com/tailgate-sre/tailgate/internal/otlp"
	"github.com/tailgate-sre/tailgate/internal/tlstest"
)

// The tokens of the auth tests, by value.
const (
	tokCollector = "collector-secret" // ingest
	tokCI        = "ci-secret"        // gate:check only
	tokPay       = "pay-secret"       // ingest, bound to pay*
	tokAdmin     = "admin-secret"     // admin, which implies ingest
)

func testAuthenticator(t testing.TB) *auth.Authenticator {
	t.Helper()
	a, err := auth.New(auth.Config{Tokens: []auth.Token{
		{Name: "collector", SHA256: auth.HashToken(tokCollector), Scopes: []auth.Scope{auth.ScopeIngest}},
		{Name: "ci", SHA256: auth.HashToken(tokCI), Scopes: []auth.Scope{auth.ScopeGateCheck}},
		{Name: "pay", SHA256: auth.HashToken(tokPay), Scopes: []auth.Scope{auth.ScopeIngest}, Services: []string{"pay*"}},
		{Name: "ops", SHA256: auth.HashToken(tokAdmin), Scopes: []auth.Scope{auth.ScopeAdmin}},
	}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// startAuthReceiver starts a receiver requiring tokens of testAuthenticator.
func startAuthReceiver(t testing.TB, cfg Config, c Consumer) *Receiver {
	t.Helper()
	cfg.RequireToken = true
	r, err := New(cfg, Settings{Consumer: c, Registerer: prometheus.NewRegistry(), Auth: testAuthenticator(t)})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := r.Start(t.Context()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := r.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	return r
}

// sdkExporter is an official OpenTelemetry SDK OTLP exporter (gRPC or HTTP)
// without retries, so a refusal comes back as the export's error.
func sdkExporter(t testing.TB, addr string, useHTTP bool, token string, tlsCfg *tls.Config) sdktrace.SpanExporter {
	t.Helper()
	var exp sdktrace.SpanExporter
	var err error
	if useHTTP {
		opts := []otlptracehttp.Option{otlptracehttp.WithEndpoint(addr), otlptracehttp.WithRetry(otlptracehttp.RetryConfig{Enabled: false})}
		if token != "" {
			opts = append(opts, otlptracehttp.WithHeaders(map[string]string{"Authorization": "Bearer " + token}))
		}
		if tlsCfg != nil {
			opts = append(opts, otlptracehttp.WithTLSClientConfig(tlsCfg))
		} else {
			opts = append(opts, otlptracehttp.WithInsecure())
		}
		exp, err = otlptracehttp.New(t.Context(), opts...)
	} else {
		opts := []otlptracegrpc.Option{otlptracegrpc.WithEndpoint(addr), otlptracegrpc.WithRetry(otlptracegrpc.RetryConfig{Enabled: false})}
		if token != "" {
			opts = append(opts, otlptracegrpc.WithHeaders(map[string]string{"authorization": "Bearer " + token}))
		}
		if tlsCfg != nil {
			opts = append(opts, otlptracegrpc.WithTLSCredentials(credentials.NewTLS(tlsCfg)))
		} else {
			opts = append(opts, otlptracegrpc.WithInsecure())
		}
		exp, err = otlptracegrpc.New(t.Context(), opts...)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = exp.Shutdown(context.Background()) })
	return exp
}

// sdkSpans returns one finished span per service, span IDs 1, 2, ... in
// trace 0x01..01.
func sdkSpans(services ...string) []sdktrace.ReadOnlySpan {
	var stubs tracetest.SpanStubs
	tid := trace.TraceID{1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}
	start := time.Unix(1_700_000_000, 0)
	for i, svc := range services {
		stubs = append(stubs, tracetest.SpanStub{
			Name:        "op-" + svc,
			SpanContext: trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: trace.SpanID{7: byte(i + 1)}, TraceFlags: trace.FlagsSampled}),
			SpanKind:    trace.SpanKindServer,
			StartTime:   start,
			EndTime:     start.Add(time.Millisecond),
			Resource:    resource.NewSchemaless(semconv.ServiceName(svc)),
		})
	}
	return stubs.Snapshots()
}

func exportCtx(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestAuthMatrix sends spans with the SDK's exporters under every kind of
// credential and checks both the answer and what reached the pipeline.
func TestAuthMatrix(t *testing.T) {
	cases := []struct {
		name     string
		token    string
		services []string
		// wantGRPC is the gRPC code; wantHTTP the HTTP status in the
		// exporter's error ("" for success).
		wantGRPC codes.Code
		wantHTTP string
		// wantServices are the services of the spans that reach the
		// pipeline.
		wantServices []string
		outcome      outcome
		// partial, when set, is what the SDK's error reports of a
		// partial success (the SDK orders resources as it likes).
		partial []string
	}{
		{"no token", "", []string{"checkout"}, codes.Unauthenticated, "401 Unauthorized", nil, outcomeUnauthenticated, nil},
		{"wrong token", "guess", []string{"checkout"}, codes.Unauthenticated, "401 Unauthorized", nil, outcomeUnauthenticated, nil},
		{"token without ingest scope", tokCI, []string{"checkout"}, codes.PermissionDenied, "403 Forbidden", nil, outcomeForbidden, nil},
		{"ingest token", tokCollector, []string{"checkout", "payments"}, codes.OK, "", []string{"checkout", "payments"}, outcomeOK, nil},
		{"admin token", tokAdmin, []string{"checkout"}, codes.OK, "", []string{"checkout"}, outcomeOK, nil},
		// The SDK returns a partial success as the export's error;
		// TestServiceBoundPartialSuccess checks the response itself.
		{"token bound to other services", tokPay, []string{"checkout", "payments", "inventory"}, codes.OK, "", []string{"payments"}, outcomePartial,
			[]string{`OTLP partial success: 2 spans refused: token "pay" may not send spans of service "`, `"checkout"`, `"inventory"`, `(it is bound to pay*) (2 spans rejected)`}},
	}
	for _, useHTTP := range []bool{false, true} {
		proto := map[bool]string{false: "grpc", true: "http"}[useHTTP]
		p := map[bool]protocol{false: protocolGRPC, true: protocolHTTP}[useHTTP]
		for _, c := range cases {
			t.Run(proto+"/"+c.name, func(t *testing.T) {
				rec := &recorder{}
				r := startAuthReceiver(t, testConfig(), rec)
				addr := r.GRPCAddr()
				if useHTTP {
					addr = r.HTTPAddr()
				}
				exp := sdkExporter(t, addr, useHTTP, c.token, nil)
				err := exp.ExportSpans(exportCtx(t), sdkSpans(c.services...))
				switch {
				case c.partial != nil:
					for _, want := range c.partial {
						if err == nil || !strings.Contains(err.Error(), want) {
							t.Fatalf("export: %v, want a partial success with %q", err, want)
						}
					}
				case useHTTP && c.wantHTTP == "" && err != nil:
					t.Fatalf("export: %v, want success", err)
				case useHTTP && c.wantHTTP != "" && (err == nil || !strings.Contains(err.Error(), c.wantHTTP)):
					t.Fatalf("export: %v, want %s", err, c.wantHTTP)
				case !useHTTP && status.Code(err) != c.wantGRPC:
					t.Fatalf("export: %v (code %s), want %s", err, status.Code(err), c.wantGRPC)
				}
				var got []string
				for _, s := range rec.take() {
					got = append(got, s.Service)
				}
				if diff := cmp.Diff(c.wantServices, got); diff != "" {
					t.Errorf("services consumed (-want +got):\n%s", diff)
				}
				if n := requestCount(r, p, c.outcome); n != 1 {
					t.Errorf("requests_total{protocol=%s,outcome=%s} = %v, want 1", p, c.outcome, n)
				}
			})
		}
	}
}

// TestServiceBoundPartialSuccess checks the partial success of a token
// bound to pay*: spans of other services are refused and counted with
// the invalid ones, the rest is accepted.
func TestServiceBoundPartialSuccess(t *testing.T) {
	span := func(id byte, name string) testSpan {
		return testSpan{traceID: mustHex(validTraceID), spanID: []byte{0, 0, 0, 0, 0, 0, 0, id}, name: name}
	}
	invalid := testSpan{traceID: make([]byte, 16), spanID: []byte{0, 0, 0, 0, 0, 0, 0, 9}, name: "zero trace id"}
	// Repeated resource_spans concatenate: four resources.
	body := bytes.Join([][]byte{
		encodeRequest("payments", span(1, "a"), span(2, "b"), invalid), // 2 accepted, 1 invalid
		encodeRequest("checkout", span(3, "c"), span(4, "d"), span(5, "e")),
		encodeRequest("payroll", span(6, "f")),
		encodeRequest("inventory", span(7, "g")),
	}, nil)
	// By hand: accepted a, b (payments) and f (payroll) = 3; rejected 1
	// invalid + 3 checkout + 1 inventory = 5, of which 4 for the service.
	const wantAccepted, wantRejected, wantDenied = 3, 5, 4
	wantNames := []string{"a", "b", "f"}

	check := func(t *testing.T, r *Receiver, p protocol, rec *recorder, got otlp.ExportResponse) {
		t.Helper()
		if got.RejectedSpans != wantRejected {
			t.Errorf("rejected_spans = %d, want %d", got.RejectedSpans, wantRejected)
		}
		for _, want := range []string{"trace_id is all zeros", `token "pay" may not send spans of service "checkout", "inventory"`, "4 spans refused"} {
			if !strings.Contains(string(got.ErrorMessage), want) {
				t.Errorf("error_message %q does not contain %q", got.ErrorMessage, want)
			}
		}
		var names []string
		for _, s := range rec.take() {
			names = append(names, s.Name)
		}
		if diff := cmp.Diff(wantNames, names); diff != "" {
			t.Errorf("spans consumed (-want +got):\n%s", diff)
		}
		m := r.metrics.by[p]
		for _, c := range []struct {
			name string
			m    prometheus.Metric
			want float64
		}{
			{"spans_accepted_total", m.accepted, wantAccepted},
			{"spans_rejected_total", m.rejected, wantRejected},
			{"spans_service_denied_total", m.denied, wantDenied},
		} {
			if v := metricValue(c.m); v != c.want {
				t.Errorf("%s{protocol=%s} = %v, want %v", c.name, p, v, c.want)
			}
		}
	}

	t.Run("grpc", func(t *testing.T) {
		rec := &recorder{}
		r := startAuthReceiver(t, testConfig(), rec)
		cc := dialRaw(t, r.GRPCAddr())
		ctx := metadata.AppendToOutgoingContext(exportCtx(t), "authorization", "Bearer "+tokPay)
		resp, err := export(ctx, cc, body)
		if err != nil {
			t.Fatalf("export: %v", err)
		}
		got, err := otlp.ParseExportResponse(resp)
		if err != nil {
			t.Fatal(err)
		}
		check(t, r, protocolGRPC, rec, got)
	})
	t.Run("http", func(t *testing.T) {
		rec := &recorder{}
		r := startAuthReceiver(t, testConfig(), rec)
		req, err := newPost(r.HTTPAddr(), body)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+tokPay)
		resp, err := newHTTPClient(t).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b bytes.Buffer
		if _, err := b.ReadFrom(resp.Body); err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d, want 200", resp.StatusCode)
		}
		got, err := otlp.ParseExportResponse(b.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		check(t, r, protocolHTTP, rec, got)
	})
}

// TestAuthHTTPChallengeAndHealth checks that an unauthenticated HTTP request
// is refused with 401 and a WWW-Authenticate challenge whatever its
// method, and that the gRPC health service needs no token.
func TestAuthHTTPChallengeAndHealth(t *testing.T) {
	r := startAuthReceiver(t, testConfig(), &recorder{})
	res := postHTTP(t, newHTTPClient(t), r.HTTPAddr(), http.MethodGet, "", "", nil)
	if res.status != http.StatusUnauthorized {
		t.Errorf("GET without token: status %d, want 401", res.status)
	}
	req, err := newPost(r.HTTPAddr(), validRequest())
	if err != nil {
		t.Fatal(err)
	}
	resp, err := newHTTPClient(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got, want := resp.Header.Get("WWW-Authenticate"), `Bearer realm="tailgate OTLP"`; got != want {
		t.Errorf("WWW-Authenticate = %q, want %q", got, want)
	}
	cc := dialRaw(t, r.GRPCAddr())
	if err := cc.Invoke(exportCtx(t), "/grpc.health.v1.Health/Check", new([]byte), new([]byte)); err != nil {
		t.Errorf("health check without token: %v", err)
	}
}

func TestRequireTokenNeedsAuthenticator(t *testing.T) {
	cfg := testConfig()
	cfg.RequireToken = true
	if _, err := New(cfg, Settings{Consumer: &recorder{}}); err == nil || !strings.Contains(err.Error(), "no authenticator") {
		t.Errorf("New with require_token and no Auth = %v, want an error", err)
	}
}

// TestMTLS requires client certificates signed by a CA on both receivers.
func TestMTLS(t *testing.T) {
	from, to := time.Now().Add(-time.Hour), time.Now().Add(time.Hour)
	ca := tlstest.Issue(t, "test CA", from, to, nil, true, x509.ExtKeyUsageAny)
	server := tlstest.Issue(t, "tailgate", from, to, ca, false, x509.ExtKeyUsageServerAuth)
	client := tlstest.Issue(t, "collector", from, to, ca, false, x509.ExtKeyUsageClientAuth)
	otherCA := tlstest.Issue(t, "other CA", from, to, nil, true, x509.ExtKeyUsageAny)
	stranger := tlstest.Issue(t, "stranger", from, to, otherCA, false, x509.ExtKeyUsageClientAuth)
	dir := t.TempDir()
	caFile, _ := ca.Write(t, dir, "ca")
	certFile, keyFile := server.Write(t, dir, "server")

	cfg := testConfig()
	cfg.TLS = TLSConfig{CertFile: certFile, KeyFile: keyFile, ClientCAFile: caFile}
	cases := []struct {
		name   string
		certs  []tls.Certificate
		wantOK bool
	}{
		{"client certificate", []tls.Certificate{client.TLSCertificate()}, true},
		{"no client certificate", nil, false},
		{"certificate of another CA", []tls.Certificate{stranger.TLSCertificate()}, false},
	}
	for _, useHTTP := range []bool{false, true} {
		proto := map[bool]string{false: "grpc", true: "http"}[useHTTP]
		for _, c := range cases {
			t.Run(proto+"/"+c.name, func(t *testing.T) {
				rec := &recorder{}
				// Tokens too: mTLS and tokens combine.
				r := startAuthReceiver(t, cfg, rec)
				addr := r.GRPCAddr()
				if useHTTP {
					addr = r.HTTPAddr()
				}
				tlsCfg := &tls.Config{RootCAs: ca.Pool(), Certificates: c.certs, MinVersion: tls.VersionTLS12}
				exp := sdkExporter(t, addr, useHTTP, tokCollector, tlsCfg)
				err := exp.ExportSpans(exportCtx(t), sdkSpans("checkout"))
				if c.wantOK != (err == nil) {
					t.Fatalf("export: %v, want success %v", err, c.wantOK)
				}
				if !useHTTP && !c.wantOK && status.Code(err) != codes.Unavailable {
					t.Errorf("gRPC code %s, want UNAVAILABLE (handshake refused)", status.Code(err))
				}
				want := 0
				if c.wantOK {
					want = 1
				}
				if n := len(rec.take()); n != want {
					t.Errorf("%d spans consumed, want %d", n, want)
				}
			})
		}
	}
}

func TestMTLSConfig(t *testing.T) {
	cfg := testConfig()
	cfg.TLS = TLSConfig{ClientCAFile: "ca.pem"}
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "tls.client_ca_file: needs tls.cert_file and tls.key_file") {
		t.Errorf("client_ca_file without a certificate: %v", err)
	}
}

// TestReloadTLS rotates the client CA and the server certificate under
// running receivers: later handshakes use the new files, and a broken
// file keeps the current ones.
func TestReloadTLS(t *testing.T) {
	from, to := time.Now().Add(-time.Hour), time.Now().Add(time.Hour)
	oldCA := tlstest.Issue(t, "old CA", from, to, nil, true, x509.ExtKeyUsageAny)
	newCA := tlstest.Issue(t, "new CA", from, to, nil, true, x509.ExtKeyUsageAny)
	oldClient := tlstest.Issue(t, "old client", from, to, oldCA, false, x509.ExtKeyUsageClientAuth)
	newClient := tlstest.Issue(t, "new client", from, to, newCA, false, x509.ExtKeyUsageClientAuth)
	dir := t.TempDir()
	// The same file names before and after, as a secret remounted.
	caFile, _ := oldCA.Write(t, dir, "ca")
	certFile, keyFile := tlstest.Issue(t, "server", from, to, oldCA, false, x509.ExtKeyUsageServerAuth).Write(t, dir, "server")

	cfg := testConfig()
	cfg.TLS = TLSConfig{CertFile: certFile, KeyFile: keyFile, ClientCAFile: caFile}
	rec := &recorder{}
	r := startAuthReceiver(t, cfg, rec)
	send := func(useHTTP bool, roots *x509.CertPool, client *tlstest.KeyPair) error {
		addr := r.GRPCAddr()
		if useHTTP {
			addr = r.HTTPAddr()
		}
		tlsCfg := &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{client.TLSCertificate()}, MinVersion: tls.VersionTLS12}
		return sdkExporter(t, addr, useHTTP, tokCollector, tlsCfg).ExportSpans(exportCtx(t), sdkSpans("checkout"))
	}
	for _, useHTTP := range []bool{false, true} {
		if err := send(useHTTP, oldCA.Pool(), oldClient); err != nil {
			t.Fatalf("http=%v before the rotation: %v", useHTTP, err)
		}
		if err := send(useHTTP, oldCA.Pool(), newClient); err == nil {
			t.Fatalf("http=%v before the rotation: a client of the new CA was let in", useHTTP)
		}
	}

	newCA.Write(t, dir, "ca")
	tlstest.Issue(t, "server", from, to, newCA, false, x509.ExtKeyUsageServerAuth).Write(t, dir, "server")
	if err := r.ReloadTLS(time.Now()); err != nil {
		t.Fatal(err)
	}
	for _, useHTTP := range []bool{false, true} {
		if err := send(useHTTP, newCA.Pool(), newClient); err != nil {
			t.Errorf("http=%v after the rotation: %v", useHTTP, err)
		}
		if err := send(useHTTP, newCA.Pool(), oldClient); err == nil {
			t.Errorf("http=%v after the rotation: a client of the old CA was let in", useHTTP)
		}
		if err := send(useHTTP, oldCA.Pool(), oldClient); err == nil {
			t.Errorf("http=%v after the rotation: the old server certificate is still served", useHTTP)
		}
	}

	// A broken CA file: the reload fails and the current files stay.
	if err := os.WriteFile(caFile, []byte("not PEM"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := r.ReloadTLS(time.Now()); err == nil || !strings.Contains(err.Error(), "holds no PEM certificate") {
		t.Errorf("ReloadTLS with a broken CA file = %v, want an error", err)
	}
	if err := send(true, newCA.Pool(), newClient); err != nil {
		t.Errorf("after a failed reload: %v", err)
	}
	// 2 before, 2 after, 1 after the failed reload.
	if n := len(rec.take()); n != 5 {
		t.Errorf("%d spans consumed, want 5", n)
	}
}

// TestAuthRefusalLogsNoToken checks that refusals are logged (at debug
// level) without the token that was sent.
func TestAuthRefusalLogsNoToken(t *testing.T) {
	var logs syncBuffer
	cfg := testConfig()
	cfg.RequireToken = true
	r, err := New(cfg, Settings{Consumer: &recorder{}, Auth: testAuthenticator(t),
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := r.Shutdown(context.Background()); err != nil {
			t.Error(err)
		}
	}()
	const secret = "a-guessed-secret-value"
	for _, useHTTP := range []bool{false, true} {
		addr := r.GRPCAddr()
		if useHTTP {
			addr = r.HTTPAddr()
		}
		if err := sdkExporter(t, addr, useHTTP, secret, nil).ExportSpans(exportCtx(t), sdkSpans("checkout")); err == nil {
			t.Fatalf("http=%v: a wrong token was accepted", useHTTP)
		}
	}
	out := logs.String()
	if n := strings.Count(out, "unknown bearer token"); n != 2 {
		t.Errorf("%d refusals logged, want 2 (one per protocol):\n%s", n, out)
	}
	if strings.Contains(out, secret) {
		t.Errorf("the token was logged:\n%s", out)
	}
}

// BenchmarkHTTPProtobufToken is BenchmarkHTTPProtobuf with
// ingest.require_token: the cost of checking the token (a SHA-256 and a
// constant-time compare with each of 4 tokens) and, for a token bound to
// services, of matching every resource's service.name.
func BenchmarkHTTPProtobufToken(b *testing.B) {
	a, err := auth.New(auth.Config{Tokens: []auth.Token{
		{Name: "collector", SHA256: auth.HashToken(tokCollector), Scopes: []auth.Scope{auth.ScopeIngest}},
		{Name: "ci", SHA256: auth.HashToken(tokCI), Scopes: []auth.Scope{auth.ScopeGateCheck}},
		{Name: "bound", SHA256: auth.HashToken(tokPay), Scopes: []auth.Scope{auth.ScopeIngest}, Services: []string{"payments", "check*"}},
		{Name: "ops", SHA256: auth.HashToken(tokAdmin), Scopes: []auth.Scope{auth.ScopeAdmin}},
	}}, nil)
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct{ name, token string }{{"token", tokCollector}, {"bound-token", tokPay}} {
		b.Run(bc.name, func(b *testing.B) {
			payload, spans := benchRequest()
			c := &countingConsumer{}
			cfg := testConfig()
			cfg.RequireToken = true
			r, err := New(cfg, Settings{Consumer: c, Auth: a})
			if err != nil {
				b.Fatal(err)
			}
			body := &reusableBody{}
			req := httptest.NewRequest(http.MethodPost, tracesPath, body)
			req.Header.Set("Content-Type", contentTypeProtobuf)
			req.Header.Set("Authorization", "Bearer "+bc.token)
			req.ContentLength = int64(len(payload))
			w := &discardWriter{header: http.Header{}}
			b.SetBytes(int64(len(payload)))
			b.ReportAllocs()
			for b.Loop() {
				body.Reset(payload)
				clear(w.header)
				r.serveTraces(w, req)
				if w.status != http.StatusOK {
					b.Fatalf("status %d", w.status)
				}
			}
			b.ReportMetric(float64(c.spans)/b.Elapsed().Seconds(), "spans/s")
			if c.spans != spans*b.N {
				b.Fatalf("consumed %d spans, want %d", c.spans, spans*b.N)
			}
		})
	}
}
