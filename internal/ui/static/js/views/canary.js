// Canaries: every version serving beside its service's busiest one in the
// last hour, with tailgate's verdict on it; a detail view per canary with
// both versions' error ratio and latency minute by minute, and the
// sequential test's difference with its always-valid interval against the
// decision boundaries (fail above the margin, pass below the tolerance).

import { get, enc, APIError } from '../api.js';
import { h, setText, setAttr, Table, by, desc, card, stat, chip, updateChip } from '../dom.js';
import { TimeChart } from '../charts.js';
import * as fmt from '../fmt.js';

// VERDICT_CHIP colours a canary verdict.
const VERDICT_CHIP = { fail: 'firing', pass: 'resolved', inconclusive: 'pending' };

const detailHash = (c) => '#/canary/' + enc(c.service) + '/' + enc(c.canary) + '?baseline=' + enc(c.baseline);

export function mountList(root) {
  const table = new Table({
    noun: 'canaries',
    id: 'canary-table',
    key: (c) => c.service + '|' + c.canary,
    rowAttrs: (c) => ({ 'data-canary': c.service + '/' + c.canary, 'data-verdict': c.verdict }),
    empty: 'No service served two versions in the last hour: a canary shows here once its spans carry its version (service.version, or the policy\'s canary.version_attribute).',
    placeholder: 'Filter by service or version',
    filter: (c, q) => !q || c.service.toLowerCase().includes(q) || c.canary.toLowerCase().includes(q),
    sorts: {
      verdict: by(desc((c) => ({ fail: 2, inconclusive: 1 })[c.verdict] || 0), (c) => c.service, (c) => c.canary),
      service: by((c) => c.service, (c) => c.canary),
    },
    columns: [
      { title: 'Verdict', create(td) { td.c = chip(''); td.append(td.c); }, update(td, c) { updateChip(td.c, c.verdict || '—', VERDICT_CHIP[c.verdict]); } },
      {
        title: 'Service', class: 'name',
        create(td) { td.link = h('a'); td.append(td.link); },
        update(td, c) { setText(td.link, c.service); setAttr(td.link, 'href', detailHash(c)); },
      },
      { title: 'Canary', text: (c) => c.canary },
      { title: 'Baseline', text: (c) => c.baseline, help: 'The service\'s busiest version' },
      { title: 'Requests', class: 'r', text: (c) => fmt.num(c.requests), help: 'The canary\'s requests in the last hour' },
      { title: 'First seen', text: (c) => fmt.ago(c.first_seen) },
      { title: 'Why', class: 'origin', text: (c) => c.reason },
    ],
  });
  const note = h('p', { class: 'muted' });
  root.append(h('div', { class: 'head' }, h('h1', { text: 'Canaries' }), note), card('Versions beside the busiest one, last hour', table.el));
  return {
    async refresh(signal) {
      const res = await get('api/v1/canary/versions', { signal });
      const cs = res.canaries || [];
      setText(note, `${cs.filter((c) => c.verdict === 'fail').length} of ${cs.length} failed. Each is judged against its service's busiest version, as a pipeline asks with tailgate canary check.`);
      table.setItems(cs);
    },
  };
}

// points extracts a field of the series' points (null where absent).
const pick = (pts, f) => pts.map((p) => { const v = f(p); return typeof v === 'number' && Number.isFinite(v) ? v : null; });

const ratio = (c, f) => (c.requests > 0 ? c[f] / c.requests : null);

