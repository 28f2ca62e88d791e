// The embeddable player on a merchant's page: a page served from ANOTHER origin (a second tiny
// HTTP server, port SELLCAST_HTTP_PORT+1) loads /embed.js from the sellcast server with one
// script tag and a <sellcast-player>; the player plays the host's show (decodes video) and a
// viewer buys the highlighted product (a double tap is one order). The server allows that origin
// with --allow-origin (SELLCAST_ALLOW_ORIGINS); a third origin (port +2), not allowed, cannot
// load the player or read the room (its browser gets no CORS headers). The iframe form
// (/embed/{room}) may be framed by the allowed origin only.
//
// Env: SELLCAST_BIN, SELLCAST_HTTP_PORT (18530), CHROMIUM. Prints `RESULT {json}`; exits
// non-zero on the first failed expectation.
import http from 'node:http';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ServerProcess, chromiumArgs, fail, repo, waitFor } from './lib.mjs';
import { chromium } from 'playwright-core';
import { writeClip } from './y4m.mjs';

const HTTP_PORT = Number(process.env.SELLCAST_HTTP_PORT || 18530);
const ROOM = 'embed';
const SHOP = `http://127.0.0.1:${HTTP_PORT + 1}`;
const ELSEWHERE = `http://127.0.0.1:${HTTP_PORT + 2}`;
const result = {};

// A merchant's web server: one product page per path, no CSP of its own.
function merchantSite(port, pages) {
  const server = http.createServer((req, res) => {
    const body = pages[req.url.split('?')[0]];
    res.writeHead(body ? 200 : 404, { 'content-type': 'text/html; charset=utf-8' });
    res.end(body || 'not found');
  });
  return new Promise(resolve => server.listen(port, '127.0.0.1', () => resolve(server)));
}

async function json(url, init) {
  const r = await fetch(url, init);
  const body = await r.json();
  if (!r.ok) fail(`${init?.method || 'GET'} ${url}: ${r.status} ${JSON.stringify(body)}`);
  return body;
}

async function devToken(base, role, name) {
  const q = new URLSearchParams({ room: ROOM, role, name, identity: `${role}-${name}` });
  return (await json(`${base}/api/dev/token?${q}`)).token;
}

// The host's catalog, through the API: a product, highlighted, on a flash sale of 5.
async function prepareSale(base, hostToken) {
  const auth = { authorization: `Bearer ${hostToken}`, 'content-type': 'application/json' };
  const product = await json(`${base}/api/rooms/${ROOM}/products`, { method: 'POST', headers: auth,
    body: JSON.stringify({ title: 'Linen shirt', price_minor: 4900, currency: 'EUR', stock: 20 }) });
  const frame = body => json(`${base}/api/rooms/${ROOM}/frames`, { method: 'POST', headers: auth, body: JSON.stringify(body) });
  await frame({ type: 'pin', product_ids: [product.id] });
  const now = Date.now();
  await frame({ type: 'start_sale', product_id: product.id, price_minor: 2900, stock: 5, per_user_limit: 2, starts_at_ms: now - 1000, ends_at_ms: now + 3_600_000 });
  return product.id;
}

async function stockLeft(base, productId) {
  const list = await json(`${base}/api/rooms/${ROOM}/products`);
  return list.sales.find(s => s.product_id === productId)?.stock_left;
}

// What the player shows, read through its (open) shadow root.
function playerState(page) {
  return page.evaluate(() => {
    const player = document.querySelector('sellcast-player');
    const root = player?.shadowRoot;
    const video = root?.querySelector('video');
    return {
      defined: Boolean(customElements.get('sellcast-player')),
      state: player?.dataset.state ?? null,
      playing: player?.dataset.playing ?? null,
      frames: video?.getVideoPlaybackQuality?.().totalVideoFrames ?? 0,
      width: video?.videoWidth ?? 0,
      buy: root?.querySelector('.buy')?.textContent ?? null,
      buy_enabled: root?.querySelector('.buy') ? !root.querySelector('.buy').disabled : false,
      toast: root?.querySelector('.toast:not([hidden])')?.textContent ?? null,
      orders: window.ordersSeen ?? [],
    };
  });
}

async function main() {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sellcast-embed-'));
  const clip = path.join(tmp, 'clip.y4m');
  writeClip(clip, 150);
  setTimeout(() => { console.error(`EMBED FAILED: over 120 s (server log in ${tmp})`); process.exit(1); }, 120_000).unref();
  process.env.SELLCAST_ALLOW_ORIGINS = SHOP;
  const server = new ServerProcess({ tmp, port: HTTP_PORT });
  await server.start();
  const base = server.base;
  const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || '/usr/bin/chromium', headless: false, args: chromiumArgs(clip) });
  const sites = [];
  try {
    await run(browser, base, sites);
  } catch (e) {
    console.error(`server log kept in ${tmp}`);
    throw e;
  } finally {
    for (const s of sites) s.close();
    await browser.close().catch(() => {});
    await server.stop('SIGINT');
  }
  fs.rmSync(tmp, { recursive: true, force: true });
  console.log(`RESULT ${JSON.stringify(result)}`);
}

