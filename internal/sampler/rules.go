package sampler

import (
	"bytes"
	"fmt"
	"regexp"
	"slices"
	"time"

	"github.com/tailgate-sre/tailgate/internal/otlp"
)

// action is what a rule does with a matching trace.
type action uint8

const (
	actionKeep action = iota
	actionDrop
	actionPercent
	actionRateLimit
)

// condition is one "when" clause of a rule.
type condition interface {
	match(t *Trace, sc *scratch) bool
	// monotony says how more spans can change the condition's result.
	monotony() monotony
}

// monotony is how a condition's result can change as a trace gets more
// spans (spans are only ever added; none is removed or changed).
type monotony uint8

const (
	// onceTrueStaysTrue: a condition about the existence of a span (an
	// error span, a service, a span name, an attribute) or about a bound
	// that only grows (duration, span count).
	onceTrueStaysTrue monotony = iota
	// onceFalseStaysFalse: a condition about the absence of something
	// (error: false, attribute exists: false).
	onceFalseStaysFalse
)

// scratch is per-shard reusable memory for rule evaluation.
type scratch struct {
	text []byte
	key  []byte
}

// rule is a compiled RuleConfig.
type rule struct {
	name   string
	conds  []condition
	action action

	// actionPercent
	threshold uint64
	rate      float64 // 1/p, also 1 for keep
	ext       otlp.Extension

	// actionRateLimit
	limiter *rateLimiter
}

// verdict is the outcome of evaluating the rules on a trace.
type verdict struct {
	decision Decision
	rule     int // index into rules, -1 when none matched
	rate     float64
}

// policy is the ordered, compiled rule list. It is shared by all shards;
// only the rate limiters have state, guarded by their own lock.
type policy struct {
	rules []*rule
}

func newPolicy(cfgs []RuleConfig) (*policy, error) {
	p := &policy{}
	for i := range cfgs {
		r, err := newRule(&cfgs[i])
		if err != nil {
			return nil, fmt.Errorf("rules[%d]: %w", i, err)
		}
		p.rules = append(p.rules, r)
	}
	return p, nil
}

func newRule(c *RuleConfig) (*rule, error) {
	r := &rule{name: c.Name, rate: 1}
	r.ext = otlp.Extension{Rule: c.Name, Rate: 1}
	switch {
	case c.Keep:
		r.action = actionKeep
	case c.Drop:
		r.action = actionDrop
	case c.SamplePercent != nil:
		r.action = actionPercent
		p := *c.SamplePercent / 100
		r.threshold = thresholdFor(p)
		if p > 0 {
			r.rate = 1 / p
			r.ext.Rate = r.rate
			r.ext.Threshold = thresholdHex(r.threshold)
		}
	case c.RateLimit != nil:
		r.action = actionRateLimit
		r.limiter = newRateLimiter(c.RateLimit)
	default:
		return nil, fmt.Errorf("no action")
	}
	if w := c.When; w != nil {
		if w.Error != nil {
			r.conds = append(r.conds, errorCond(*w.Error))
		}
		if w.DurationOver != nil {
			r.conds = append(r.conds, durationCond(w.DurationOver.Std()))
		}
		if w.Service != nil {
			r.conds = append(r.conds, serviceCond(w.Service))
		}
		if w.SpanName != nil {
			r.conds = append(r.conds, newSpanNameCond(w.SpanName))
		}
		if w.Attribute != nil {
			ac, err := newAttrCond(w.Attribute)
			if err != nil {
				return nil, fmt.Errorf("when.attribute: %w", err)
			}
			r.conds = append(r.conds, ac)
		}
		if w.SpanCountOver != nil {
			r.conds = append(r.conds, spanCountCond(*w.SpanCountOver))
		}
	}
	return r, nil
}

// evaluate runs the rules in order on t at now; the first match decides.
func (p *policy) evaluate(t *Trace, now time.Time, sc *scratch) verdict {
	for i, r := range p.rules {
		if !r.matches(t, sc) {
			continue
		}
		v := verdict{rule: i, rate: r.rate}
		switch r.action {
		case actionKeep:
			v.decision = Keep
		case actionDrop:
			v.decision = Drop
		case actionPercent:
			if sampledByThreshold(t.id, r.threshold) {
				v.decision = Keep
			}
		case actionRateLimit:
			var kept bool
			kept, v.rate = r.limiter.admit(rateKey(t, r.limiter.keys, sc), now)
			if kept {
				v.decision = Keep
			}
		}
		return v
	}
	return verdict{decision: Drop, rule: -1}
}

// final returns the verdict of the rules on t when no span that may still
// arrive can change it, and false otherwise. A rule's result is final when
// it matches and each of its conditions is onceTrueStaysTrue, or when it
// does not match and one of its failing conditions is onceFalseStaysFalse.
// The verdict is final when every rule before the first final match is a
// final non-match (or every rule is, the trace then matches none) and the
// matching rule's action does not depend on when it is applied: keep,
// drop and sample_percent (deterministic in the trace ID) qualify,
// rate_limit (its key is read from the root span, which may still come,
// and its budget from the clock) does not.
func (p *policy) final(t *Trace, now time.Time, sc *scratch) (verdict, bool) {
	for _, r := range p.rules {
		matched, fixed := true, true
		for _, c := range r.conds {
			m := c.match(t, sc)
			if !m {
				matched = false
				if c.monotony() == onceFalseStaysFalse {
					fixed = true
					break
				}
				fixed = false
				continue
			}
			if c.monotony() != onceTrueStaysTrue {
				fixed = false
			}
		}
		switch {
		case !fixed:
			return verdict{}, false
		case !matched:
			continue
		case r.action == actionRateLimit:
			return verdict{}, false
		}
		return p.evaluate(t, now, sc), true
	}
	return verdict{decision: Drop, rule: -1}, true
}

