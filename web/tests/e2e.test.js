// The whole scenario in a real headless Chromium against the real binary:
// a customer, a store owner and a rider in three browser contexts at once,
// each step seen live by the customer; then cancel, a declined card, an
// expired session and a dropped live connection. Saves screenshots of each
// role's view to docs/screenshots/.
//
//   HANWHA_BIN=target/debug/hanwha-delivery node --test web/tests/

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { chromium } from 'playwright-core';

const HERE = dirname(fileURLToPath(import.meta.url));
const SHOTS = resolve(HERE, '../../docs/screenshots');
const BIN = process.env.HANWHA_BIN || resolve(HERE, '../../target/debug/hanwha-delivery');
const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
/** How soon a change must show on another person's page. */
const LIVE_MS = 2000;
const DESKTOP = { viewport: { width: 1280, height: 860 } };
const PHONE = { viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true };

let dataRoot;
let server;
let base;
let browser;

/** Starts the binary and resolves with its URL from its first stdout line. */
function startServer(listen) {
  const child = spawn(BIN, ['--listen', listen, '--data-dir', join(dataRoot, 'data')], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, HANWHA_LOG: process.env.HANWHA_LOG || 'warn' },
  });
  return new Promise((ok, fail) => {
    const timer = setTimeout(() => fail(new Error('the server did not start within 30 s')), 30000);
    child.on('error', fail);
    child.on('exit', (code) => fail(new Error(`the server exited with ${code} before listening`)));
    const lines = createInterface({ input: child.stdout });
    lines.once('line', (line) => {
      clearTimeout(timer);
      const m = /listening on (http:\/\/\S+)/.exec(line);
      if (!m) return fail(new Error(`unexpected first line: ${line}`));
      child.removeAllListeners('exit');
      lines.on('line', () => {});
      ok({ child, url: m[1] });
    });
  });
}

function stopServer(child, signal = 'SIGKILL') {
  return new Promise((ok) => {
    if (child.exitCode !== null || child.signalCode !== null) return ok();
    child.once('exit', () => ok());
    child.kill(signal);
  });
}

before(async () => {
  dataRoot = mkdtempSync(join(tmpdir(), 'hanwha-web-'));
  mkdirSync(SHOTS, { recursive: true });
  ({ child: server, url: base } = await startServer('127.0.0.1:0'));
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
});

after(async () => {
  if (browser) await browser.close();
  if (server) await stopServer(server);
  if (dataRoot) rmSync(dataRoot, { recursive: true, force: true });
});

/** A new browser context (its own storage, like another person's phone). */
async function person(kind = DESKTOP) {
  const context = await browser.newContext({ ...kind, baseURL: base, reducedMotion: 'reduce' });
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  return { context, page, errors };
}

/** Closes the people's browsers; a script error on any page fails the test. */
async function done(...people) {
  await Promise.all(people.map((p) => p.context.close()));
  for (const p of people) assert.deepEqual(p.errors, [], 'no script errors on the page');
}

async function login(page, user, heading) {
  await page.goto('/');
  await page.getByLabel('Username').fill(user);
  await page.getByLabel('Password').fill(user);
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.getByRole('heading', { level: 1, name: heading }).waitFor();
  await page.locator('#live[data-state="on"]').waitFor();
}

async function shot(page, name, fullPage = true) {
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage });
}

/** Waits until the order shows `status` on the page, within LIVE_MS. */
async function seen(page, scope, id, status) {
  const started = Date.now();
  await page.locator(`${scope} [data-order-id="${id}"][data-status="${status}"]`).waitFor({ timeout: LIVE_MS });
  const ms = Date.now() - started;
  // A measurement for the record; the bound above is only a generous limit.
  console.log(`live: order ${id} shown as ${status} after ${ms} ms`);
  return ms;
}

