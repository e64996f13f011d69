// The HTTP API client: the same endpoints users script against, with the
// bearer token the user typed in, kept in this tab's sessionStorage only.

const TOKEN_KEY = 'tailgate.token';

// AuthError is thrown when the API answers 401: the dashboard asks for a
// token.
export class AuthError extends Error {
  constructor(detail) {
    super(detail || 'unauthorized');
    this.name = 'AuthError';
  }
}

// APIError is any other non-2xx answer, with the API's error body.
export class APIError extends Error {
  constructor(status, error, detail) {
    super(`${status} ${error || ''}${detail ? ': ' + detail : ''}`.trim());
    this.name = 'APIError';
    this.status = status;
    this.error = error;
    this.detail = detail;
  }
}

export function token() {
  try {
    return sessionStorage.getItem(TOKEN_KEY) || '';
  } catch {
    return '';
  }
}

export function setToken(t) {
  try {
    if (t) sessionStorage.setItem(TOKEN_KEY, t);
    else sessionStorage.removeItem(TOKEN_KEY);
  } catch {
    // storage disabled: the token lives until the page reloads
  }
}

// request fetches a path relative to the page (so that a reverse proxy may
// serve tailgate under a prefix) and decodes JSON, or returns text.
export async function request(path, { method = 'GET', body, signal, text = false } = {}) {
  const headers = { Accept: text ? 'text/plain;version=0.0.4' : 'application/json' };
  const t = token();
  if (t) headers.Authorization = 'Bearer ' + t;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const res = await fetch(path, {
    method, headers, signal, cache: 'no-store', credentials: 'omit',
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (res.status === 401) {
    let detail = '';
    try { detail = (await res.json()).detail; } catch { /* not JSON */ }
    throw new AuthError(detail);
  }
  if (!res.ok) {
    let b = {};
    try { b = await res.json(); } catch { /* not JSON */ }
    throw new APIError(res.status, b.error || res.statusText, b.detail);
  }
  if (res.status === 204) return null;
  return text ? res.text() : res.json();
}

export const get = (path, opts) => request(path, opts);

// enc escapes a path segment.
export const enc = encodeURIComponent;
