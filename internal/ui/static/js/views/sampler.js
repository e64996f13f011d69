// Sampler: spans kept and not sampled by rule over time, the trace buffer,
// stress relief and the exporter, read from /metrics. The server keeps
// counters only, so the dashboard keeps a short history of its own
// scrapes (while it is open) and charts their rates.

import { get } from '../api.js';
import { h, setText, Table, by, desc, card, stat } from '../dom.js';
import { TimeChart } from '../charts.js';
import { parseMetrics, sum, byLabel } from '../metrics.js';
import * as fmt from '../fmt.js';

const PREFIXES = ['tailgate_sampler_', 'tailgate_exporter_', 'tailgate_ingest_spans_'];
const MAX_SAMPLES = 360;

// history holds the scrapes of this page's lifetime, oldest first.
const history = [];

// collect scrapes /metrics once and appends a sample to the history.
export async function collect(signal) {
  const text = await get('metrics', { signal, text: true });
  const m = parseMetrics(text, PREFIXES);
  const s = {
    t: Date.now() / 1000,
    kept: byLabel(m, 'tailgate_sampler_spans_kept_total', 'rule'),
    dropped: byLabel(m, 'tailgate_sampler_spans_not_sampled_total', 'rule'),
    tracesKept: byLabel(m, 'tailgate_sampler_traces_decided_total', 'rule', { decision: 'keep' }),
    tracesDropped: byLabel(m, 'tailgate_sampler_traces_decided_total', 'rule', { decision: 'drop' }),
    received: sum(m, 'tailgate_sampler_spans_received_total'),
    late: byLabel(m, 'tailgate_sampler_late_spans_total', 'decision'),
    stress: sum(m, 'tailgate_sampler_stress_relief_traces_total'),
    stressEpisodes: sum(m, 'tailgate_sampler_stress_relief_episodes_total'),
    backpressure: sum(m, 'tailgate_sampler_backpressure_requests_total'),
    bufTraces: sum(m, 'tailgate_sampler_buffered_traces'),
    bufSpans: sum(m, 'tailgate_sampler_buffered_spans'),
    bufBytes: sum(m, 'tailgate_sampler_buffered_bytes'),
    cacheBytes: sum(m, 'tailgate_sampler_decision_cache_bytes'),
    intake: sum(m, 'tailgate_sampler_intake_spans'),
    exportFailed: sum(m, 'tailgate_sampler_export_failed_spans_total'),
    exSent: sum(m, 'tailgate_exporter_sent_spans_total'),
    exFailed: sum(m, 'tailgate_exporter_failed_spans_total'),
    exAbandoned: sum(m, 'tailgate_exporter_abandoned_spans_total'),
    exQueue: sum(m, 'tailgate_exporter_queue_spans'),
    exQueueCap: sum(m, 'tailgate_exporter_queue_capacity_spans'),
    accepted: sum(m, 'tailgate_ingest_spans_accepted_total'),
    rejected: sum(m, 'tailgate_ingest_spans_rejected_total'),
  };
  history.push(s);
  if (history.length > MAX_SAMPLES) history.splice(0, history.length - MAX_SAMPLES);
  return s;
}

// perSecond is the rate of a counter between two samples, null across a
// reset (a restart) or a missing value.
function perSecond(a, b, f) {
  const va = f(a);
  const vb = f(b);
  if (va === null || vb === null || va === undefined || vb === undefined || vb < va || b.t <= a.t) return null;
  return (vb - va) / (b.t - a.t);
}

