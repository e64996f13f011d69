// Small DOM helpers: element creation, change-only updates, keyed lists
// that reuse their rows across refreshes, and a paginated, filterable table
// built on them. Refreshes touch only the text and attributes that changed,
// so a table of 1,000 SLOs costs a page of rows, not a rebuild.

// h creates an element. attrs: class, text, and any attribute; on* keys
// with a function add listeners. Children are nodes or strings.
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'text') el.textContent = v;
    else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

// setText sets an element's text only when it changed.
export function setText(el, v) {
  const s = v === null || v === undefined ? '' : String(v);
  if (el.textContent !== s) el.textContent = s;
}

// setAttr sets (or with null removes) an attribute only when it changed.
export function setAttr(el, k, v) {
  if (v === null || v === undefined || v === false) {
    if (el.hasAttribute(k)) el.removeAttribute(k);
    return;
  }
  const s = v === true ? '' : String(v);
  if (el.getAttribute(k) !== s) el.setAttribute(k, s);
}

// setClass sets className only when it changed.
export function setClass(el, c) {
  if (el.className !== c) el.className = c;
}

// badge returns the class and text of a verdict, state or severity chip.
export function chip(text, kind) {
  return h('span', { class: 'chip chip-' + (kind || text), text });
}

// updateChip changes a chip made by chip.
export function updateChip(el, text, kind) {
  setText(el, text);
  setClass(el, 'chip chip-' + (kind || text));
}

// KeyedList keeps container's children in step with a list of items,
// reusing the element of each key: create(item) returns {el, update(item)}.
export class KeyedList {
  constructor(container, create) {
    this.container = container;
    this.create = create;
    this.rows = new Map();
  }

  update(items, key) {
    const seen = new Set();
    let prev = null;
    for (const item of items) {
      const k = key(item);
      seen.add(k);
      let row = this.rows.get(k);
      if (!row) {
        row = this.create(item);
        this.rows.set(k, row);
      }
      row.update(item);
      const want = prev ? prev.nextSibling : this.container.firstChild;
      if (want !== row.el) this.container.insertBefore(row.el, want);
      prev = row.el;
    }
    for (const [k, row] of this.rows) {
      if (!seen.has(k)) {
        row.el.remove();
        if (row.destroy) row.destroy();
        this.rows.delete(k);
      }
    }
  }
}

// Table is a filterable, sortable, paginated table whose rows are reused
// across refreshes.
//
//	columns: [{title, class, text(item) | create(td) + update(td, item, state)}]
//	key(item): the row's identity
//	filter(item, query, opts): whether the item shows for the filter text
//	sorts: {label: compare(a, b)}, the first is the default
//	toolbar: extra nodes for the toolbar (e.g. a select)
//	onPage(items): called with the items of the visible page after a render
export class Table {
  constructor(opts) {
    this.opts = opts;
    this.items = [];
    this.page = 0;
    this.pageSize = opts.pageSize || 50;
    this.query = '';
    const sortNames = Object.keys(opts.sorts || {});
    this.sort = sortNames[0] || null;

    this.filterInput = h('input', {
      type: 'search', class: 'filter', placeholder: opts.placeholder || 'Filter',
      'aria-label': opts.placeholder || 'Filter',
      oninput: () => { this.query = this.filterInput.value.trim().toLowerCase(); this.page = 0; this.render(); },
    });
    this.sortSelect = sortNames.length > 1 ? h('select', {
      class: 'sort', 'aria-label': 'Sort by',
      onchange: () => { this.sort = this.sortSelect.value; this.render(); },
    }, sortNames.map((n) => h('option', { value: n, text: 'Sort: ' + n }))) : null;
    this.count = h('span', { class: 'count' });
    this.prevBtn = h('button', { type: 'button', class: 'pg', text: '‹ Prev', onclick: () => { this.page--; this.render(); } });
    this.nextBtn = h('button', { type: 'button', class: 'pg', text: 'Next ›', onclick: () => { this.page++; this.render(); } });
    this.tbody = h('tbody');
    this.empty = h('div', { class: 'empty', text: opts.empty || 'Nothing to show yet.' });
    this.el = h('div', { class: 'table-wrap ' + (opts.class || '') },
      h('div', { class: 'toolbar' }, opts.filter ? this.filterInput : null, this.sortSelect, opts.toolbar || null,
        h('span', { class: 'spacer' }), this.count, this.prevBtn, this.nextBtn),
      h('div', { class: 'scroll' },
        h('table', { class: 'data' },
          h('thead', {}, h('tr', {}, opts.columns.map((c) => h('th', { class: c.class || '', text: c.title, title: c.help || null })))),
          this.tbody)),
      this.empty);
    if (opts.id) this.el.id = opts.id;
    this.list = new KeyedList(this.tbody, (item) => this.makeRow(item));
  }

