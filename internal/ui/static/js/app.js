// The dashboard's shell: hash routing between views, the refresh loop
// (one request set at a time, paused while the tab is hidden), the token
// login when the API answers 401, and the header's live alert count.

import { AuthError, APIError, get, token, setToken } from './api.js';
import { h, setText, setClass } from './dom.js';
import * as fmt from './fmt.js';
import * as services from './views/services.js';
import * as slos from './views/slos.js';
import * as alerts from './views/alerts.js';
import * as gate from './views/gate.js';
import * as sampler from './views/sampler.js';
import * as cardinality from './views/cardinality.js';
import * as incidents from './views/incidents.js';
import * as oncall from './views/oncall.js';
import * as flags from './views/flags.js';
import * as canary from './views/canary.js';

const ROUTES = {
  services: { title: 'Services', list: services.mountList, detail: services.mountDetail },
  slos: { title: 'SLOs', list: slos.mountList, detail: slos.mountDetail },
  alerts: { title: 'Alerts', list: alerts.mount },
  gate: { title: 'Gate', list: gate.mount },
  canary: { title: 'Canaries', list: canary.mountList, detail: canary.mountDetail },
  sampler: { title: 'Sampler', list: sampler.mount },
  cardinality: { title: 'Cardinality', list: cardinality.mount },
  incidents: { title: 'Incidents', list: incidents.mountList, detail: incidents.mountDetail },
  oncall: { title: 'On-call', list: oncall.mount },
  flags: { title: 'Flags', list: flags.mount },
};
const DEFAULT_ROUTE = 'services';

// The refresh interval: ?refresh=N seconds in the page's URL, default 5.
const params = new URLSearchParams(location.search);
const BASE_INTERVAL = Math.max(1, Number(params.get('refresh')) || 5) * 1000;
const BACKGROUND_SAMPLER_EVERY = 30_000;

const $ = (id) => document.getElementById(id);

class App {
  constructor() {
    this.view = null;
    this.routeKey = '';
    this.timer = 0;
    this.ctrl = null;
    this.seq = 0;
    this.paused = false;
    this.authNeeded = false;
    this.interval = BASE_INTERVAL;
    this.lastSampler = 0;
    this.refreshes = 0;
  }

  start() {
    const nav = $('nav');
    for (const [k, r] of Object.entries(ROUTES)) {
      nav.append(h('a', { href: '#/' + k, 'data-route': k, text: r.title }));
    }
    $('pause').addEventListener('click', () => this.togglePause());
    $('signout').addEventListener('click', () => {
      setToken('');
      this.updateSignout();
      this.refreshNow();
    });
    $('login-form').addEventListener('submit', (e) => {
      e.preventDefault();
      const t = $('token').value.trim();
      if (!t) return;
      setToken(t);
      $('token').value = '';
      this.hideLogin();
      this.refreshNow();
    });
    window.addEventListener('hashchange', () => this.route());
    document.addEventListener('visibilitychange', () => {
      if (document.hidden) clearTimeout(this.timer);
      else if (!this.paused) this.refreshNow();
    });
    this.updateSignout();
    this.route();
  }

