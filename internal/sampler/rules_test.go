package sampler

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// bufferTrace buffers specs (one trace) in a sampler that is not started
// and returns the buffered trace.
func bufferTrace(t *testing.T, specs []spanSpec) *Trace {
	t.Helper()
	env := newEnv(t, testConfig(), Settings{})
	t.Cleanup(func() { _ = env.s.Shutdown(context.Background()) })
	if err := env.consume(t, specs); err != nil {
		t.Fatal(err)
	}
	env.s.processSync()
	tr := env.s.buffered(specs[0].trace)
	if tr == nil {
		t.Fatal("trace not buffered")
	}
	return tr
}

func TestRules(t *testing.T) {
	id := traceID(1, 0) // R = 0: dropped by any sample_percent < 100
	yes, no := true, false
	f := func(v float64) *float64 { return &v }
	i := func(v int) *int { return &v }
	sc := func(s string) *Scalar { v := Scalar(s); return &v }

	base := func() []spanSpec {
		return []spanSpec{
			{trace: id, id: 1, name: "GET /cart", service: "frontend", kind: ptrace.SpanKindServer, dur: 300 * time.Millisecond,
				attrs: map[string]any{"http.route": "/cart", "http.response.status_code": 200, "retry": true, "ratio": 0.5},
				res:   map[string]any{"deployment.environment": "prod"}},
			{trace: id, id: 2, parent: 1, name: "charge", service: "payments", kind: ptrace.SpanKindClient,
				start: 100 * time.Millisecond, dur: 500 * time.Millisecond, attrs: map[string]any{"db.system": "postgres"}},
			{trace: id, id: 3, parent: 1, name: "render", service: "frontend", start: 50 * time.Millisecond, dur: time.Millisecond},
		}
	}
	withErr := func() []spanSpec { s := base(); s[1].err = true; return s }
	with5xx := func() []spanSpec { s := base(); s[0].attrs["http.response.status_code"] = 503; return s }
	with4xx := func() []spanSpec { s := base(); s[0].attrs["http.response.status_code"] = 404; return s }

	tests := []struct {
		name  string
		spans []spanSpec
		rules []RuleConfig
		want  Decision
		rule  string
	}{
		{"no rules match: dropped", base(), []RuleConfig{{Name: "e", When: &WhenConfig{Error: &yes}, Keep: true}}, Drop, ""},
		{"error status", withErr(), []RuleConfig{{Name: "e", When: &WhenConfig{Error: &yes}, Keep: true}}, Keep, "e"},
		{"error 5xx", with5xx(), []RuleConfig{{Name: "e", When: &WhenConfig{Error: &yes}, Keep: true}}, Keep, "e"},
		{"4xx is not an error", with4xx(), []RuleConfig{{Name: "e", When: &WhenConfig{Error: &yes}, Keep: true}}, Drop, ""},
		{"error: false", base(), []RuleConfig{{Name: "ok", When: &WhenConfig{Error: &no}, Keep: true}}, Keep, "ok"},
		{"error: false on error trace", withErr(), []RuleConfig{{Name: "ok", When: &WhenConfig{Error: &no}, Keep: true}}, Drop, ""},
		// Trace duration: earliest start 0, latest end 100ms+500ms = 600ms.
		{"duration over 599ms", base(), []RuleConfig{{Name: "slow", When: &WhenConfig{DurationOver: dur(599 * time.Millisecond)}, Keep: true}}, Keep, "slow"},
		{"duration not over 600ms", base(), []RuleConfig{{Name: "slow", When: &WhenConfig{DurationOver: dur(600 * time.Millisecond)}, Keep: true}}, Drop, ""},
		{"service in list", base(), []RuleConfig{{Name: "svc", When: &WhenConfig{Service: StringList{"x", "payments"}}, Keep: true}}, Keep, "svc"},
		{"service absent", base(), []RuleConfig{{Name: "svc", When: &WhenConfig{Service: StringList{"checkout"}}, Keep: true}}, Drop, ""},
		{"span name", base(), []RuleConfig{{Name: "n", When: &WhenConfig{SpanName: StringList{"charge"}}, Keep: true}}, Keep, "n"},
		{"span name is exact", base(), []RuleConfig{{Name: "n", When: &WhenConfig{SpanName: StringList{"charg"}}, Keep: true}}, Drop, ""},
		{"span count over 2", base(), []RuleConfig{{Name: "c", When: &WhenConfig{SpanCountOver: i(2)}, Keep: true}}, Keep, "c"},
		{"span count not over 3", base(), []RuleConfig{{Name: "c", When: &WhenConfig{SpanCountOver: i(3)}, Keep: true}}, Drop, ""},
		{"attribute equals string", base(), []RuleConfig{{Name: "a", When: &WhenConfig{Attribute: &AttributeConfig{Key: "http.route", Equals: sc("/cart")}}, Keep: true}}, Keep, "a"},
		{"attribute equals int as text", base(), []RuleConfig{{Name: "a", When: &WhenConfig{Attribute: &AttributeConfig{Key: "http.response.status_code", Equals: sc("200")}}, Keep: true}}, Keep, "a"},
		{"attribute equals bool", base(), []RuleConfig{{Name: "a", When: &WhenConfig{Attribute: &AttributeConfig{Key: "retry", Equals: sc("true")}}, Keep: true}}, Keep, "a"},
		{"attribute equals double", base(), []RuleConfig{{Name: "a", When: &WhenConfig{Attribute: &AttributeConfig{Key: "ratio", Equals: sc("0.5")}}, Keep: true}}, Keep, "a"},
		{"attribute equals mismatch", base(), []RuleConfig{{Name: "a", When: &WhenConfig{Attribute: &AttributeConfig{Key: "http.route", Equals: sc("/car")}}, Keep: true}}, Drop, ""},
		{"attribute in", base(), []RuleConfig{{Name: "a", When: &WhenConfig{Attribute: &AttributeConfig{Key: "db.system", In: []Scalar{"mysql", "postgres"}}}, Keep: true}}, Keep, "a"},
		{"attribute regex is anchored", base(), []RuleConfig{{Name: "a", When: &WhenConfig{Attribute: &AttributeConfig{Key: "http.route", Regex: "/ca"}}, Keep: true}}, Drop, ""},
		{"attribute regex", base(), []RuleConfig{{Name: "a", When: &WhenConfig{Attribute: &AttributeConfig{Key: "http.route", Regex: "/c.*"}}, Keep: true}}, Keep, "a"},
		{"attribute exists", base(), []RuleConfig{{Name: "a", When: &WhenConfig{Attribute: &AttributeConfig{Key: "db.system", Exists: &yes}}, Keep: true}}, Keep, "a"},
		{"attribute exists: false", base(), []RuleConfig{{Name: "a", When: &WhenConfig{Attribute: &AttributeConfig{Key: "db.system", Exists: &no}}, Keep: true}}, Drop, ""},
		{"attribute exists: false, absent", base(), []RuleConfig{{Name: "a", When: &WhenConfig{Attribute: &AttributeConfig{Key: "nope", Exists: &no}}, Keep: true}}, Keep, "a"},
		{"resource attribute on any", base(), []RuleConfig{{Name: "a", When: &WhenConfig{Attribute: &AttributeConfig{Key: "deployment.environment", Equals: sc("prod")}}, Keep: true}}, Keep, "a"},
		{"resource attribute on resource", base(), []RuleConfig{{Name: "a", When: &WhenConfig{Attribute: &AttributeConfig{Key: "deployment.environment", Equals: sc("prod"), On: "resource"}}, Keep: true}}, Keep, "a"},
		{"resource attribute not on span", base(), []RuleConfig{{Name: "a", When: &WhenConfig{Attribute: &AttributeConfig{Key: "deployment.environment", Exists: &yes, On: "span"}}, Keep: true}}, Drop, ""},
		{"span attribute not on resource", base(), []RuleConfig{{Name: "a", When: &WhenConfig{Attribute: &AttributeConfig{Key: "http.route", Exists: &yes, On: "resource"}}, Keep: true}}, Drop, ""},
		{"service.name is a resource attribute", base(), []RuleConfig{{Name: "a", When: &WhenConfig{Attribute: &AttributeConfig{Key: "service.name", Equals: sc("payments"), On: "resource"}}, Keep: true}}, Keep, "a"},
		{"conditions are ANDed", base(), []RuleConfig{{Name: "a", When: &WhenConfig{Service: StringList{"payments"}, Error: &yes}, Keep: true}}, Drop, ""},
		{"first match wins", withErr(), []RuleConfig{
			{Name: "drop-payments", When: &WhenConfig{Service: StringList{"payments"}}, Drop: true},
			{Name: "errors", When: &WhenConfig{Error: &yes}, Keep: true},
		}, Drop, "drop-payments"},
		{"later rule when earlier does not match", withErr(), []RuleConfig{
			{Name: "drop-checkout", When: &WhenConfig{Service: StringList{"checkout"}}, Drop: true},
			{Name: "errors", When: &WhenConfig{Error: &yes}, Keep: true},
		}, Keep, "errors"},
		{"no when matches all", base(), []RuleConfig{{Name: "all", Keep: true}}, Keep, "all"},
		{"sample_percent 100 keeps", base(), []RuleConfig{{Name: "p", SamplePercent: f(100)}}, Keep, "p"},
		{"sample_percent 50 with R=0 drops", base(), []RuleConfig{{Name: "p", SamplePercent: f(50)}}, Drop, "p"},
		{"rate_limit keeps the first", base(), []RuleConfig{{Name: "rl", RateLimit: &RateLimitConfig{PerSecond: 1, Key: []string{"service.name"}}}}, Keep, "rl"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := bufferTrace(t, tt.spans)
			pol, err := newPolicy(tt.rules)
			if err != nil {
				t.Fatal(err)
			}
			v := pol.evaluate(tr, epoch, &scratch{})
			rule := ""
			if v.rule >= 0 {
				rule = pol.rules[v.rule].name
			}
			if v.decision != tt.want || rule != tt.rule {
				t.Errorf("got %v by %q, want %v by %q", v.decision, rule, tt.want, tt.rule)
			}
		})
	}
}

