package shed

import (
	"context"
	"fmt"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// scope is the instrumentation scope of the metrics.
const scope = "github.com/tailgate-sre/tailgate/pkg/shed"

// initMetrics creates the instruments: the limit, the requests in flight
// and the shed level as gauges read at collection, and refusals as a
// counter by criticality and reason.
func (s *Shedder) initMetrics(mp metric.MeterProvider) error {
	m := mp.Meter(scope)
	var err error
	s.refused, err = m.Int64Counter("tailgate.shed.refused",
		metric.WithDescription("Requests refused, by criticality and reason."),
		metric.WithUnit("{request}"))
	if err != nil {
		return fmt.Errorf("shed: create metric: %w", err)
	}
	for c := range Criticality(numCriticalities) {
		for r := Limit; r < numReasons; r++ {
			s.refusedOpts[c][r] = metric.WithAttributeSet(attribute.NewSet(
				AttrCriticality.String(c.String()), AttrReason.String(r.String())))
		}
	}
	limit, err := m.Int64ObservableGauge("tailgate.shed.limit",
		metric.WithDescription("Adaptive concurrency limit."),
		metric.WithUnit("{request}"))
	if err != nil {
		return fmt.Errorf("shed: create metric: %w", err)
	}
	inflight, err := m.Int64ObservableGauge("tailgate.shed.in_flight",
		metric.WithDescription("Admitted requests not yet done."),
		metric.WithUnit("{request}"))
	if err != nil {
		return fmt.Errorf("shed: create metric: %w", err)
	}
	level, err := m.Float64ObservableGauge("tailgate.shed.sheddable_percent",
		metric.WithDescription("Shed level: percentage of sheddable requests refused whatever the load."),
		metric.WithUnit("%"))
	if err != nil {
		return fmt.Errorf("shed: create metric: %w", err)
	}
	s.reg, err = m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		s.mu.Lock()
		l, n := s.allowed[Critical], s.inflight
		s.mu.Unlock()
		o.ObserveInt64(limit, int64(l))
		o.ObserveInt64(inflight, int64(n))
		o.ObserveFloat64(level, s.SheddablePercent())
		return nil
	}, limit, inflight, level)
	if err != nil {
		return fmt.Errorf("shed: register metrics: %w", err)
	}
	return nil
}