async function run(browser, base, sites) {
  // ----- the host goes live from its console, the catalog is prepared over the API -----
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const host = await context.newPage();
  host.on('pageerror', e => console.error('host page error:', e.message));
  await host.goto(`${base}/host/${ROOM}?name=Hana`);
  await waitFor('host idle', () => host.evaluate(() => document.body.dataset.state === 'idle'));
  await host.click('#go-live');
  await waitFor('host live', () => host.evaluate(() => document.body.dataset.state === 'live'), 30_000);
  const productId = await prepareSale(base, await devToken(base, 'host', 'Hana'));

  // ----- the merchant's product page, on another origin, embeds the player -----
  const viewerToken = await devToken(base, 'viewer', 'Shopper');
  const snippet = `<script type="module" src="${base}/embed.js"></script>\n<sellcast-player room="${ROOM}" token="${viewerToken}"></sellcast-player>`;
  const shopPage = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Linen shirt · Shop</title></head>
<body><h1>Linen shirt</h1><div style="width:360px;height:640px">${snippet}</div>
<script>window.ordersSeen = []; document.addEventListener('sellcast-order', e => window.ordersSeen.push(e.detail.orderId));</script>
<iframe id="framed" title="live show" width="360" height="640" src="${base}/embed/${ROOM}#token=${viewerToken}"></iframe></body></html>`;
  const elsewherePage = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Elsewhere</title></head><body>
<script type="module">
  window.loaded = await import('${base}/embed.js').then(() => 'loaded', () => 'refused');
  window.read = await fetch('${base}/api/rooms/${ROOM}').then(r => 'read ' + r.status, () => 'refused');
</script>
<iframe id="framed" title="live show" src="${base}/embed/${ROOM}"></iframe></body></html>`;
  sites.push(await merchantSite(HTTP_PORT + 1, { '/shirt': shopPage }));
  sites.push(await merchantSite(HTTP_PORT + 2, { '/page': elsewherePage }));

  const shop = await context.newPage();
  shop.on('pageerror', e => console.error('shop page error:', e.message));
  const cors = [];
  // The shop page's own requests (the iframe's player, same origin as the server, makes its own).
  shop.on('response', r => {
    if (r.url().startsWith(base) && r.frame() === shop.mainFrame()) cors.push({ url: r.url().replace(base, ''), method: r.request().method(), status: r.status(), allow: r.headers()['access-control-allow-origin'] ?? null });
  });
  await shop.goto(`${SHOP}/shirt`);
  const playing = await waitFor('the embedded player decodes video', async () => {
    const s = await playerState(shop);
    return s.playing === 'yes' && s.frames > 10 && s.width > 0 ? s : { pending: s };
  }, 30_000);
  result.playing = { frames: playing.frames, width: playing.width, state: playing.state };
  await waitFor('the player offers the sale', async () => {
    const s = await playerState(shop);
    return s.buy === 'Buy' && s.buy_enabled ? s : { pending: s };
  });

  // ----- a double tap on Buy is one purchase intent: one order -----
  const before = await stockLeft(base, productId);
  await shop.evaluate(() => {
    const button = document.querySelector('sellcast-player').shadowRoot.querySelector('.buy');
    button.click();
    button.click();
  });
  const bought = await waitFor('the order is confirmed in the player', async () => {
    const s = await playerState(shop);
    return s.orders.length > 0 && /Order #\d+ confirmed/.test(s.toast || '') ? s : { pending: s };
  });
  const after = await waitFor('the stock went down', async () => {
    const left = await stockLeft(base, productId);
    return left < before ? { left } : { pending: left };
  });
  result.buy = { orders_seen: bought.orders, toast: bought.toast, stock_before: before, stock_after: after.left };
  await fs.promises.mkdir(path.join(repo, 'target/screenshots'), { recursive: true });
  await shop.screenshot({ path: path.join(repo, 'target/screenshots/embed_player.png') });

  const whep = cors.find(c => c.method === 'POST' && /^\/whep\/[^/]+$/.test(c.url));
  const reads = cors.filter(c => c.url === `/api/rooms/${ROOM}`);
  result.cors = {
    whep_status: whep?.status ?? null,
    whep_allow_origin: whep?.allow ?? null,
    room_read_allow_origin: reads[0]?.allow ?? null,
    module_allow_origin: cors.find(c => c.url === '/embed.js')?.allow ?? null,
  };

  // ----- the iframe form: framed by the allowed origin -----
  const framed = await waitFor('the iframe player decodes video', async () => {
    const frame = shop.frames().find(f => f.url().startsWith(`${base}/embed/`));
    if (!frame) return { pending: 'no frame' };
    const s = await frame.evaluate(() => {
      const v = document.querySelector('sellcast-player')?.shadowRoot?.querySelector('video');
      return { frames: v?.getVideoPlaybackQuality?.().totalVideoFrames ?? 0, token_in_url: location.href.includes('token') };
    });
    return s.frames > 10 ? s : { pending: s };
  }, 30_000);
  result.iframe_allowed = framed;

  // ----- an origin not allowed gets nothing -----
  const other = await context.newPage();
  const blockedFrames = [];
  other.on('console', m => { if (/frame-ancestors|Refused to frame/i.test(m.text())) blockedFrames.push(m.text()); });
  await other.goto(`${ELSEWHERE}/page`);
  const refused = await waitFor('the other origin is refused', async () => {
    const s = await other.evaluate(() => ({ loaded: window.loaded ?? null, read: window.read ?? null }));
    return s.loaded && s.read ? s : { pending: s };
  });
  await waitFor('the other origin may not frame the player', () => blockedFrames.length > 0 || { pending: 'no frame-ancestors refusal yet' });
  result.elsewhere = { module: refused.loaded, room_read: refused.read, framing_refused: blockedFrames.length > 0 };
  await context.close();
}

main().catch(e => { console.error(`EMBED FAILED: ${e.stack || e}`); process.exit(1); });