func TestRateLimit(t *testing.T) {
	l := newRateLimiter(&RateLimitConfig{PerSecond: 2, Key: []string{"k"}, MaxKeys: 2})
	type step struct {
		key  string
		at   time.Duration
		kept bool
		rate float64
	}
	steps := []step{
		// Second 0, key a: 2 kept of 4 seen.
		{"a", 0, true, 1}, {"a", 100 * time.Millisecond, true, 1},
		{"a", 200 * time.Millisecond, false, 1.5}, {"a", 300 * time.Millisecond, false, 2},
		// Key b is independent.
		{"b", 400 * time.Millisecond, true, 1},
		// A third key goes to the shared overflow key.
		{"c", 500 * time.Millisecond, true, 1}, {"d", 600 * time.Millisecond, true, 1}, {"e", 700 * time.Millisecond, false, 1.5},
		// Second 1: a starts over, but carries the previous second's ratio 4/2.
		{"a", time.Second, true, 2},
		// Second 3: the previous second (2) saw nothing of a, so no carried ratio.
		{"a", 3 * time.Second, true, 1},
	}
	var got, want []step
	for _, s := range steps {
		kept, rate := l.admit([]byte(s.key), epoch.Add(s.at))
		got = append(got, step{s.key, s.at, kept, rate})
		want = append(want, s)
	}
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(step{})); diff != "" {
		t.Errorf("admit (-want +got):\n%s", diff)
	}
}

