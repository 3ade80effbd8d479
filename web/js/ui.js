// Small DOM helpers shared by the views.

import { statusWords } from './api.js';

/** Builds an element: h('button', {class: 'primary', onclick}, 'Text', child). */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === false || v === null || v === undefined) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

/** Replaces an element's children, keeping focus on the same control when it survives. */
export function fill(el, ...children) {
  const active = document.activeElement;
  const focusId = active && el.contains(active) ? active.id || active.dataset.focus : null;
  el.replaceChildren(...children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false));
  if (focusId) {
    const again = el.querySelector(`#${CSS.escape(focusId)}`) || el.querySelector(`[data-focus="${CSS.escape(focusId)}"]`);
    if (again) again.focus();
  }
}

const timeFmt = new Intl.DateTimeFormat('en-GB', { hour: '2-digit', minute: '2-digit', second: '2-digit' });
const dayFmt = new Intl.DateTimeFormat('en-GB', { day: 'numeric', month: 'short' });

/** "14:03:22", or "3 Jan 14:03:22" when not today. */
export function when(ms) {
  if (!ms) return '';
  const d = new Date(ms);
  const today = new Date().toDateString() === d.toDateString();
  return today ? timeFmt.format(d) : `${dayFmt.format(d)} ${timeFmt.format(d)}`;
}

export function timeEl(ms) {
  return ms ? h('time', { datetime: new Date(ms).toISOString() }, when(ms)) : '';
}

let flashTimer;
/** A message at the top of the page; errors stay until dismissed or replaced. */
export function flash(message, kind = 'error') {
  const el = document.getElementById('flash');
  clearTimeout(flashTimer);
  el.dataset.kind = kind;
  el.setAttribute('role', kind === 'error' ? 'alert' : 'status');
  fill(el, h('span', { class: 'flash-text' }, message),
    h('button', { type: 'button', class: 'ghost small', 'aria-label': 'Dismiss message', onclick: () => { el.hidden = true; } }, '×'));
  el.hidden = false;
  if (kind !== 'error') flashTimer = setTimeout(() => { el.hidden = true; }, 5000);
}

export function clearFlash() {
  const el = document.getElementById('flash');
  if (el) el.hidden = true;
}

/** Tells screen-reader users about a change they did not cause. */
export function announce(text) {
  const el = document.getElementById('announce');
  el.textContent = '';
  setTimeout(() => { el.textContent = text; }, 30);
}

/**
 * Runs an action for a button: disables it while busy, shows errors in
 * words next to where the user acted (or at the top).
 */
export async function busy(button, fn, errorTarget) {
  if (button) {
    button.disabled = true;
    button.setAttribute('aria-busy', 'true');
  }
  try {
    return await fn();
  } catch (e) {
    const message = e && e.message ? e.message : 'Something went wrong. Please try again.';
    if (errorTarget) {
      errorTarget.textContent = message;
      errorTarget.hidden = false;
    } else if (!(e && e.status === 401)) {
      flash(message);
    }
    return undefined;
  } finally {
    if (button && button.isConnected) {
      button.disabled = false;
      button.removeAttribute('aria-busy');
    }
  }
}

/** Coalesces bursts of calls (one per notification) into one run. */
export function coalesce(fn, ms = 60) {
  let timer = null;
  let running = null;
  let again = false;
  const run = async () => {
    timer = null;
    if (running) { again = true; return; }
    running = Promise.resolve().then(fn).catch(() => {});
    await running;
    running = null;
    if (again) { again = false; schedule(); }
  };
  const schedule = () => {
    if (!timer) timer = setTimeout(run, ms);
  };
  return schedule;
}

export function badge(status) {
  return h('span', { class: `badge s-${status}`, dataset: { status } }, statusWords(status));
}

/** The steps an order goes through, and where each final status stops it. */
export const STEPS = ['Ordered', 'Accepted', 'Cooked', 'PickedUp', 'Delivered', 'Confirmed'];
const STEP_NAMES = {
  Ordered: 'Ordered',
  Accepted: 'Accepted',
  Cooked: 'Cooked',
  PickedUp: 'Picked up',
  Delivered: 'Delivered',
  Confirmed: 'Confirmed',
};
const RANK = { PaymentPending: 0, Ordered: 1, Accepted: 2, Cooked: 3, PickedUp: 4, Delivered: 5, Confirmed: 6, Cancelled: 7, Rejected: 7, PaymentFailed: 7 };

export function rank(status) {
  return RANK[status] ?? -1;
}

/** The status that follows from an event, as the status view maps it. */
export const EVENT_STATUS = {
  MenuOrdered: 'Ordered',
  CookStarted: 'Accepted',
  OrderRejected: 'Rejected',
  CookFinished: 'Cooked',
  DeliveryStarted: 'PickedUp',
  DeliveryCompleted: 'Delivered',
  OrderConfirmed: 'Confirmed',
  MenuCancelled: 'Cancelled',
  OrderPaymentFailed: 'PaymentFailed',
};

/**
 * The order's timeline: each step done, current or to come, with the time
 * and who made it when the history has it.
 */
export function timeline(status, history) {
  const at = {};
  for (const c of history || []) if (c.status && !at[c.status]) at[c.status] = c;
  const stopped = ['Cancelled', 'Rejected', 'PaymentFailed'].includes(status);
  const reached = stopped ? Math.max(...Object.keys(at).filter((s) => STEPS.includes(s)).map(rank), 0) : rank(status);
  const items = STEPS.map((step) => {
    const r = rank(step);
    const state = r < reached || (r === reached && (stopped || step === 'Confirmed')) ? 'done' : r === reached ? 'current' : 'todo';
    if (stopped && r > reached) return null;
    const c = at[step];
    return h('li', { class: `step ${state}`, dataset: { step }, 'aria-current': state === 'current' ? 'step' : false },
      h('span', { class: 'dot', 'aria-hidden': 'true' }),
      h('span', { class: 'step-name' }, STEP_NAMES[step]),
      c ? h('span', { class: 'step-when' }, timeEl(c.at)) : '',
      h('span', { class: 'sr-only' }, state === 'done' ? ' (done)' : state === 'current' ? ' (now)' : ' (to come)'));
  });
  if (stopped) {
    const c = at[status];
    items.push(h('li', { class: 'step stopped current', dataset: { step: status }, 'aria-current': 'step' },
      h('span', { class: 'dot', 'aria-hidden': 'true' }),
      h('span', { class: 'step-name' }, statusWords(status).replace(/^./, (x) => x.toUpperCase())),
      c ? h('span', { class: 'step-when' }, timeEl(c.at)) : '',
      c && c.reason ? h('span', { class: 'step-reason' }, c.reason) : ''));
  }
  return h('ol', { class: 'timeline', 'aria-label': 'Order progress' }, items);
}

/** A section with a heading, used by every view. */
export function section(id, title, ...body) {
  return h('section', { id, class: 'card', 'aria-labelledby': `${id}-title` },
    h('h2', { id: `${id}-title`, tabindex: '-1' }, title), ...body);
}

export function empty(text) {
  return h('p', { class: 'empty' }, text);
}

/**
 * Fetches until what a notification announced is visible (the read models
 * catch up a moment after the event), backing off up to ~4 s.
 */
export async function chase(fetchFn, isCurrent) {
  for (const wait of [0, 250, 500, 1000, 2000]) {
    if (wait) await new Promise((r) => setTimeout(r, wait));
    try {
      await fetchFn();
    } catch {
      // shown by the next successful refresh; a 401 already logged out
    }
    if (isCurrent()) return;
  }
}
