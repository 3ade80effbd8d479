// The rider's view: cooked orders ready for pick-up appear live; pick up,
// then mark delivered.

import { api, won } from './api.js';
import { h, fill, busy, badge, section, empty, timeEl, chase, flash, announce } from './ui.js';

export const TITLE = 'Deliveries';

export function mount(root, ctx) {
  const me = ctx.session.userId;
  const state = { list: new Map(), loaded: false, fresh: new Set() };
  const ready = h('div', {}, empty('Loading deliveries…'));
  const mine = h('div', {});
  const done = h('div', {});

  fill(root,
    h('div', { class: 'view-head' }, h('h1', {}, TITLE),
      h('nav', { class: 'jump', 'aria-label': 'Sections' },
        h('a', { href: '#ready' }, 'Ready'), h('a', { href: '#mine' }, 'On the way'),
        h('a', { href: '#delivered' }, 'Delivered'), h('a', { href: '#notifications' }, 'Notifications'))),
    h('div', { class: 'grid grid-rider' },
      section('ready', 'Ready for pick-up', ready),
      section('mine', 'On the way', mine),
      section('delivered', 'Delivered', done),
      ctx.notes()));

  async function act(d, action, button, error) {
    const words = { pickup: 'picked up; deliver it to', complete: 'delivered to' };
    await busy(button, async () => {
      try {
        const updated = await api('PUT', `/deliveries/${d.orderId}/${action}`, undefined, { action });
        state.list.set(updated.orderId, updated);
        state.fresh.delete(updated.orderId);
        render();
        flash(`Order #${d.orderId} ${words[action]} ${d.address}.`, 'info');
        const next = document.getElementById(`complete-${d.orderId}`);
        if (next) next.focus();
      } catch (e) {
        if (e.status === 409 || e.status === 404) load().catch(() => {});
        throw e;
      }
    }, error);
  }

  function card(d, button) {
    const error = h('p', { class: 'error', role: 'alert', hidden: true });
    return h('li', {},
      h('article', { class: state.fresh.has(d.orderId) ? 'order fresh' : 'order', dataset: { orderId: d.orderId, status: d.deliveryStatus }, 'aria-labelledby': `d-${d.orderId}` },
        h('header', { class: 'order-head' }, h('h3', { id: `d-${d.orderId}` }, `#${d.orderId} ${d.menuName} × ${d.qty}`), badge(d.deliveryStatus)),
        h('p', { class: 'address' }, h('span', { class: 'muted' }, d.deliveryStatus === 'Delivered' ? 'Delivered to ' : 'Deliver to '), d.address),
        h('p', { class: 'meta' }, won(d.price), ' · cooked ', timeEl(d.createdAt)),
        button ? h('div', { class: 'actions' }, button(error)) : '',
        error));
  }

  /** Marks a new arrival for a while, so a glance shows what just came in. */
  function highlight(id) {
    state.fresh.add(id);
    setTimeout(() => {
      if (state.fresh.delete(id)) render();
    }, 20000);
  }

  function render() {
    const all = [...state.list.values()];
    const open = all.filter((d) => d.deliveryStatus === 'Ready').sort((a, b) => a.orderId - b.orderId);
    const going = all.filter((d) => d.deliveryStatus === 'PickedUp' && d.riderId === me).sort((a, b) => a.orderId - b.orderId);
    const finished = all.filter((d) => d.deliveryStatus === 'Delivered' && d.riderId === me).sort((a, b) => b.updatedAt - a.updatedAt).slice(0, 15);
    fill(ready, open.length
      ? h('ul', { class: 'orders' }, open.map((d) => card(d, (error) => {
        const b = h('button', { type: 'button', class: 'primary', id: `pickup-${d.orderId}`, onclick: () => act(d, 'pickup', b, error) }, 'Pick up');
        return b;
      })))
      : empty('Nothing to pick up. Cooked orders appear here the moment the kitchen finishes.'));
    fill(mine, going.length
      ? h('ul', { class: 'orders' }, going.map((d) => card(d, (error) => {
        const b = h('button', { type: 'button', class: 'primary', id: `complete-${d.orderId}`, onclick: () => act(d, 'complete', b, error) }, 'Mark delivered');
        return b;
      })))
      : empty('You are not carrying anything.'));
    fill(done, finished.length ? h('ul', { class: 'orders compact' }, finished.map((d) => card(d))) : empty('No deliveries yet.'));
  }

  async function load() {
    const list = (await api('GET', '/deliveries')) || [];
    const before = new Set(state.list.keys());
    state.list = new Map(list.map((d) => [d.orderId, d]));
    for (const d of list) if (state.loaded && !before.has(d.orderId) && d.deliveryStatus === 'Ready') highlight(d.orderId);
    state.loaded = true;
    render();
  }

  async function refresh() {
    try {
      await load();
    } catch (e) {
      if (e.status !== 401) flash(e.message);
    }
  }

  refresh();
  // Another rider's pick-up tells no one else; look again now and then.
  const timer = setInterval(() => { if (!document.hidden) load().catch(() => {}); }, 15000);

  return {
    refresh,
    unmount() {
      clearInterval(timer);
    },
    onNotification(n) {
      chase(load, () => state.list.has(n.orderId)).then(() => {
        if (n.eventType === 'CookFinished') announce(`Order #${n.orderId} is ready for pick-up.`);
      });
    },
  };
}
