package demo

import (
	"fmt"
	"path/filepath"
	"strconv"

	"github.com/tailgate-sre/tailgate/internal/config"
)

// ExportFile is the file, in the data directory, that kept traces are
// exported to as OTLP JSON lines.
const ExportFile = "kept-traces.jsonl"

// ConfigFile is the demo's config as written to the data directory.
const ConfigFile = "tailgate.yaml"

// configTemplate is the config the demo runs tailgate with. The SLO windows
// are one hour so that budgets move within minutes. The Workbook's burn-rate
// tiers scale with the window: for one hour the page tiers look at 1m and
// 1m (the shortest a minute-bucketed window can be; a 1m window holds the
// previous minute and the current one so far), the tickets at 2m/1m and
// 6m/1m. Two things differ from a production setup, because the demo starts
// from nothing and lasts minutes:
//   - min_coverage is 0.1 instead of 0.9: a fresh install's windows hold
//     seconds of data, and at 0.9 a page could not fire before the second
//     minute boundary after the start;
//   - keep_firing_for is 10s instead of the short window (1m), so that the
//     page resolves soon after its windows have drained of the failure;
//   - auth.allow_anonymous_writes is on, because the demo itself records
//     deploy markers and creates a gate override without a token.
const configTemplate = `# The config of 'tailgate demo'. With --keep it stays in the data directory:
#   tailgate serve --config %[1]s
server:
  api: %[2]s
ingest:
  otlp_grpc: 127.0.0.1:0
  otlp_http: 127.0.0.1:0
export:
  file: {path: %[3]s}
storage:
  path: %[4]s
slo_engine:
  eval_interval: 1s
# The demo records deploy markers and creates a gate override through the
# API, on 127.0.0.1 without tokens: writes need this (never on a network).
auth:
  allow_anonymous_writes: true

slos:
  - name: frontend-availability
    service: frontend
    description: The shop's pages answer without a server error.
    objective: 99.5
    window: 1h
    sli: {kind: availability}
    # The Google SRE Workbook's tiers (scaled to the 1h window: page at
    # 14.4x over 1m and 1m), restated only to shorten keep_firing_for; the
    # other SLOs share them.
    alerting: &alerting
      min_coverage: 0.1
      tiers:
        - {name: page-1h,   severity: page,   burn_rate: 14.4, long_window: 1h, short_window: 5m,  keep_firing_for: 10s}
        - {name: page-6h,   severity: page,   burn_rate: 6,    long_window: 6h, short_window: 30m, keep_firing_for: 10s}
        - {name: ticket-1d, severity: ticket, burn_rate: 3,    long_window: 1d, short_window: 2h,  keep_firing_for: 10s}
        - {name: ticket-3d, severity: ticket, burn_rate: 1,    long_window: 3d, short_window: 6h,  keep_firing_for: 10s}
  - name: checkout-availability
    service: checkout
    description: Checkout answers without a server error.
    objective: 99.5
    window: 1h
    sli: {kind: availability}
    alerting: *alerting
  - name: checkout-latency
    service: checkout
    description: 95%% of checkouts complete within 300ms.
    objective: 95
    window: 1h
    sli: {kind: latency, threshold: 300ms, filter: {http.route: /api/checkout}}
    alerting: *alerting
  - name: payments-availability
    service: payments
    description: Card charges answer without a server error.
    objective: 99
    window: 1h
    sli: {kind: availability}
    alerting: *alerting
  # Also the threshold the canary's latency test counts slow charges by.
  - name: payments-latency
    service: payments
    description: 90%% of card charges answer within 150ms.
    objective: 90
    window: 1h
    sli: {kind: latency, threshold: 150ms}
    alerting: *alerting
# No policies: every service gets the default error-budget policy (the Workbook's).

# Recommendations on the checkout page are not essential: when checkout
# pages, the kill switch turns them off, and turns them back on once the
# page has been clear for 20s.
flags:
  - key: recommendations
    description: product recommendations on the checkout page
    variants: {enabled: true, disabled: false}
    default_variant: enabled
    kill_switch:
      slos: [checkout-availability]
      when: {alert_firing: page}
      variant: disabled
      restore: after_recovery
      recover_for: 20s
`

// ConfigYAML returns the demo's config file for the data directory dir and
// the API address api.
func ConfigYAML(dir, api string) []byte {
	q := func(s string) string { return strconv.Quote(s) }
	return fmt.Appendf(nil, configTemplate,
		q(filepath.Join(dir, ConfigFile)), q(api), q(filepath.Join(dir, ExportFile)), q(dir))
}

// Config returns the demo's daemon config, parsed and validated like a
// config file.
func Config(dir, api string) (config.Config, error) {
	cfg, err := config.Parse(ConfigYAML(dir, api))
	if err != nil {
		return config.Config{}, fmt.Errorf("demo config: %w", err)
	}
	return cfg, nil
}
