// The show lifecycle through the real server: a host console at 1280x800 and a phone viewer
// (390x844, touch). Each step asserts from what the pages do or from DOM geometry; screenshots
// go to target/screenshots/phone-preshow.png and phone-header.png.
//
// In order: the host sets the show's title, a start in 5 minutes, an avatar and its name before
// going live -> the phone shows the pre-show page (title, "Starts in 4:5x" counting down) and
// the host header -> the host goes live -> the phone shows the video under the header -> a
// second viewer joins and the phone shows "... joined" -> the viewer sets its name, chats, and
// the host sees the name; it buys the 1-per-buyer deal and the host's feed names it -> the
// server restarts -> the name is still used in chat and in the orders feed, the likes total is
// kept, the host page logs no error -> End -> the sale is closed: a buy is refused with a typed
// reason.
//
// Env: SELLCAST_BIN, SELLCAST_HTTP_PORT (18700), CHROMIUM, SHOW_DEADLINE_MS (150000). Prints
// `RESULT {json}` and exits non-zero on the first failed expectation.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { writeClip } from './y4m.mjs';
import { fail, waitFor, repo, ServerProcess, launchBrowser, watchCsp, reportScenario } from './lib.mjs';

const HTTP_PORT = Number(process.env.SELLCAST_HTTP_PORT || 18700);
const base = `http://127.0.0.1:${HTTP_PORT}`;
const ROOM = 'lifecycle';
const DEADLINE_MS = Number(process.env.SHOW_DEADLINE_MS || 150_000);
const PHONE = { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, deviceScaleFactor: 3 };
const shots = path.join(repo, 'target/screenshots');
const result = {};
const cspViolations = [];
const pageErrors = [];
let server = null;

async function main() {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sellcast-show-'));
  const clip = path.join(tmp, 'clip.y4m');
  writeClip(clip, 300);
  fs.mkdirSync(shots, { recursive: true });
  setTimeout(() => {
    console.error(`SHOW FAILED: scenario exceeded ${DEADLINE_MS} ms (server log in ${tmp})`);
    server?.kill();
    process.exit(1);
  }, DEADLINE_MS).unref();
  server = new ServerProcess({ tmp, port: HTTP_PORT });
  await server.start();
  const browser = await launchBrowser(clip);
  await reportScenario({ tmp, server, browser, result }, () => run(browser));
}

async function page(browser, options, who) {
  const ctx = await browser.newContext(options);
  const p = await ctx.newPage();
  watchCsp(p, cspViolations);
  p.on('pageerror', e => { pageErrors.push(`${who}: ${e.message}`); console.error(`${who} page error:`, e.message); });
  p.on('console', m => { if (m.type() === 'error' && !/Failed to load resource|ERR_CONNECTION_REFUSED|net::/.test(m.text())) pageErrors.push(`${who} console: ${m.text()}`); });
  return p;
}

async function run(browser) {
  const host = await page(browser, { viewport: { width: 1280, height: 800 } }, 'host');
  await host.goto(`${base}/host/${ROOM}`);
  await waitFor('host idle', () => host.evaluate(() => document.body.dataset.state === 'idle'));
  const token = await host.evaluate(() => window.sellcast.state.token);
  const product = await api('POST', `/api/rooms/${ROOM}/products`, token, { title: 'Glow serum', price_minor: 2500, currency: 'EUR', stock: 40 });
  await setUpShow(host);
  const saleId = await startSale(host, token, product.id);

  const phone = await page(browser, PHONE, 'phone');
  await phone.goto(`${base}/watch/${ROOM}`);
  await preShow(phone);
  await goLive(host, phone);
  await joinedBanner(browser, phone);
  await nameChatBuy(host, phone, saleId);
  await restart(host, phone);
  await endClosesSales(host, phone, token, saleId);
  if (cspViolations.length) fail(`the pages broke their Content-Security-Policy: ${cspViolations.join(' | ')}`);
  result.csp_violations = cspViolations.length;
  if (pageErrors.length) fail(`the pages logged errors: ${pageErrors.join(' | ')}`);
  result.page_errors = pageErrors.length;
}

