// A parser of the Prometheus text exposition format (what /metrics
// serves), for the few families the sampler view reads.

// parseMetrics returns [{name, labels, value}] for the samples whose
// metric name starts with one of prefixes (all when prefixes is empty).
export function parseMetrics(text, prefixes = []) {
  const out = [];
  const lines = text.split('\n');
  for (const raw of lines) {
    const line = raw.trim();
    if (line === '' || line[0] === '#') continue;
    if (prefixes.length && !prefixes.some((p) => line.startsWith(p))) continue;
    const s = parseSample(line);
    if (s) out.push(s);
  }
  return out;
}

// parseSample reads `name{a="b",c="d"} value [timestamp]`; null when the
// line is malformed.
export function parseSample(line) {
  let i = 0;
  while (i < line.length && /[a-zA-Z0-9_:]/.test(line[i])) i++;
  const name = line.slice(0, i);
  if (!name) return null;
  const labels = {};
  if (line[i] === '{') {
    i++;
    for (;;) {
      while (line[i] === ' ' || line[i] === ',') i++;
      if (line[i] === '}') { i++; break; }
      const eq = line.indexOf('=', i);
      if (eq < 0 || line[eq + 1] !== '"') return null;
      const key = line.slice(i, eq).trim();
      let j = eq + 2;
      let v = '';
      for (; j < line.length && line[j] !== '"'; j++) {
        if (line[j] === '\\' && j + 1 < line.length) {
          j++;
          v += line[j] === 'n' ? '\n' : line[j];
        } else {
          v += line[j];
        }
      }
      if (j >= line.length) return null;
      labels[key] = v;
      i = j + 1;
    }
  }
  const rest = line.slice(i).trim().split(/\s+/);
  if (rest.length === 0 || rest[0] === '') return null;
  const value = parseValue(rest[0]);
  if (value === null) return null;
  return { name, labels, value };
}

function parseValue(s) {
  switch (s) {
    case 'NaN': return NaN;
    case '+Inf': case 'Inf': return Infinity;
    case '-Inf': return -Infinity;
  }
  const v = Number(s);
  return Number.isNaN(v) ? null : v;
}

// sum adds the values of samples named name whose labels include match.
export function sum(samples, name, match = {}) {
  let total = 0;
  let found = false;
  for (const s of samples) {
    if (s.name !== name) continue;
    if (!Object.entries(match).every(([k, v]) => s.labels[k] === v)) continue;
    total += s.value;
    found = true;
  }
  return found ? total : null;
}

// byLabel groups the values of samples named name by one label.
export function byLabel(samples, name, label, match = {}) {
  const out = {};
  for (const s of samples) {
    if (s.name !== name) continue;
    if (!Object.entries(match).every(([k, v]) => s.labels[k] === v)) continue;
    const k = s.labels[label] ?? '';
    out[k] = (out[k] || 0) + s.value;
  }
  return out;
}
