package demo

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// The services of the synthetic system and the versions they run.
const (
	Frontend  = "frontend"
	Checkout  = "checkout"
	Payments  = "payments"
	Inventory = "inventory"

	frontendVersion  = "1.14.2"
	checkoutVersion  = "3.8.0"
	inventoryVersion = "2.1.5"
)

// SlowThreshold is the trace duration over which the default sampling
// rules keep a trace as slow.
const SlowThreshold = time.Second

// Class is what the sampler is expected to make of a trace.
type Class int

// The classes of traces.
const (
	// OK traces have no span that is bad for availability and last at
	// most SlowThreshold: the sampler keeps about 5% of them.
	OK Class = iota
	// Slow traces have no bad span but last longer than SlowThreshold:
	// all kept.
	Slow
	// Error traces have at least one span that is bad for availability
	// (status ERROR, or an HTTP 5xx): all kept.
	Error
	numClasses
)

// String returns the class's name.
func (c Class) String() string {
	switch c {
	case OK:
		return "ok"
	case Slow:
		return "slow"
	case Error:
		return "error"
	}
	return fmt.Sprintf("Class(%d)", int(c))
}

// Span is one planned span of a synthetic request. Times are offsets from
// the start of the request's first span.
type Span struct {
	Service, Version string
	Name             string
	Kind             trace.SpanKind
	Start, End       time.Duration
	Attrs            []attribute.KeyValue
	Status           codes.Code
	StatusMessage    string
	Children         []*Span
}

// Bad reports whether the span is bad for availability in the sense of
// DESIGN.md: status ERROR or an HTTP 5xx answer.
func (s *Span) Bad() bool {
	if s.Status == codes.Error {
		return true
	}
	for _, a := range s.Attrs {
		if a.Key == "http.response.status_code" && a.Value.AsInt64() >= 500 {
			return true
		}
	}
	return false
}

// Walk calls fn for s and every span under it, parents first.
func (s *Span) Walk(fn func(*Span)) {
	fn(s)
	for _, c := range s.Children {
		c.Walk(fn)
	}
}

// Request is one synthetic request to the frontend: a whole trace.
type Request struct {
	// Route is the frontend route requested.
	Route string
	Root  *Span
	// Class is what the sampler should decide for the trace.
	Class Class
	// Extent is the time from the first span's start to the last span's
	// end (a callee may outlive a caller that timed out).
	Extent time.Duration
}

// PaymentsRelease is how a release of payments behaves.
type PaymentsRelease struct {
	Version string
	// Rejected is the share of charges refused at once with a 503 (its
	// database connection pool is exhausted).
	Rejected float64
	// QueryMedian and QuerySpread shape the charge's database query time
	// (log-normal: median and sigma).
	QueryMedian time.Duration
	QuerySpread float64
	// StatementTimeout cancels slower queries: payments answers 500.
	StatementTimeout time.Duration
}

// Model is the synthetic system's behaviour. Its zero value is not useful;
// start from DefaultModel.
type Model struct {
	// HomeShare and ProductShare are the shares of frontend requests for
	// the home page and for product pages; the rest check out.
	HomeShare, ProductShare float64
	// CheckoutTimeout bounds checkout's call to payments; a timeout makes
	// checkout answer 504.
	CheckoutTimeout time.Duration
	// Stable is the payments release of the calm and recovery phases,
	// Broken the bad release of the failure phase.
	Stable, Broken PaymentsRelease
	// Hotfix is the payments release the recovery tries as a canary: it
	// refuses no charge, but its charge query is still slow, and
	// tailgate's latency test rolls it back.
	Hotfix PaymentsRelease
	// CanarySteps are the shares of charges a live canary serves, step by
	// step, as an Argo Rollout's setWeight steps: 1% and then 10%. At the
	// last step its slow charges burn payments' latency budget at about
	// 1.2x, under every alert tier.
	CanarySteps []float64
	// DeclineRate is the share of charges the card processor declines
	// (402: a client error, good for availability, but an error span on
	// the caller's side, so an error trace).
	DeclineRate float64
	// NotFoundRate is the share of product pages for an unknown product
	// (404).
	NotFoundRate float64
	// InventoryFlakeRate is the share of inventory calls answered 503;
	// checkout retries them once, the frontend shows the page without
	// stock.
	InventoryFlakeRate float64
}

