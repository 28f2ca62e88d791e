// The viewer's shop on a phone (390x844, touch, 3x) with the host console at 1280x800, through
// the real server: a product with no sale and variants (not highlighted) is found in the bag,
// bought through the buy sheet (variant M, quantity 2) at its list price; a double tap on Confirm
// makes one order (counted with the orders API); the host's orders feed names the variant; "My
// orders" lists the order after a reload, and another buyer's list does not. Then a flash sale
// on the shirt: the bag and the sheet show the deal's price and countdown, the quantity stops at
// the deal's per-buyer limit, and a buy past the limit is answered "limit reached" in the sheet. Every tap target
// of the bag and the sheet is at least 44 px each way (DOM geometry); screenshots of the bag,
// the sheet and My orders go to target/screenshots/phone-*.png for people to look at.
//
// Control run (one order per intent): serve a copy of web/ (SELLCAST_WEB_DIR) whose buy sheet
// makes a new key on every tap and keeps Confirm enabled; the double tap then makes 2 orders
// and this scenario fails.
//
// Env: SELLCAST_BIN, SELLCAST_HTTP_PORT (18600), CHROMIUM, SHOP_DEADLINE_MS (150000). Prints
// `RESULT {json}` and exits non-zero on the first failed expectation.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { writeClip } from './y4m.mjs';
import { fail, sleep, waitFor, repo, ServerProcess, launchBrowser, watchCsp, reportScenario } from './lib.mjs';

const HTTP_PORT = Number(process.env.SELLCAST_HTTP_PORT || 18600);
const base = `http://127.0.0.1:${HTTP_PORT}`;
const ROOM = 'shop';
const DEADLINE_MS = Number(process.env.SHOP_DEADLINE_MS || 150_000);
const PHONE = { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, deviceScaleFactor: 3 };
const shots = path.join(repo, 'target/screenshots');
const result = {};
const cspViolations = [];
let server = null;
let hostToken = null;

async function token(role, name) {
  const q = new URLSearchParams({ room: ROOM, role, name });
  return (await (await fetch(`${base}/api/dev/token?${q}`)).json()).token;
}

