// SLOs: every SLO with its budget remaining, burn rates and alert state;
// a detail view with SLI, burn-rate and budget burn-down charts over the
// window (with the ideal burn), its alerts and its corrections.

import { get, enc, APIError } from '../api.js';
import { h, setText, setClass, setAttr, Table, by, desc, card, stat, chip, updateChip } from '../dom.js';
import { TimeChart } from '../charts.js';
import * as fmt from '../fmt.js';

// BURN_COLUMNS are the burn-rate windows the table shows, besides the
// SLO's own window.
const BURN_COLUMNS = ['5m', '1h', '6h'];

// budgetBar builds the budget-remaining cell: a bar and the percentage.
export function budgetCell() {
  return {
    create(td) {
      td.fill = h('span', { class: 'bar-fill' });
      td.bar = h('span', { class: 'bar' }, td.fill);
      td.text = h('span', { class: 'budget-text num' });
      td.append(td.bar, td.text);
    },
    update(td, s) {
      const b = s.budget_remaining;
      setText(td.text, fmt.pct(b, 1));
      const w = b === null || b === undefined ? 0 : Math.max(0, Math.min(1, b)) * 100;
      const width = String(+w.toFixed(1)) + '%';
      if (td.fill.style.width !== width) td.fill.style.width = width;
      setClass(td.fill, 'bar-fill ' + fmt.budgetClass(b));
      setClass(td.bar, b !== null && b !== undefined && b <= 0 ? 'bar spent' : 'bar');
      setAttr(td, 'title', s.budget ? `${fmt.num(s.budget.remaining_events)} of ${fmt.num(s.budget.total_events)} bad events left` : null);
    },
  };
}

// alertCell shows the firing and pending alerts of an SLO, or "ok".
function alertCell() {
  return {
    create(td) { td.classList.add('alerts'); },
    update(td, s) {
      const al = (s.alerts || []).filter((a) => a.state === 'firing' || a.state === 'pending');
      const key = al.map((a) => a.name + a.state + a.severity + (a.group || '')).join('|') || 'ok';
      if (td.dataset.key === key) return;
      td.dataset.key = key;
      td.replaceChildren(...(al.length === 0
        ? [chip(s.total > 0 ? 'ok' : 'no data', s.total > 0 ? 'ok' : 'nodata')]
        : al.map((a) => {
          // Colour says the severity of a firing alert; pending says so.
          const c = chip(`${a.name}${a.group ? ' [' + a.group + ']' : ''}${a.state === 'pending' ? ' (pending)' : ''}`, a.state === 'firing' ? a.severity : 'pending');
          c.title = `${a.severity} ${a.state}: ${a.summary || ''}`;
          c.dataset.state = a.state;
          return c;
        })));
    },
  };
}

function burnCell(win) {
  return {
    update(td, s) {
      const w = typeof win === 'function' ? win(s) : win;
      const v = s.burn_rates ? s.burn_rates[w] : null;
      setText(td, fmt.burn(v));
      setClass(td, 'r num burn ' + fmt.burnClass(v));
    },
  };
}

const worstBurn = (s) => {
  const v = s.burn_rates ? s.burn_rates['1h'] : null;
  return v === null || v === undefined ? null : v;
};

