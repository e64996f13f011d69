package signals

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/tailgate-sre/tailgate/internal/units"
)

// Sentinel errors of the read methods; the API maps them to 400 and 404.
var (
	ErrBadQuery       = errors.New("bad query")
	ErrUnknownService = errors.New("unknown service")
)

// MaxPoints bounds the points of one series.
const MaxPoints = 1440

// defaultRange is the range read when a query gives no From.
const defaultRange = time.Hour

// Query selects a time range and the step of its series. Zero fields take
// defaults: To is now, From is an hour before To, Step gives about 60
// points (whole minutes).
type Query struct {
	From, To time.Time
	Step     time.Duration
}

// Range is the resolved range of an answer.
type Range struct {
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
	Step string    `json:"step"`
}

// Stats are the golden signals over a range or one step of it. Latency
// quantiles are within 1% of the true values; they and ErrorRatio are
// null without requests.
type Stats struct {
	Requests      uint64   `json:"requests"`
	Errors        uint64   `json:"errors"`
	RatePerSecond float64  `json:"rate_per_second"`
	ErrorRatio    *float64 `json:"error_ratio"`
	P50Seconds    *float64 `json:"p50_seconds"`
	P90Seconds    *float64 `json:"p90_seconds"`
	P99Seconds    *float64 `json:"p99_seconds"`
	MaxSeconds    *float64 `json:"max_seconds"`
	// InFlight is the mean number of requests in progress (saturation), by
	// Little's law: the sum of request durations over the elapsed time.
	InFlight float64 `json:"in_flight"`
}

// Point is the Stats of one step, starting at Time.
type Point struct {
	Time time.Time `json:"time"`
	Stats
}

// ServiceSummary is one service's signals over a range, with its series.
type ServiceSummary struct {
	Service string `json:"service"`
	Stats
	Series []Point `json:"series"`
}

// ServicesResponse answers GET /api/v1/services.
type ServicesResponse struct {
	Range
	Services []ServiceSummary `json:"services"`
}

// OperationStats is one operation's signals over a range.
type OperationStats struct {
	Operation string `json:"operation"`
	Stats
}

// ServiceDetail answers GET /api/v1/services/{s}.
type ServiceDetail struct {
	Range
	ServiceSummary
	// Operations come busiest first, without series.
	Operations   []OperationStats `json:"operations"`
	ErrorOrigins ErrorOrigins     `json:"error_origins"`
}

// OperationSummary is one operation's signals with its series.
type OperationSummary struct {
	Operation string `json:"operation"`
	Stats
	Series []Point `json:"series"`
}

// OperationsResponse answers GET /api/v1/services/{s}/operations.
type OperationsResponse struct {
	Range
	Service    string             `json:"service"`
	Operations []OperationSummary `json:"operations"`
}

// resolve applies defaults and checks a query.
func (s *Signals) resolve(q Query, now time.Time) (Query, error) {
	if q.To.IsZero() {
		q.To = now
	}
	if q.From.IsZero() {
		q.From = q.To.Add(-defaultRange)
	}
	if !q.From.Before(q.To) {
		return q, fmt.Errorf("%w: from (%s) must be before to (%s)", ErrBadQuery, q.From.Format(time.RFC3339), q.To.Format(time.RFC3339))
	}
	span := q.To.Sub(q.From)
	if q.Step == 0 {
		q.Step = max((span/60+time.Minute-1)/time.Minute*time.Minute, time.Minute)
	}
	if q.Step < time.Minute || q.Step%time.Minute != 0 {
		return q, fmt.Errorf("%w: step must be a whole number of minutes, got %s", ErrBadQuery, q.Step)
	}
	// Buckets older than rollup_after are hourly; finer steps would show
	// each hour as one spike.
	if r := s.cfg.RollupAfter.Std(); r > 0 && q.From.Before(now.Add(-r)) && q.Step < time.Hour {
		q.Step = time.Hour
	}
	q.From = time.Unix(floorDiv(q.From.Unix(), int64(q.Step/time.Second)), 0).UTC()
	// Buckets start on whole seconds and the stores compare whole seconds:
	// an end within a second (now, usually) reaches to the next one, or the
	// minute that began less than a second ago would be left out.
	q.To = q.To.UTC()
	if whole := q.To.Truncate(time.Second); !whole.Equal(q.To) {
		q.To = whole.Add(time.Second)
	}
	if points := (q.To.Sub(q.From) + q.Step - 1) / q.Step; points > MaxPoints {
		return q, fmt.Errorf("%w: %d points of %s is more than %d; use a larger step", ErrBadQuery, points, units.FormatDuration(q.Step), MaxPoints)
	}
	return q, nil
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && a < 0 {
		q--
	}
	return q * b
}

