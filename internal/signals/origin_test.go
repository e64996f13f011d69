package signals

import (
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/tailgate-sre/tailgate/internal/otlp"
)

// ts builds a TraceSpan: id and parent are small integers, times in ms.
func ts(service, name string, kind otlp.Kind, id, parent uint64, start, end uint64, bad bool) TraceSpan {
	s := TraceSpan{Service: service, Name: name, Kind: kind, Bad: bad, Start: start * 1e6, End: end * 1e6}
	s.SpanID = otlp.SpanID(spanID(id))
	if parent != 0 {
		s.ParentSpanID = otlp.SpanID(spanID(parent))
	}
	return s
}

func timeout(s TraceSpan) TraceSpan { s.Timeout = true; return s }
func http5xx(s TraceSpan) TraceSpan { s.HTTPStatus = 503; return s }

const (
	server   = otlp.KindServer
	client   = otlp.KindClient
	internal = otlp.KindInternal
	consumer = otlp.KindConsumer
	producer = otlp.KindProducer
)

// describe renders failures as "request: origin, origin" lines.
func describe(spans []TraceSpan, fails []failure) []string {
	var out []string
	for _, f := range fails {
		line := spans[f.request].Service + " " + spans[f.request].Name + ":"
		for _, o := range f.origins {
			s := spans[o.span]
			line += fmt.Sprintf(" %s %s (%s)", s.Service, s.Name, o.reason)
			if o.dependency {
				line += " [dependency]"
			}
		}
		out = append(out, line)
	}
	return out
}