async function api(method, pathname, token, body) {
  const r = await fetch(`${base}${pathname}`, {
    method,
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await r.text();
  if (!r.ok) fail(`${method} ${pathname} answered ${r.status}: ${text}`);
  return JSON.parse(text);
}

// Before going live: the Show form (title, a start 5 minutes ahead, an avatar) and the name.
async function setUpShow(host) {
  const startsAt = Date.now() + 5 * 60_000 + 30_000;
  await host.fill('#show-title-input', 'Spring drop: serums and oils');
  await host.evaluate(ms => {
    const d = new Date(ms);
    const pad = n => String(n).padStart(2, '0');
    document.getElementById('show-start').value = `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
  }, startsAt);
  await host.fill('#show-avatar', '/static/avatar.svg');
  await host.click('#show-form button[type=submit]');
  await waitFor('the show is saved', () => host.evaluate(() => /Saved/.test(document.getElementById('show-saved').textContent)));
  // A refused avatar is a typed error shown on the console, and nothing changes.
  await host.fill('#show-avatar', 'javascript:alert(1)');
  await host.click('#show-form button[type=submit]');
  const refused = await waitFor('the bad avatar is refused', () => host.evaluate(() => /^invalid: avatar/.test(document.getElementById('message').textContent) && document.getElementById('message').textContent));
  await host.fill('#show-avatar', '/static/avatar.svg');
  await host.fill('#host-name', 'Hana Store');
  await host.click('#name-form button[type=submit]');
  await waitFor('the host name is saved', () => host.evaluate(() => /Hana Store/.test(document.getElementById('message').textContent)));
  const show = await api('GET', `/api/rooms/${ROOM}/show`);
  if (show.title !== 'Spring drop: serums and oils' || show.host_name !== 'Hana Store' || show.avatar_url !== '/static/avatar.svg' || !show.starts_at_ms) {
    fail(`GET /show does not have the show as set: ${JSON.stringify(show)}`);
  }
  result.setup = { public_read: show, bad_avatar: refused };
}

async function startSale(host, token, productId) {
  const now = Date.now();
  await api('POST', `/api/rooms/${ROOM}/frames`, token, { type: 'pin', product_ids: [productId] });
  await api('POST', `/api/rooms/${ROOM}/frames`, token, { type: 'start_sale', product_id: productId, price_minor: 1990, stock: 10, per_user_limit: 1, starts_at_ms: now - 1000, ends_at_ms: now + 600_000 });
  const { sales } = await api('GET', `/api/rooms/${ROOM}/products`);
  return sales[0].id;
}

// Is the element what a tap at its centre reaches?
function onTop(p, selector) {
  return p.evaluate(sel => {
    const e = document.querySelector(sel);
    if (!e || e.hidden) return { ok: false, why: 'missing or hidden' };
    const r = e.getBoundingClientRect();
    const at = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
    return { ok: !!at && (at === e || e.contains(at)), at: at ? `${at.tagName}#${at.id}` : null };
  }, selector);
}

const header = p => p.evaluate(() => {
  const box = id => { const e = document.getElementById(id); const r = e.getBoundingClientRect(); return { shown: !e.hidden && r.width > 0 && r.height > 0, top: r.top, bottom: r.bottom, left: r.left, right: r.right, text: e.textContent }; };
  const avatar = document.getElementById('host-avatar');
  return { name: box('host-name'), title: box('show-title'), avatar: { ...box('host-avatar'), loaded: avatar.complete && avatar.naturalWidth > 0 } };
});

// The pre-show page: the title and a countdown that counts down, the header with avatar and name.
async function preShow(phone) {
  const first = await waitFor('the phone shows the pre-show countdown', () => phone.evaluate(() => {
    const text = document.getElementById('waiting-text').textContent;
    const title = document.getElementById('preshow-title');
    return document.body.dataset.state === 'waiting' && /^Starts in \d+:\d\d$/.test(text) && !document.getElementById('preshow').hidden
      && { text, title: title.textContent, host: document.getElementById('preshow-host').textContent };
  }));
  const seconds = t => { const [m, s] = t.replace('Starts in ', '').split(':').map(Number); return m * 60 + s; };
  if (first.title !== 'Spring drop: serums and oils') fail(`pre-show title: ${JSON.stringify(first)}`);
  if (seconds(first.text) < 240 || seconds(first.text) > 360) fail(`the countdown says ${first.text} for a start about 5 minutes away`);
  const later = await waitFor('the countdown counts down', () => phone.evaluate(() => document.getElementById('waiting-text').textContent), 5_000)
    .then(async () => waitFor('a lower count', async () => {
      const t = await phone.evaluate(() => document.getElementById('waiting-text').textContent);
      return seconds(t) < seconds(first.text) && t;
    }, 5_000));
  const h = await waitFor('the header shows the host', async () => {
    const v = await header(phone);
    return v.name.shown && v.name.text === 'Hana Store' && v.title.shown && v.avatar.shown && v.avatar.loaded && v;
  });
  const top = await onTop(phone, '#waiting-text');
  if (!top.ok) fail(`the countdown is under something: ${JSON.stringify(top)}`);
  if (h.avatar.right > 390 || h.title.right > 390) fail(`the header runs off the phone screen: ${JSON.stringify(h)}`);
  await phone.screenshot({ path: path.join(shots, 'phone-preshow.png') });
  result.preshow = { countdown: first.text, later, title: first.title, host_line: first.host, header: { name: h.name.text, title: h.title.text } };
}

// Live: the video under the header; the pre-show block is gone, unmute is reachable.
async function goLive(host, phone) {
  await host.click('#go-live');
  await waitFor('host live', () => host.evaluate(() => document.body.dataset.state === 'live'));
  await waitFor('the phone shows the live video', () => phone.evaluate(() =>
    document.body.dataset.state === 'live' && !document.getElementById('live').hidden && document.getElementById('waiting').hidden
      && document.getElementById('video').videoWidth > 0), 30_000);
  const h = await header(phone);
  if (!(h.name.shown && h.title.shown && h.avatar.shown)) fail(`the header is gone when live: ${JSON.stringify(h)}`);
  const unmute = await onTop(phone, '#unmute');
  if (!unmute.ok) fail(`the header covers the unmute control: ${JSON.stringify(unmute)}`);
  const live = await phone.evaluate(() => document.getElementById('live').getBoundingClientRect());
  if (live.top < h.avatar.bottom - 1 && live.left < h.avatar.right) fail('the LIVE badge is under the avatar');
  await phone.screenshot({ path: path.join(shots, 'phone-header.png') });
  result.live = { header: { name: h.name.text, title: h.title.text }, unmute_on_top: true };
}

// A second viewer joins: the phone is told once, by name.
async function joinedBanner(browser, phone) {
  const other = await page(browser, { viewport: { width: 800, height: 600 } }, 'viewer 2');
  await other.goto(`${base}/watch/${ROOM}?name=Bo`);
  const banner = await waitFor('the phone shows who joined', () => phone.evaluate(() => {
    const b = document.getElementById('banner');
    return !b.hidden && /joined/.test(b.textContent) && b.textContent;
  }), 15_000, 50);
  if (!/Guest|Bo/.test(banner)) fail(`the joined banner does not name the viewer: ${banner}`);
  result.joined_banner = banner;
  await other.close();
}

// The viewer names itself, chats, buys; the host sees the name in chat and in the orders feed.
async function nameChatBuy(host, phone, saleId) {
  await phone.tap('#my-name');
  await phone.fill('#name-input', 'Pia');
  await phone.tap('#name-save');
  await waitFor('the phone shows the new name', () => phone.evaluate(() => document.getElementById('my-name-text').textContent === 'Pia'));
  const size = await phone.locator('#my-name').boundingBox();
  if (size.height < 44) fail(`the name control is ${size.width}x${size.height}`);
  await phone.fill('#chat-input', 'hello from Pia');
  await phone.press('#chat-input', 'Enter');
  await hostSees(host, 'chat', 'hello from Pia');
  for (let i = 0; i < 3; i++) await phone.tap('#heart');
  await waitFor('the likes are counted', () => host.evaluate(() => Number(document.getElementById('likes').textContent) >= 3));
  await waitFor('the phone can buy', async () => (await phone.locator(`.card button.buy[data-sale-id="${saleId}"]:not([disabled])`).count()) === 1);
  await phone.tap(`.card button.buy[data-sale-id="${saleId}"]`);
  await waitFor('the order is confirmed', () => phone.evaluate(() => /Order #\d+ confirmed/.test(document.getElementById('toast').textContent)));
  await hostSees(host, 'order', 'Pia bought');
  result.name = { chat: 'Pia', feed: 'Pia' };
}

async function hostSees(host, what, text) {
  const selector = what === 'chat' ? '#chat li' : '#orders li';
  return waitFor(`the host sees ${what} "${text}"`, () => host.evaluate(([sel, t]) =>
    [...document.querySelectorAll(sel)].some(li => (li.querySelector('b')?.textContent === 'Pia' || sel === '#orders li') && li.textContent.includes(t)), [selector, text]), 15_000);
}

// A restart keeps the name (chat, orders feed) and the likes; the host page logs nothing.
async function restart(host, phone) {
  const likes = Number(await host.evaluate(() => document.getElementById('likes').textContent));
  await server.stop('SIGINT');
  await server.start();
  await waitFor('host live again', () => host.evaluate(() => document.body.dataset.state === 'live'), 60_000, 200);
  await waitFor('phone live again', () => phone.evaluate(() => document.body.dataset.state === 'live'), 60_000, 200);
  await waitFor('the feed still names Pia after the restart', () => host.evaluate(() =>
    [...document.querySelectorAll('#orders li')].some(li => / Pia bought /.test(li.textContent))), 15_000);
  await waitFor('the phone can chat again', () => phone.evaluate(() => window.sellcast.state.me !== null));
  await phone.fill('#chat-input', 'back after the restart');
  await phone.press('#chat-input', 'Enter');
  await waitFor('the host sees the name in chat after the restart', () => host.evaluate(() => [...document.querySelectorAll('#chat li')]
    .some(li => li.querySelector('b')?.textContent === 'Pia' && li.textContent.includes('back after the restart'))), 20_000);
  const after = await waitFor('the likes are kept', async () => {
    const n = Number(await host.evaluate(() => document.getElementById('likes').textContent));
    return n >= likes && n;
  }, 10_000);
  result.restart = { likes_before: likes, likes_after: after, name_in_chat: 'Pia', name_in_feed: 'Pia' };
}

// End closes the sale on the server: the product bar says so, and a buy is refused.
async function endClosesSales(host, phone, token, saleId) {
  await host.click('#end');
  await host.click('#confirm button.yes');
  await waitFor('phone says the show ended', () => phone.evaluate(() => document.body.dataset.state === 'ended'), 15_000);
  const { sales } = await api('GET', `/api/rooms/${ROOM}/products`);
  const sale = sales.find(s => s.id === saleId);
  if (!sale?.ended_at_ms) fail(`End left the sale open on the server: ${JSON.stringify(sale)}`);
  const q = new URLSearchParams({ room: ROOM, role: 'viewer', name: 'Late' });
  const late = (await (await fetch(`${base}/api/dev/token?${q}`)).json()).token;
  const answer = await api('POST', `/api/rooms/${ROOM}/frames`, late, { type: 'buy', sale_id: saleId, qty: 1, idempotency_key: 'late-1' });
  const rejected = answer.find(f => f.type === 'buy_rejected');
  if (rejected?.reason !== 'sale_not_active') fail(`a buy after End: ${JSON.stringify(answer)}`);
  result.end = { sale_ended_at_ms: sale.ended_at_ms, buy_after_end: rejected.reason };
}

main().catch(e => { console.error(`SHOW FAILED: ${e.stack || e.message}`); process.exit(1); });