// DefaultModel is the demo's system: in the calm phases about 1% of traces
// hold a client-side error (declined cards, unknown products, a retried
// inventory hiccup) while no request fails its SLO; the broken payments
// release refuses 40% of charges and slows the rest to about half a second,
// so that with checkout's 800ms timeout roughly half of all checkouts fail.
func DefaultModel() Model {
	return Model{
		HomeShare:       0.3,
		ProductShare:    0.3,
		CheckoutTimeout: 800 * time.Millisecond,
		Stable: PaymentsRelease{
			Version: "2.3.1", QueryMedian: 12 * time.Millisecond, QuerySpread: 0.5,
			StatementTimeout: time.Second,
		},
		Broken: PaymentsRelease{
			Version: "2.4.0", Rejected: 0.4, QueryMedian: 450 * time.Millisecond, QuerySpread: 0.4,
			StatementTimeout: time.Second,
		},
		Hotfix: PaymentsRelease{
			Version: "2.4.1", QueryMedian: 160 * time.Millisecond, QuerySpread: 0.3,
			StatementTimeout: time.Second,
		},
		CanarySteps:        []float64{0.01, 0.10},
		DeclineRate:        0.015,
		NotFoundRate:       0.01,
		InventoryFlakeRate: 0.003,
	}
}

// Release returns the payments release running in phase p.
func (m *Model) Release(p Phase) PaymentsRelease {
	if p == Failure {
		return m.Broken
	}
	return m.Stable
}

// Request plans one frontend request in phase p, drawing from rng.
func (m *Model) Request(p Phase, rng *rand.Rand) *Request { return m.RequestCanary(p, rng, 0) }

// RequestCanary plans one frontend request in phase p, a canary taking
// share of the charges (0: none) to the Hotfix release.
func (m *Model) RequestCanary(p Phase, rng *rand.Rand, share float64) *Request {
	g := gen{m: m, rng: rng, pay: m.Release(p)}
	if share > 0 && rng.Float64() < share {
		g.pay = m.Hotfix
	}
	var root *Span
	var route string
	switch u := rng.Float64(); {
	case u < m.HomeShare:
		route, root = "/", g.home()
	case u < m.HomeShare+m.ProductShare:
		route, root = "/products/{id}", g.product()
	default:
		route, root = "/checkout", g.checkout()
	}
	r := &Request{Route: route, Root: root}
	bad := false
	root.Walk(func(s *Span) {
		bad = bad || s.Bad()
		r.Extent = max(r.Extent, s.End)
	})
	switch {
	case bad:
		r.Class = Error
	case r.Extent > SlowThreshold:
		r.Class = Slow
	}
	return r
}

// gen builds the spans of one request.
type gen struct {
	m   *Model
	rng *rand.Rand
	pay PaymentsRelease
}

// lognormal draws a duration with the given median and sigma, clamped to
// four sigmas so that no draw is absurd.
func (g *gen) lognormal(median time.Duration, sigma float64) time.Duration {
	z := max(-4, min(4, g.rng.NormFloat64()))
	return max(20*time.Microsecond, time.Duration(float64(median)*math.Exp(sigma*z)))
}

func (g *gen) chance(p float64) bool { return p > 0 && g.rng.Float64() < p }

// hop is the network time between a client span and its server span.
func (g *gen) hop() time.Duration { return g.lognormal(300*time.Microsecond, 0.3) }

func (g *gen) server(service, version, method, route, path string) *Span {
	return &Span{
		Service: service, Version: version, Name: method + " " + route, Kind: trace.SpanKindServer,
		Attrs: []attribute.KeyValue{
			attribute.String("http.request.method", method),
			attribute.String("http.route", route),
			attribute.String("url.path", path),
			attribute.String("url.scheme", "http"),
			attribute.String("network.protocol.version", "1.1"),
		},
	}
}

func (g *gen) client(service, version, method, template, host, path string) *Span {
	return &Span{
		Service: service, Version: version, Name: method + " " + template, Kind: trace.SpanKindClient,
		Attrs: []attribute.KeyValue{
			attribute.String("http.request.method", method),
			attribute.String("url.full", "http://"+host+path),
			attribute.String("url.template", template),
			attribute.String("server.address", host),
			attribute.Int("server.port", 8080),
		},
	}
}

