// Boots the app: login, one view per role, and the live notification stream
// that keeps every view current without a reload.

import { api, session, saveSession, clearSession, whenExpired, sessionFrom, endSession } from './api.js';
import { h, fill, flash, clearFlash, announce, section, timeEl } from './ui.js';

const VIEWS = {
  customer: () => import('./customer.js'),
  owner: () => import('./owner.js'),
  rider: () => import('./rider.js'),
  admin: () => import('./admin.js'),
};

const $ = (id) => document.getElementById(id);

/** The state of one logged-in visit; replaced on each login. */
let visit = null;

function setLive(state) {
  const el = $('live');
  el.dataset.state = state;
  el.textContent = { on: 'Live', reconnecting: 'Reconnecting…', off: 'Offline' }[state];
}

/** The notifications list every role sees, newest first. */
function notesSection(v) {
  const list = h('ol', { class: 'notes', id: 'notes-list', 'aria-label': 'Notifications, newest first' });
  v.renderNotes = () => {
    const latest = v.notes.slice(-30).reverse();
    fill(list, latest.length
      ? latest.map((n) => h('li', { class: n.id > v.seenUpTo ? 'note fresh' : 'note', dataset: { id: n.id, order: n.orderId } },
        h('span', { class: 'note-text' }, n.message.charAt(0).toUpperCase() + n.message.slice(1)), ' ', h('span', { class: 'note-when' }, timeEl(n.createdAt))))
      : h('li', { class: 'empty' }, 'Nothing yet. Updates about your orders appear here as they happen.'));
  };
  v.renderNotes();
  return section('notifications', 'Notifications', list);
}

async function connect(v) {
  if (v.closed) return;
  // A single-use ticket in the URL, not the access token: URLs end up in
  // logs and histories.
  let ticket;
  try {
    ({ ticket } = await api('POST', '/auth/stream-ticket', undefined, { unkeyed: true }));
  } catch (err) {
    if (err.status === 401 || v.closed) return;
    setLive('reconnecting');
    setTimeout(() => connect(v), 2000);
    return;
  }
  if (v.closed) return;
  const url = `/notifications/stream?ticket=${encodeURIComponent(ticket)}&after=${v.lastId}`;
  const es = new EventSource(url);
  v.es = es;
  es.addEventListener('open', () => {
    setLive('on');
    if (v.dropped) {
      v.dropped = false;
      v.view.refresh();
    }
  });
  es.addEventListener('notification', (e) => {
    let n;
    try {
      n = JSON.parse(e.data);
    } catch {
      return;
    }
    if (n.id <= v.lastId) return;
    v.lastId = n.id;
    v.notes.push(n);
    if (v.notes.length > 200) v.notes.splice(0, v.notes.length - 200);
    v.renderNotes();
    announce(n.message);
    v.view.onNotification(n);
  });
  es.addEventListener('error', async () => {
    if (v.closed) return;
    v.dropped = true;
    setLive('reconnecting');
    if (es.readyState !== EventSource.CLOSED) return; // the browser retries by itself, with Last-Event-ID
    es.close();
    // Closed for good: the server refused the stream. Find out whether the
    // session is still valid (a 401 logs out), then open a new stream.
    try {
      await api('GET', '/auth/me');
    } catch (err) {
      if (err.status === 401) return;
    }
    setTimeout(() => connect(v), 2000);
  });
}

function stop() {
  if (!visit) return;
  visit.closed = true;
  if (visit.es) visit.es.close();
  if (visit.view && visit.view.unmount) visit.view.unmount();
  visit = null;
  setLive('off');
}

function showLogin(message) {
  stop();
  $('who').hidden = true;
  fill($('view'));
  $('login').hidden = false;
  const err = $('login-error');
  err.hidden = !message;
  err.textContent = message || '';
  document.title = 'Log in · Hanwha Delivery';
  $('username').focus();
}

async function start(s) {
  stop();
  clearFlash();
  $('login').hidden = true;
  $('who').hidden = false;
  $('whoami').textContent = `${s.username} · ${s.role}`;
  const load = VIEWS[s.role];
  if (!load) {
    clearSession();
    showLogin('This account has a role the web app does not know.');
    return;
  }
  const v = { session: s, notes: [], lastId: 0, seenUpTo: 0, closed: false, dropped: false };
  visit = v;
  try {
    v.notes = (await api('GET', '/notifications?limit=5000')) || [];
  } catch (e) {
    if (e.status === 401) return;
    flash(e.message);
  }
  if (v.closed) return;
  v.lastId = v.notes.length ? v.notes[v.notes.length - 1].id : 0;
  v.seenUpTo = v.lastId;
  const mod = await load();
  if (v.closed) return;
  const root = $('view');
  const ctx = { session: s, notes: () => notesSection(v) };
  v.view = mod.mount(root, ctx);
  document.title = `${mod.TITLE} · Hanwha Delivery`;
  const heading = root.querySelector('h1');
  if (heading) {
    heading.tabIndex = -1;
    heading.focus();
  }
  connect(v);
}

async function login(event) {
  event.preventDefault();
  const form = event.currentTarget;
  const username = form.username.value.trim();
  const password = form.password.value;
  const err = $('login-error');
  if (!username || !password) {
    err.textContent = 'Enter your username and password.';
    err.hidden = false;
    (username ? form.password : form.username).focus();
    return;
  }
  const button = form.querySelector('button[type=submit]');
  button.disabled = true;
  try {
    const r = await api('POST', '/auth/login', { username, password }, { action: 'login', anonymous: true });
    const s = sessionFrom(r, username);
    saveSession(s);
    form.password.value = '';
    err.hidden = true;
    await start(s);
  } catch (e) {
    err.textContent = e.message;
    err.hidden = false;
    form.password.select();
  } finally {
    button.disabled = false;
  }
}

whenExpired(() => {
  clearSession();
  showLogin('Your session has expired. Please log in again.');
});

$('login-form').addEventListener('submit', login);
for (const b of document.querySelectorAll('[data-demo]')) {
  b.addEventListener('click', () => {
    $('username').value = b.dataset.demo;
    $('password').value = b.dataset.demo;
    $('login-form').requestSubmit();
  });
}
$('logout').addEventListener('click', () => {
  endSession();
  showLogin();
  flash('You are logged out.', 'info');
});
window.addEventListener('storage', (e) => {
  if (e.key === 'hanwha.session' && !e.newValue && visit) showLogin('You logged out in another tab.');
});

const s = session();
if (s && s.token) start(s);
else showLogin();
