// Gate: whether each service may ship a feature now (the risk report's
// read-only evaluation, which the audit log does not record), the recent
// decisions with their reasons, and the overrides.

import { get, enc, APIError } from '../api.js';
import { h, setText, Table, by, desc, card, chip, updateChip, mapLimit } from '../dom.js';
import * as fmt from '../fmt.js';

const RISK_TTL = 10_000;

function verdictCell(get) {
  return {
    create(td) { td.c = chip(''); td.append(td.c); },
    update(td, x) {
      const v = get(x);
      updateChip(td.c, v || '…', v || 'nodata');
    },
  };
}

function reasonsCell(get) {
  return {
    class: 'wrap reasons',
    create(td) {
      td.first = h('span');
      td.more = h('details', { class: 'more' }, h('summary'), h('ul'));
      td.append(td.first, td.more);
    },
    update(td, x) {
      const rs = get(x) || [];
      setText(td.first, rs[0] || '');
      td.more.hidden = rs.length < 2;
      const key = rs.slice(1).join('\n');
      if (td.more.dataset.key !== key) {
        td.more.dataset.key = key;
        setText(td.more.firstChild, `${rs.length - 1} more`);
        td.more.lastChild.replaceChildren(...rs.slice(1).map((r) => h('li', { text: r })));
      }
    },
  };
}

export function mount(root) {
  const risks = new Map(); // service -> {at, report | error}
  let signal = null;
  let pending = false;

  const fetchRisks = async (items) => {
    if (pending) return;
    const now = Date.now();
    const want = items.filter((s) => !(risks.get(s.service)?.at > now - RISK_TTL));
    if (want.length === 0) return;
    pending = true;
    try {
      await mapLimit(want, 4, async (s) => {
        try {
          const r = await get(`api/v1/services/${enc(s.service)}/risk`, { signal });
          risks.set(s.service, { at: Date.now(), report: r });
        } catch (e) {
          if (e.name === 'AbortError' || e.name === 'AuthError') throw e;
          risks.set(s.service, { at: Date.now(), error: e.message });
        }
      });
    } finally {
      pending = false;
    }
    freeze.render();
  };

  const risk = (s) => risks.get(s.service)?.report;
  const freeze = new Table({
    noun: 'services',
    id: 'gate-freeze',
    placeholder: 'Filter services',
    empty: 'No service has an SLO, so the gate allows every change.',
    key: (s) => s.service,
    rowAttrs: (s) => ({ 'data-service': s.service }),
    filter: (s, q) => !q || s.service.toLowerCase().includes(q),
    sorts: {
      'budget left': by((s) => s.minBudget, (s) => s.service),
      name: by((s) => s.service),
    },
    columns: [
      { title: 'Service', class: 'name', text: (s) => s.service },
      { title: 'Feature release now', help: 'What the gate would answer to change_class feature now (not recorded)', ...verdictCell((s) => risk(s)?.feature_decision) },
      { title: 'Rule', text: (s) => risk(s)?.feature_rule || risks.get(s.service)?.error || '' },
      { title: 'Why', ...reasonsCell((s) => risk(s)?.feature_reasons) },
      { title: 'Lowest budget', class: 'r num', text: (s) => fmt.pct(s.minBudget, 1) },
      { title: 'SLOs', class: 'r', text: (s) => s.slos },
    ],
    onPage: (items) => { fetchRisks(items).catch(() => {}); },
  });

  const decisions = new Table({
    noun: 'decisions',
    id: 'gate-decisions',
    placeholder: 'Filter by service, class or decision',
    empty: 'No gate decision yet: pipelines ask with tailgate gate check or POST /api/v1/gate/check.',
    key: (d) => d.id,
    rowAttrs: (d) => ({ 'data-service': d.service, 'data-decision': d.decision }),
    filter: (d, q) => !q || d.service.toLowerCase().includes(q) || d.change_class.includes(q) || d.decision.includes(q),
    columns: [
      { title: 'Time', text: (d) => fmt.time(d.evaluated_at) },
      { title: 'Service', class: 'name', text: (d) => d.service },
      { title: 'Change', text: (d) => d.change_class + (d.version ? ' ' + d.version : '') + (d.environment ? ' → ' + d.environment : '') },
      { title: 'Decision', ...verdictCell((d) => d.decision) },
      { title: 'Rule', text: (d) => d.policy_rule + (d.override ? ' (' + d.override.id + ')' : '') },
      { title: 'Reasons', ...reasonsCell((d) => d.reasons) },
      { title: 'Asked by', text: (d) => [d.requested_by, d.principal && d.principal !== 'anonymous' && d.principal !== d.requested_by ? 'token ' + d.principal : '', d.source ? 'via ' + d.source : ''].filter(Boolean).join(', ') },
    ],
  });

  const overrides = new Table({
    noun: 'overrides',
    key: (o) => o.id,
    empty: 'No override. Release managers grant them with tailgate gate override or POST /api/v1/gate/overrides.',
    sorts: { newest: by(desc((o) => Date.parse(o.created_at))) },
    columns: [
      { title: 'ID', text: (o) => o.id },
      { title: 'Service', class: 'name', text: (o) => o.service },
      { title: 'Classes', text: (o) => (o.change_classes || []).join(', ') },
      { title: 'Reason', class: 'wrap', text: (o) => o.reason },
      { title: 'Approved by', text: (o) => o.approved_by },
      { title: 'Created', text: (o) => fmt.time(o.created_at) + (o.created_by ? ' by ' + o.created_by : '') },
      { title: 'Expires', text: (o) => fmt.ago(o.expires_at) },
      { title: 'Status', create(td) { td.c = chip(''); td.append(td.c); }, update(td, o) { updateChip(td.c, o.status || 'active', o.status === 'active' || !o.status ? 'allow' : 'nodata'); } },
    ],
  });

  const note = h('p', { class: 'muted', text: 'The freeze state is what the gate would answer for a feature release now; it is not written to the audit log.' });
  root.append(
    h('div', { class: 'head' }, h('h1', { text: 'Release gate' })),
    card('Freeze state per service', note, freeze.el),
    card('Recent decisions', decisions.el),
    card('Overrides', overrides.el),
  );

  return {
    async refresh(sig) {
      signal = sig;
      let slos;
      let ds;
      let os;
      try {
        [slos, ds, os] = await Promise.all([
          get('api/v1/slos', { signal: sig }).catch((e) => { if (e instanceof APIError && e.status === 404) return { slos: [] }; throw e; }),
          get('api/v1/gate/decisions?limit=100', { signal: sig }),
          get('api/v1/gate/overrides?all=true&limit=50', { signal: sig }),
        ]);
      } catch (e) {
        if (e instanceof APIError && e.status === 404) {
          setText(note, 'The release gate is not enabled on this tailgate.');
          return;
        }
        throw e;
      }
      const bySvc = new Map();
      for (const s of slos.slos || []) {
        const e = bySvc.get(s.service) || { service: s.service, slos: 0, minBudget: null };
        e.slos++;
        if (s.budget_remaining !== null && (e.minBudget === null || s.budget_remaining < e.minBudget)) e.minBudget = s.budget_remaining;
        bySvc.set(s.service, e);
      }
      // Decisions refresh the freeze state of their service at once.
      for (const d of ds.decisions || []) {
        const r = risks.get(d.service);
        if (r && Date.parse(d.evaluated_at) > r.at) r.at = 0;
      }
      freeze.setItems([...bySvc.values()]);
      decisions.setItems(ds.decisions || []);
      overrides.setItems(os.overrides || []);
    },
  };
}