async function order(page, { qty = 1, address = '12 Gwanggyo-ro, Suwon', card = '' } = {}) {
  await page.locator('button[aria-label^="Add pizza "]').first().click();
  if (qty !== 1) await page.getByLabel('Quantity of pizza').fill(String(qty));
  await page.getByLabel('Delivery address').fill(address);
  await page.getByLabel(/Card number/).fill(card);
  await page.evaluate(() => { document.getElementById('flash').hidden = true; });
  await page.locator('#place-order').click();
  if (card) return null;
  const placed = page.locator('#flash[data-kind="info"]').filter({ hasText: 'is placed' });
  await placed.waitFor();
  return Number(/Order #(\d+) is placed/.exec(await placed.innerText())[1]);
}

async function newestOrderId(page) {
  const first = page.locator('#orders article[data-order-id]').first();
  await first.waitFor();
  return Number(await first.getAttribute('data-order-id'));
}

test('an order goes from placed to confirmed, each step seen live by the customer', async () => {
  const customer = await person();
  const owner = await person();
  const rider = await person();
  await Promise.all([
    login(customer.page, 'customer', 'Order food'),
    login(owner.page, 'owner', /Kitchen/),
    login(rider.page, 'rider', 'Deliveries'),
  ]);
  // Every step below happens without a reload of the customer's page.
  await customer.page.evaluate(() => { window.sameDocument = true; });

  await customer.page.getByRole('heading', { name: 'Hanwha Pizza' }).waitFor();
  assert.match(await customer.page.locator('#menu').innerText(), /pizza\s+1,000 KRW/);
  const id = await order(customer.page, { qty: 2 });
  await seen(customer.page, '#orders', id, 'Ordered');
  assert.match(await customer.page.locator(`[data-order-id="${id}"]`).innerText(), /2,000 KRW/);

  // The order appears on the owner's screen by itself.
  await owner.page.locator(`#incoming [data-order-id="${id}"]`).waitFor({ timeout: LIVE_MS });
  await shot(owner.page, 'owner-desktop');
  await owner.page.locator(`#accept-${id}`).click();
  await seen(customer.page, '#orders', id, 'Accepted');
  // The kitchen accepted: cancelling is no longer offered.
  assert.equal(await customer.page.locator(`#cancel-${id}`).count(), 0);

  await owner.page.locator(`#finish-${id}`).click();
  await seen(customer.page, '#orders', id, 'Cooked');
  // Ready for pick-up appears on the rider's screen by itself.
  await rider.page.locator(`#ready [data-order-id="${id}"]`).waitFor({ timeout: LIVE_MS });
  await shot(rider.page, 'rider-desktop');

  await rider.page.locator(`#pickup-${id}`).click();
  await seen(customer.page, '#orders', id, 'PickedUp');
  await rider.page.locator(`#mine [data-order-id="${id}"]`).waitFor();
  await rider.page.locator(`#complete-${id}`).click();
  await seen(customer.page, '#orders', id, 'Delivered');
  await customer.page.locator(`#confirm-${id}`).waitFor();
  await customer.page.locator(`[data-order-id="${id}"] .step.done[data-step="PickedUp"] time`).waitFor({ timeout: 5000 });
  await shot(customer.page, 'customer-desktop');

  await customer.page.locator(`#confirm-${id}`).click();
  await seen(customer.page, '#orders', id, 'Confirmed');
  // The confirmation's own notification arrives live too.
  await customer.page.locator('#notifications').getByText(`You confirmed receipt of order #${id}`).waitFor({ timeout: LIVE_MS });
  const notes = await customer.page.locator('#notifications').innerText();
  for (const words of ['is placed', 'accepted', 'cooked', 'picked up', 'delivered', 'confirmed receipt']) {
    assert.match(notes, new RegExp(words), `the customer was told "${words}"`);
  }
  assert.equal(await customer.page.evaluate(() => window.sameDocument), true, 'the page was never reloaded');
  await done(customer, owner, rider);
});

test('a customer cancels before the kitchen accepts, and is told in words when it is too late', async () => {
  const customer = await person(PHONE);
  await login(customer.page, 'customer', 'Order food');
  const id = await order(customer.page);
  await seen(customer.page, '#orders', id, 'Ordered');
  await customer.page.locator(`#cancel-${id}`).click();
  await seen(customer.page, '#orders', id, 'Cancelled');
  await customer.page.locator('#notifications').getByText(`order #${id} (pizza x1) is cancelled`).waitFor({ timeout: LIVE_MS });

  // A page that missed the owner's accept (its live stream is blocked) still
  // offers cancel; the refusal reads as words, and the page catches up.
  const stale = await person(PHONE);
  await stale.page.route('**/notifications/stream**', (route) => route.abort());
  await stale.page.goto('/');
  await stale.page.getByLabel('Username').fill('customer');
  await stale.page.getByLabel('Password').fill('customer');
  await stale.page.getByRole('button', { name: 'Log in' }).click();
  await stale.page.getByRole('heading', { level: 1, name: 'Order food' }).waitFor();
  const late = await order(stale.page);
  await seen(stale.page, '#orders', late, 'Ordered');
  const owner = await person();
  await login(owner.page, 'owner', /Kitchen/);
  await owner.page.locator(`#accept-${late}`).click();
  await owner.page.locator(`#cooking [data-order-id="${late}"]`).waitFor();
  await stale.page.locator(`#cancel-${late}`).click();
  const error = stale.page.locator(`[data-order-id="${late}"] .error`);
  await error.waitFor();
  const text = await error.innerText();
  assert.match(text, /Too late to cancel: the kitchen has already accepted/);
  assert.doesNotMatch(text, /[{}"]/, 'no raw JSON');
  await seen(stale.page, '#orders', late, 'Accepted');
  await done(customer, stale, owner);
});

test('a declined card is explained in words and nothing is ordered', async () => {
  const customer = await person(PHONE);
  await login(customer.page, 'customer', 'Order food');
  await order(customer.page, { card: '4000-0000-0000-0002' });
  const error = customer.page.locator('#order-error');
  await error.waitFor();
  const text = await error.innerText();
  assert.match(text, /card was declined/);
  assert.match(text, /nothing was charged/);
  assert.doesNotMatch(text, /[{}"]|402/, 'no raw JSON or status code');
  // The cart keeps the item, so the customer can try another card.
  assert.equal(await customer.page.locator('.cart-line').count(), 1);
  await customer.page.locator('#orders article[data-status="PaymentFailed"]').first().waitFor({ timeout: LIVE_MS });
  await customer.page.locator('#cart').scrollIntoViewIfNeeded();
  await shot(customer.page, 'customer-declined-phone', false);
  await done(customer);
});

test('an expired access token is renewed with the refresh token, unseen', async () => {
  const customer = await person(PHONE);
  await login(customer.page, 'customer', 'Order food');
  await customer.context.addInitScript(() => {
    const s = JSON.parse(localStorage.getItem('hanwha.session') || 'null');
    if (s && !sessionStorage.getItem('expired-once')) {
      sessionStorage.setItem('expired-once', '1');
      s.token = 'expired.token.value';
      localStorage.setItem('hanwha.session', JSON.stringify(s));
    }
  });
  await customer.page.reload();
  await customer.page.locator('h1').filter({ hasText: 'Order food' }).waitFor();
  await customer.page.locator('#live[data-state="on"]').waitFor();
  const s = await customer.page.evaluate(() => JSON.parse(localStorage.getItem('hanwha.session')));
  assert.notEqual(s.token, 'expired.token.value');
  assert.equal(await customer.page.locator('#login-error').isVisible(), false);
  await done(customer);
});

test('an expired session sends the person back to the login with a reason', async () => {
  const customer = await person(PHONE);
  await login(customer.page, 'customer', 'Order food');
  // Swapped in by a script that runs in the reloaded document before the
  // app's own: a change made in the old page could reach the new one after
  // the app has read the session (seen once in four full runs). Both
  // tokens are spent: the refresh token no longer trades for a new one.
  await customer.context.addInitScript(() => {
    const s = JSON.parse(localStorage.getItem('hanwha.session') || 'null');
    if (s) {
      s.token = 'expired.token.value';
      s.refreshToken = 'spent';
      localStorage.setItem('hanwha.session', JSON.stringify(s));
    }
  });
  await customer.page.reload();
  const error = customer.page.locator('#login-error');
  await error.waitFor();
  assert.equal(await error.innerText(), 'Your session has expired. Please log in again.');
  await shot(customer.page, 'login-phone', false);
  await done(customer);
});

test('the keyboard alone logs in and fills the cart', async () => {
  const customer = await person(PHONE);
  await customer.page.goto('/');
  // The login puts the cursor in the username field.
  await customer.page.locator('#username:focus').waitFor();
  await customer.page.keyboard.type('customer');
  await customer.page.keyboard.press('Tab');
  await customer.page.keyboard.type('customer');
  await customer.page.keyboard.press('Enter');
  // After login the view's heading has the focus, for screen readers.
  await customer.page.locator('h1:focus').filter({ hasText: 'Order food' }).waitFor();
  const add = customer.page.locator('button[aria-label^="Add pizza "]').first();
  await add.focus();
  await customer.page.keyboard.press('Enter');
  await customer.page.keyboard.press('Enter');
  assert.equal(await customer.page.getByLabel('Quantity of pizza').inputValue(), '2');
  assert.equal(await customer.page.locator('#place-order').innerText(), 'Place order · 2,000 KRW');
  await done(customer);
});

test('every role has a phone and a desktop view, and the admin sees the board, the log and health', async () => {
  // Something for each role to look at: one order waiting for the store, one
  // ready for pick-up.
  const as = async (user) => (await (await fetch(`${base}/auth/login`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: user, password: user }),
  })).json()).token;
  const call = async (token, method, path, body) => {
    const res = await fetch(`${base}${path}`, {
      method, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: body && JSON.stringify(body),
    });
    assert.ok(res.ok, `${method} ${path}: ${res.status}`);
    return res.json();
  };
  const [c, o] = [await as('customer'), await as('owner')];
  const cooked = await call(c, 'POST', '/orders', { menuName: 'pasta', qty: 1, address: '7 Insadong-gil, Seoul' });
  await call(c, 'POST', '/orders', { menuName: 'cola', qty: 3, address: '12 Gwanggyo-ro, Suwon' });
  for (const step of ['accept', 'finish']) {
    for (let i = 0; ; i++) {
      const res = await fetch(`${base}/storeOrders/${cooked.id}/${step}`, { method: 'PUT', headers: { authorization: `Bearer ${o}` } });
      if (res.ok) break;
      assert.ok(i < 50, `${step}: ${res.status}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  const roles = [['customer', 'Order food'], ['owner', /Kitchen/], ['rider', 'Deliveries'], ['admin', 'Operations']];
  for (const [user, heading] of roles) {
    const phone = await person(PHONE);
    await login(phone.page, user, heading);
    if (user === 'customer') {
      await phone.page.locator('#orders article').first().waitFor();
      await phone.page.locator('#orders').evaluate((el) => el.scrollIntoView());
    }
    if (user === 'owner') await phone.page.locator('#incoming article').first().waitFor();
    if (user === 'rider') await phone.page.locator('#ready article').first().waitFor();
    await shot(phone.page, `${user}-phone`, false);
    await done(phone);
  }
  const admin = await person();
  await login(admin.page, 'admin', 'Operations');
  await admin.page.locator('#board tr[data-status="Confirmed"]').first().waitFor();
  await admin.page.locator('#events tbody tr').first().waitFor();
  await admin.page.locator('#health tr[data-consumer="notification"]').waitFor();
  const health = await admin.page.locator('#health').innerText();
  assert.match(health, /Liveness UP/);
  assert.match(health, /Readiness UP/);
  const confirmed = await admin.page.locator('#board tr[data-status="Confirmed"]').first().getAttribute('data-order-id');
  await admin.page.locator(`#history-${confirmed}`).click();
  await admin.page.locator('#board .detail .timeline').waitFor();
  assert.match(await admin.page.locator('#board .detail').innerText(), /OrderConfirmed by customer:1/);
  await shot(admin.page, 'admin-desktop');

  // The admin's board follows new orders live.
  const customer = await person();
  await login(customer.page, 'customer', 'Order food');
  const id = await order(customer.page);
  await admin.page.locator(`#board tr[data-order-id="${id}"]`).waitFor({ timeout: LIVE_MS });
  await done(admin, customer);
});

test('a dropped live connection reconnects and catches up on what it missed', async () => {
  const customer = await person();
  const owner = await person();
  await login(customer.page, 'customer', 'Order food');
  await login(owner.page, 'owner', /Kitchen/);
  const id = await order(customer.page);
  await owner.page.locator(`#incoming [data-order-id="${id}"]`).waitFor({ timeout: LIVE_MS });

  // The server dies: both pages lose their stream.
  const listen = new URL(base).host;
  await stopServer(server);
  await customer.page.locator('#live[data-state="reconnecting"]').waitFor();
  ({ child: server } = await startServer(listen));
  // The owner accepts at once, before the customer's page has reconnected.
  const token = await owner.page.evaluate(() => JSON.parse(localStorage.getItem('hanwha.session')).token);
  const res = await fetch(`${base}/storeOrders/${id}/accept`, { method: 'PUT', headers: { authorization: `Bearer ${token}` } });
  assert.equal(res.status, 200);
  await customer.page.locator('#live[data-state="on"]').waitFor({ timeout: 10000 });
  await seen(customer.page, '#orders', id, 'Accepted');
  await done(customer, owner);
});

test('the API page lists every operation of /openapi.json, offline, and filters them', async () => {
  const reader = await person();
  const { page } = reader;
  const external = [];
  page.on('request', (r) => { if (!r.url().startsWith(base)) external.push(r.url()); });
  await page.goto('/');
  await page.getByRole('link', { name: 'API reference' }).click();
  await page.getByRole('heading', { level: 1, name: 'API' }).waitFor();
  const doc = await (await fetch(`${base}/openapi.json`)).json();
  const operations = Object.values(doc.paths)
    .flatMap((item) => Object.keys(item).filter((m) => ['get', 'post', 'put', 'patch', 'delete'].includes(m)));
  await page.locator('.operation').first().waitFor();
  assert.equal(await page.locator('.operation').count(), operations.length);
  const place = page.locator('.operation').filter({ hasText: 'Place an order' });
  await place.locator('summary').click();
  await place.getByText('application/problem+json').first().waitFor();
  assert.match(await place.innerText(), /customer/);
  await page.getByLabel('Filter operations').fill('storeOrders put');
  await page.getByText('4 operations', { exact: true }).waitFor();
  await shot(page, 'api');
  assert.deepEqual(external, [], 'the page loads nothing from elsewhere');
  await done(reader);
});
