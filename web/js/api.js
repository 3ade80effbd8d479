// Talks to the API: the session, fetch with the bearer token, and problem+json
// answers turned into errors a person can read.

const KEY = 'hanwha.session';

/** The logged-in user, kept across reloads: {token, role, userId, username, storeId}. */
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
  const s = session();
  const headers = { accept: 'application/json' };
  if (s && s.token && !opts.anonymous) headers.authorization = `Bearer ${s.token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (method !== 'GET' && method !== 'DELETE') headers['idempotency-key'] = opts.key || idempotencyKey();
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
