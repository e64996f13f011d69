// Services: the golden signals of every service over the last hour with
// sparklines, and where each service's errors start; a detail view per
// service with its charts, operations and error origins.

import { get, enc, APIError } from '../api.js';
import { h, setText, Table, by, desc, mapLimit, card, stat, chip } from '../dom.js';
import { Spark, TimeChart } from '../charts.js';
import * as fmt from '../fmt.js';

const RANGE = 'from=1h';
const ORIGINS_TTL = 15_000;

// series extracts one field of a service's points.
const field = (s, f) => (s.series || []).map((p) => (p[f] === undefined ? null : p[f]));

function sparkCell(f, opts = {}) {
  return {
    create(td) {
      td.value = h('span', { class: 'num' });
      td.spark = new Spark({ cls: opts.cls || '' });
      td.append(td.value, td.spark.el);
    },
    update(td, s) {
      setText(td.value, opts.text(s));
      td.spark.set(field(s, f).map((v) => (v === null || !opts.scale ? v : opts.scale(v))), { max: opts.max ? opts.max(s) : null });
    },
  };
}

export function mountList(root, { app }) {
  const origins = new Map(); // service -> {at, summary}
  let signal = null;
  let pending = false;

  const fetchOrigins = async (items) => {
    if (pending) return;
    const now = Date.now();
    const want = items.filter((s) => s.errors > 0 && !(origins.get(s.service)?.at > now - ORIGINS_TTL));
    if (want.length === 0) return;
    pending = true;
    try {
      await mapLimit(want, 4, async (s) => {
        try {
          const o = await get(`api/v1/services/${enc(s.service)}/error-origins?${RANGE}`, { signal });
          origins.set(s.service, { at: Date.now(), summary: o.summary || '', origins: o.origins || [] });
        } catch (e) {
          if (e.name === 'AbortError') throw e;
          origins.set(s.service, { at: Date.now(), summary: '' });
        }
      });
    } finally {
      pending = false;
    }
    table.render();
  };

  const table = new Table({
    noun: 'services',
    placeholder: 'Filter services',
    empty: 'No service has sent requests (entry spans) in the last hour.',
    key: (s) => s.service,
    rowAttrs: (s) => ({ 'data-service': s.service }),
    filter: (s, q) => !q || s.service.toLowerCase().includes(q),
    sorts: {
      'error ratio': by(desc((s) => s.error_ratio), (s) => s.service),
      name: by((s) => s.service),
      'request rate': by(desc((s) => s.rate_per_second), (s) => s.service),
      p99: by(desc((s) => s.p99_seconds), (s) => s.service),
    },
    columns: [
      {
        title: 'Service',
        class: 'name',
        create(td, s) {
          td.link = h('a', { href: '#/services/' + enc(s.service) });
          td.append(td.link);
        },
        update(td, s) { setText(td.link, s.service); },
      },
      { title: 'Requests', class: 'r', text: (s) => fmt.num(s.requests), help: 'Entry spans in the last hour' },
      { title: 'Rate', class: 'spark-cell', help: 'Requests per second', ...sparkCell('rate_per_second', { text: (s) => fmt.rate(s.rate_per_second) }) },
      { title: 'Error rate', class: 'spark-cell', help: 'Share of requests bad for availability', ...sparkCell('error_ratio', { cls: 'bad', text: (s) => fmt.errPct(s.error_ratio) }) },
      { title: 'p50', class: 'r', text: (s) => fmt.dur(s.p50_seconds) },
      { title: 'p99', class: 'spark-cell', help: '99th percentile latency', ...sparkCell('p99_seconds', { cls: 'lat', text: (s) => fmt.dur(s.p99_seconds) }) },
      { title: 'In flight', class: 'r', text: (s) => s.in_flight.toFixed(2), help: 'Mean requests in progress (saturation)' },
      {
        title: 'Where errors start',
        class: 'origin',
        update(td, s) {
          const o = origins.get(s.service);
          setText(td, s.errors === 0 ? '' : o ? o.summary || '—' : '…');
        },
      },
    ],
    onPage: (items) => { fetchOrigins(items).catch(() => {}); },
  });

  const range = h('p', { class: 'muted' });
  root.append(h('div', { class: 'head' }, h('h1', { text: 'Services' }), range), table.el);

  return {
    async refresh(sig) {
      signal = sig;
      const res = await get('api/v1/services?' + RANGE, { signal: sig });
      setText(range, `Golden signals from 100% of spans, ${fmt.time(res.from)} – ${fmt.time(res.to)}, step ${res.step}.`);
      table.setItems(res.services || []);
    },
  };
}

// EVENT_CHIP colours an event's chip like its line on the charts.
const EVENT_CHIP = { deploy: 'pending', flip: 'firing', restore: 'resolved' };
// VERDICT_CHIP colours a deploy's regression verdict.
const VERDICT_CHIP = { regressed: 'firing', clean: 'resolved', inconclusive: 'pending' };