  parseHash() {
    const raw = location.hash.replace(/^#\/?/, '');
    const q = raw.indexOf('?');
    const path = q < 0 ? raw : raw.slice(0, q);
    const search = q < 0 ? '' : raw.slice(q + 1);
    const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
    let name = parts[0] || DEFAULT_ROUTE;
    if (!ROUTES[name]) name = DEFAULT_ROUTE;
    const arg = parts.length > 1 ? parts.slice(1).join('/') : null;
    return { name, arg, search };
  }

  route() {
    const { name, arg, search } = this.parseHash();
    // The query is part of the page: the same path with another query
    // (a canary against another baseline) mounts the view again.
    const key = name + '/' + (arg || '') + '?' + search;
    if (key === this.routeKey && this.view) return;
    this.routeKey = key;
    if (this.view && this.view.destroy) this.view.destroy();
    const root = h('div', { class: 'view', 'data-view': arg ? name + '-detail' : name });
    $('view').replaceChildren(root);
    const r = ROUTES[name];
    const mount = arg && r.detail ? r.detail : r.list;
    this.view = mount(root, { arg, query: new URLSearchParams(search), app: this });
    this.viewName = name;
    for (const a of $('nav').children) setClass(a, a.dataset.route === name ? 'active' : '');
    document.title = (arg ? arg + ' · ' : '') + r.title + ' · tailgate';
    this.refreshNow();
  }

  go(hash) {
    location.hash = hash;
  }

  togglePause() {
    this.paused = !this.paused;
    setText($('pause'), this.paused ? 'Resume' : 'Pause');
    if (this.paused) {
      clearTimeout(this.timer);
      setText($('status'), 'Paused');
    } else {
      this.refreshNow();
    }
  }

  // refreshNow refreshes the current view at once and schedules the next
  // refresh after it completes, so that requests never pile up.
  async refreshNow() {
    clearTimeout(this.timer);
    if (this.ctrl) this.ctrl.abort();
    const ctrl = new AbortController();
    this.ctrl = ctrl;
    const my = ++this.seq;
    const view = this.view;
    const started = performance.now();
    setClass($('status'), 'status busy');
    try {
      const tasks = [view.refresh(ctrl.signal), this.refreshAlertCount(ctrl.signal)];
      if (this.viewName !== 'sampler' && Date.now() - this.lastSampler > BACKGROUND_SAMPLER_EVERY) {
        this.lastSampler = Date.now();
        tasks.push(sampler.collect(ctrl.signal).catch(() => {}));
      }
      await Promise.all(tasks);
      if (my !== this.seq) return;
      this.refreshes++;
      document.body.dataset.refreshes = String(this.refreshes);
      setClass($('status'), 'status ok');
      setText($('status'), 'Updated ' + fmt.time(new Date()));
      this.showError(null);
      // A slow answer (a large fleet) stretches the interval, so that the
      // dashboard never spends more than a fifth of its time waiting.
      this.interval = Math.max(BASE_INTERVAL, Math.min(60_000, 5 * (performance.now() - started)));
    } catch (e) {
      if (my !== this.seq || e.name === 'AbortError') return;
      if (e instanceof AuthError) {
        this.showLogin(e.message);
        setClass($('status'), 'status err');
        setText($('status'), 'Sign-in needed');
        return; // no polling until a token is given
      }
      setClass($('status'), 'status err');
      setText($('status'), 'Refresh failed ' + fmt.time(new Date()));
      this.showError(e);
    } finally {
      if (my === this.seq && !this.paused && !this.authNeeded && !document.hidden) {
        this.timer = setTimeout(() => this.refreshNow(), this.interval);
      }
    }
  }

  async refreshAlertCount(signal) {
    const badge = $('alert-count');
    let res;
    try {
      res = await get('api/v1/alerts?limit=0', { signal });
    } catch (e) {
      if (e instanceof APIError && e.status === 404) { badge.hidden = true; return; }
      throw e;
    }
    const firing = (res.alerts || []).filter((a) => a.state === 'firing');
    const pages = firing.filter((a) => a.severity === 'page').length;
    badge.hidden = firing.length === 0;
    setText(badge, firing.length === 1 ? '1 alert firing' : `${firing.length} alerts firing`);
    setClass(badge, 'alert-count ' + (pages > 0 ? 'page' : 'ticket'));
  }

  showError(e) {
    const el = $('error');
    if (!e) { el.hidden = true; return; }
    el.hidden = false;
    let msg = e.message || String(e);
    if (e instanceof APIError && e.status === 403) msg = 'The token lacks the scope this view needs (' + (e.detail || 'forbidden') + ').';
    else if (e instanceof TypeError) msg = 'tailgate is unreachable: ' + msg;
    setText(el, msg);
  }

  showLogin(detail) {
    this.authNeeded = true;
    const had = token() !== '';
    $('login').hidden = false;
    setText($('login-msg'), had
      ? 'The token was refused' + (detail ? ': ' + detail : '.')
      : 'This tailgate requires an API token with the read scope.');
    $('token').focus();
  }

  hideLogin() {
    this.authNeeded = false;
    $('login').hidden = true;
    this.updateSignout();
  }

  updateSignout() {
    $('signout').hidden = token() === '';
  }
}

const app = new App();
window.tailgate = app; // for debugging from the console
app.start();
