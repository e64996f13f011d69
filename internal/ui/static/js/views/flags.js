// Flags: what each flag serves now, its kill switch, and its history.

import { get } from '../api.js';
import { h, setText, Table, by, card, chip, updateChip } from '../dom.js';
import * as fmt from '../fmt.js';

function serving(f) {
  const forced = f.state && f.state.forced;
  if (forced) return `${forced.variant} (forced by ${forced.by === 'kill_switch' ? 'the kill switch' : 'an operator'})`;
  return f.targeting && f.targeting.length ? `targeting (default ${f.default_variant})` : f.default_variant;
}

export function mount(root) {
  const table = new Table({
    noun: 'flags',
    id: 'flags',
    key: (f) => f.key,
    rowAttrs: (f) => ({ 'data-flag': f.key }),
    empty: 'No flag is defined (flags: in the config, or PUT /api/v1/flags/KEY).',
    placeholder: 'Filter by key',
    filter: (f, q) => !q || f.key.toLowerCase().includes(q),
    sorts: { key: by((f) => f.key) },
    columns: [
      {
        title: 'State', create(td) { td.c = chip(''); td.append(td.c); },
        update(td, f) { const forced = f.state && f.state.forced; updateChip(td.c, forced ? 'forced' : 'targeting', forced ? 'deny' : 'allow'); },
      },
      { title: 'Flag', class: 'name', text: (f) => f.key },
      { title: 'Serving', text: serving },
      { title: 'Kill switch', text: (f) => (f.kill_switch ? `${f.kill_switch.variant} on ${(f.kill_switch.slos || []).join(', ') || 'service ' + f.kill_switch.service}` + (f.state && f.state.paused ? ' (paused)' : '') : (f.essential ? 'essential' : fmt.NONE)) },
      { title: 'Changed', text: (f) => (f.state && f.state.version ? fmt.ago(f.state.since) : fmt.NONE) },
      { title: 'Defined in', text: (f) => f.defined_in },
    ],
  });
  const note = h('p', { class: 'muted' });
  root.append(h('div', { class: 'head' }, h('h1', { text: 'Flags' }), note), card('Flags', table.el));
  return {
    async refresh(signal) {
      const res = await get('api/v1/flags', { signal });
      const fl = res.flags || [];
      setText(note, `${fl.filter((f) => f.state && f.state.forced).length} of ${fl.length} forced. Applications read them over OFREP.`);
      table.setItems(fl);
    },
  };
}