func (g *gen) db(service, version, system, namespace, op, collection, host string) *Span {
	return &Span{
		Service: service, Version: version, Name: op + " " + namespace + "." + collection, Kind: trace.SpanKindClient,
		Attrs: []attribute.KeyValue{
			attribute.String("db.system", system),
			attribute.String("db.namespace", namespace),
			attribute.String("db.operation.name", op),
			attribute.String("db.collection.name", collection),
			attribute.String("server.address", host),
		},
	}
}

// answer sets an HTTP span's status code and, following the semantic
// conventions, its status: 5xx is an error on both sides, 4xx only on the
// client's.
func answer(s *Span, code int) {
	s.Attrs = append(s.Attrs, attribute.Int("http.response.status_code", code))
	if code >= 500 || code >= 400 && s.Kind == trace.SpanKindClient {
		s.Status = codes.Error
		if s.StatusMessage == "" {
			s.StatusMessage = strconv.Itoa(code) + " " + httpStatusText(code)
		}
	}
}

func httpStatusText(code int) string {
	switch code {
	case 402:
		return "Payment Required"
	case 404:
		return "Not Found"
	case 500:
		return "Internal Server Error"
	case 502:
		return "Bad Gateway"
	case 503:
		return "Service Unavailable"
	case 504:
		return "Gateway Timeout"
	}
	return ""
}

// frontendRoot starts the frontend's server span with a user.
func (g *gen) frontendRoot(method, route, path string) *Span {
	s := g.server(Frontend, frontendVersion, method, route, path)
	s.Attrs = append(s.Attrs, attribute.String("enduser.id", "u-"+strconv.Itoa(g.rng.IntN(20000))))
	return s
}

// home is GET /: a session lookup in the cache.
func (g *gen) home() *Span {
	root := g.frontendRoot("GET", "/", "/")
	at := g.lognormal(time.Millisecond, 0.3)
	cache := g.db(Frontend, frontendVersion, "redis", "0", "GET", "sessions", "session-cache")
	cache.Start, cache.End = at, at+g.lognormal(600*time.Microsecond, 0.4)
	root.Children = []*Span{cache}
	root.End = cache.End + g.lognormal(8*time.Millisecond, 0.4)
	answer(root, 200)
	return root
}

// stock is a call from a service to inventory's stock endpoint, starting
// at at; it returns the client span and the status code.
func (g *gen) stock(service, version string, at time.Duration, sku int) (*Span, int) {
	path := "/api/stock/" + strconv.Itoa(sku)
	call := g.client(service, version, "GET", "/api/stock/{sku}", "inventory", path)
	call.Start = at
	srv := g.server(Inventory, inventoryVersion, "GET", "/api/stock/{sku}", path)
	srv.Start = at + g.hop()
	code := 200
	t := srv.Start + g.lognormal(500*time.Microsecond, 0.3)
	switch {
	case g.chance(g.m.InventoryFlakeRate):
		code = 503
		t += g.lognormal(2*time.Millisecond, 0.5)
	default:
		q := g.db(Inventory, inventoryVersion, "postgresql", "inventory", "SELECT", "stock", "inventory-db")
		q.Start, q.End = t, t+g.lognormal(3*time.Millisecond, 0.5)
		srv.Children = []*Span{q}
		t = q.End
		if service == Frontend && g.chance(g.m.NotFoundRate) {
			code = 404
		}
	}
	srv.End = t + g.lognormal(400*time.Microsecond, 0.3)
	answer(srv, code)
	call.Children = []*Span{srv}
	call.End = srv.End + g.hop()
	answer(call, code)
	return call, code
}

// product is GET /products/{id}: the page with the product's stock.
func (g *gen) product() *Span {
	id := g.rng.IntN(5000)
	root := g.frontendRoot("GET", "/products/{id}", "/products/"+strconv.Itoa(id))
	call, code := g.stock(Frontend, frontendVersion, g.lognormal(time.Millisecond, 0.3), id)
	root.Children = []*Span{call}
	root.End = call.End + g.lognormal(6*time.Millisecond, 0.4)
	if code == 404 {
		answer(root, 404)
	} else {
		answer(root, 200) // a 503 from inventory shows the page without stock
	}
	return root
}

