// Charts: SVG sparklines drawn by hand (hundreds per page cost nothing),
// and time-series charts with the vendored uPlot.

const SVG = 'http://www.w3.org/2000/svg'; // an XML namespace name, not a URL that is fetched

// Spark is a small line chart without axes for a table cell. set(values)
// redraws only when the values changed; null values leave gaps.
export class Spark {
  constructor({ width = 110, height = 26, cls = '' } = {}) {
    this.w = width;
    this.h = height;
    this.el = document.createElementNS(SVG, 'svg');
    this.el.setAttribute('class', 'spark ' + cls);
    this.el.setAttribute('width', width);
    this.el.setAttribute('height', height);
    this.el.setAttribute('viewBox', `0 0 ${width} ${height}`);
    this.el.setAttribute('aria-hidden', 'true');
    this.area = document.createElementNS(SVG, 'path');
    this.area.setAttribute('class', 'spark-area');
    this.line = document.createElementNS(SVG, 'path');
    this.line.setAttribute('class', 'spark-line');
    this.el.append(this.area, this.line);
    this.key = '';
  }

  set(values, { min = 0, max = null } = {}) {
    const key = values.join(',');
    if (key === this.key) return;
    this.key = key;
    const n = values.length;
    let hi = max;
    if (hi === null) {
      hi = 0;
      for (const v of values) if (v !== null && v > hi) hi = v;
    }
    if (!(hi > min)) hi = min + 1;
    const pad = 2;
    const x = (i) => (n <= 1 ? this.w / 2 : pad + (i * (this.w - 2 * pad)) / (n - 1));
    const y = (v) => this.h - pad - ((Math.min(v, hi) - min) * (this.h - 2 * pad)) / (hi - min);
    let line = '';
    let area = '';
    let run = [];
    const flush = () => {
      if (run.length === 0) return;
      if (run.length === 1) run.push([run[0][0] + (run[0][0] === n - 1 ? -0.35 : 0.35), run[0][1]]); // a lone point shows as a dash
      line += 'M' + run.map(([i, v]) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`).join('L');
      const base = (this.h - pad).toFixed(1);
      area += `M${x(run[0][0]).toFixed(1)},${base}L` + run.map(([i, v]) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`).join('L') +
        `L${x(run[run.length - 1][0]).toFixed(1)},${base}Z`;
      run = [];
    };
    values.forEach((v, i) => {
      if (v === null || v === undefined || !Number.isFinite(v)) flush();
      else run.push([i, v]);
    });
    flush();
    this.line.setAttribute('d', line);
    this.area.setAttribute('d', area);
  }
}

// isolated reports whether a series has a value between idx i0 and i1
// with no value beside it, which a line alone would not draw.
function isolated(vals, i0, i1) {
  if (!vals) return false;
  const lo = Math.max(0, i0 ?? 0);
  const hi = Math.min(vals.length - 1, i1 ?? vals.length - 1);
  const has = (i) => i >= lo && i <= hi && vals[i] !== null && vals[i] !== undefined;
  for (let i = lo; i <= hi; i++) {
    if (has(i) && !has(i - 1) && !has(i + 1)) return true;
  }
  return false;
}

// MARKER_COLORS colour the events drawn on charts, by kind.
const MARKER_COLORS = { deploy: '#7c3aed', flip: '#dc2626', restore: '#16a34a' };

// palette of series colours, readable on the light and the dark theme.
export const COLORS = ['#2563eb', '#dc2626', '#16a34a', '#d97706', '#7c3aed', '#0891b2', '#db2777', '#65a30d', '#475569'];

// TimeChart is a uPlot chart whose series are fixed at creation. setData
// takes x in Unix seconds and one array per series; the chart follows its
// container's width.
export class TimeChart {
  constructor(container, { title = '', series = [], height = 220, yFmt = (v) => String(v), yRange = null, bands = null }) {
    this.container = container;
    this.title = title;
    this.series = series;
    this.height = height;
    this.yFmt = yFmt;
    this.yRange = yRange;
    this.bands = bands;
    this.u = null;
    this.markers = [];
    this.el = document.createElement('div');
    this.el.className = 'chart';
    container.append(this.el);
    this.ro = new ResizeObserver(() => this.resize());
    this.ro.observe(this.el);
  }

  width() {
    return Math.max(240, Math.floor(this.el.clientWidth || this.container.clientWidth || 600));
  }

