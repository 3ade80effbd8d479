// The admin's view: each service's health and dead letters, the status
// board (the seed's statusChecks) for every order, and the event log.

import { api, won } from './api.js';
import { h, fill, busy, badge, section, empty, timeEl, timeline, coalesce, flash } from './ui.js';

export const TITLE = 'Operations';

const CONSUMERS = ['order', 'payment', 'store', 'delivery', 'status', 'notification'];

export function mount(root, ctx) {
  const state = { checks: [], events: [], lastSeq: 0, open: new Set(), history: new Map(), filter: '', dead: new Map(), probes: {} };
  const healthBody = h('div', {}, empty('Checking…'));
  const boardBody = h('div', {}, empty('Loading…'));
  const eventsBody = h('div', {}, empty('Loading…'));
  const filter = h('select', { id: 'board-filter', onchange: (e) => { state.filter = e.target.value; renderBoard(); } },
    h('option', { value: '' }, 'All statuses'),
    ['Ordered', 'Accepted', 'Cooked', 'PickedUp', 'Delivered', 'Confirmed', 'Cancelled', 'Rejected', 'PaymentFailed', 'PaymentPending'].map((s) => h('option', { value: s }, s)));

  fill(root,
    h('div', { class: 'view-head' }, h('h1', {}, TITLE),
      h('nav', { class: 'jump', 'aria-label': 'Sections' },
        h('a', { href: '#board' }, 'Status board'), h('a', { href: '#health' }, 'Health'),
        h('a', { href: '#events' }, 'Event log'), h('a', { href: '#notifications' }, 'Notifications'))),
    h('div', { class: 'grid grid-admin' },
      section('board', 'Status board', h('div', { class: 'toolbar' }, h('label', { for: 'board-filter' }, 'Show'), filter), boardBody),
      section('health', 'Services', healthBody),
      section('events', 'Event log', eventsBody),
      ctx.notes()));

  function renderHealth() {
    const p = state.probes;
    const up = (x) => x && x.status === 'UP';
    const rows = CONSUMERS.map((c) => {
      const dl = state.dead.get(c);
      const count = dl ? dl.length : null;
      const ok = up(p.health) && up(p.ready) && count === 0;
      return h('tr', { dataset: { consumer: c } },
        h('th', { scope: 'row' }, c),
        h('td', {}, h('span', { class: `health ${ok ? 'ok' : 'bad'}` }, ok ? 'Healthy' : count ? 'Needs attention' : up(p.health) ? 'Degraded' : 'Down')),
        h('td', { class: 'num' }, count === null ? '?' : String(count)));
    });
    const letters = [];
    for (const [c, list] of state.dead) {
      for (const d of list || []) {
        const error = h('p', { class: 'error', role: 'alert', hidden: true });
        const replay = h('button', { type: 'button', class: 'small', onclick: () => busy(replay, async () => {
          await api('POST', `/admin/deadLetters/${c}/${d.id}/replay`, undefined, { action: 'replay' });
          flash(`Dead letter ${d.id} of ${c} replayed.`, 'info');
          await loadHealth();
        }, error) }, 'Replay');
        const discard = h('button', { type: 'button', class: 'small ghost', onclick: () => busy(discard, async () => {
          await api('DELETE', `/admin/deadLetters/${c}/${d.id}`, undefined, { action: 'discard' });
          flash(`Dead letter ${d.id} of ${c} discarded.`, 'info');
          await loadHealth();
        }, error) }, 'Discard');
        letters.push(h('li', { class: 'dead' },
          h('strong', {}, `${c}: ${d.eventType} for order #${d.orderId}`), ' ', h('span', { class: 'muted' }, `after ${d.attempts} tries · `, timeEl(d.createdAt)),
          h('p', { class: 'mono' }, d.error), h('div', { class: 'actions' }, replay, discard), error));
      }
    }
    const echo = p.echo || {};
    fill(healthBody,
      h('p', { class: 'probes' },
        h('span', { class: `health ${up(p.health) ? 'ok' : 'bad'}` }, `Liveness ${p.health ? p.health.status : 'unreachable'}`), ' ',
        h('span', { class: `health ${up(p.ready) ? 'ok' : 'bad'}` }, `Readiness ${p.ready ? p.ready.status : 'unreachable'}`), ' ',
        h('span', { class: 'muted' }, echo.service ? `${echo.service} (instance ${String(echo.instanceId).slice(0, 8)})` : '')),
      h('table', { class: 'table' },
        h('caption', { class: 'sr-only' }, 'Health and dead letters of each service'),
        h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Service'), h('th', { scope: 'col' }, 'State'), h('th', { scope: 'col', class: 'num' }, 'Dead letters'))),
        h('tbody', {}, rows)),
      letters.length ? h('ul', { class: 'dead-letters', 'aria-label': 'Dead letters' }, letters) : h('p', { class: 'muted' }, 'No dead letters: every event was handled.'));
  }

  async function probe(path) {
    try {
      const r = await fetch(path, { cache: 'no-store' });
      return await r.json();
    } catch {
      return null;
    }
  }

  async function loadHealth() {
    const [health, ready, echo] = await Promise.all([probe('/actuator/health'), probe('/actuator/ready'), probe('/actuator/echo')]);
    state.probes = { health, ready, echo };
    await Promise.all(CONSUMERS.map((c) => api('GET', `/admin/deadLetters/${c}`).then((list) => state.dead.set(c, list || []), () => state.dead.set(c, null))));
    renderHealth();
  }

  async function toggle(c, button) {
    const id = c.orderId;
    if (state.open.has(id)) {
      state.open.delete(id);
      renderBoard();
      return;
    }
    await busy(button, async () => {
      const full = await api('GET', `/statusChecks/${id}`);
      state.history.set(id, full.history || []);
      state.open.add(id);
      renderBoard();
    });
  }

  function renderBoard() {
    const rows = state.checks.filter((c) => !state.filter || c.status === state.filter).slice(0, 100);
    if (!rows.length) {
      fill(boardBody, empty(state.checks.length ? 'No order has this status.' : 'No orders yet.'));
      return;
    }
    fill(boardBody, h('div', { class: 'scroll' }, h('table', { class: 'table board' },
      h('caption', { class: 'sr-only' }, 'Every order and its current status'),
      h('thead', {}, h('tr', {}, ['Order', 'Status', 'Item', 'Total', 'Address', 'Store', 'Customer', 'Rider', 'Payment', 'Updated', ''].map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', {}, rows.map((c) => {
        const open = state.open.has(c.orderId);
        const b = h('button', { type: 'button', class: 'small ghost', id: `history-${c.orderId}`, 'aria-expanded': String(open), onclick: () => toggle(c, b) }, open ? 'Hide' : 'Timeline');
        const row = h('tr', { dataset: { orderId: c.orderId, status: c.status } },
          h('th', { scope: 'row' }, `#${c.orderId}`), h('td', {}, badge(c.status)), h('td', {}, `${c.menuName} × ${c.qty}`), h('td', { class: 'num' }, won(c.price)),
          h('td', {}, c.address), h('td', {}, String(c.storeId)), h('td', {}, String(c.customerId)), h('td', {}, c.riderId ? String(c.riderId) : '–'),
          h('td', {}, c.paymentStatus || '–'), h('td', {}, timeEl(c.updatedAt)), h('td', {}, b));
        if (!open) return row;
        const hist = state.history.get(c.orderId) || [];
        return [row, h('tr', { class: 'detail' }, h('td', { colspan: 11 },
          timeline(c.status, hist),
          h('ol', { class: 'changes' }, hist.map((x) => h('li', {}, timeEl(x.at), ' ', h('strong', {}, x.eventType), ` by ${x.actor}`, x.reason ? ` (${x.reason})` : ''))))) ];
      })))));
  }

  function renderEvents() {
    const list = state.events.slice(-60).reverse();
    fill(eventsBody, list.length
      ? h('div', { class: 'scroll' }, h('table', { class: 'table' },
        h('caption', { class: 'sr-only' }, 'The latest events, newest first'),
        h('thead', {}, h('tr', {}, ['#', 'Time', 'Event', 'Order', 'Actor'].map((t) => h('th', { scope: 'col' }, t)))),
        h('tbody', {}, list.map((e) => h('tr', { dataset: { seq: e.seq } },
          h('td', { class: 'num' }, String(e.seq)), h('td', {}, timeEl(e.timestamp)), h('td', {}, h('code', {}, e.eventType)),
          h('td', {}, `#${e.orderId}`), h('td', {}, e.actor || '–'))))))
      : empty('The event log is empty.'));
  }

  async function loadBoard() {
    state.checks = (await api('GET', '/statusChecks')) || [];
    for (const id of state.open) {
      const full = await api('GET', `/statusChecks/${id}`).catch(() => null);
      if (full) state.history.set(id, full.history || []);
    }
    renderBoard();
  }

  async function loadEvents() {
    for (;;) {
      const batch = (await api('GET', `/events?after=${state.lastSeq}&limit=5000`)) || [];
      state.events.push(...batch);
      if (state.events.length > 200) state.events.splice(0, state.events.length - 200);
      if (batch.length) state.lastSeq = batch[batch.length - 1].seq;
      if (batch.length < 5000) break;
    }
    renderEvents();
  }

  async function refresh() {
    try {
      await Promise.all([loadHealth(), loadBoard(), loadEvents()]);
    } catch (e) {
      if (e.status !== 401) flash(e.message);
    }
  }

  const soon = coalesce(() => Promise.all([loadBoard(), loadEvents()]), 150);
  refresh();
  const timer = setInterval(() => { if (!document.hidden) loadHealth().catch(() => {}); }, 10000);

  return {
    refresh,
    unmount() {
      clearInterval(timer);
    },
    onNotification() {
      soon();
      setTimeout(soon, 700);
    },
  };
}