export function mount(root) {
  const st = {
    received: stat('Spans received'),
    kept: stat('Spans kept'),
    dropped: stat('Spans not sampled', 'Spans of traces decided against: a sampling decision, not a loss'),
    buffered: stat('Buffered', 'Traces and spans waiting for their decision'),
    stress: stat('Stress relief', 'Episodes in which the buffer was over its limits and traces were decided early'),
    exporter: stat('Export queue'),
  };
  const chartsEl = h('div', { class: 'charts' });
  const note = h('p', { class: 'muted' });
  const rules = new Table({
    noun: 'rules', id: 'sampler-rules', key: (r) => r.rule,
    empty: 'No trace decided yet.',
    sorts: { 'spans kept': by(desc((r) => r.kept), (r) => r.rule) },
    columns: [
      { title: 'Rule', class: 'name', text: (r) => r.rule },
      { title: 'Traces kept', class: 'r', text: (r) => fmt.num(r.tracesKept) },
      { title: 'Traces dropped', class: 'r', text: (r) => fmt.num(r.tracesDropped) },
      { title: 'Kept share', class: 'r', text: (r) => fmt.pct(r.tracesKept + r.tracesDropped ? r.tracesKept / (r.tracesKept + r.tracesDropped) : null, 1) },
      { title: 'Spans kept', class: 'r', text: (r) => fmt.num(r.kept) },
      { title: 'Spans not sampled', class: 'r', text: (r) => fmt.num(r.dropped) },
      { title: 'Kept now', class: 'r', text: (r) => fmt.rate(r.keptRate) },
      { title: 'Not sampled now', class: 'r', text: (r) => fmt.rate(r.droppedRate) },
    ],
  });
  root.append(
    h('div', { class: 'head' }, h('h1', { text: 'Tail sampler' }), note),
    h('div', { class: 'stats' }, Object.values(st)),
    card('Over time (this page\'s own scrapes of /metrics)', chartsEl),
    card('By rule (since tailgate started)', rules.el),
  );
  let flowChart = null;
  let flowKey = '';
  const bufChart = new TimeChart(chartsEl, { title: 'Trace buffer', series: [{ label: 'spans' }, { label: 'traces', stroke: '#d97706' }], yFmt: fmt.num, height: 180 });
  const stressChart = new TimeChart(chartsEl, { title: 'Stress relief and backpressure', series: [{ label: 'traces decided early /s', stroke: '#dc2626' }, { label: 'refused requests /s', stroke: '#7c3aed' }], yFmt: fmt.rate, height: 160 });

  const draw = () => {
    const last = history[history.length - 1];
    const prev = history.length > 1 ? history[history.length - 2] : null;
    const names = [...new Set([...Object.keys(last.kept), ...Object.keys(last.dropped)])].sort();
    const total = (o) => Object.values(o).reduce((a, b) => a + b, 0);
    const kept = total(last.kept);
    const dropped = total(last.dropped);
    setText(st.received.value, fmt.num(last.received));
    setText(st.received.sub, last.rejected ? fmt.num(last.rejected) + ' rejected at ingest' : '');
    setText(st.kept.value, fmt.num(kept));
    setText(st.kept.sub, kept + dropped ? fmt.pct(kept / (kept + dropped), 1) + ' of decided spans' : '');
    setText(st.dropped.value, fmt.num(dropped));
    setText(st.buffered.value, `${fmt.num(last.bufTraces)} traces`);
    setText(st.buffered.sub, `${fmt.num(last.bufSpans)} spans, ${fmt.bytes(last.bufBytes)}`);
    setText(st.stress.value, fmt.num(last.stressEpisodes));
    const lastStress = [...history].reverse().find((s, i, a) => i + 1 < a.length && s.stress > a[i + 1].stress);
    setText(st.stress.sub, lastStress ? 'last at ' + fmt.time(new Date(lastStress.t * 1000)) : last.backpressure ? fmt.num(last.backpressure) + ' requests refused' : 'buffer within limits');
    setText(st.exporter.value, last.exQueue === null ? '—' : `${fmt.num(last.exQueue)} spans`);
    setText(st.exporter.sub, last.exQueueCap ? `of ${fmt.num(last.exQueueCap)}; sent ${fmt.num(last.exSent)}, failed ${fmt.num((last.exFailed || 0) + (last.exAbandoned || 0))}` : '');

    rules.setItems(names.map((rule) => ({
      rule,
      kept: last.kept[rule] || 0,
      dropped: last.dropped[rule] || 0,
      tracesKept: last.tracesKept[rule] || 0,
      tracesDropped: last.tracesDropped[rule] || 0,
      keptRate: prev ? perSecond(prev, last, (s) => s.kept[rule] || 0) : null,
      droppedRate: prev ? perSecond(prev, last, (s) => s.dropped[rule] || 0) : null,
    })));

    if (history.length < 2) {
      setText(note, 'Collecting: rates appear after the second scrape.');
      return;
    }
    setText(note, `${history.length} scrapes since ${fmt.time(new Date(history[0].t * 1000))}.`);
    const pairs = history.slice(1).map((b, i) => [history[i], b]);
    const xs = pairs.map(([, b]) => b.t);
    const key = names.join(',');
    if (!flowChart || key !== flowKey) {
      if (flowChart) flowChart.destroy();
      flowChart = new TimeChart(chartsEl, {
        title: 'Spans per second by rule: kept (solid) and not sampled (dashed)',
        series: [...names.map((n) => ({ label: 'kept: ' + n })), ...names.map((n) => ({ label: 'not sampled: ' + n, dash: [5, 4] }))],
        yFmt: fmt.rate, height: 220,
      });
      chartsEl.prepend(flowChart.el);
      flowKey = key;
    }
    flowChart.setData(xs,
      ...names.map((n) => pairs.map(([a, b]) => perSecond(a, b, (s) => s.kept[n] || 0))),
      ...names.map((n) => pairs.map(([a, b]) => perSecond(a, b, (s) => s.dropped[n] || 0))));
    bufChart.setData(xs, pairs.map(([, b]) => b.bufSpans), pairs.map(([, b]) => b.bufTraces));
    stressChart.setData(xs, pairs.map(([a, b]) => perSecond(a, b, (s) => s.stress)), pairs.map(([a, b]) => perSecond(a, b, (s) => s.backpressure)));
  };

  return {
    async refresh(signal) {
      await collect(signal);
      draw();
    },
    destroy() {
      for (const c of [flowChart, bufChart, stressChart]) if (c) c.destroy();
    },
  };
}
