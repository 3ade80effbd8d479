// The store owner's view: orders coming in live, accept or reject, finish
// cooking, and the store's menu.

import { api, won } from './api.js';
import { h, fill, busy, badge, section, empty, timeEl, chase, flash, announce } from './ui.js';

export const TITLE = 'Kitchen';

/** What the store's list shows after each event, to know when it caught up. */
const COOK_STATUS = { MenuOrdered: 'Received', MenuCancelled: 'Cancelled', OrderRejected: 'Rejected', CookStarted: 'Accepted', CookFinished: 'Cooked' };

export function mount(root, ctx) {
  const storeId = ctx.session.storeId;
  const state = { orders: new Map(), menus: [], storeName: '', fresh: new Set(), rejecting: new Map() };

  const incoming = h('div', {}, empty('Loading orders…'));
  const cooking = h('div', {});
  const done = h('div', {});
  const menuBody = h('div', {});
  const title = h('h1', {}, TITLE);

  fill(root,
    h('div', { class: 'view-head' }, title,
      h('nav', { class: 'jump', 'aria-label': 'Sections' },
        h('a', { href: '#incoming' }, 'New'), h('a', { href: '#cooking' }, 'Cooking'),
        h('a', { href: '#done' }, 'Done'), h('a', { href: '#menus' }, 'Menu'), h('a', { href: '#notifications' }, 'Notifications'))),
    h('div', { class: 'grid grid-owner' },
      section('incoming', 'New orders', incoming),
      section('cooking', 'Cooking', cooking),
      section('done', 'Ready and finished', done),
      section('menus', 'Menu', menuBody),
      ctx.notes()));

  function orderCard(o, actions) {
    const error = h('p', { class: 'error', role: 'alert', hidden: true });
    return h('li', {},
      h('article', { class: state.fresh.has(o.orderId) ? 'order fresh' : 'order', dataset: { orderId: o.orderId, status: o.cookStatus }, 'aria-labelledby': `so-${o.orderId}` },
        h('header', { class: 'order-head' }, h('h3', { id: `so-${o.orderId}` }, `#${o.orderId} ${o.menuName} × ${o.qty}`), badge(o.cookStatus)),
        h('p', { class: 'meta' }, won(o.price), ' · to ', o.address, ' · ', timeEl(o.receivedAt)),
        o.reason ? h('p', { class: 'reason' }, `Reason: ${o.reason}`) : '',
        actions ? actions(error) : '',
        error));
  }

  async function decide(o, action, button, error, body) {
    const words = { accept: 'accepted; cooking started', reject: 'rejected; the customer is refunded', finish: 'cooked; riders are told' };
    await busy(button, async () => {
      try {
        const updated = await api('PUT', `/storeOrders/${o.orderId}/${action}`, body, { action });
        state.orders.set(updated.orderId, updated);
        state.fresh.delete(updated.orderId);
        render();
        flash(`Order #${o.orderId} ${words[action]}.`, 'info');
        const next = document.querySelector(`#cooking [data-order-id="${o.orderId}"] button`);
        if (next) next.focus();
      } catch (e) {
        if (e.status === 409 || e.status === 404) loadOrders().catch(() => {});
        throw e;
      }
    }, error);
  }

  function rejectForm(o, error) {
    const id = o.orderId;
    const wrap = h('div', { class: 'actions' });
    const accept = h('button', { type: 'button', class: 'primary', id: `accept-${id}`, onclick: () => decide(o, 'accept', accept, error) }, 'Accept');
    wrap.append(accept);
    if (!state.rejecting.has(id)) {
      wrap.append(h('button', { type: 'button', class: 'ghost', id: `reject-${id}`, 'aria-expanded': 'false', onclick: () => {
        state.rejecting.set(id, 'sold out');
        render();
        const input = document.getElementById(`reason-${id}`);
        input.focus();
        input.select();
      } }, 'Reject…'));
      return wrap;
    }
    const input = h('input', { id: `reason-${id}`, value: state.rejecting.get(id), maxlength: 200, oninput: (e) => state.rejecting.set(id, e.target.value) });
    const confirm = h('button', { type: 'submit', class: 'danger', id: `reject-confirm-${id}` }, 'Reject order');
    const keep = h('button', { type: 'button', class: 'ghost', id: `reject-keep-${id}`, onclick: () => {
      state.rejecting.delete(id);
      render();
      document.getElementById(`reject-${id}`).focus();
    } }, 'Keep it');
    const form = h('form', { class: 'inline-form', onsubmit: async (e) => {
      e.preventDefault();
      await decide(o, 'reject', confirm, error, { reason: input.value.trim() || undefined });
      if (state.orders.get(id)?.cookStatus !== 'Received') state.rejecting.delete(id);
    } },
    h('label', { for: input.id }, 'Reason for the customer'), input, h('div', { class: 'actions' }, confirm, keep));
    return [wrap, form];
  }

  /** Marks a new arrival for a while, so a glance shows what just came in. */
  function highlight(id) {
    state.fresh.add(id);
    setTimeout(() => {
      if (state.fresh.delete(id)) render();
    }, 20000);
  }

  function render() {
    const all = [...state.orders.values()].sort((a, b) => b.orderId - a.orderId);
    const received = all.filter((o) => o.cookStatus === 'Received').reverse();
    const accepted = all.filter((o) => o.cookStatus === 'Accepted').reverse();
    const rest = all.filter((o) => !['Received', 'Accepted'].includes(o.cookStatus)).slice(0, 20);
    fill(incoming, received.length
      ? h('ul', { class: 'orders' }, received.map((o) => orderCard(o, (error) => rejectForm(o, error))))
      : empty('No new orders. New ones appear here as soon as they are paid.'));
    fill(cooking, accepted.length
      ? h('ul', { class: 'orders' }, accepted.map((o) => orderCard(o, (error) => {
        const b = h('button', { type: 'button', class: 'primary', id: `finish-${o.orderId}`, onclick: () => decide(o, 'finish', b, error) }, 'Finish cooking');
        return h('div', { class: 'actions' }, b);
      })))
      : empty('Nothing on the stove.'));
    fill(done, rest.length ? h('ul', { class: 'orders compact' }, rest.map((o) => orderCard(o))) : empty('Nothing finished yet.'));
  }

  function renderMenus() {
    const rows = state.menus.map((m) => {
      const error = h('p', { class: 'error', role: 'alert', hidden: true });
      const name = h('input', { id: `menu-name-${m.id}`, value: m.name, maxlength: 100, required: true });
      const price = h('input', { id: `menu-price-${m.id}`, type: 'number', min: 0, max: 10000000, step: 100, value: m.price, required: true });
      const avail = h('input', { id: `menu-avail-${m.id}`, type: 'checkbox', checked: m.available });
      const save = h('button', { type: 'submit', class: 'small' }, 'Save');
      return h('li', {}, h('form', { class: 'menu-row', dataset: { menuId: m.id }, onsubmit: (e) => {
        e.preventDefault();
        busy(save, async () => {
          const updated = await api('PUT', `/menus/${m.id}`, { name: name.value.trim(), price: Number(price.value), available: avail.checked }, { action: 'menu' });
          Object.assign(m, updated);
          error.hidden = true;
          flash(`${updated.name} saved: ${won(updated.price)}${updated.available ? '' : ', sold out'}.`, 'info');
        }, error);
      } },
      h('label', { for: name.id }, 'Name'), name,
      h('label', { for: price.id }, 'Price (KRW)'), price,
      h('label', { class: 'check', for: avail.id }, avail, ' On sale'),
      save, error));
    });
    const error = h('p', { class: 'error', role: 'alert', hidden: true });
    const name = h('input', { id: 'new-menu-name', maxlength: 100, required: true });
    const price = h('input', { id: 'new-menu-price', type: 'number', min: 0, max: 10000000, step: 100, required: true });
    const add = h('button', { type: 'submit', class: 'primary small' }, 'Add to menu');
    const form = h('form', { class: 'menu-row new', onsubmit: (e) => {
      e.preventDefault();
      if (!name.value.trim() || price.value === '') {
        error.textContent = 'Enter a name and a price.';
        error.hidden = false;
        (name.value.trim() ? price : name).focus();
        return;
      }
      busy(add, async () => {
        const created = await api('POST', '/menus', { name: name.value.trim(), price: Number(price.value) }, { action: 'menu' });
        state.menus.push(created);
        renderMenus();
        flash(`${created.name} is on the menu at ${won(created.price)}.`, 'info');
        document.getElementById('new-menu-name').focus();
      }, error);
    } },
    h('label', { for: name.id }, 'New item'), name,
    h('label', { for: price.id }, 'Price (KRW)'), price, add, error);
    fill(menuBody, rows.length ? h('ul', { class: 'menu-edit' }, rows) : empty('The menu is empty.'), h('h3', {}, 'Add an item'), form);
  }

  async function loadOrders() {
    const list = (await api('GET', '/storeOrders')) || [];
    const before = new Set(state.orders.keys());
    state.orders = new Map(list.map((o) => [o.orderId, o]));
    for (const o of list) if (!before.has(o.orderId) && o.cookStatus === 'Received' && state.loaded) highlight(o.orderId);
    state.loaded = true;
    render();
  }

  async function loadMenus() {
    const [stores, menus] = await Promise.all([api('GET', '/stores'), api('GET', `/menus?storeId=${storeId}`)]);
    const store = (stores || []).find((s) => s.id === storeId);
    state.storeName = store ? store.name : '';
    title.textContent = state.storeName ? `${state.storeName} · ${TITLE}` : TITLE;
    state.menus = menus || [];
    renderMenus();
  }

  async function refresh() {
    try {
      await Promise.all([loadOrders(), loadMenus()]);
    } catch (e) {
      if (e.status !== 401) flash(e.message);
    }
  }

  refresh();

  return {
    refresh,
    onNotification(n) {
      const want = COOK_STATUS[n.eventType];
      chase(loadOrders, () => {
        const o = state.orders.get(n.orderId);
        return !want ? !!o : !!o && (o.cookStatus === want || want === 'Received');
      }).then(() => {
        if (n.eventType === 'MenuOrdered') announce(`New order #${n.orderId}.`);
      });
    },
  };
}