func (r *rule) matches(t *Trace, sc *scratch) bool {
	for _, c := range r.conds {
		if !c.match(t, sc) {
			return false
		}
	}
	return true
}

// errorCond matches traces with (true) or without (false) a bad span.
type errorCond bool

func (c errorCond) match(t *Trace, _ *scratch) bool { return t.bad == bool(c) }

func (c errorCond) monotony() monotony {
	if c {
		return onceTrueStaysTrue
	}
	return onceFalseStaysFalse
}

// durationCond matches traces longer than the duration.
type durationCond time.Duration

func (c durationCond) match(t *Trace, _ *scratch) bool { return t.Duration() > time.Duration(c) }

func (durationCond) monotony() monotony { return onceTrueStaysTrue }

// spanCountCond matches traces with more spans than the count.
type spanCountCond int

func (c spanCountCond) match(t *Trace, _ *scratch) bool { return len(t.spans) > int(c) }

func (spanCountCond) monotony() monotony { return onceTrueStaysTrue }

func (serviceCond) monotony() monotony { return onceTrueStaysTrue }

func (*spanNameCond) monotony() monotony { return onceTrueStaysTrue }

func (a *attrCond) monotony() monotony {
	if a.absent {
		return onceFalseStaysFalse
	}
	return onceTrueStaysTrue
}

// serviceCond matches traces with a span of one of the services.
type serviceCond []string

func (c serviceCond) match(t *Trace, _ *scratch) bool {
	// Every group holds spans (a group is only created for a span).
	for i := range t.groups {
		if slices.Contains(c, t.groups[i].service) {
			return true
		}
	}
	return false
}

// spanNameCond matches traces with a span of one of the names.
type spanNameCond struct{ names [][]byte }

func newSpanNameCond(names []string) *spanNameCond {
	c := &spanNameCond{}
	for _, n := range names {
		c.names = append(c.names, []byte(n))
	}
	return c
}

func (c *spanNameCond) match(t *Trace, _ *scratch) bool {
	for i := range t.spans {
		name := otlp.NameOf(t.Span(i).stored())
		for _, n := range c.names {
			if bytes.Equal(name, n) {
				return true
			}
		}
	}
	return false
}

// attrCond matches traces where a span or resource attribute satisfies a
// matcher.
type attrCond struct {
	key            string
	onSpan, onRes  bool
	equals         []string // equals and in
	re             *regexp.Regexp
	exists, absent bool // exists: true / exists: false
}

func newAttrCond(c *AttributeConfig) (*attrCond, error) {
	a := &attrCond{key: c.Key}
	switch c.On {
	case "span":
		a.onSpan = true
	case "resource":
		a.onRes = true
	default:
		a.onSpan, a.onRes = true, true
	}
	switch {
	case c.Equals != nil:
		a.equals = []string{string(*c.Equals)}
	case c.In != nil:
		for _, v := range c.In {
			a.equals = append(a.equals, string(v))
		}
	case c.Regex != "":
		re, err := regexp.Compile(`^(?:` + c.Regex + `)$`)
		if err != nil {
			return nil, fmt.Errorf("regex: %w", err)
		}
		a.re = re
	case c.Exists != nil:
		a.exists = *c.Exists
		a.absent = !*c.Exists
	default:
		return nil, fmt.Errorf("no matcher")
	}
	return a, nil
}

func (a *attrCond) match(t *Trace, sc *scratch) bool {
	found := false
	if a.onRes {
		for i := range t.groups {
			r := otlp.Resource{Raw: t.groups[i].resource}
			if v, ok := r.Attr(a.key); ok {
				if a.absent {
					return false
				}
				if a.value(v, sc) {
					found = true
					break
				}
			}
		}
	}
	if !found && a.onSpan {
		for i := range t.spans {
			sp := otlp.Span{Raw: t.Span(i).stored()}
			if v, ok := sp.Attr(a.key); ok {
				if a.absent {
					return false
				}
				if a.value(v, sc) {
					found = true
					break
				}
			}
		}
	}
	if a.absent {
		return true
	}
	return found
}

// value reports whether a present attribute value satisfies the matcher.
func (a *attrCond) value(v otlp.Value, sc *scratch) bool {
	if a.exists {
		return true
	}
	sc.text = v.AppendText(sc.text[:0])
	if a.re != nil {
		return a.re.Match(sc.text)
	}
	for _, e := range a.equals {
		if string(sc.text) == e {
			return true
		}
	}
	return false
}

// rateKey builds a rate-limit key from the attributes of the root span (or
// the first span): each value looked up on the span, then on its resource,
// joined by NUL bytes.
func rateKey(t *Trace, keys []string, sc *scratch) []byte {
	sc.key = sc.key[:0]
	if len(t.spans) == 0 {
		return sc.key
	}
	i := 0
	if t.root >= 0 {
		i = int(t.root)
	}
	s := t.Span(i)
	for j, k := range keys {
		if j > 0 {
			sc.key = append(sc.key, 0)
		}
		v, ok := s.Attr(k)
		if !ok {
			v, ok = s.ResourceAttr(k)
		}
		if ok {
			sc.key = v.AppendText(sc.key)
		}
	}
	return sc.key
}