async function api(method, pathname, body, bearer = hostToken) {
  const r = await fetch(`${base}${pathname}`, {
    method,
    headers: { 'content-type': 'application/json', authorization: `Bearer ${bearer}` },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  if (!r.ok) fail(`${method} ${pathname} answered ${r.status}: ${text}`);
  return JSON.parse(text);
}

async function main() {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sellcast-shop-'));
  const clip = path.join(tmp, 'clip.y4m');
  writeClip(clip, 60);
  fs.mkdirSync(shots, { recursive: true });
  setTimeout(() => {
    console.error(`SHOP FAILED: scenario exceeded ${DEADLINE_MS} ms (server log in ${tmp})`);
    server?.kill();
    process.exit(1);
  }, DEADLINE_MS).unref();
  server = new ServerProcess({ tmp, port: HTTP_PORT });
  await server.start();
  const browser = await launchBrowser(clip);
  await reportScenario({ tmp, server, browser, result }, () => run(browser));
}

async function run(browser) {
  hostToken = await token('host', 'Hana');
  // The seller prepares the show: a shirt in two sizes (made in the host console's form, not
  // highlighted) and a highlighted serum.
  const hostCtx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const host = await hostCtx.newPage();
  watchCsp(host, cspViolations);
  host.on('pageerror', e => console.error('host page error:', e.message));
  const shirt = await productWithVariants(host);
  const serum = await api('POST', `/api/rooms/${ROOM}/products`, { title: 'Glow serum', price_minor: 2500, currency: 'EUR', stock: 20 });
  await api('POST', `/api/rooms/${ROOM}/frames`, { type: 'pin', product_ids: [serum.id] });
  const medium = shirt.variants.find(v => v.label === 'M');

  const phoneCtx = await browser.newContext(PHONE);
  const phone = await phoneCtx.newPage();
  watchCsp(phone, cspViolations);
  phone.on('pageerror', e => console.error('phone page error:', e.message));
  await phone.goto(`${base}/watch/${ROOM}?name=Pia`);
  await waitFor('the phone joined the room', () => phone.evaluate(() => window.sellcast?.state?.me !== null && window.sellcast.state.products.size === 2));

  await bag(phone, shirt);
  await sheet(phone, shirt, medium);
  const orderId = await doubleTapConfirm(phone, shirt, medium);
  await hostFeed(host, orderId);
  await myOrdersAfterReload(phone, orderId);
  await dealInTheSheet(phone, shirt);
  if (cspViolations.length) fail(`the pages broke their Content-Security-Policy: ${cspViolations.join(' | ')}`);
  result.csp_violations = cspViolations.length;
}

// Taps the sheet's option `variantId` where a thumb would: on its label. The sheet renders again
// whenever the shelf changes (a stock count, a sale), so the tap goes through the label's locator,
// which Playwright resolves afresh when the old node was replaced, never a force tap on a node
// that may already be gone.
async function tapOption(page, variantId) {
  await page.locator(`#buy-sheet label.variant:has(input[name=variant][value="${variantId}"])`).tap();
  await waitFor(`option ${variantId} is chosen`, () => page.evaluate(id => document.querySelector(`#buy-sheet input[name=variant][value="${id}"]`)?.checked, variantId));
}

// Every control of `selector` that can be tapped, with its size; the smallest side of each.
function targets(page, selector) {
  return page.evaluate(sel => [...document.querySelectorAll(sel)].map(e => {
    const r = e.getBoundingClientRect();
    return { what: `${e.tagName.toLowerCase()}.${e.className || ''} ${e.textContent.trim().slice(0, 20)}`, w: Math.round(r.width), h: Math.round(r.height) };
  }), selector);
}

function checkTargets(list, where) {
  const small = list.filter(t => t.w < 44 || t.h < 44);
  if (!list.length) fail(`no tap targets found in ${where}`);
  if (small.length) fail(`tap targets under 44 px in ${where}: ${JSON.stringify(small)}`);
  return Math.min(...list.map(t => Math.min(t.w, t.h)));
}

// The bag lists every product (the shirt is not highlighted) with its price and a Buy.
async function bag(phone, shirt) {
  const button = await targets(phone, '#bag-button');
  checkTargets(button, 'the bag button');
  await phone.tap('#bag-button');
  await waitFor('the bag opens', () => phone.evaluate(() => !document.getElementById('bag').hidden && document.querySelectorAll('#bag .bag-item').length === 2));
  const items = await phone.evaluate(() => [...document.querySelectorAll('#bag .bag-item')].map(li => ({
    title: li.querySelector('h3').textContent, price: li.querySelector('.price').textContent, pinned: window.sellcast.state.pinned.includes(Number(li.dataset.productId)),
  })));
  if (!items.some(i => i.title === 'Linen shirt' && !i.pinned && /45[.,]00/.test(i.price))) fail(`the bag does not list the shirt at its price: ${JSON.stringify(items)}`);
  const min = checkTargets(await targets(phone, '#bag button'), 'the bag');
  await phone.screenshot({ path: path.join(shots, 'phone-bag.png') });
  result.bag = { listed: items.map(i => i.title), unpinned_listed: items.filter(i => !i.pinned).length, min_target_px: min };
  await phone.tap(`#bag .bag-buy[data-product-id="${shirt.id}"]`);
}

// The sheet: product, price, variant picker, quantity 2, total, Confirm; targets of 44 px.
async function sheet(phone, shirt, medium) {
  await waitFor('the buy sheet opens', () => phone.evaluate(() => !document.getElementById('buy-sheet').hidden && document.getElementById('bag').hidden));
  const title = await phone.locator('#buy-sheet h2').textContent();
  if (title !== shirt.title) fail(`the sheet shows "${title}"`);
  await tapOption(phone, medium.id);
  await phone.tap('#buy-sheet button.step[aria-label="One more"]');
  await waitFor('quantity 2', () => phone.evaluate(() => document.querySelector('#buy-sheet .qty-value')?.textContent === '2'));
  const total = await phone.locator('#buy-sheet .sheet-total').textContent();
  if (!/90[.,]00/.test(total)) fail(`the total for 2 × 45.00 reads "${total}"`);
  const min = checkTargets(await targets(phone, '#buy-sheet button, #buy-sheet label.variant'), 'the buy sheet');
  const onScreen = await phone.evaluate(() => {
    const r = document.querySelector('#buy-sheet .confirm').getBoundingClientRect();
    const at = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
    return r.bottom <= window.innerHeight && !!at?.closest('.confirm');
  });
  if (!onScreen) fail('Confirm is off screen or covered');
  await phone.screenshot({ path: path.join(shots, 'phone-buy-sheet.png') });
  result.sheet = { title, total: total.trim(), min_target_px: min, confirm_on_top: onScreen };
}

// A double tap on Confirm is one purchase intent: one key, one order.
async function doubleTapConfirm(phone, shirt, medium) {
  await phone.evaluate(() => {
    const link = window.sellcast.link;
    window.__buys = { taps: 0, sent: [] };
    document.addEventListener('touchend', () => { window.__buys.taps += 1; }, true);
    const send = link.send.bind(link);
    link.send = f => { if (f.type === 'buy') window.__buys.sent.push(f); return send(f); };
  });
  const b = await phone.locator('#buy-sheet .confirm').boundingBox();
  const x = b.x + b.width / 2;
  const y = b.y + b.height / 2;
  await phone.touchscreen.tap(x, y);
  await sleep(120); // the gap of a human double tap: the input being simulated, not a wait for a result
  await phone.touchscreen.tap(x, y);
  await waitFor('both taps reached the page', () => phone.evaluate(() => window.__buys.taps >= 2));
  const text = await waitFor('the sheet shows the confirmation', () => phone.evaluate(() => {
    const r = document.querySelector('#buy-sheet .sheet-result');
    return r && /Order #\d+ confirmed/.test(r.textContent) ? r.textContent
      : { pending: { result: r?.textContent, confirm: document.querySelector('#buy-sheet .confirm')?.textContent, sent: window.__buys.sent } };
  }));
  const buys = await phone.evaluate(() => window.__buys);
  const orders = (await api('GET', `/api/rooms/${ROOM}/orders`)).orders.filter(o => o.product_id === shirt.id);
  const totals = (await api('GET', `/api/rooms/${ROOM}/orders`)).totals;
  result.double_tap_confirm = {
    taps: buys.taps, buy_frames: buys.sent.length, distinct_keys: new Set(buys.sent.map(f => f.idempotency_key)).size, orders: orders.length,
    order: orders[0] && { sale_id: orders[0].sale_id, variant: orders[0].variant, qty: orders[0].qty, price_minor: orders[0].price_minor }, result: text,
    revenue_minor: totals.revenue.find(r => r.currency === 'EUR')?.minor ?? 0,
  };
  if (orders.length !== 1) fail(`a double tap on Confirm made ${orders.length} orders: ${JSON.stringify(result.double_tap_confirm)}`);
  const o = orders[0];
  if (o.sale_id !== null || o.variant_id !== medium.id || o.qty !== 2 || o.price_minor !== 4500) fail(`the order is not 2 × M at the list price: ${JSON.stringify(o)}`);
  if (!text.includes(`#${o.order_id}`)) fail(`the sheet confirmed "${text}", the order is #${o.order_id}`);
  return o.order_id;
}

// The host console's product form: a product with two variants, each with its own stock.
async function productWithVariants(host) {
  await host.goto(`${base}/host/${ROOM}?name=Hana`);
  await host.fill('#product-form [name=title]', 'Linen shirt');
  await host.fill('#product-form [name=price]', '45.00');
  for (const [label, stock] of [['S', '3'], ['M', '5']]) {
    await host.click('#product-form .add-variant');
    await host.locator('#product-form .variant-label').last().fill(label);
    await host.locator('#product-form .variant-stock').last().fill(stock);
  }
  const labelled = await host.evaluate(() => [...document.querySelectorAll('#product-form .variant-row input')].every(i => i.closest('label')?.textContent.trim()));
  if (!labelled) fail('a variant field has no label');
  await host.locator('#product-form').screenshot({ path: path.join(shots, 'host-product-variants.png') });
  await host.click('#product-form button[type=submit]');
  const shirt = await waitFor('the host lists the shirt with its variants', async () => {
    const r = await fetch(`${base}/api/rooms/${ROOM}/products`).then(x => x.json()).catch(() => null);
    return r?.products?.find(p => p.title === 'Linen shirt') || null;
  });
  const variants = shirt.variants.map(v => `${v.label}:${v.stock}`).join(',');
  if (variants !== 'S:3,M:5' || shirt.stock !== 8 || shirt.price_minor !== 4500) fail(`the form made ${JSON.stringify(shirt)}`);
  await waitFor('the console shows the variants', () => host.evaluate(id => /S 3, M 5/.test(document.querySelector(`#product-list li[data-product-id="${id}"]`)?.textContent || ''), shirt.id));
  result.host_form = { variants, stock: shirt.stock };
  return shirt;
}

// The host console's orders feed names the variant.
async function hostFeed(host, orderId) {
  const line = await waitFor('the host feed lists the order', () => host.evaluate(id => document.querySelector(`#orders li[data-order-id="${id}"]`)?.textContent || null, orderId));
  if (!/Linen shirt/.test(line) || !/\(M\)/.test(line)) fail(`the host feed line does not name the product and variant: "${line}"`);
  result.host_feed = { line, variant_shown: true };
}

// My orders: served for the page's own identity, after a reload; not another buyer's.
async function myOrdersAfterReload(phone, orderId) {
  await phone.reload();
  await waitFor('My orders is offered after a reload', async () => (await phone.locator('#my-orders:not([hidden])').count()) === 1);
  await phone.tap('#my-orders');
  const listed = await waitFor('my orders open', () => phone.evaluate(() => {
    const list = document.getElementById('my-orders-list');
    return !list.hidden && list.children.length ? [...list.querySelectorAll('li')].map(li => ({ id: Number(li.dataset.orderId), text: li.textContent })) : null;
  }));
  if (listed.length !== 1 || listed[0].id !== orderId) fail(`my orders list ${JSON.stringify(listed)}, the order was #${orderId}`);
  if (!/Linen shirt \(M\)/.test(listed[0].text) || !/2 ×/.test(listed[0].text)) fail(`my order reads "${listed[0].text}"`);
  const size = await phone.locator('#my-orders').boundingBox();
  if (size.height < 44) fail(`the My orders button is ${size.width}x${size.height}`);
  await phone.screenshot({ path: path.join(shots, 'phone-my-orders.png') });
  const bo = await token('viewer', 'Bo');
  const others = (await api('GET', `/api/rooms/${ROOM}/orders/mine`, undefined, bo)).orders;
  result.my_orders = { listed, other_buyer_sees: others.length };
  if (others.length !== 0) fail(`another buyer sees ${others.length} orders as theirs`);
}

// A deal on the shirt (limit 2 per buyer): its price and countdown in the bag and the sheet,
// the stepper stops at the limit, and the next buy is refused in place.
async function dealInTheSheet(phone, shirt) {
  const now = Date.now();
  await api('POST', `/api/rooms/${ROOM}/frames`, { type: 'start_sale', product_id: shirt.id, price_minor: 3000, stock: 4, per_user_limit: 2, starts_at_ms: now - 1000, ends_at_ms: now + 600_000 });
  await waitFor('the phone knows the deal', () => phone.evaluate(id => [...window.sellcast.state.sales.values()].some(s => s.product_id === id), shirt.id));
  const small = shirt.variants.find(v => v.label === 'S');
  const openSheet = async () => {
    await phone.tap('#bag-button');
    await waitFor('the bag shows the deal', () => phone.evaluate(id => /30[.,]00/.test(document.querySelector(`#bag .bag-item[data-product-id="${id}"] .price`)?.textContent || ''), shirt.id));
    await phone.tap(`#bag .bag-buy[data-product-id="${shirt.id}"]`);
    await waitFor('the sheet opens', () => phone.evaluate(() => !document.getElementById('buy-sheet').hidden));
    await tapOption(phone, small.id);
  };
  await openSheet();
  const price = await waitFor('the sheet shows the deal and its countdown', () => phone.evaluate(() => {
    const p = document.querySelector('#buy-sheet .sheet-price');
    return p && /Deal ends in \d\d:\d\d/.test(p.textContent) ? p.textContent : null;
  }));
  if (!/45[.,]00/.test(price) || !/30[.,]00/.test(price)) fail(`the sheet's price reads "${price}"`);
  for (let i = 0; i < 3; i++) {
    if (await phone.locator('#buy-sheet button.step[aria-label="One more"]:not([disabled])').count()) await phone.tap('#buy-sheet button.step[aria-label="One more"]');
  }
  const maxQty = Number(await phone.locator('#buy-sheet .qty-value').textContent());
  if (maxQty !== 2) fail(`the stepper went to ${maxQty} on a deal of 2 per buyer`);
  await phone.screenshot({ path: path.join(shots, 'phone-buy-sheet-deal.png') });
  await phone.tap('#buy-sheet .confirm');
  await waitFor('the deal order is confirmed', () => phone.evaluate(() => /confirmed/.test(document.querySelector('#buy-sheet .sheet-result')?.textContent || '')));
  await waitFor('Confirm turns into Close', () => phone.evaluate(() => document.querySelector('#buy-sheet .confirm')?.textContent === 'Close'));
  await phone.tap('#buy-sheet .confirm');
  await waitFor('the sheet closes', () => phone.evaluate(() => document.getElementById('buy-sheet').hidden));
  await openSheet();
  await phone.tap('#buy-sheet .confirm');
  const refused = await waitFor('the next buy is refused in the sheet', () => phone.evaluate(() => {
    const r = document.querySelector('#buy-sheet .sheet-result');
    return r && /limit/.test(r.textContent) ? r.textContent : null;
  }));
  result.deal = { price: price.trim(), max_qty: maxQty, past_the_limit: refused };
}

main().catch(e => { console.error(`SHOP FAILED: ${e.stack || e.message}`); process.exit(1); });