func TestFindOrigins(t *testing.T) {
	tests := []struct {
		name  string
		spans []TraceSpan
		want  []string
	}{
		{
			name: "origin in a leaf",
			spans: []TraceSpan{
				http5xx(ts("checkout", "POST /checkout", server, 1, 0, 0, 100, true)),
				ts("checkout", "POST payments", client, 2, 1, 10, 90, true),
				http5xx(ts("payments", "/charge", server, 3, 2, 12, 88, true)),
			},
			want: []string{
				"checkout POST /checkout: payments /charge (5xx)",
				"payments /charge: payments /charge (5xx)",
			},
		},
		{
			name: "origin in the middle: its children are all good",
			spans: []TraceSpan{
				ts("checkout", "POST /checkout", server, 1, 0, 0, 100, true),
				ts("checkout", "POST payments", client, 2, 1, 10, 90, true),
				ts("payments", "/charge", server, 3, 2, 12, 88, true),
				ts("payments", "SELECT", client, 4, 3, 20, 30, false),
				ts("payments", "render", internal, 5, 3, 30, 40, false),
			},
			want: []string{
				"checkout POST /checkout: payments /charge (error)",
				"payments /charge: payments /charge (error)",
			},
		},
		{
			name: "errors on siblings: both are origins",
			spans: []TraceSpan{
				ts("frontend", "GET /home", server, 1, 0, 0, 100, true),
				ts("frontend", "GET ads", client, 2, 1, 5, 50, true),
				ts("ads", "/ads", server, 3, 2, 6, 49, true),
				ts("frontend", "GET recs", client, 4, 1, 5, 60, true),
				ts("recs", "/recs", server, 5, 4, 6, 59, true),
				ts("frontend", "GET cart", client, 6, 1, 5, 20, false),
				ts("cart", "/cart", server, 7, 6, 6, 19, false),
			},
			want: []string{
				"frontend GET /home: ads /ads (error) recs /recs (error)",
				"ads /ads: ads /ads (error)",
				"recs /recs: recs /recs (error)",
			},
		},
		{
			name: "own error: a bad internal span under a good client call",
			spans: []TraceSpan{
				ts("checkout", "POST /checkout", server, 1, 0, 0, 100, true),
				ts("checkout", "validate cart", internal, 2, 1, 1, 5, true),
				ts("checkout", "POST payments", client, 3, 1, 10, 90, false),
				ts("payments", "/charge", server, 4, 3, 12, 88, false),
			},
			want: []string{"checkout POST /checkout: checkout validate cart (error)"},
		},
		{
			name: "client timeout with a good but slow server child blames the child",
			spans: []TraceSpan{
				http5xx(ts("checkout", "POST /checkout", server, 1, 0, 0, 1000, true)),
				timeout(ts("checkout", "POST payments", client, 2, 1, 10, 510, true)),
				ts("payments", "/charge", server, 3, 2, 12, 900, false),
			},
			want: []string{"checkout POST /checkout: payments /charge (timeout)"},
		},
		{
			name: "client timeout without a server span: an uninstrumented dependency",
			spans: []TraceSpan{
				ts("checkout", "POST /checkout", server, 1, 0, 0, 1000, true),
				timeout(ts("checkout", "POST stripe", client, 2, 1, 10, 510, true)),
			},
			want: []string{"checkout POST /checkout: checkout POST stripe (timeout) [dependency]"},
		},
		{
			name: "client error without a server span: a dependency too",
			spans: []TraceSpan{
				ts("checkout", "POST /checkout", server, 1, 0, 0, 100, true),
				ts("checkout", "SELECT orders", client, 2, 1, 10, 50, true),
			},
			want: []string{"checkout POST /checkout: checkout SELECT orders (error) [dependency]"},
		},
		{
			name: "client error with a good server child is the client's own",
			spans: []TraceSpan{
				ts("checkout", "POST /checkout", server, 1, 0, 0, 100, true),
				ts("checkout", "POST payments", client, 2, 1, 10, 90, true),
				ts("payments", "/charge", server, 3, 2, 12, 50, false),
			},
			want: []string{"checkout POST /checkout: checkout POST payments (error)"},
		},
		{
			name: "missing parent: the orphan is adopted by the call whose server span is missing",
			spans: []TraceSpan{
				ts("checkout", "POST /checkout", server, 1, 0, 0, 100, true),
				ts("checkout", "POST payments", client, 2, 1, 10, 90, true),
				// payments' server span (id 3) never arrived; its children did.
				ts("payments", "charge card", internal, 4, 3, 20, 60, true),
				ts("payments", "load account", internal, 5, 3, 15, 19, false),
				// An unrelated childless call that does not overlap.
				ts("checkout", "GET inventory", client, 6, 1, 92, 99, true),
			},
			want: []string{"checkout POST /checkout: payments charge card (error) checkout GET inventory (error) [dependency]"},
		},
		{
			name: "missing parent with no call overlapping: the orphan stays a root",
			spans: []TraceSpan{
				ts("checkout", "POST /checkout", server, 1, 0, 0, 100, true),
				ts("checkout", "POST payments", client, 2, 1, 10, 90, true),
				ts("payments", "charge card", internal, 4, 3, 200, 260, true),
				ts("payments", "/refund", server, 5, 4, 210, 250, true),
			},
			want: []string{
				"checkout POST /checkout: checkout POST payments (error) [dependency]",
				"payments /refund: payments /refund (error)",
			},
		},
		{
			name: "missing root: the failed request below it is still analysed",
			spans: []TraceSpan{
				ts("payments", "/charge", server, 3, 2, 12, 88, true),
				timeout(ts("payments", "SELECT", client, 4, 3, 20, 80, true)),
			},
			want: []string{"payments /charge: payments SELECT (timeout) [dependency]"},
		},
		{
			name: "late child: async work that started after the parent ended explains nothing",
			spans: []TraceSpan{
				ts("checkout", "POST /checkout", server, 1, 0, 0, 100, true),
				ts("checkout", "send email", producer, 2, 1, 150, 160, true),
				ts("mailer", "send email", consumer, 3, 2, 170, 180, true),
			},
			want: []string{
				"checkout POST /checkout: checkout POST /checkout (error)",
				"mailer send email: mailer send email (error)",
			},
		},
		{
			name: "late good child does not take the blame of a timeout",
			spans: []TraceSpan{
				ts("checkout", "POST /checkout", server, 1, 0, 0, 600, true),
				timeout(ts("checkout", "POST payments", client, 2, 1, 10, 510, true)),
				ts("payments", "/charge", server, 3, 2, 520, 530, false),
			},
			want: []string{"checkout POST /checkout: checkout POST payments (timeout)"},
		},
		{
			name: "handled error: a good request with a bad child is no failure",
			spans: []TraceSpan{
				ts("checkout", "POST /checkout", server, 1, 0, 0, 100, false),
				ts("checkout", "GET cache", client, 2, 1, 10, 20, true),
			},
			want: nil,
		},
		{
			name: "consumer request failing because of its own work",
			spans: []TraceSpan{
				ts("billing", "process invoice", consumer, 1, 0, 0, 100, true),
				ts("billing", "render pdf", internal, 2, 1, 10, 50, true),
			},
			want: []string{"billing process invoice: billing render pdf (error)"},
		},
		{
			name: "duplicate span IDs keep the first",
			spans: []TraceSpan{
				ts("a", "/x", server, 1, 0, 0, 100, true),
				ts("a", "/x", server, 1, 0, 0, 100, true),
				ts("a", "work", internal, 2, 1, 10, 20, true),
			},
			want: []string{"a /x: a work (error)"},
		},
		{
			name: "a parent cycle is never entered",
			spans: []TraceSpan{
				ts("a", "/x", server, 1, 2, 0, 100, true),
				ts("a", "/y", server, 2, 1, 0, 100, true),
				ts("b", "/ok", server, 3, 0, 0, 100, true),
			},
			want: []string{"b /ok: b /ok (error)"},
		},
		{
			name: "self parent is a root",
			spans: []TraceSpan{
				ts("a", "/x", server, 1, 1, 0, 100, true),
			},
			want: []string{"a /x: a /x (error)"},
		},
		{
			name:  "empty trace",
			spans: nil,
			want:  nil,
		},
	}
	// One scratch for every case, twice over (the second time backwards):
	// what a trace leaves in it must not change the next one's origins.
	var sc originScratch
	for pass := range 2 {
		for i := range tests {
			tc := tests[i]
			if pass == 1 {
				tc = tests[len(tests)-1-i]
			}
			t.Run(fmt.Sprintf("%s/pass%d", tc.name, pass), func(t *testing.T) {
				got := describe(tc.spans, findOrigins(tc.spans, &sc))
				if diff := cmp.Diff(tc.want, got); diff != "" {
					t.Errorf("origins (-want +got):\n%s", diff)
				}
			})
		}
	}
}