export function mountList(root) {
  const stats = { total: stat('SLOs'), exhausted: stat('Budget exhausted'), low: stat('Under 25% left'), alerting: stat('Alerting') };
  const show = h('select', { class: 'sort', 'aria-label': 'Show', onchange: () => { table.page = 0; table.render(); } },
    h('option', { value: 'all', text: 'All SLOs' }),
    h('option', { value: 'alerting', text: 'Alerting' }),
    h('option', { value: 'low', text: 'Under 25% budget' }),
    h('option', { value: 'exhausted', text: 'Budget exhausted' }));
  const table = new Table({
    noun: 'SLOs',
    id: 'slo-table',
    placeholder: 'Filter by SLO or service',
    empty: 'No SLO is defined: add them under slos: in the config file.',
    key: (s) => s.name,
    rowAttrs: (s) => ({ 'data-slo': s.name }),
    toolbar: show,
    filter: (s, q) => {
      const f = show.value;
      if (f === 'alerting' && !(s.alerts || []).some((a) => a.state === 'firing' || a.state === 'pending')) return false;
      if (f === 'low' && !(s.budget_remaining !== null && s.budget_remaining < 0.25)) return false;
      if (f === 'exhausted' && !s.budget_exhausted) return false;
      return !q || s.name.toLowerCase().includes(q) || s.service.toLowerCase().includes(q);
    },
    sorts: {
      'budget left': by((s) => s.budget_remaining, (s) => s.name),
      name: by((s) => s.name),
      service: by((s) => s.service, (s) => s.name),
      'burn 1h': by(desc(worstBurn), (s) => s.name),
    },
    columns: [
      {
        title: 'SLO', class: 'name',
        create(td, s) { td.link = h('a', { href: '#/slos/' + enc(s.name) }); td.append(td.link); },
        update(td, s) { setText(td.link, s.name); setAttr(td.link, 'title', s.description || null); },
      },
      { title: 'Service', text: (s) => s.service },
      { title: 'Objective', class: 'r', text: (s) => fmt.objective(s.objective) + (s.sli_kind === 'latency' && s.threshold ? ' ≤ ' + s.threshold : '') },
      { title: 'Window', class: 'r', text: (s) => s.window },
      { title: 'SLI', class: 'r num', text: (s) => fmt.sliPct(s.sli), help: 'Good events over all events in the window' },
      { title: 'Budget remaining', class: 'budget', ...budgetCell() },
      ...BURN_COLUMNS.map((w) => ({ title: 'Burn ' + w, class: 'r', help: 'Burn rate over ' + w, ...burnCell(w) })),
      { title: 'Burn window', class: 'r', help: "Burn rate over the SLO's window", ...burnCell((s) => s.window) },
      { title: 'Alerts', ...alertCell() },
    ],
  });
  root.append(h('div', { class: 'head' }, h('h1', { text: 'SLOs' })), h('div', { class: 'stats' }, Object.values(stats)), table.el);

  return {
    async refresh(signal) {
      const res = await get('api/v1/slos', { signal });
      const list = res.slos || [];
      setText(stats.total.value, fmt.num(list.length));
      setText(stats.exhausted.value, fmt.num(list.filter((s) => s.budget_exhausted).length));
      setText(stats.low.value, fmt.num(list.filter((s) => s.budget_remaining !== null && s.budget_remaining < 0.25).length));
      setText(stats.alerting.value, fmt.num(list.filter((s) => (s.alerts || []).some((a) => a.state === 'firing')).length));
      table.setItems(list);
    },
  };
}

// pickBurnWindows chooses the burn-rate series of the chart: the short
// and long windows that exist, and the SLO's window.
function pickBurnWindows(st, points) {
  const have = new Set();
  for (const p of points) for (const k of Object.keys(p.burn_rates || {})) have.add(k);
  const want = ['5m', '1h', '6h', st.window].filter((w, i, a) => have.has(w) && a.indexOf(w) === i);
  return want.length ? want : [...have].slice(0, 3);
}