func rangeOf(q Query) Range {
	return Range{From: q.From, To: q.To, Step: units.FormatDuration(q.Step)}
}

// acc accumulates buckets of one key and step.
type acc struct {
	errors uint64
	sk     Sketch
}

// grid is the steps of a resolved query.
type grid struct {
	from, to int64 // unix seconds
	step     int64
	n        int
}

func gridOf(q Query) grid {
	g := grid{from: q.From.Unix(), to: q.To.Unix(), step: int64(q.Step / time.Second)}
	g.n = int((g.to - g.from + g.step - 1) / g.step)
	return g
}

func (g grid) index(t int64) int {
	if t < g.from || t >= g.to {
		return -1
	}
	return int((t - g.from) / g.step)
}

// gather merges the buckets of the query range, from memory and the store,
// by the key keyOf gives (false skips the bucket). service, when not empty,
// narrows the store read.
func (s *Signals) gather(ctx context.Context, g grid, only string, keyOf func(svc, op string) (string, bool)) (map[string][]acc, error) {
	out := map[string][]acc{}
	slot := func(key string, start int64) *acc {
		i := g.index(start)
		if i < 0 {
			return nil
		}
		a, ok := out[key]
		if !ok {
			a = make([]acc, g.n)
			out[key] = a
		}
		return &a[i]
	}
	addRow := func(b *Bucket) error {
		key, ok := keyOf(b.Service, b.Operation)
		if !ok {
			return nil
		}
		a := slot(key, b.Start.Unix())
		if a == nil {
			return nil
		}
		var sk Sketch
		if err := sk.UnmarshalBinary(b.Latency); err != nil {
			return err
		}
		a.errors += b.Errors
		a.sk.Merge(&sk)
		return nil
	}

	s.viewMu.RLock()
	defer s.viewMu.RUnlock()
	s.mu.Lock()
	s.forEachService(func(svc *service) {
		if only != "" && svc.name != only {
			return
		}
		visit := func(op *operation) {
			key, ok := keyOf(svc.name, op.name)
			if !ok {
				return
			}
			for _, m := range op.aggs {
				if a := slot(key, m.minute.Unix()); a != nil {
					a.errors += m.errors
					a.sk.Merge(&m.sketch)
				}
			}
		}
		for _, op := range svc.ops {
			visit(op)
		}
		if svc.other != nil {
			visit(svc.other)
		}
	})
	retry := slices.Clone(s.st.retryBuckets)
	s.mu.Unlock()
	for i := range retry {
		if only == "" || retry[i].Service == only {
			if err := addRow(&retry[i]); err != nil {
				s.log.Warn("skip unreadable latency sketch", "service", retry[i].Service, "err", err)
			}
		}
	}

	rows, err := s.store.SignalBuckets(ctx, BucketFilter{
		Service: only,
		From:    time.Unix(g.from, 0).UTC(),
		To:      time.Unix(g.to, 0).UTC(),
	})
	if err != nil {
		return nil, fmt.Errorf("read golden signals: %w", err)
	}
	for i := range rows {
		if err := addRow(&rows[i]); err != nil {
			s.log.Warn("skip unreadable latency sketch", "service", rows[i].Service, "err", err)
		}
	}
	return out, nil
}

