// The customer's view: stores and menus, a cart, placing orders (with an
// optional card), my orders with a live timeline, cancel, confirm, notifications.

import { api, won, statusWords } from './api.js';
import { h, fill, busy, badge, timeline, section, empty, timeEl, rank, EVENT_STATUS, chase, flash, announce } from './ui.js';

export const TITLE = 'Order food';

const CART_KEY = 'hanwha.cart';

export function mount(root, ctx) {
  const state = {
    menus: [],
    stores: [],
    /** menuId -> qty */
    cart: new Map(loadCart()),
    /** id -> order */
    orders: new Map(),
    /** id -> status history */
    history: new Map(),
    /** id -> the last failed action's message */
    errors: new Map(),
    told: new Set(),
    address: sessionStorage.getItem('hanwha.address') || '',
  };

  const menuBody = h('div', { class: 'menu-body' }, h('p', { class: 'empty' }, 'Loading the menu…'));
  const cartBody = h('div', { class: 'cart-body' });
  const ordersBody = h('div', { class: 'orders-body' }, h('p', { class: 'empty' }, 'Loading your orders…'));
  const cartCount = h('span', { class: 'count', 'aria-hidden': 'true' });

  fill(root,
    h('div', { class: 'view-head' },
      h('h1', {}, TITLE),
      h('nav', { class: 'jump', 'aria-label': 'Sections' },
        h('a', { href: '#menu' }, 'Menu'), h('a', { href: '#cart' }, 'Cart ', cartCount),
        h('a', { href: '#orders' }, 'My orders'), h('a', { href: '#notifications' }, 'Notifications'))),
    h('div', { class: 'grid grid-customer' },
      section('menu', 'Stores and menus', menuBody),
      section('cart', 'Your cart', cartBody),
      section('orders', 'My orders', ordersBody),
      ctx.notes()));

  function saveCart() {
    sessionStorage.setItem(CART_KEY, JSON.stringify([...state.cart]));
  }

  function menuById(id) {
    return state.menus.find((m) => m.id === id);
  }

  function add(menu) {
    state.cart.set(menu.id, Math.min(100, (state.cart.get(menu.id) || 0) + 1));
    saveCart();
    renderCart();
    announce(`${menu.name} added to your cart. ${state.cart.get(menu.id)} in cart.`);
  }

  function renderMenus() {
    if (!state.menus.length) {
      fill(menuBody, empty('No store has anything on its menu right now.'));
      return;
    }
    const byStore = new Map();
    for (const m of state.menus) {
      if (!byStore.has(m.storeId)) byStore.set(m.storeId, []);
      byStore.get(m.storeId).push(m);
    }
    fill(menuBody, [...byStore].map(([storeId, items]) => {
      const store = state.stores.find((s) => s.id === storeId);
      return h('div', { class: 'store' },
        h('h3', {}, items[0].storeName, store && store.address ? h('span', { class: 'muted' }, ` · ${store.address}`) : ''),
        h('ul', { class: 'items' }, items.map((m) => h('li', { class: m.available ? 'item' : 'item sold-out', dataset: { menuId: m.id } },
          h('span', { class: 'item-name' }, m.name),
          h('span', { class: 'price' }, won(m.price)),
          m.available
            ? h('button', { type: 'button', id: `add-${m.id}`, class: 'small', 'aria-label': `Add ${m.name} (${won(m.price)}) to cart`, onclick: () => add(m) }, 'Add')
            : h('span', { class: 'muted' }, 'Sold out')))));
    }));
  }

  // The checkout form is built once, so typing in it never races a re-render.
  const cartLines = h('div', { class: 'cart-lines-wrap' });
  const orderError = h('p', { class: 'error', role: 'alert', id: 'order-error', hidden: true });
  const address = h('input', { id: 'address', name: 'address', required: true, autocomplete: 'street-address', maxlength: 200, value: state.address,
    oninput: () => {
      state.address = address.value;
      sessionStorage.setItem('hanwha.address', address.value);
    } });
  const card = h('input', { id: 'card', name: 'card', inputmode: 'numeric', autocomplete: 'cc-number', 'aria-describedby': 'card-hint', placeholder: '1234-5678-9012-3456' });
  const placeBtn = h('button', { type: 'submit', class: 'primary', id: 'place-order' }, 'Place order');
  const checkout = h('form', { class: 'checkout', novalidate: true, onsubmit: (e) => { e.preventDefault(); place(); } },
    h('label', { for: 'address' }, 'Delivery address'), address,
    h('label', { for: 'card' }, 'Card number ', h('span', { class: 'muted' }, '(optional)')), card,
    h('p', { class: 'hint', id: 'card-hint' }, 'Leave it empty to pay with your saved method. Test card 4000-0000-0000-0002 is always declined.'),
    orderError, placeBtn);
  fill(cartBody, cartLines, checkout);

  function cartLinesNow() {
    return [...state.cart].map(([id, qty]) => ({ menu: menuById(id), id, qty })).filter((l) => l.menu);
  }

  function renderTotals() {
    const lines = cartLinesNow();
    const total = lines.reduce((sum, l) => sum + l.menu.price * l.qty, 0);
    cartCount.textContent = lines.length ? `(${lines.reduce((n, l) => n + l.qty, 0)})` : '';
    placeBtn.disabled = !lines.length;
    placeBtn.textContent = !lines.length ? 'Place order' : lines.length > 1 ? `Place ${lines.length} orders · ${won(total)}` : `Place order · ${won(total)}`;
    for (const l of lines) {
      const el = cartLines.querySelector(`[data-menu-id="${l.id}"] .price`);
      if (el) el.textContent = won(l.menu.price * l.qty);
    }
  }

  function renderCart() {
    const lines = cartLinesNow();
    fill(cartLines,
      lines.length
        ? h('ul', { class: 'cart-lines' }, lines.map((l) => h('li', { class: 'cart-line', dataset: { menuId: l.id } },
          h('span', { class: 'item-name' }, l.menu.name, h('span', { class: 'muted store-name' }, l.menu.storeName)),
          h('label', { class: 'sr-only', for: `qty-${l.id}` }, `Quantity of ${l.menu.name}`),
          h('input', { id: `qty-${l.id}`, class: 'qty', type: 'number', min: 1, max: 100, value: l.qty, oninput: (e) => {
            const q = Math.max(1, Math.min(100, Math.round(Number(e.target.value)) || 1));
            state.cart.set(l.id, q);
            saveCart();
            renderTotals();
          } }),
          h('span', { class: 'price' }, won(l.menu.price * l.qty)),
          h('button', { type: 'button', class: 'ghost small', 'aria-label': `Remove ${l.menu.name} from cart`, onclick: () => {
            state.cart.delete(l.id);
            saveCart();
            renderCart();
            document.getElementById('cart-title').focus();
          } }, 'Remove'))))
        : empty('Your cart is empty. Add something from a menu.'),
      lines.length > 1 ? h('p', { class: 'hint' }, 'Each item is its own order, so each store can start cooking at once.') : '');
    renderTotals();
  }

  async function place() {
    orderError.hidden = true;
    const lines = cartLinesNow();
    if (!lines.length) return;
    if (!address.value.trim()) {
      orderError.textContent = 'Enter the delivery address.';
      orderError.hidden = false;
      address.focus();
      return;
    }
    await busy(placeBtn, async () => {
      for (const l of lines) {
        const body = { menuId: l.id, qty: l.qty, address: address.value.trim() };
        if (card.value.trim()) body.card = card.value.trim();
        try {
          const order = await api('POST', '/orders', body, { action: 'order' });
          state.cart.delete(l.id);
          saveCart();
          upsert(order);
          flash(`Order #${order.id} is placed: ${order.menuName} × ${order.qty}, ${won(order.price)}.`, 'info');
        } catch (e) {
          if (e.status === 402 && e.problem.orderId) refreshOrder(e.problem.orderId).catch(() => {});
          throw e;
        } finally {
          renderCart();
        }
      }
    }, orderError);
    renderTotals();
  }

  function upsert(order) {
    const old = state.orders.get(order.id);
    // Read models catch up a moment after the events; never step back.
    if (old && rank(old.status) > rank(order.status)) order = { ...order, status: old.status };
    state.orders.set(order.id, order);
    renderOrders();
  }

  async function refreshOrder(id) {
    const [order, check] = await Promise.all([
      api('GET', `/orders/${id}`),
      api('GET', `/statusChecks/${id}`).catch((e) => (e.status === 404 ? null : Promise.reject(e))),
    ]);
    if (check && check.history) state.history.set(id, check.history);
    if (check && rank(check.status) > rank(order.status)) order.status = check.status;
    upsert(order);
  }

  async function loadOrders() {
    const orders = (await api('GET', '/orders?limit=30')) || [];
    for (const o of orders) {
      const old = state.orders.get(o.id);
      if (!old || rank(o.status) >= rank(old.status)) state.orders.set(o.id, o);
    }
    renderOrders();
    const checks = (await api('GET', '/statusChecks')) || [];
    const wanted = orders.slice(0, 30).map((o) => o.id);
    await Promise.all(wanted.filter((id) => checks.some((c) => c.orderId === id)).map((id) =>
      api('GET', `/statusChecks/${id}`).then((c) => { state.history.set(id, c.history || []); }).catch(() => {})));
    renderOrders();
  }

  async function act(order, action, button) {
    const verbs = { cancel: 'cancelled', confirm: 'confirmed' };
    state.errors.delete(order.id);
    state.told.clear();
    await busy(button, async () => {
      try {
        const updated = await api('PUT', `/orders/${order.id}/${action}`, undefined, { action });
        upsert(updated);
        flash(`Order #${order.id} is ${verbs[action]}.`, 'info');
        chase(() => refreshOrder(order.id), () => (state.history.get(order.id) || []).some((c) => c.status === updated.status));
      } catch (e) {
        // Shown in the order's card, in words; it survives live re-renders.
        state.errors.set(order.id, e.message);
        const known = state.orders.get(order.id);
        const now = e.currentStatus;
        if (e.status === 409 && known && now && rank(now) > rank(known.status)) upsert({ ...known, status: now });
        else renderOrders();
        if (e.status === 409) {
          // Someone else moved it on: read it back until the order service
          // has caught up with where it is now.
          chase(() => refreshOrder(order.id), () => !now || rank(state.orders.get(order.id)?.status) >= rank(now));
        }
      }
    });
  }

  function renderOrders() {
    const orders = [...state.orders.values()].sort((a, b) => b.id - a.id).slice(0, 30);
    if (!orders.length) {
      fill(ordersBody, empty('No orders yet. Your orders and their progress show here.'));
      return;
    }
    fill(ordersBody, h('ul', { class: 'orders' }, orders.map((o) => {
      const message = state.errors.get(o.id);
      // Announced once, when it first appears, not on every live re-render.
      const fresh = message && !state.told.has(message + o.id);
      if (fresh) state.told.add(message + o.id);
      const error = h('p', { class: 'error', role: fresh ? 'alert' : false, hidden: !message }, message || '');
      const actions = [];
      if (o.status === 'Ordered') {
        const b = h('button', { type: 'button', id: `cancel-${o.id}`, class: 'danger', onclick: () => act(o, 'cancel', b) }, 'Cancel order');
        actions.push(b);
      }
      if (o.status === 'Delivered') {
        const b = h('button', { type: 'button', id: `confirm-${o.id}`, class: 'primary', onclick: () => act(o, 'confirm', b) }, 'Confirm receipt');
        actions.push(b);
      }
      return h('li', {},
        h('article', { class: 'order', dataset: { orderId: o.id, status: o.status }, 'aria-labelledby': `order-${o.id}-title` },
          h('header', { class: 'order-head' },
            h('h3', { id: `order-${o.id}-title` }, `#${o.id} ${o.menuName} × ${o.qty}`),
            badge(o.status)),
          h('p', { class: 'meta' }, won(o.price), ' · ', o.address, ' · ', timeEl(o.createdAt)),
          o.status === 'PaymentFailed' ? h('p', { class: 'reason' }, reasonWords(o))
            : o.status === 'PaymentPending' ? h('p', { class: 'muted' }, 'Waiting for the payment to finish…')
              : timeline(o.status, state.history.get(o.id)),
          h('p', { class: 'sr-only' }, `Order ${o.id} is ${statusWords(o.status)}.`),
          actions.length ? h('div', { class: 'actions' }, actions) : '',
          error));
    })));
  }

  function reasonWords(o) {
    return /declin/i.test(o.reason || '') ? 'The card was declined; nothing was charged.' : 'The payment did not go through; nothing was charged.';
  }

  async function loadMenus() {
    const [stores, menus] = await Promise.all([api('GET', '/stores'), api('GET', '/menus')]);
    state.stores = stores || [];
    state.menus = menus || [];
    renderMenus();
    renderCart();
  }

  async function refresh() {
    try {
      await Promise.all([loadMenus(), loadOrders()]);
    } catch (e) {
      if (e.status !== 401) flash(e.message);
    }
  }

  refresh();

  return {
    refresh,
    onNotification(n) {
      const implied = EVENT_STATUS[n.eventType];
      const known = state.orders.get(n.orderId);
      if (known && implied && rank(implied) > rank(known.status)) {
        state.orders.set(n.orderId, { ...known, status: implied });
        renderOrders();
      }
      const target = implied || (known && known.status);
      chase(() => refreshOrder(n.orderId), () => {
        const hist = state.history.get(n.orderId) || [];
        const o = state.orders.get(n.orderId);
        return !!o && (!target || (rank(o.status) >= rank(target) && hist.some((c) => c.status === target)));
      });
    },
  };
}

function loadCart() {
  try {
    const v = JSON.parse(sessionStorage.getItem(CART_KEY) || '[]');
    return Array.isArray(v) ? v.filter((x) => Array.isArray(x) && x.length === 2) : [];
  } catch {
    return [];
  }
}