export function mountDetail(root, { arg, query }) {
  const slash = arg.indexOf('/');
  const service = slash < 0 ? arg : arg.slice(0, slash);
  const version = slash < 0 ? '' : arg.slice(slash + 1);
  const baseline = query.get('baseline') || '';
  const title = h('h1', { text: `${service} ${version}` });
  const verdictChip = chip('…', 'pending');
  const verdictEl = h('div', { class: 'banner', id: 'canary-verdict' }, verdictChip, h('span'));
  const stats = {
    canary: stat('Canary', 'Requests of the canary since it was first seen'),
    base: stat('Baseline', 'Requests of the baseline over the same minutes'),
    errors: stat('Error ratio', 'Canary against baseline'),
    slow: stat('Over the latency threshold', 'Canary against baseline'),
    lat: stat('Latency p50 · p99', 'Canary, then baseline, from this instance\'s requests'),
    needed: stat('Requests still needed', 'Canary requests the test needs at the current rates (-1: none decides)'),
  };
  const chartsEl = h('div', { class: 'charts', id: 'canary-charts' });
  const detailEl = h('p', { class: 'muted' });
  root.append(
    h('div', { class: 'head' }, h('a', { href: '#/canary', class: 'back', text: '← Canaries' }), title),
    verdictEl,
    h('div', { class: 'stats' }, Object.values(stats)),
    card('Canary against baseline, minute by minute', chartsEl, detailEl),
  );
  const errChart = new TimeChart(chartsEl, {
    title: 'Error ratio per minute', yFmt: fmt.errPct, height: 180,
    series: [{ label: 'canary', stroke: '#dc2626' }, { label: 'baseline', stroke: '#2563eb' }],
  });
  const slowChart = new TimeChart(chartsEl, {
    title: 'Share over the latency threshold per minute', yFmt: fmt.errPct, height: 180,
    series: [{ label: 'canary', stroke: '#dc2626' }, { label: 'baseline', stroke: '#2563eb' }],
  });
  // The test: the difference since the start with its always-valid
  // interval; it fails once the lower end is over the margin and passes
  // once the upper end is under the tolerance.
  const testSeries = [
    { label: 'difference', stroke: '#475569' },
    { label: 'lower', stroke: '#dc2626', dash: [4, 3] },
    { label: 'upper', stroke: '#16a34a', dash: [4, 3] },
    { label: 'fail above (margin)', stroke: '#dc2626', width: 1 },
    { label: 'pass below (tolerance)', stroke: '#16a34a', width: 1 },
  ];
  const pts = (v) => (v >= 0 ? '+' : '') + (v * 100).toFixed(2) + ' pts';
  // The axis's figures are short: whole points beyond one point.
  const axisPts = (v) => (v > 0 ? '+' : '') + (v * 100).toFixed(Math.abs(v) < 0.01 ? 1 : 0) + ' pt';
  const errTest = new TimeChart(chartsEl, { title: 'Error ratio: difference since the start, with the decision boundaries', yFmt: axisPts, height: 200, series: testSeries });
  const slowTest = new TimeChart(chartsEl, { title: 'Latency: difference since the start, with the decision boundaries', yFmt: axisPts, height: 200, series: testSeries });

  return {
    async refresh(signal) {
      const q = `service=${enc(service)}&canary=${enc(version)}` + (baseline ? `&baseline=${enc(baseline)}` : '');
      let s;
      try {
        s = await get('api/v1/canary/series?' + q, { signal });
      } catch (e) {
        if (e instanceof APIError && e.status === 400) {
          updateChip(verdictChip, 'error', 'firing');
          setText(verdictEl.lastChild, ' ' + (e.detail || e.message));
          return;
        }
        throw e;
      }
      setText(title, `${s.service} ${s.canary_version} vs ${s.baseline_version}`);
      updateChip(verdictChip, s.verdict, VERDICT_CHIP[s.verdict]);
      setAttr(verdictEl, 'data-verdict', s.verdict);
      setText(verdictEl.lastChild, ` ${s.reason} (rule ${s.rule}, ${fmt.pct(s.false_positive_rate, 0)} false-positive bound under continuous checks)`);
      setText(stats.canary.value, fmt.num(s.canary.requests));
      setText(stats.canary.sub, `${fmt.num(s.canary.errors)} errors`);
      setText(stats.base.value, fmt.num(s.baseline.requests));
      setText(stats.base.sub, `${fmt.num(s.baseline.errors)} errors`);
      setText(stats.errors.value, `${fmt.errPct(s.canary.error_ratio)} vs ${fmt.errPct(s.baseline.error_ratio)}`);
      setText(stats.errors.sub, `difference ${pts(s.error_ratio.lower)} to ${pts(s.error_ratio.upper)}`);
      setText(stats.slow.value, s.latency ? `${fmt.errPct(s.canary.slow_ratio)} vs ${fmt.errPct(s.baseline.slow_ratio)}` : fmt.NONE);
      setText(stats.slow.sub, s.latency ? `difference ${pts(s.latency.lower)} to ${pts(s.latency.upper)}` : 'no latency SLO');
      const lq = s.latency_quantiles;
      setText(stats.lat.value, lq ? `${fmt.dur(lq.canary.p50_seconds)} · ${fmt.dur(lq.canary.p99_seconds)}` : fmt.NONE);
      setText(stats.lat.sub, lq ? `baseline ${fmt.dur(lq.baseline.p50_seconds)} · ${fmt.dur(lq.baseline.p99_seconds)}` : '');
      setText(stats.needed.value, s.verdict === 'inconclusive' ? fmt.num(s.requests_needed) : fmt.NONE);
      const p = s.points || [];
      const xs = p.map((x) => Date.parse(x.minute) / 1000);
      errChart.setData(xs, pick(p, (x) => ratio(x.canary, 'errors')), pick(p, (x) => ratio(x.baseline, 'errors')));
      const test = (t, f) => pick(p, (x) => (x[t] ? x[t][f] : undefined));
      errTest.setData(xs, test('error_ratio', 'diff'), test('error_ratio', 'lower'), test('error_ratio', 'upper'),
        test('error_ratio', 'margin'), test('error_ratio', 'tolerance'));
      slowChart.el.hidden = slowTest.el.hidden = !s.latency;
      if (s.latency) {
        slowChart.setData(xs, pick(p, (x) => ratio(x.canary, 'slow')), pick(p, (x) => ratio(x.baseline, 'slow')));
        slowTest.setData(xs, test('latency', 'diff'), test('latency', 'lower'), test('latency', 'upper'), test('latency', 'margin'), test('latency', 'tolerance'));
      }
      const only = s.canary_only_operations || [];
      const before = p.length > 0 && !p[0].verdict ? ' (the first point is the minute before, the baseline alone)' : '';
      setText(detailEl, `Since ${fmt.time(s.since)}${before}${s.per_operation ? ', operation by operation (the baseline weighted to the canary\'s mix)' : ''}.` +
        (only.length ? ` Operations only the canary served, left out: ${only.join(', ')}.` : ''));
    },
    destroy() {
      for (const c of [errChart, slowChart, errTest, slowTest]) c.destroy();
    },
  };
}