  makeRow(item) {
    const tds = this.opts.columns.map((c) => {
      const td = h('td', { class: c.class || '' });
      if (c.create) c.create(td, item);
      return td;
    });
    const tr = h('tr', {}, tds);
    if (this.opts.rowAttrs) for (const [k, v] of Object.entries(this.opts.rowAttrs(item))) tr.setAttribute(k, v);
    return {
      el: tr,
      update: (it) => {
        this.opts.columns.forEach((c, i) => {
          if (c.update) c.update(tds[i], it);
          else if (c.text) setText(tds[i], c.text(it));
        });
        if (this.opts.rowClass) setClass(tr, this.opts.rowClass(it) || '');
      },
    };
  }

  setItems(items) {
    this.items = items || [];
    this.render();
  }

  // visible returns the filtered and sorted items.
  visible() {
    let out = this.items;
    if (this.opts.filter) out = out.filter((it) => this.opts.filter(it, this.query));
    if (this.sort) out = out.slice().sort(this.opts.sorts[this.sort]);
    return out;
  }

  render() {
    const all = this.visible();
    const pages = Math.max(1, Math.ceil(all.length / this.pageSize));
    this.page = Math.min(Math.max(0, this.page), pages - 1);
    const start = this.page * this.pageSize;
    const pageItems = all.slice(start, start + this.pageSize);
    this.list.update(pageItems, this.opts.key);
    const noun = this.opts.noun || 'rows';
    const total = this.items.length;
    let text = all.length === 0 ? `0 ${noun}` :
      all.length <= this.pageSize ? `${all.length} ${noun}` : `${start + 1}–${start + pageItems.length} of ${all.length} ${noun}`;
    if (all.length !== total) text += ` (filtered from ${total})`;
    setText(this.count, text);
    this.prevBtn.disabled = this.page === 0;
    this.nextBtn.disabled = this.page >= pages - 1;
    const paged = all.length > this.pageSize;
    this.prevBtn.hidden = !paged;
    this.nextBtn.hidden = !paged;
    this.empty.hidden = all.length !== 0;
    if (this.opts.onPage) this.opts.onPage(pageItems);
  }
}

// cmp compares two values for sorting: nulls last, numbers numerically,
// strings alphabetically.
export function cmp(a, b) {
  const an = a === null || a === undefined || (typeof a === 'number' && Number.isNaN(a));
  const bn = b === null || b === undefined || (typeof b === 'number' && Number.isNaN(b));
  if (an || bn) return an === bn ? 0 : an ? 1 : -1;
  if (typeof a === 'number' && typeof b === 'number') return a - b;
  return String(a).localeCompare(String(b));
}

// by builds a comparator from key functions, each ascending unless
// wrapped in desc(fn); later keys break ties.
export function by(...keys) {
  const isNull = (v) => v === null || v === undefined || (typeof v === 'number' && Number.isNaN(v));
  return (x, y) => {
    for (const k of keys) {
      const fn = k.desc ? k.fn : k;
      const a = fn(x);
      const b = fn(y);
      // No data sorts last in either direction.
      if (isNull(a) || isNull(b)) {
        if (isNull(a) !== isNull(b)) return isNull(a) ? 1 : -1;
        continue;
      }
      const r = k.desc ? cmp(b, a) : cmp(a, b);
      if (r !== 0) return r;
    }
    return 0;
  };
}

// desc marks a key function for descending order in by().
export function desc(fn) {
  return { desc: true, fn };
}

// mapLimit runs fn over items with at most n running at once.
export async function mapLimit(items, n, fn) {
  const out = new Array(items.length);
  let i = 0;
  const worker = async () => {
    while (i < items.length) {
      const j = i++;
      try {
        out[j] = await fn(items[j], j);
      } catch (e) {
        out[j] = e;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, worker));
  return out;
}

// section returns a titled card.
export function card(title, ...children) {
  return h('section', { class: 'card' }, title ? h('h2', { text: title }) : null, ...children);
}

// stat returns a figure with a label; update it with setText(el.value, ...).
export function stat(label, help) {
  const value = h('div', { class: 'stat-value', text: '—' });
  const sub = h('div', { class: 'stat-sub' });
  const el = h('div', { class: 'stat', title: help || null }, h('div', { class: 'stat-label', text: label }), value, sub);
  el.value = value;
  el.sub = sub;
  return el;
}