// series turns accumulators into points and their total.
func seriesOf(g grid, accs []acc, now time.Time) ([]Point, Stats) {
	points := make([]Point, g.n)
	var total acc
	nowUnix := now.Unix()
	for i := range accs {
		start := g.from + int64(i)*g.step
		end := min(start+g.step, g.to, max(nowUnix, start+1))
		points[i] = Point{Time: time.Unix(start, 0).UTC(), Stats: statsOf(&accs[i], float64(end-start))}
		total.errors += accs[i].errors
		total.sk.Merge(&accs[i].sk)
	}
	elapsed := min(g.to, max(nowUnix, g.from+1)) - g.from
	return points, statsOf(&total, float64(elapsed))
}

func statsOf(a *acc, seconds float64) Stats {
	st := Stats{Requests: a.sk.Count(), Errors: a.errors}
	if seconds > 0 {
		st.RatePerSecond = float64(st.Requests) / seconds
		st.InFlight = a.sk.Sum() / 1e9 / seconds
	}
	if st.Requests == 0 {
		return st
	}
	f := func(v float64) *float64 { return &v }
	st.ErrorRatio = f(float64(st.Errors) / float64(st.Requests))
	st.P50Seconds = f(a.sk.Quantile(0.5) / 1e9)
	st.P90Seconds = f(a.sk.Quantile(0.9) / 1e9)
	st.P99Seconds = f(a.sk.Quantile(0.99) / 1e9)
	st.MaxSeconds = f(float64(a.sk.Max()) / 1e9)
	return st
}

// Services returns every service with traffic in the range, by name, with
// series.
func (s *Signals) Services(ctx context.Context, q Query, now time.Time) (ServicesResponse, error) {
	q, err := s.resolve(q, now)
	if err != nil {
		return ServicesResponse{}, err
	}
	g := gridOf(q)
	accs, err := s.gather(ctx, g, "", func(svc, _ string) (string, bool) { return svc, true })
	if err != nil {
		return ServicesResponse{}, err
	}
	resp := ServicesResponse{Range: rangeOf(q), Services: []ServiceSummary{}}
	for name, a := range accs {
		points, total := seriesOf(g, a, now)
		resp.Services = append(resp.Services, ServiceSummary{Service: name, Stats: total, Series: points})
	}
	slices.SortFunc(resp.Services, func(a, b ServiceSummary) int { return strings.Compare(a.Service, b.Service) })
	return resp, nil
}

// known reports whether a service is tracked in memory.
func (s *Signals) known(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.st.services[name]
	return ok || name == OtherService && s.st.other != nil
}

// Service returns one service's signals with series, its operations and
// its error origins. A service with no buckets in the range that is not
// tracked in memory is ErrUnknownService.
func (s *Signals) Service(ctx context.Context, name string, q Query, now time.Time) (ServiceDetail, error) {
	q, err := s.resolve(q, now)
	if err != nil {
		return ServiceDetail{}, err
	}
	g := gridOf(q)
	accs, err := s.gather(ctx, g, name, func(svc, op string) (string, bool) { return op, svc == name })
	if err != nil {
		return ServiceDetail{}, err
	}
	if len(accs) == 0 && !s.known(name) {
		return ServiceDetail{}, fmt.Errorf("%w %q", ErrUnknownService, name)
	}
	d := ServiceDetail{Range: rangeOf(q), Operations: []OperationStats{}}
	d.Service = name
	all := make([]acc, g.n)
	for op, a := range accs {
		_, total := seriesOf(g, a, now)
		d.Operations = append(d.Operations, OperationStats{Operation: op, Stats: total})
		for i := range a {
			all[i].errors += a[i].errors
			all[i].sk.Merge(&a[i].sk)
		}
	}
	d.Series, d.Stats = seriesOf(g, all, now)
	sortOperations(d.Operations, func(o OperationStats) (uint64, string) { return o.Requests, o.Operation })
	d.ErrorOrigins, err = s.errorOrigins(ctx, name, q)
	if err != nil {
		return ServiceDetail{}, err
	}
	return d, nil
}

func sortOperations[T any](ops []T, key func(T) (uint64, string)) {
	slices.SortFunc(ops, func(a, b T) int {
		ra, na := key(a)
		rb, nb := key(b)
		if c := cmp.Compare(rb, ra); c != 0 {
			return c
		}
		return strings.Compare(na, nb)
	})
}

