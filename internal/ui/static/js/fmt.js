// Number, time and duration formatting. Every function takes null or
// undefined (the API's "no data") and returns a dash for it.

export const NONE = '—';

const missing = (v) => v === null || v === undefined || (typeof v === 'number' && !Number.isFinite(v));

// pct formats a ratio (0.25) as a percentage with d decimals ("25.0%").
// Budget-remaining figures use pct(v, 1): the browser test compares them
// with the API's numbers formatted the same way.
export function pct(ratio, d = 1) {
  if (missing(ratio)) return NONE;
  return (ratio * 100).toFixed(d) + '%';
}

// sliPct formats an SLI or objective, keeping the digits that matter near
// 100% ("99.95%", "99.912%").
export function sliPct(ratio) {
  if (missing(ratio)) return NONE;
  const p = ratio * 100;
  if (p === 100) return '100%';
  if (p >= 99.9) return p.toFixed(3) + '%';
  if (p >= 99) return p.toFixed(2) + '%';
  return p.toFixed(1) + '%';
}

// objective formats an objective given in percent (99.9).
export function objective(percent) {
  if (missing(percent)) return NONE;
  return String(+percent.toFixed(4)) + '%';
}

// errPct formats an error ratio with the precision small ratios need.
export function errPct(ratio) {
  if (missing(ratio)) return NONE;
  if (ratio === 0) return '0%';
  const p = ratio * 100;
  if (p < 0.1) return p.toFixed(3) + '%';
  if (p < 10) return p.toFixed(2) + '%';
  return p.toFixed(1) + '%';
}

// num formats a count: 1234 -> "1,234", 1234567 -> "1.23M".
export function num(n) {
  if (missing(n)) return NONE;
  const a = Math.abs(n);
  if (a >= 1e9) return (n / 1e9).toFixed(2) + 'G';
  if (a >= 1e6) return (n / 1e6).toFixed(2) + 'M';
  if (a >= 1e5) return (n / 1e3).toFixed(0) + 'k';
  if (Number.isInteger(n)) return n.toLocaleString('en-US');
  return n.toLocaleString('en-US', { maximumFractionDigits: 1 });
}

// rate formats events per second.
export function rate(perSec) {
  if (missing(perSec)) return NONE;
  const a = Math.abs(perSec);
  if (a === 0) return '0/s';
  if (a >= 1e6) return (perSec / 1e6).toFixed(1) + 'M/s';
  if (a >= 1e4) return (perSec / 1e3).toFixed(1) + 'k/s';
  if (a >= 100) return perSec.toFixed(0) + '/s';
  if (a >= 10) return perSec.toFixed(1) + '/s';
  if (a >= 0.01) return perSec.toFixed(2) + '/s';
  return (perSec * 60).toFixed(2) + '/min';
}

// dur formats a duration in seconds for latency: "850 µs", "12.5 ms", "1.20 s".
export function dur(sec) {
  if (missing(sec)) return NONE;
  const a = Math.abs(sec);
  if (a === 0) return '0 ms';
  if (a < 1e-3) return (sec * 1e6).toFixed(0) + ' µs';
  if (a < 0.01) return (sec * 1e3).toFixed(2) + ' ms';
  if (a < 0.1) return (sec * 1e3).toFixed(1) + ' ms';
  if (a < 1) return (sec * 1e3).toFixed(0) + ' ms';
  if (a < 60) return sec.toFixed(2) + ' s';
  return span(sec);
}

// span formats a long duration in seconds: "6d 6h", "3h 20m", "45s".
export function span(sec) {
  if (missing(sec)) return NONE;
  let s = Math.round(Math.abs(sec));
  const sign = sec < 0 ? '-' : '';
  const units = [['d', 86400], ['h', 3600], ['m', 60], ['s', 1]];
  const parts = [];
  for (const [u, n] of units) {
    if (s >= n || (u === 's' && parts.length === 0)) {
      parts.push(Math.floor(s / n) + u);
      s %= n;
    }
    if (parts.length === 2) break;
  }
  return sign + parts.join(' ');
}

// burn formats a burn rate: "0.85×", "14.4×".
export function burn(x) {
  if (missing(x)) return NONE;
  if (x >= 100) return x.toFixed(0) + '×';
  if (x >= 10) return x.toFixed(1) + '×';
  return x.toFixed(2) + '×';
}

// bytes formats a size in bytes with binary units.
export function bytes(n) {
  if (missing(n)) return NONE;
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (Math.abs(v) >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return (i === 0 ? v.toFixed(0) : v.toFixed(1)) + ' ' + units[i];
}

// time formats an instant as local wall-clock time, with the date when it
// is not today.
export function time(t) {
  if (missing(t) || t === '' || t === '0001-01-01T00:00:00Z') return NONE;
  const d = t instanceof Date ? t : new Date(t);
  if (Number.isNaN(d.getTime())) return NONE;
  const now = new Date();
  const hms = d.toLocaleTimeString('en-GB', { hour12: false });
  if (d.toDateString() === now.toDateString()) return hms;
  return d.toLocaleDateString('en-CA') + ' ' + hms;
}

// ago formats an instant relative to now: "12s ago", "in 5m".
export function ago(t, now = Date.now()) {
  if (missing(t) || t === '' || t === '0001-01-01T00:00:00Z') return NONE;
  const ms = (t instanceof Date ? t.getTime() : Date.parse(t));
  if (Number.isNaN(ms)) return NONE;
  const s = (now - ms) / 1000;
  if (Math.abs(s) < 1) return 'now';
  return s >= 0 ? span(s) + ' ago' : 'in ' + span(-s);
}

// burnClass names the CSS class of a burn rate's severity.
export function burnClass(x) {
  if (missing(x)) return 'nodata';
  if (x >= 14.4) return 'crit';
  if (x >= 6) return 'high';
  if (x >= 1) return 'warn';
  return 'ok';
}

// budgetClass names the CSS class of a budget remaining ratio.
export function budgetClass(b) {
  if (missing(b)) return 'nodata';
  if (b <= 0) return 'crit';
  if (b < 0.25) return 'high';
  if (b < 0.5) return 'warn';
  return 'ok';
}
