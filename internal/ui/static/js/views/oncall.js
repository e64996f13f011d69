// On-call: each rotation's load over the last week (pages, pages outside
// working hours, incidents per shift, hours in incidents, the toil
// estimate) and the stability-sprint recommendation when a rotation is
// over the SRE book's guidelines (2 incidents per 12-hour shift, 50% toil).

import { get } from '../api.js';
import { h, setText, Table, by, desc, card, chip, updateChip } from '../dom.js';
import * as fmt from '../fmt.js';

export function mount(root) {
  const period = h('p', { class: 'muted', id: 'oncall-period' });
  const advice = h('div', { id: 'oncall-advice' });
  const table = new Table({
    noun: 'rotations',
    id: 'oncall-rotations',
    key: (r) => r.name,
    rowAttrs: (r) => ({ 'data-rotation': r.name }),
    empty: 'No rotation configured (oncall.rotations in tailgate.yaml).',
    placeholder: 'Filter by rotation or service',
    filter: (r, q) => !q || r.name.toLowerCase().includes(q) || r.services.some((s) => s.includes(q)),
    sorts: { load: by(desc((r) => (r.overloaded ? 1 : 0)), desc((r) => r.incidents_per_shift), (r) => r.name), name: by((r) => r.name) },
    columns: [
      { title: 'Load', create(td) { td.c = chip(''); td.append(td.c); }, update(td, r) { updateChip(td.c, r.overloaded ? 'overloaded' : 'ok', r.overloaded ? 'firing' : 'resolved'); } },
      { title: 'Rotation', class: 'name', text: (r) => r.name },
      { title: 'Services', text: (r) => r.services.join(', ') },
      { title: 'Pages', class: 'r', text: (r) => fmt.num(r.pages) },
      { title: 'Off hours', class: 'r', text: (r) => fmt.num(r.pages_off_hours) },
      { title: 'Pages/week', class: 'r', text: (r) => r.pages_per_week.toFixed(1) },
      { title: 'Incidents', class: 'r', text: (r) => fmt.num(r.incidents) },
      { title: 'Per shift', class: 'r', text: (r) => `${r.incidents_per_shift.toFixed(2)} (${r.shift})` },
      { title: 'Hours in incidents', class: 'r', text: (r) => r.incident_hours.toFixed(1) },
      { title: 'Toil', class: 'r', text: (r) => fmt.pct(r.toil_share) },
    ],
  });
  root.append(h('div', { class: 'head' }, h('h1', { text: 'On-call' }), period), advice, card('Rotations, last 7 days', table.el));
  return {
    async refresh(signal) {
      const rep = await get('api/v1/reports/oncall', { signal });
      setText(period, `${fmt.time(rep.from)} to ${fmt.time(rep.to)} · working hours ${rep.working_hours} (${rep.time_zone})`);
      const rotations = rep.rotations || [];
      table.setItems(rotations);
      advice.replaceChildren(...rotations.filter((r) => r.recommendation).map((r) =>
        h('p', { class: 'banner', 'data-advice': r.name }, `${r.name}: ${r.recommendation}` + (r.reasons && r.reasons.length ? ` (${r.reasons.join('; ')})` : ''))));
    },
  };
}