func TestRateKey(t *testing.T) {
	id := traceID(2, 0)
	spans := []spanSpec{
		{trace: id, id: 2, parent: 1, service: "backend", attrs: map[string]any{"http.route": "/child"}},
		{trace: id, id: 1, service: "frontend", attrs: map[string]any{"http.route": "/cart", "n": 7}},
	}
	tr := bufferTrace(t, spans)
	got := string(rateKey(tr, []string{"service.name", "http.route", "n", "missing"}, &scratch{}))
	if want := "frontend\x00/cart\x007\x00"; got != want {
		t.Errorf("rateKey = %q, want %q (the root span's values)", got, want)
	}
}

func TestTraceView(t *testing.T) {
	id := traceID(3, 0)
	spans := []spanSpec{
		{trace: id, id: 2, parent: 1, name: "db", service: "api", kind: ptrace.SpanKindClient, err: true, start: time.Second, dur: time.Second},
		{trace: id, id: 1, name: "GET /", service: "web", kind: ptrace.SpanKindServer, dur: 3 * time.Second,
			attrs: map[string]any{"http.route": "/"}},
	}
	tr := bufferTrace(t, spans)
	type view struct {
		Span, Parent uint64
		Name, Svc    string
		Kind         string
		Bad, Root    bool
		Start, End   uint64
	}
	var got []view
	for i := range tr.Len() {
		s := tr.Span(i)
		sid, pid := s.SpanID(), s.ParentSpanID()
		got = append(got, view{uint64(sid[7]), uint64(pid[7]), string(s.Name()), s.ServiceName(), s.Kind().String(),
			s.Bad(), s.IsRoot(), s.StartUnixNano(), s.EndUnixNano()})
	}
	e := uint64(epoch.UnixNano())
	want := []view{
		{2, 1, "db", "api", "client", true, false, e + 1e9, e + 2e9},
		{1, 0, "GET /", "web", "server", false, true, e, e + 3e9},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("spans (-want +got):\n%s", diff)
	}
	if root, ok := tr.Root(); !ok || root != 1 {
		t.Errorf("Root = %d, %v", root, ok)
	}
	if !tr.HasError() || tr.Duration() != 3*time.Second || tr.ID() != id {
		t.Errorf("HasError %v Duration %v ID %v", tr.HasError(), tr.Duration(), tr.ID())
	}
	if v, ok := tr.Span(1).Attr("http.route"); !ok || v.String() != "/" {
		t.Errorf("Attr = %v %v", v, ok)
	}
	if v, ok := tr.Span(0).ResourceAttr("service.name"); !ok || v.String() != "api" {
		t.Errorf("ResourceAttr = %v %v", v, ok)
	}
}