export function mountDetail(root, { arg }) {
  const name = arg;
  const st = {
    sli: stat('SLI', 'Good events over all events in the window'),
    objective: stat('Objective'),
    budget: stat('Budget remaining'),
    burn: stat('Burn rate (1h)'),
    tte: stat('Time to exhaustion', 'At the burn rate of the last hour'),
    coverage: stat('Coverage', 'Share of the window during which tailgate was counting'),
  };
  const desc = h('p', { class: 'muted' });
  const alertsBox = h('div', { class: 'alert-list' });
  const chartsEl = h('div', { class: 'charts' });
  const windows = new Table({
    noun: 'windows', key: (w) => w.window,
    columns: [
      { title: 'Window', text: (w) => w.window },
      { title: 'Good', class: 'r', text: (w) => fmt.num(w.good) },
      { title: 'Total', class: 'r', text: (w) => fmt.num(w.total) },
      { title: 'SLI', class: 'r', text: (w) => fmt.sliPct(w.sli) },
      { title: 'Error ratio', class: 'r', text: (w) => fmt.errPct(w.error_ratio) },
      { title: 'Burn rate', class: 'r', update: (td, w) => { setText(td, fmt.burn(w.burn_rate)); setClass(td, 'r burn ' + fmt.burnClass(w.burn_rate)); } },
      { title: 'Coverage', class: 'r', text: (w) => fmt.pct(w.coverage, 0) },
    ],
  });
  const corrections = new Table({
    noun: 'corrections', key: (c) => String(c.id),
    empty: 'No correction. Add one with POST /api/v1/slos/{name}/corrections (maintenance, load tests, exempt outages).',
    columns: [
      { title: 'ID', text: (c) => c.id },
      { title: 'Period', text: (c) => c.rrule ? `${fmt.time(c.start)} for ${c.duration}, ${c.rrule}${c.time_zone ? ' (' + c.time_zone + ')' : ''}` : `${fmt.time(c.start)} – ${fmt.time(c.end)}` },
      { title: 'Reason', text: (c) => c.reason },
      { title: 'By', text: (c) => c.created_by || c.source || '' },
      { title: 'Excluded in window', class: 'r', text: (c) => c.excluded === undefined ? '—' : `${fmt.num(c.excluded.excluded_total)} events (${fmt.num(c.excluded.excluded_total - c.excluded.excluded_good)} bad)` },
    ],
  });
  const transitions = transitionsTable();
  const groups = new Table({
    noun: 'groups', key: (g) => g.group, placeholder: 'Filter groups', filter: (g, q) => !q || g.group.toLowerCase().includes(q),
    sorts: { 'budget left': by((g) => g.budget_remaining, (g) => g.group), name: by((g) => g.group) },
    columns: [
      { title: 'Group', class: 'name', text: (g) => g.group },
      { title: 'Total', class: 'r', text: (g) => fmt.num(g.total) },
      { title: 'SLI', class: 'r', text: (g) => fmt.sliPct(g.sli) },
      { title: 'Budget remaining', class: 'budget', ...budgetCell() },
      { title: 'Burn 1h', class: 'r', ...burnCell('1h') },
    ],
  });
  const groupsCard = card('Groups', groups.el);
  groupsCard.hidden = true;
  root.append(
    h('div', { class: 'head' }, h('a', { href: '#/slos', class: 'back', text: '← SLOs' }), h('h1', { text: name }), desc),
    h('div', { class: 'stats' }, Object.values(st)),
    alertsBox,
    card('Over the window', chartsEl),
    card('Windows', windows.el),
    groupsCard,
    card('Corrections', corrections.el),
    card('Alert history', transitions.el),
  );

  let sliChart = null;
  let burnChart = null;
  let budgetChart = null;
  let burnKeys = null;
  let lastHistory = 0;

  const drawHistory = (s, hist) => {
    const pts = hist.points || [];
    const xs = pts.map((p) => Date.parse(p.time) / 1000);
    const obj = s.objective / 100;
    if (!sliChart) {
      sliChart = new TimeChart(chartsEl, {
        title: 'SLI over the window',
        series: [{ label: 'SLI', stroke: '#2563eb' }, { label: 'objective', stroke: '#16a34a', dash: [6, 4], width: 1.25 }],
        yFmt: fmt.sliPct, height: 200,
      });
    }
    sliChart.setData(xs, pts.map((p) => p.sli), pts.map(() => obj));

    const keys = pickBurnWindows(s, pts);
    if (!burnChart || String(keys) !== String(burnKeys)) {
      if (burnChart) burnChart.destroy();
      burnChart = new TimeChart(chartsEl, {
        title: 'Burn rate',
        series: [...keys.map((k) => ({ label: k })), { label: 'budget pace (1×)', stroke: '#64748b', dash: [4, 4], width: 1 }],
        yFmt: fmt.burn, height: 200,
      });
      burnKeys = keys;
    }
    burnChart.setData(xs, ...keys.map((k) => pts.map((p) => (p.burn_rates ? p.burn_rates[k] ?? null : null))), pts.map(() => 1));

    // The ideal burn spends the whole budget evenly over one window: from
    // 100% at the start of the chart to 0% a window later.
    const x0 = xs.length ? xs[0] : 0;
    const ideal = xs.map((x) => Math.max(0, 1 - (x - x0) / s.window_seconds));
    if (!budgetChart) {
      budgetChart = new TimeChart(chartsEl, {
        title: 'Error budget remaining (burn-down)',
        series: [{ label: 'budget remaining', stroke: '#7c3aed', fill: 'rgba(124,58,237,0.08)' }, { label: 'ideal burn', stroke: '#64748b', dash: [6, 4], width: 1.25 }],
        yFmt: (v) => fmt.pct(v, 0), height: 200,
      });
    }
    budgetChart.setData(xs, pts.map((p) => p.budget_remaining), ideal);
  };

  return {
    async refresh(signal) {
      let s;
      try {
        s = await get(`api/v1/slos/${enc(name)}`, { signal });
      } catch (e) {
        if (e instanceof APIError && e.status === 404) {
          setText(desc, `There is no SLO named ${name}.`);
          return;
        }
        throw e;
      }
      setText(desc, `${s.service} · ${s.sli_kind}${s.threshold ? ' ≤ ' + s.threshold : ''} · ${s.window} window (${fmt.time(s.window_start)} – ${fmt.time(s.window_end)}) · ${s.budgeting_method}` +
        (s.description ? ' · ' + s.description : ''));
      setText(st.sli.value, fmt.sliPct(s.sli));
      setText(st.sli.sub, `${fmt.num(s.good)} good of ${fmt.num(s.total)}`);
      setText(st.objective.value, fmt.objective(s.objective));
      setText(st.budget.value, fmt.pct(s.budget_remaining, 1));
      setClass(st.budget.value, 'stat-value ' + fmt.budgetClass(s.budget_remaining));
      setText(st.budget.sub, s.budget ? `${fmt.num(s.budget.consumed_events)} of ${fmt.num(s.budget.total_events)} bad events spent` : '');
      const b1 = s.burn_rates ? s.burn_rates['1h'] : null;
      setText(st.burn.value, fmt.burn(b1));
      setClass(st.burn.value, 'stat-value ' + fmt.burnClass(b1));
      setText(st.tte.value, s.budget_exhausted ? 'exhausted' : s.time_to_exhaustion_seconds === null ? 'not burning' : fmt.span(s.time_to_exhaustion_seconds));
      setText(st.coverage.value, fmt.pct(s.coverage, 0));

      const active = (s.alerts || []).filter((a) => a.state === 'firing' || a.state === 'pending');
      alertsBox.replaceChildren(...active.map((a) => h('div', { class: 'banner ' + (a.state === 'firing' ? a.severity : 'pending') },
        chip(a.state, a.state === 'firing' ? a.severity : 'pending'), ' ', h('strong', { text: a.name }), ' ', a.summary || '')));

      windows.setItems(s.windows || []);
      groupsCard.hidden = !(s.groups && s.groups.length);
      if (s.groups) groups.setItems(s.groups);

      const now = Date.now();
      const needHistory = now - lastHistory > 15_000;
      const [hist, cs, al] = await Promise.all([
        needHistory ? get(`api/v1/slos/${enc(name)}/history?from=${encodeURIComponent(s.window_start)}`, { signal }) : null,
        get(`api/v1/slos/${enc(name)}/corrections`, { signal }).catch(() => ({ corrections: [] })),
        get(`api/v1/alerts?slo=${enc(name)}&limit=50`, { signal }),
      ]);
      if (hist) {
        lastHistory = now;
        drawHistory(s, hist);
      }
      const excluded = new Map((s.corrections || []).map((c) => [c.id, c]));
      corrections.setItems((cs.corrections || []).map((c) => ({ ...c, excluded: excluded.get(c.id) })));
      transitions.setItems(al.transitions || []);
    },
    destroy() {
      for (const c of [sliChart, burnChart, budgetChart]) if (c) c.destroy();
    },
  };
}

