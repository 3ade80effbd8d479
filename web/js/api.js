// Talks to the API: the session, fetch with the bearer token, and problem+json
// answers turned into errors a person can read.

const KEY = 'hanwha.session';

/**
 * The logged-in user, kept across reloads: {token, refreshToken, expiresAt,
 * role, userId, username, storeId}. The access token lives 15 minutes; the
 * refresh token trades for the next one, once.
 */
export function session() {
  try {
    return JSON.parse(localStorage.getItem(KEY) || 'null');
  } catch {
    return null;
  }
}

export function saveSession(s) {
  localStorage.setItem(KEY, JSON.stringify(s));
}

export function clearSession() {
  localStorage.removeItem(KEY);
}

/** The session a login (or a refresh) answer starts. */
export function sessionFrom(r, fallbackName) {
  return {
    token: r.token,
    refreshToken: r.refreshToken,
    expiresAt: Date.now() + (r.expiresIn || 900) * 1000,
    role: r.role,
    userId: r.userId,
    username: r.username || fallbackName,
    storeId: r.storeId ?? null,
  };
}

/** Refreshes within this long of the access token's expiry. */
const EARLY_MS = 60 * 1000;
let refreshing = null;

/**
 * Trades the refresh token for a new access token, once at a time however
 * many calls ask; resolves to the new session, or null when the session is
 * over (then the user logs in again).
 */
export function refreshSession() {
  if (refreshing) return refreshing;
  const s = session();
  if (!s || !s.refreshToken) return Promise.resolve(null);
  refreshing = (async () => {
    try {
      const res = await fetch('/auth/refresh', {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/json' },
        body: JSON.stringify({ refreshToken: s.refreshToken }),
        cache: 'no-store',
      });
      if (!res.ok) return null;
      const next = sessionFrom(await res.json(), s.username);
      // Another tab may have logged out meanwhile.
      if (!session()) return null;
      saveSession(next);
      return next;
    } catch {
      return null;
    } finally {
      refreshing = null;
    }
  })();
  return refreshing;
}

/** The current access token, refreshed first when it is about to expire. */
export async function freshToken() {
  const s = session();
  if (!s) return null;
  if (s.expiresAt && s.expiresAt - Date.now() < EARLY_MS) {
    const next = await refreshSession();
    if (next) return next.token;
  }
  return s.token;
}

/** Ends the session on the server too (best effort), then here. */
export async function endSession() {
  const s = session();
  clearSession();
  if (!s || !s.refreshToken) return;
  try {
    await fetch('/auth/logout', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ refreshToken: s.refreshToken }),
    });
  } catch {
    // Offline: the session lapses by itself.
  }
}

/** An API failure; `message` is already in plain words. */
export class ApiError extends Error {
  constructor(status, problem, message) {
    super(message);
    this.status = status;
    this.problem = problem || {};
    this.currentStatus = this.problem.currentStatus;
  }
}

/** Called when the server says the session is no longer valid. */
let onExpired = () => {};
export function whenExpired(fn) {
  onExpired = fn;
}

const STATUS_WORDS = {
  PaymentPending: 'waiting for payment',
  Ordered: 'placed',
  Accepted: 'accepted by the kitchen',
  Rejected: 'rejected by the store',
  Cooked: 'cooked',
  PickedUp: 'on its way',
  Delivered: 'delivered',
  Confirmed: 'confirmed',
  Cancelled: 'cancelled',
  PaymentFailed: 'not paid',
  Ready: 'waiting for a rider',
  Received: 'waiting for the store',
};

export function statusWords(s) {
  return STATUS_WORDS[s] || s;
}

function sentence(text) {
  if (!text) return '';
  const t = String(text).trim();
  const s = t.charAt(0).toUpperCase() + t.slice(1);
  return /[.!?]$/.test(s) ? s : s + '.';
}

/** Plain words for a failed request; `action` says what the user tried. */
export function explain(status, problem, action) {
  const p = problem || {};
  const detail = typeof p.detail === 'string' ? p.detail : '';
  switch (status) {
    case 0:
      return 'Cannot reach the server. Check your connection and try again.';
    case 401:
      if (action === 'login') return 'Wrong username or password.';
      return 'Your session has expired. Please log in again.';
    case 402:
      return 'Your card was declined, so the order was not placed and nothing was charged. Try another card, or leave the card empty.';
    case 403:
      return 'Your account is not allowed to do this.';
    case 404:
      return 'That was not found. It may have been removed, or it is not yours.';
    case 409: {
      const now = p.currentStatus;
      if (action === 'cancel') {
        if (now === 'Cancelled') return 'This order is already cancelled.';
        if (now === 'Rejected') return 'The store has already rejected this order; you will be refunded.';
        return 'Too late to cancel: the kitchen has already accepted this order and is cooking it.';
      }
      if (action === 'pickup') return 'Another rider has already picked up this order.';
      if (action === 'accept' && now === 'Cancelled') return 'The customer cancelled this order before you accepted it.';
      return now
        ? `This order has already moved on: it is now ${statusWords(now)}. The list is up to date again.`
        : 'This was changed by someone else in the meantime. The list is up to date again.';
    }
    case 413:
      return 'That is too much data to send at once.';
    case 400:
    case 422:
      return detail ? sentence(detail) : 'Please check what you entered.';
    case 429:
      return 'Too many requests at once. Please wait a moment and try again.';
    case 503:
    case 502:
    case 504:
      return 'The service is busy or unavailable right now; nothing was charged. Please try again in a moment.';
    default:
      return status >= 500
        ? 'Something went wrong on our side. Please try again.'
        : detail ? sentence(detail) : 'The request failed. Please try again.';
  }
}

function idempotencyKey() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}

/**
 * One API call. Resolves to the parsed JSON (or null); rejects with an
 * ApiError whose message is in plain words. `opts.action` tunes the words.
 */
export async function api(method, path, body, opts = {}) {
  const token = opts.anonymous ? null : await freshToken();
  const headers = { accept: 'application/json' };
  if (token) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  // A request that changes nothing worth replaying (a stream ticket) goes
  // without a key, so that no answer of it is kept.
  if (method !== 'GET' && method !== 'DELETE' && !opts.unkeyed) headers['idempotency-key'] = opts.key || idempotencyKey();
  let res;
  try {
    res = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: 'no-store',
    });
  } catch {
    throw new ApiError(0, null, explain(0, null, opts.action));
  }
  let data = null;
  const text = await res.text();
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!res.ok) {
    // An access token refused early (a clock off, a restart): one refresh
    // and one more try, with the same idempotency key.
    if (res.status === 401 && token && !opts.retried && (await refreshSession())) {
      return api(method, path, body, { ...opts, retried: true, key: headers['idempotency-key'] });
    }
    const err = new ApiError(res.status, data, explain(res.status, data, opts.action));
    if (res.status === 401 && opts.action !== 'login') onExpired(err);
    throw err;
  }
  return data;
}

/** Formats an amount of won: 12000 -> "12,000 KRW". */
export function won(n) {
  return `${Number(n || 0).toLocaleString('en-US')} KRW`;
}