// charge is checkout's call to payments starting at at. It returns the
// client span and the status code checkout saw (0 when it timed out).
func (g *gen) charge(at time.Duration) (call *Span, code int) {
	rel := g.pay
	call = g.client(Checkout, checkoutVersion, "POST", "/api/charge", "payments", "/api/charge")
	call.Start = at
	srv := g.server(Payments, rel.Version, "POST", "/api/charge", "/api/charge")
	srv.Start = at + g.hop()
	t := srv.Start + g.lognormal(time.Millisecond, 0.3)
	switch {
	case g.chance(rel.Rejected):
		// Waiting for a connection from the exhausted pool, then giving up.
		t += g.lognormal(120*time.Millisecond, 0.5)
		srv.StatusMessage = "connection pool exhausted"
		code = 503
	default:
		q := g.db(Payments, rel.Version, "postgresql", "payments", "UPDATE", "accounts", "payments-db")
		q.Start = t
		d := g.lognormal(rel.QueryMedian, rel.QuerySpread)
		srv.Children = append(srv.Children, q)
		if rel.StatementTimeout > 0 && d > rel.StatementTimeout {
			q.End = t + rel.StatementTimeout
			q.Status, q.StatusMessage = codes.Error, "canceling statement due to statement timeout"
			q.Attrs = append(q.Attrs, attribute.String("error.type", "57014"))
			t = q.End
			srv.StatusMessage = "database statement timeout"
			code = 500
			break
		}
		q.End = t + d
		t = q.End
		proc := g.client(Payments, rel.Version, "POST", "/v1/charges", "api.cardprocessor.example", "/v1/charges")
		proc.Start = t + g.lognormal(300*time.Microsecond, 0.3)
		proc.End = proc.Start + g.lognormal(45*time.Millisecond, 0.5)
		srv.Children = append(srv.Children, proc)
		t = proc.End
		code = 200
		if g.chance(g.m.DeclineRate) {
			code = 402
		}
		answer(proc, code)
	}
	srv.End = t + g.lognormal(500*time.Microsecond, 0.3)
	answer(srv, code)
	call.Children = []*Span{srv}
	if end := srv.End + g.hop(); end-at <= g.m.CheckoutTimeout {
		call.End = end
		answer(call, code)
		return call, code
	}
	// Checkout gives up; payments carries on until it is done.
	call.End = at + g.m.CheckoutTimeout
	call.Status, call.StatusMessage = codes.Error, "context deadline exceeded"
	call.Attrs = append(call.Attrs, attribute.String("error.type", "timeout"))
	return call, 0
}

// checkout is POST /checkout: the frontend calls checkout, which reserves
// stock at inventory (retrying once), charges the card at payments and
// stores the order.
func (g *gen) checkout() *Span {
	root := g.frontendRoot("POST", "/checkout", "/checkout")
	fc := g.client(Frontend, frontendVersion, "POST", "/api/checkout", "checkout", "/api/checkout")
	fc.Start = g.lognormal(2*time.Millisecond, 0.3)
	co := g.server(Checkout, checkoutVersion, "POST", "/api/checkout", "/api/checkout")
	co.Start = fc.Start + g.hop()

	t := co.Start + g.lognormal(time.Millisecond, 0.3)
	sku := g.rng.IntN(5000)
	for try := 0; try < 2; try++ {
		call, code := g.stock(Checkout, checkoutVersion, t, sku)
		co.Children = append(co.Children, call)
		t = call.End
		if code < 500 {
			break
		}
		t += g.lognormal(5*time.Millisecond, 0.3) // backoff before the retry
	}
	call, payCode := g.charge(t + g.lognormal(300*time.Microsecond, 0.3))
	co.Children = append(co.Children, call)
	t = call.End

	var code int
	switch {
	case payCode == 0:
		code = 504
	case payCode >= 500:
		code = 502
	case payCode == 402:
		code = 402
	default:
		ins := g.db(Checkout, checkoutVersion, "postgresql", "orders", "INSERT", "orders", "orders-db")
		ins.Start = t + g.lognormal(200*time.Microsecond, 0.3)
		ins.End = ins.Start + g.lognormal(3*time.Millisecond, 0.4)
		co.Children = append(co.Children, ins)
		t = ins.End
		code = 201
	}
	co.End = t + g.lognormal(800*time.Microsecond, 0.3)
	if code == 504 {
		co.StatusMessage = "payments did not answer within " + g.m.CheckoutTimeout.String()
	}
	answer(co, code)
	fc.Children = []*Span{co}
	fc.End = co.End + g.hop()
	answer(fc, code)
	root.Children = []*Span{fc}
	root.End = fc.End + g.lognormal(2*time.Millisecond, 0.3)
	answer(root, code)
	return root
}