// transitionsTable lists alert transitions, latest first.
export function transitionsTable(withSLO = false) {
  return new Table({
    noun: 'transitions', key: (t) => `${t.slo}|${t.group || ''}|${t.alert}|${t.at}|${t.to}`,
    empty: 'No alert has changed state.',
    placeholder: 'Filter', filter: withSLO ? (t, q) => !q || t.slo.toLowerCase().includes(q) || t.alert.toLowerCase().includes(q) || t.service.toLowerCase().includes(q) : null,
    columns: [
      { title: 'Time', text: (t) => fmt.time(t.at) },
      ...(withSLO ? [{
        title: 'SLO', class: 'name',
        create(td, t) { td.link = h('a', { href: '#/slos/' + enc(t.slo) }); td.append(td.link); },
        update(td, t) { setText(td.link, t.slo + (t.group ? ' [' + t.group + ']' : '')); },
      }] : []),
      { title: 'Alert', text: (t) => t.alert },
      { title: 'Severity', create(td) { td.c = chip(''); td.append(td.c); }, update(td, t) { updateChip(td.c, t.severity); } },
      { title: 'Change', create(td) { td.c = chip(''); td.append(td.c); }, update(td, t) { updateChip(td.c, `${t.from} → ${t.to}`, t.to === 'firing' ? t.severity : t.to); } },
      { title: 'Values', text: (t) => alertValues(t.values) },
    ],
  });
}

// alertValues describes the numbers behind an alert.
export function alertValues(v) {
  if (!v) return '';
  const parts = [];
  if (v.threshold) {
    parts.push(`burn ${fmt.burn(v.burn_rate_long)} over ${v.long_window}`);
    if (v.short_window) parts.push(`${fmt.burn(v.burn_rate_short)} over ${v.short_window}`);
    parts.push(`threshold ${fmt.burn(v.threshold)}`);
  }
  if (v.budget_remaining !== null && v.budget_remaining !== undefined) parts.push(`budget ${fmt.pct(v.budget_remaining, 1)}`);
  return parts.join(', ');
}