  resize() {
    if (!this.u) return;
    const w = this.width();
    if (Math.abs(w - this.u.width) > 2) this.u.setSize({ width: w, height: this.height });
  }

  // setMarkers draws events (deploys, flag flips) as vertical lines:
  // [{t: Unix seconds, kind, text}]; kind picks the colour.
  setMarkers(markers) {
    const key = JSON.stringify(markers);
    if (key === this.markersKey) return;
    this.markersKey = key;
    this.markers = markers;
    if (this.u) this.u.setData(this.u.data, true); // rescale: a new event may widen the range
  }

  drawMarkers(u) {
    const { ctx } = u;
    const { top, height } = u.bbox;
    const [min, max] = [u.scales.x.min, u.scales.x.max];
    ctx.save();
    ctx.lineWidth = Math.max(1, window.devicePixelRatio || 1);
    ctx.setLineDash([4 * ctx.lineWidth, 3 * ctx.lineWidth]);
    for (const m of this.markers) {
      if (!(m.t >= min && m.t <= max)) continue;
      const x = Math.round(u.valToPos(m.t, 'x', true));
      ctx.strokeStyle = MARKER_COLORS[m.kind] || MARKER_COLORS.deploy;
      ctx.beginPath();
      ctx.moveTo(x, top);
      ctx.lineTo(x, top + height);
      ctx.stroke();
    }
    ctx.restore();
  }

  setData(xs, ...ys) {
    const data = [xs, ...ys];
    if (xs.length < 2) {
      // uPlot stretches a lone point's time axis over years: wait for two.
      if (!this.u) this.el.textContent = 'Collecting data…';
      return;
    }
    if (typeof window.uPlot !== 'function') {
      this.el.textContent = 'Chart library not loaded.';
      return;
    }
    if (this.u) {
      this.u.setData(data);
      return;
    }
    const fmt = this.yFmt;
    // The canvas cannot read CSS variables: resolve the theme's colours.
    const css = getComputedStyle(document.documentElement);
    const muted = css.getPropertyValue('--muted').trim() || '#64748b';
    const grid = css.getPropertyValue('--grid').trim() || '#e2e8f0';
    const U = window.uPlot;
    const opts = {
      title: this.title,
      // 24-hour clock and ISO dates on the time axis.
      fmtDate: (tpl) => U.fmtDate(tpl.replace('{M}/{D}/{YY}', '{YYYY}-{MM}-{DD}').replace('{M}/{D}', '{MM}-{DD}')
        .replace('{h}', '{HH}').replace(/\{aa\}/g, '')),
      width: this.width(),
      height: this.height,
      cursor: { drag: { x: true, y: false } },
      legend: { live: true },
      scales: {
        // One point would make a zero-width range: show a minute around it.
        // An event in the minutes after the last point (a deploy a moment
        // ago) widens the range to show its line.
        x: {
          time: true,
          range: (u, min, max) => {
            for (const m of this.markers) if (m.t > max && m.t - max < 600) max = m.t;
            return min === max ? [min - 60, max + 60] : [min, max];
          },
        },
        y: this.yRange ? { range: this.yRange } : { auto: true },
      },
      axes: [
        { stroke: muted, grid: { stroke: grid }, ticks: { stroke: grid } },
        { stroke: muted, grid: { stroke: grid }, ticks: { stroke: grid }, size: 64,
          values: (u, vals) => vals.map((v) => fmt(v)) },
      ],
      series: [
        { label: 'time', value: (u, v) => (v === null ? '—' : new Date(v * 1000).toLocaleTimeString('en-GB', { hour12: false })) },
        ...this.series.map((s, i) => ({
          label: s.label,
          stroke: s.stroke || COLORS[i % COLORS.length],
          width: s.width || 1.75,
          dash: s.dash || undefined,
          fill: s.fill || undefined,
          spanGaps: s.spanGaps || false,
          // Points only where a line cannot show a value: a series of a
          // few values, or with values between gaps.
          points: { show: (u, si, i0, i1) => isolated(u.data[si], i0, i1), size: 6 },
          value: (u, v) => (v === null || v === undefined ? '—' : fmt(v)),
        })),
      ],
    };
    if (this.bands) opts.bands = this.bands;
    opts.hooks = { draw: [(u) => this.drawMarkers(u)] };
    this.el.textContent = '';
    this.u = new U(opts, data, this.el);
  }

  destroy() {
    this.ro.disconnect();
    if (this.u) this.u.destroy();
    this.u = null;
  }
}