// TraceBuilder gives what the span says, and a second trace with the same
// names costs no allocation; past maxInterned distinct names it still
// gives every name right.
func TestTraceBuilder(t *testing.T) {
	start := t0.Add(time.Second)
	req := parseRequest(t, buildRequest(t,
		spanSpec{service: "checkout", kind: ptrace.SpanKindServer, id: 1, name: "POST /checkout", start: start, end: start.Add(time.Second),
			status: ptrace.StatusCodeError, attrs: map[string]any{"http.route": "/checkout", "http.response.status_code": 504}},
		spanSpec{service: "payments", kind: ptrace.SpanKindClient, id: 2, parent: 1, name: "charge", start: start, end: start.Add(time.Millisecond)},
	))
	var b TraceBuilder
	add := func() {
		b.Reset()
		for i := range req.Spans {
			b.Add(&req.Spans[i], req.SpanResource(&req.Spans[i]).ServiceName)
		}
	}
	add()
	want := []TraceSpan{
		{Service: "checkout", Name: "POST /checkout", Route: "/checkout", SpanID: otlp.SpanID(spanID(1)), Kind: otlp.KindServer,
			Bad: true, Timeout: true, HTTPStatus: 504, Start: uint64(start.UnixNano()), End: uint64(start.Add(time.Second).UnixNano())},
		{Service: "payments", Name: "charge", SpanID: otlp.SpanID(spanID(2)), ParentSpanID: otlp.SpanID(spanID(1)), Kind: otlp.KindClient,
			Start: uint64(start.UnixNano()), End: uint64(start.Add(time.Millisecond).UnixNano())},
	}
	if diff := cmp.Diff(want, b.Spans()); diff != "" {
		t.Errorf("spans (-want +got):\n%s", diff)
	}
	if n := testing.AllocsPerRun(10, add); n != 0 {
		t.Errorf("a trace of names seen before: %v allocations, want 0", n)
	}
	if diff := cmp.Diff(want, b.Spans()); diff != "" {
		t.Errorf("spans after reuse (-want +got):\n%s", diff)
	}

	var many TraceBuilder
	var specs []spanSpec
	for i := range maxInterned + 10 {
		specs = append(specs, spanSpec{service: "s", kind: ptrace.SpanKindInternal, id: uint64(i + 1), name: fmt.Sprintf("op%d", i), start: start, end: start})
	}
	big := parseRequest(t, buildRequest(t, specs...))
	for round := range 2 {
		many.Reset()
		for i := range big.Spans {
			many.Add(&big.Spans[i], "s")
		}
		for i, sp := range many.Spans() {
			if want := fmt.Sprintf("op%d", i); sp.Name != want {
				t.Fatalf("round %d, span %d: name %q, want %q", round, i, sp.Name, want)
			}
		}
	}
	if len(many.names) != maxInterned {
		t.Errorf("%d names interned, want the bound %d", len(many.names), maxInterned)
	}
}