export function mountDetail(root, { arg }) {
  const name = arg;
  const stats = {
    rate: stat('Rate'), errors: stat('Error rate'), p50: stat('p50'), p90: stat('p90'), p99: stat('p99'), inflight: stat('In flight', 'Mean requests in progress'),
  };
  const chartsEl = h('div', { class: 'charts' });
  const originEl = h('p', { class: 'origin-summary' });
  const originTable = new Table({
    noun: 'origins', key: (o) => o.service + '|' + o.operation + '|' + o.reason + '|' + o.dependency,
    empty: 'No failed request of this service was analysed in the last hour.',
    columns: [
      { title: 'Service', text: (o) => o.service },
      { title: 'Operation', text: (o) => o.operation + (o.dependency ? ' (uninstrumented dependency)' : '') },
      { title: 'Reason', text: (o) => o.reason },
      { title: 'Failed requests', class: 'r', text: (o) => fmt.num(o.requests) },
      { title: 'Share', class: 'r', text: (o) => fmt.pct(o.share, 1) },
    ],
  });
  const opsTable = new Table({
    noun: 'operations', placeholder: 'Filter operations', key: (o) => o.operation,
    filter: (o, q) => !q || o.operation.toLowerCase().includes(q),
    sorts: { busiest: by(desc((o) => o.requests), (o) => o.operation), 'error ratio': by(desc((o) => o.error_ratio)), p99: by(desc((o) => o.p99_seconds)) },
    columns: [
      { title: 'Operation', class: 'name', text: (o) => o.operation },
      { title: 'Requests', class: 'r', text: (o) => fmt.num(o.requests) },
      { title: 'Rate', class: 'r', text: (o) => fmt.rate(o.rate_per_second) },
      { title: 'Errors', class: 'r', text: (o) => fmt.num(o.errors) },
      { title: 'Error rate', class: 'r', text: (o) => fmt.errPct(o.error_ratio) },
      { title: 'p50', class: 'r', text: (o) => fmt.dur(o.p50_seconds) },
      { title: 'p99', class: 'r', text: (o) => fmt.dur(o.p99_seconds) },
    ],
  });
  const causedEl = h('p', { class: 'muted' });
  // The events drawn on the charts, listed too (the lines carry no text).
  const eventsEl = h('ul', { class: 'events', id: 'service-events' });
  root.append(
    h('div', { class: 'head' }, h('a', { href: '#/services', class: 'back', text: '← Services' }), h('h1', { text: name })),
    h('div', { class: 'stats' }, Object.values(stats)),
    card('Golden signals, last hour', chartsEl, eventsEl),
    card('Where its errors start', originEl, originTable.el, causedEl),
    card('Operations', opsTable.el),
  );
  const rateChart = new TimeChart(chartsEl, { title: 'Requests per second', series: [{ label: 'rate', fill: 'rgba(37,99,235,0.08)' }], yFmt: fmt.rate, height: 180 });
  const errChart = new TimeChart(chartsEl, { title: 'Error rate', series: [{ label: 'errors', stroke: '#dc2626', fill: 'rgba(220,38,38,0.08)' }], yFmt: fmt.errPct, height: 180 });
  const latChart = new TimeChart(chartsEl, { title: 'Latency', series: [{ label: 'p50' }, { label: 'p90', stroke: '#d97706' }, { label: 'p99', stroke: '#dc2626' }], yFmt: fmt.dur, height: 180 });

  return {
    async refresh(signal) {
      let d;
      try {
        d = await get(`api/v1/services/${enc(name)}?${RANGE}`, { signal });
      } catch (e) {
        if (e instanceof APIError && e.status === 404) {
          setText(originEl, `No requests of ${name} in the last hour.`);
          return;
        }
        throw e;
      }
      setText(stats.rate.value, fmt.rate(d.rate_per_second));
      setText(stats.rate.sub, fmt.num(d.requests) + ' requests');
      setText(stats.errors.value, fmt.errPct(d.error_ratio));
      setText(stats.errors.sub, fmt.num(d.errors) + ' errors');
      setText(stats.p50.value, fmt.dur(d.p50_seconds));
      setText(stats.p90.value, fmt.dur(d.p90_seconds));
      setText(stats.p99.value, fmt.dur(d.p99_seconds));
      setText(stats.inflight.value, d.in_flight.toFixed(2));
      const xs = (d.series || []).map((p) => Date.parse(p.time) / 1000);
      rateChart.setData(xs, field(d, 'rate_per_second'));
      errChart.setData(xs, field(d, 'error_ratio'));
      latChart.setData(xs, field(d, 'p50_seconds'), field(d, 'p90_seconds'), field(d, 'p99_seconds'));
      const eo = d.error_origins || {};
      setText(originEl, eo.summary || (eo.failed_requests ? '' : 'No failed request analysed in the last hour.'));
      originTable.setItems(eo.origins || []);
      const caused = (eo.caused_elsewhere || []).map((c) => `${c.service} (${fmt.num(c.requests)})`).join(', ');
      setText(causedEl, caused ? 'Failed requests of other services that started here: ' + caused + '.' : '');
      opsTable.setItems(d.operations || []);
      const ev = await get(`api/v1/services/${enc(name)}/events`, { signal });
      const marks = (ev.events || []).map((e) => ({ t: Date.parse(e.at) / 1000, kind: e.kind, text: e.text }));
      for (const c of [rateChart, errChart, latChart]) c.setMarkers(marks);
      eventsEl.replaceChildren(...(ev.events || []).map((e) =>
        h('li', { 'data-kind': e.kind, 'data-verdict': e.verdict || '' }, chip(e.kind, EVENT_CHIP[e.kind]), ` ${fmt.time(e.at)} ${e.text}`,
          e.verdict ? chip(e.verdict, VERDICT_CHIP[e.verdict]) : null)));
    },
    destroy() {
      rateChart.destroy();
      errChart.destroy();
      latChart.destroy();
    },
  };
}
