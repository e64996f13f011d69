package slo

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// serviceLabel is the label that names the service on every SLO metric.
const serviceLabel = "service_name"

// Metric descriptions. The names follow tailgate_<subsystem>_<name>_<unit>;
// the labels slo, window and severity are the ones Sloth and Pyrra users
// know. The service is service_name, as the spanmetrics connector and
// Tempo's metrics generator write it: a label named service is overwritten
// by the Prometheus Operator's target label (and kept as exported_service).
var (
	descObjective = prometheus.NewDesc("tailgate_slo_objective_ratio",
		"The SLO's objective as a ratio (0.999 for 99.9%).", []string{"slo", serviceLabel}, nil)
	descErrorRatio = prometheus.NewDesc("tailgate_slo_sli_error_ratio",
		"Share of bad events over the window; absent without traffic.", []string{"slo", serviceLabel, "window"}, nil)
	descBurnRate = prometheus.NewDesc("tailgate_slo_burn_rate",
		"Error budget burn rate over the window (1 spends the budget exactly over the SLO window).", []string{"slo", serviceLabel, "window"}, nil)
	descBudget = prometheus.NewDesc("tailgate_slo_error_budget_remaining_ratio",
		"Share of the error budget left over the SLO window (negative when overspent).", []string{"slo", serviceLabel}, nil)
	descCoverage = prometheus.NewDesc("tailgate_slo_window_coverage_ratio",
		"Share of the SLO window during which tailgate was counting.", []string{"slo", serviceLabel}, nil)
	descTTE = prometheus.NewDesc("tailgate_slo_time_to_exhaustion_seconds",
		"Time until the budget runs out at the current 1h burn rate; absent when it does not burn.", []string{"slo", serviceLabel}, nil)
	descEvents = prometheus.NewDesc("tailgate_slo_window_events",
		"Events in the SLO window, net of corrections.", []string{"slo", serviceLabel, "result"}, nil)
	descFiring = prometheus.NewDesc("tailgate_slo_alert_firing",
		"1 when an alert of this severity fires for the SLO.", []string{"slo", serviceLabel, "severity"}, nil)
	descRejected = prometheus.NewDesc("tailgate_slo_spans_rejected_total",
		"Entry spans not counted because their timestamps were beyond max_skew from their arrival.", nil, nil)
	descLate = prometheus.NewDesc("tailgate_slo_late_spans_total",
		"Entry spans counted in the minute they arrived because they ended more than max_lateness earlier, or in a minute that had not begun.", nil, nil)
	descFlushErrors = prometheus.NewDesc("tailgate_slo_flush_errors_total",
		"Failed writes of SLI buckets to the store.", nil, nil)
	descEvalDuration = prometheus.NewDesc("tailgate_slo_last_evaluation_duration_seconds",
		"Duration of the last evaluation of every SLO's alerts (a gauge of the last run, not a histogram).", nil, nil)
)

// collector reads the engine's state at scrape time.
type collector struct{ e *Engine }

// Describe implements prometheus.Collector.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descObjective, descErrorRatio, descBurnRate, descBudget, descCoverage,
		descTTE, descEvents, descFiring, descRejected, descLate, descFlushErrors, descEvalDuration} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	e := c.e
	for _, s := range e.List(time.Now()) {
		gauge := func(d *prometheus.Desc, v float64, labels ...string) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, append([]string{s.Name, s.Service}, labels...)...)
		}
		gauge(descObjective, s.Objective/100)
		for _, w := range s.Windows {
			if w.ErrorRatio != nil {
				gauge(descErrorRatio, *w.ErrorRatio, w.Window)
			}
			if w.BurnRate != nil {
				gauge(descBurnRate, *w.BurnRate, w.Window)
			}
		}
		if s.BudgetRemaining != nil {
			gauge(descBudget, *s.BudgetRemaining)
		}
		gauge(descCoverage, s.Coverage)
		if s.TimeToExhaustion != nil {
			gauge(descTTE, *s.TimeToExhaustion)
		}
		gauge(descEvents, s.Good, "good")
		gauge(descEvents, s.Total-s.Good, "bad")
		page, ticket := 0.0, 0.0
		for _, a := range s.Alerts {
			if a.State != Firing {
				continue
			}
			switch a.Severity {
			case Page:
				page = 1
			case Ticket:
				ticket = 1
			}
		}
		gauge(descFiring, page, Page.String())
		gauge(descFiring, ticket, Ticket.String())
	}
	ch <- prometheus.MustNewConstMetric(descRejected, prometheus.CounterValue, float64(e.skewRejected.Load()))
	ch <- prometheus.MustNewConstMetric(descLate, prometheus.CounterValue, float64(e.lateSpans.Load()))
	ch <- prometheus.MustNewConstMetric(descFlushErrors, prometheus.CounterValue, float64(e.flushErrors.Load()))
	e.mu.RLock()
	d := e.evalSeconds
	e.mu.RUnlock()
	ch <- prometheus.MustNewConstMetric(descEvalDuration, prometheus.GaugeValue, d)
}
