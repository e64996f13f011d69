package shed

import (
	"context"
	"fmt"
	"strings"
)

// Criticality says how much a request matters when the service cannot serve
// everything. The zero value is Default.
type Criticality uint8

// The criticalities, from the first refused to the last.
const (
	// Default is the criticality of requests nothing else is said about.
	Default Criticality = iota
	// Critical requests are refused only at the full concurrency limit.
	Critical
	// Sheddable requests (batch jobs, prefetches, retries that can wait)
	// are refused first.
	Sheddable

	numCriticalities = 3
)

// String returns the criticality's name: critical, default or sheddable.
func (c Criticality) String() string {
	switch c {
	case Default:
		return "default"
	case Critical:
		return "critical"
	case Sheddable:
		return "sheddable"
	}
	return fmt.Sprintf("Criticality(%d)", uint8(c))
}

// valid reports whether c is one of the defined criticalities.
func (c Criticality) valid() bool { return c < numCriticalities }

// ParseCriticality reads a criticality name, ignoring case.
func ParseCriticality(s string) (Criticality, error) {
	switch {
	case strings.EqualFold(s, "default"):
		return Default, nil
	case strings.EqualFold(s, "critical"):
		return Critical, nil
	case strings.EqualFold(s, "sheddable"):
		return Sheddable, nil
	}
	return Default, fmt.Errorf("unknown criticality %q (want critical, default or sheddable)", s)
}

// MarshalText implements [encoding.TextMarshaler].
func (c Criticality) MarshalText() ([]byte, error) {
	if !c.valid() {
		return nil, fmt.Errorf("invalid criticality %d", uint8(c))
	}
	return []byte(c.String()), nil
}

// UnmarshalText implements [encoding.TextUnmarshaler].
func (c *Criticality) UnmarshalText(b []byte) error {
	v, err := ParseCriticality(string(b))
	if err != nil {
		return err
	}
	*c = v
	return nil
}

// ctxKey is the context key of a request's criticality.
type ctxKey struct{}

// WithCriticality returns a copy of ctx that carries the criticality c. The
// middleware and interceptors prefer it over the header and the route
// table, so a handler or an earlier middleware (say, one that knows the
// caller) can decide.
func WithCriticality(ctx context.Context, c Criticality) context.Context {
	return context.WithValue(ctx, ctxKey{}, c)
}

// FromContext returns the criticality ctx carries; ok is false when it
// carries none. Inside a handler wrapped by the middleware or interceptors
// it is the criticality the request was admitted with.
func FromContext(ctx context.Context) (c Criticality, ok bool) {
	c, ok = ctx.Value(ctxKey{}).(Criticality)
	return c, ok
}