// Operations returns one service's operations with series, busiest first.
func (s *Signals) Operations(ctx context.Context, name string, q Query, now time.Time) (OperationsResponse, error) {
	q, err := s.resolve(q, now)
	if err != nil {
		return OperationsResponse{}, err
	}
	g := gridOf(q)
	accs, err := s.gather(ctx, g, name, func(svc, op string) (string, bool) { return op, svc == name })
	if err != nil {
		return OperationsResponse{}, err
	}
	if len(accs) == 0 && !s.known(name) {
		return OperationsResponse{}, fmt.Errorf("%w %q", ErrUnknownService, name)
	}
	resp := OperationsResponse{Range: rangeOf(q), Service: name, Operations: []OperationSummary{}}
	for op, a := range accs {
		points, total := seriesOf(g, a, now)
		resp.Operations = append(resp.Operations, OperationSummary{Operation: op, Stats: total, Series: points})
	}
	sortOperations(resp.Operations, func(o OperationSummary) (uint64, string) { return o.Requests, o.Operation })
	return resp, nil
}

// ErrorOrigins answers GET /api/v1/services/{s}/error-origins: where the
// errors of a service's failed requests started.
type ErrorOrigins struct {
	Service string    `json:"service"`
	From    time.Time `json:"from"`
	To      time.Time `json:"to"`
	// FailedRequests counts the service's failed requests in analysed error
	// traces; OriginatedHere those whose error started in the service
	// itself, Propagated those whose error started in a dependency.
	FailedRequests float64 `json:"failed_requests"`
	OriginatedHere float64 `json:"originated_here"`
	Propagated     float64 `json:"propagated"`
	// Origins come most frequent first.
	Origins []Origin `json:"origins"`
	// CausedElsewhere counts other services' failed requests whose error
	// started in this service.
	CausedElsewhere []Caused `json:"caused_elsewhere"`
	// Summary is one sentence, e.g. "checkout: 92% of its 5xx originate in
	// payments /charge (timeout)".
	Summary string `json:"summary"`
}

// Origin is one place where a service's errors started.
type Origin struct {
	Service   string `json:"service"`
	Operation string `json:"operation"`
	Reason    string `json:"reason"`
	// Dependency is set when the origin is a call (Operation) of Service to
	// a dependency that sent no spans.
	Dependency bool    `json:"dependency"`
	Requests   float64 `json:"requests"`
	Share      float64 `json:"share"`
}

// Caused counts the failed requests of another service that started here.
type Caused struct {
	Service  string  `json:"service"`
	Requests float64 `json:"requests"`
}

// ErrorOrigins returns where a service's errors started over the range
// (the step is ignored).
func (s *Signals) ErrorOrigins(ctx context.Context, name string, q Query, now time.Time) (ErrorOrigins, error) {
	q, err := s.resolve(q, now)
	if err != nil {
		return ErrorOrigins{}, err
	}
	eo, err := s.errorOrigins(ctx, name, q)
	if err != nil {
		return ErrorOrigins{}, err
	}
	if eo.FailedRequests == 0 && len(eo.CausedElsewhere) == 0 && !s.known(name) {
		rows, err := s.store.SignalBuckets(ctx, BucketFilter{Service: name, From: q.From, To: q.To})
		if err != nil {
			return ErrorOrigins{}, fmt.Errorf("read golden signals: %w", err)
		}
		if len(rows) == 0 {
			return ErrorOrigins{}, fmt.Errorf("%w %q", ErrUnknownService, name)
		}
	}
	return eo, nil
}

func (s *Signals) errorOrigins(ctx context.Context, name string, q Query) (ErrorOrigins, error) {
	from, to := q.From.Unix(), q.To.Unix()
	in := func(r *OriginRow) bool {
		t := r.Start.Unix()
		return t >= from && t < to && (r.Service == name || r.OriginService == name)
	}
	var rows []OriginRow
	s.viewMu.RLock()
	s.mu.Lock()
	for _, r := range s.takeOriginsCopy() {
		if in(&r) {
			rows = append(rows, r)
		}
	}
	for _, r := range s.st.retryOrigins {
		if in(&r) {
			rows = append(rows, r)
		}
	}
	s.mu.Unlock()
	stored, err := s.store.ErrorOrigins(ctx, name, q.From, q.To)
	s.viewMu.RUnlock()
	if err != nil {
		return ErrorOrigins{}, fmt.Errorf("read error origins: %w", err)
	}
	rows = append(rows, stored...)
	return summarizeOrigins(name, q.From, q.To, rows), nil
}

