// Incidents: the list, and one incident with its roles and the timeline
// that wrote itself (alerts, deploys, gate answers, flag flips, notes).

import { get, enc } from '../api.js';
import { h, setText, Table, by, card, chip, updateChip } from '../dom.js';
import * as fmt from '../fmt.js';

const STATE_KIND = { declared: 'firing', mitigated: 'pending', resolved: 'resolved' };

export function mountList(root) {
  const table = new Table({
    noun: 'incidents',
    id: 'incidents',
    key: (i) => i.id,
    rowAttrs: (i) => ({ 'data-incident': i.id }),
    empty: 'No incident yet. A page declares one; or tailgate incident declare.',
    placeholder: 'Filter by ID, title or service',
    filter: (i, q) => !q || i.id.toLowerCase().includes(q) || i.title.toLowerCase().includes(q) || i.services.some((s) => s.includes(q)),
    sorts: { newest: by((i) => -Date.parse(i.declared_at)), state: by((i) => i.state, (i) => -Date.parse(i.declared_at)) },
    columns: [
      { title: 'State', create(td) { td.c = chip(''); td.append(td.c); }, update(td, i) { updateChip(td.c, i.state, STATE_KIND[i.state]); } },
      {
        title: 'Incident', class: 'name',
        create(td, i) { td.link = h('a', { href: '#/incidents/' + enc(i.id) }); td.append(td.link); },
        update(td, i) { setText(td.link, i.id); },
      },
      { title: 'Severity', text: (i) => i.severity.toUpperCase() },
      { title: 'Title', class: 'wrap', text: (i) => i.title },
      { title: 'Services', text: (i) => i.services.join(', ') + (i.origin ? ` (origin ${i.origin})` : '') },
      { title: 'Commander', text: (i) => (i.roles && i.roles.commander) || fmt.NONE },
      { title: 'Declared', text: (i) => fmt.ago(i.declared_at) },
    ],
  });
  root.append(h('div', { class: 'head' }, h('h1', { text: 'Incidents' })), card('Incidents', table.el));
  return {
    async refresh(signal) {
      const res = await get('api/v1/incidents?state=all&limit=200', { signal });
      table.setItems(res.incidents || []);
    },
  };
}

export function mountDetail(root, { arg }) {
  const title = h('h1', { text: arg });
  const state = chip('');
  const roles = h('p', { class: 'muted', id: 'incident-roles' });
  const suggestion = h('p', { class: 'muted' });
  const timeline = new Table({
    noun: 'entries',
    id: 'incident-timeline',
    key: (e) => e.at + '|' + e.kind + '|' + e.text,
    rowAttrs: (e) => ({ 'data-kind': e.kind }),
    empty: 'No entries.',
    placeholder: 'Filter the timeline',
    filter: (e, q) => !q || e.text.toLowerCase().includes(q) || e.kind.includes(q),
    sorts: { time: by((e) => Date.parse(e.at)) },
    columns: [
      { title: 'Time', text: (e) => fmt.time(e.at) },
      { title: 'Kind', text: (e) => e.kind },
      { title: 'Actor', text: (e) => e.actor },
      { title: 'What', class: 'wrap', text: (e) => e.text },
    ],
  });
  const pm = h('a', { href: 'api/v1/incidents/' + enc(arg) + '/postmortem', text: 'Post-mortem draft (Markdown)' });
  root.append(h('div', { class: 'head' }, title, state, roles), suggestion, card('Timeline', timeline.el), h('p', {}, pm));
  return {
    async refresh(signal) {
      const v = await get('api/v1/incidents/' + enc(arg), { signal });
      setText(title, `${v.id} ${v.title}`);
      updateChip(state, v.state, STATE_KIND[v.state]);
      const r = v.roles || {};
      setText(roles, `Commander: ${r.commander || fmt.NONE} · Comms: ${r.comms || fmt.NONE} · Ops: ${r.ops || fmt.NONE} · ${v.severity.toUpperCase()} · ${v.services.join(', ')}`);
      setText(suggestion, v.suggest_mitigated || '');
      timeline.setItems(v.timeline || []);
    },
  };
}
