// Alerts: the pending and firing burn-rate, budget and no-data alerts, and
// the history of their transitions.

import { get, enc } from '../api.js';
import { h, setText, Table, by, card, chip, updateChip } from '../dom.js';
import { transitionsTable, alertValues } from './slos.js';
import * as fmt from '../fmt.js';

const SEVERITY_RANK = { page: 0, ticket: 1 };

export function mount(root) {
  const active = new Table({
    noun: 'alerts',
    id: 'active-alerts',
    key: (a) => `${a.slo}|${a.group || ''}|${a.name}`,
    rowAttrs: (a) => ({ 'data-slo': a.slo }),
    empty: 'No alert is pending or firing.',
    placeholder: 'Filter by SLO, service or alert',
    filter: (a, q) => !q || a.slo.toLowerCase().includes(q) || a.service.toLowerCase().includes(q) || a.name.toLowerCase().includes(q),
    sorts: {
      severity: by((a) => (a.state === 'firing' ? 0 : 1), (a) => SEVERITY_RANK[a.severity] ?? 2, (a) => a.slo),
      newest: by((a) => -Date.parse(a.active_at)),
      slo: by((a) => a.slo, (a) => a.name),
    },
    columns: [
      { title: 'State', create(td) { td.c = chip(''); td.append(td.c); }, update(td, a) { updateChip(td.c, a.state === 'firing' ? a.severity : 'pending', a.state === 'firing' ? a.severity : 'pending'); } },
      {
        title: 'SLO', class: 'name',
        create(td, a) { td.link = h('a', { href: '#/slos/' + enc(a.slo) }); td.append(td.link); },
        update(td, a) { setText(td.link, a.slo + (a.group ? ' [' + a.group + ']' : '')); },
      },
      { title: 'Service', text: (a) => a.service },
      { title: 'Alert', text: (a) => a.name },
      { title: 'Since', text: (a) => fmt.ago(a.state === 'firing' ? a.fired_at : a.active_at) },
      { title: 'Values', text: (a) => alertValues(a.values) },
      { title: 'Summary', class: 'wrap', text: (a) => a.summary || '' },
    ],
  });
  const history = transitionsTable(true);
  const counts = h('p', { class: 'muted' });
  root.append(h('div', { class: 'head' }, h('h1', { text: 'Alerts' }), counts), card('Active', active.el), card('History', history.el));

  return {
    async refresh(signal) {
      const res = await get('api/v1/alerts?limit=500', { signal });
      const al = res.alerts || [];
      const firing = al.filter((a) => a.state === 'firing');
      setText(counts, `${firing.length} firing (${firing.filter((a) => a.severity === 'page').length} pages), ${al.length - firing.length} pending. Alerts are evaluated every 10s.`);
      active.setItems(al);
      history.setItems(res.transitions || []);
    },
  };
}