// takeOriginsCopy returns the pending origin rows without removing them.
func (s *Signals) takeOriginsCopy() []OriginRow {
	s.originMu.Lock()
	defer s.originMu.Unlock()
	rows := make([]OriginRow, 0, len(s.orig.pending))
	for k, a := range s.orig.pending {
		rows = append(rows, OriginRow{
			Start: k.minute.Time(), Service: k.service,
			OriginService: k.originService, OriginOperation: k.originOperation,
			Reason: k.reason, Dependency: k.dependency,
			Requests: a.requests, Requests5xx: a.requests5xx,
		})
	}
	return rows
}

// summarizeOrigins aggregates origin rows of a service.
func summarizeOrigins(name string, from, to time.Time, rows []OriginRow) ErrorOrigins {
	eo := ErrorOrigins{Service: name, From: from, To: to, Origins: []Origin{}, CausedElsewhere: []Caused{}}
	type okey struct {
		svc, op, reason string
		dep             bool
	}
	origins := map[okey]float64{}
	caused := map[string]float64{}
	var fivexx float64
	for _, r := range rows {
		if r.Service == name {
			eo.FailedRequests += r.Requests
			fivexx += r.Requests5xx
			if r.OriginService == name && !r.Dependency {
				eo.OriginatedHere += r.Requests
			}
			origins[okey{r.OriginService, r.OriginOperation, r.Reason, r.Dependency}] += r.Requests
		} else if r.OriginService == name && !r.Dependency {
			caused[r.Service] += r.Requests
		}
	}
	eo.Propagated = max(eo.FailedRequests-eo.OriginatedHere, 0)
	for k, v := range origins {
		o := Origin{Service: k.svc, Operation: k.op, Reason: k.reason, Dependency: k.dep, Requests: v}
		if eo.FailedRequests > 0 {
			o.Share = v / eo.FailedRequests
		}
		eo.Origins = append(eo.Origins, o)
	}
	slices.SortFunc(eo.Origins, func(a, b Origin) int {
		if c := cmp.Compare(b.Requests, a.Requests); c != 0 {
			return c
		}
		return cmp.Or(strings.Compare(a.Service, b.Service), strings.Compare(a.Operation, b.Operation), strings.Compare(a.Reason, b.Reason))
	})
	for svc, v := range caused {
		eo.CausedElsewhere = append(eo.CausedElsewhere, Caused{Service: svc, Requests: v})
	}
	slices.SortFunc(eo.CausedElsewhere, func(a, b Caused) int {
		return cmp.Or(cmp.Compare(b.Requests, a.Requests), strings.Compare(a.Service, b.Service))
	})
	eo.Summary = originSentence(name, eo, fivexx)
	return eo
}

// originSentence writes the one-line summary of a service's error origins.
func originSentence(name string, eo ErrorOrigins, fivexx float64) string {
	if eo.FailedRequests == 0 || len(eo.Origins) == 0 {
		return name + ": no failed requests in analysed error traces"
	}
	what := "errors"
	if fivexx >= eo.FailedRequests*(1-1e-9) {
		what = "5xx"
	}
	top := eo.Origins[0]
	pct := fmt.Sprintf("%.0f%%", 100*top.Share)
	var where string
	switch {
	case top.Dependency:
		where = fmt.Sprintf("a dependency without spans called by %s as %s", top.Service, top.Operation)
	case top.Service == name:
		where = fmt.Sprintf("%s itself, %s", name, top.Operation)
	default:
		where = top.Service + " " + top.Operation
	}
	return fmt.Sprintf("%s: %s of its %s originate in %s (%s)", name, pct, what, where, top.Reason)
}
