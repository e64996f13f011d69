// Cardinality: the attribute keys of every service, how many distinct
// values each has, what it would cost as a metric label, and what to do
// with the flagged ones.

import { get } from '../api.js';
import { h, setText, setClass, Table, by, desc, card, stat, chip } from '../dom.js';
import * as fmt from '../fmt.js';

export function mount(root) {
  const st = {
    series: stat('RED metric series', 'Label sets of the RED metrics, against their limit'),
    services: stat('Services'),
    flagged: stat('Flagged keys'),
    since: stat('Window since'),
  };
  const onlyFlagged = h('label', { class: 'check' }, h('input', { type: 'checkbox', onchange: () => { table.page = 0; table.render(); } }), ' Flagged only');
  const table = new Table({
    noun: 'keys',
    id: 'cardinality-keys',
    placeholder: 'Filter by service or key',
    empty: 'No attribute seen yet.',
    key: (k) => `${k.service}|${k.source}|${k.key}`,
    toolbar: onlyFlagged,
    rowClass: (k) => (k.flagged ? 'flagged' : ''),
    filter: (k, q) => (!onlyFlagged.firstChild.checked || k.flagged) && (!q || k.service.toLowerCase().includes(q) || k.key.toLowerCase().includes(q)),
    sorts: {
      distinct: by(desc((k) => (k.flagged ? 1 : 0)), desc((k) => k.distinct), (k) => k.service, (k) => k.key),
      'added series': by(desc((k) => k.added_series), (k) => k.key),
      service: by((k) => k.service, desc((k) => k.distinct)),
    },
    columns: [
      { title: '', create(td) { td.c = chip('HIGH', 'deny'); td.append(td.c); }, update(td, k) { td.c.hidden = !k.flagged; } },
      { title: 'Service', text: (k) => k.service },
      { title: 'Key', class: 'name mono', text: (k) => k.key },
      { title: 'Source', text: (k) => k.source },
      { title: 'Distinct', class: 'r num', text: (k) => (k.distinct_is_lower_bound ? '≥ ' : '') + fmt.num(k.distinct) },
      { title: 'Share of spans', class: 'r', text: (k) => fmt.pct(k.share, 0) },
      { title: 'Series as label', class: 'r', text: (k) => `${fmt.num(k.series_as_label)} (+${fmt.num(k.added_series)})` },
      { title: 'Suggestion', class: 'wrap', text: (k) => k.suggestion || '' },
    ],
  });
  root.append(
    h('div', { class: 'head' }, h('h1', { text: 'Attribute cardinality' }),
      h('p', { class: 'muted', text: 'Keys with many distinct values must never become metric labels; keep them on spans.' })),
    h('div', { class: 'stats' }, Object.values(st)),
    card(null, table.el),
  );

  return {
    async refresh(signal) {
      const r = await get('api/v1/cardinality?top=50', { signal });
      setText(st.series.value, `${fmt.num(r.series)} / ${fmt.num(r.series_limit)}`);
      setClass(st.series.value, 'stat-value ' + (r.overflowing ? 'crit' : ''));
      setText(st.series.sub, r.overflowing ? 'overflowing: new label sets go to the overflow series' : '');
      const svcs = r.services || [];
      setText(st.services.value, fmt.num(svcs.length));
      const keys = svcs.flatMap((s) => (s.keys || []).map((k) => ({ ...k, service: s.service })));
      setText(st.flagged.value, fmt.num(keys.filter((k) => k.flagged).length));
      setText(st.flagged.sub, `at ${fmt.num(r.flag_threshold)} distinct values`);
      setText(st.since.value, fmt.time(r.window_start));
      table.setItems(keys);
    },
  };
}
