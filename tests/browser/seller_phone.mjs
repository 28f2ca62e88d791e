// A seller going live from a phone (390x844, touch), a viewer on a phone, and the same seller's
// console at 1280x800 with its viewer preview, against the real server. Issue 13: defect 16
// (video shape), the seller's phone layout, the viewer preview, sales by product with
// conversion, and axe-core on both pages. Run inside private namespaces (run.sh).
//
// In order:
// - The camera is a 1280x720 landscape fake device. The console defaults to portrait; at 720p
//   the camera track is cropped to 9:16 (405x720: a 720-row camera gives no more than 720 rows);
//   switching to landscape before going live re-applies the constraints (1280x720), and back.
// - Phone layout: the camera preview fills the screen, Go live is on it and on top, the tab bar's
//   five tabs open their sheets; every visible control of each sheet is at least 44x44 px and
//   inside the screen; from the sheets the seller adds a product, highlights it and starts a sale.
// - Go live from the phone. A phone viewer receives portrait video (decoded height > width, about
//   9:16), filling its screen; it chats. axe-core: the host before going live and live, the
//   viewer live with a pinned product and chat: no serious or critical violation.
// - One order: the host's Sales panel shows 1 order and conversion 100 % (1 order / peak 1 viewer).
// - On the phone, "Viewer preview" fills the screen with the live watch page, and closes.
// - At 1280x800 the console opens "Viewer preview": the watch page in a same-origin iframe plays
//   the show with the product card; the server counts the preview as a viewer, the console does not.
// - End, landscape, Go live again: the phone viewer gets landscape video, letterboxed between the
//   header and the product bar.
//
// Env: SELLCAST_BIN, SELLCAST_HTTP_PORT (18800), SELLCAST_WEB_DIR, CHROMIUM. Screenshots in
// target/screenshots/: host-phone-setup, host-phone-products, host-phone-live, host-preview,
// phone-portrait-video, phone-landscape-video (.png). Prints
// `RESULT {json}`; exits non-zero on the first failed expectation.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fail, waitFor, repo, ServerProcess, launchBrowser, watchCsp, reportScenario } from './lib.mjs';
import { seriousViolations, describeViolations } from './a11y.mjs';

const HTTP_PORT = Number(process.env.SELLCAST_HTTP_PORT || 18800);
const base = `http://127.0.0.1:${HTTP_PORT}`;
const ROOM = 'phone-seller';
const DEADLINE_MS = Number(process.env.E2E_DEADLINE_MS || 200_000);
const PHONE = { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, deviceScaleFactor: 2 };
const CAMERA = { width: 1280, height: 720 };
const shots = path.join(repo, 'target/screenshots');
const result = { axe: {} };
const cspViolations = [];
let server = null;

async function main() {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sellcast-seller-'));
  const clip = path.join(tmp, 'camera.y4m');
  writeCameraClip(clip, CAMERA.width, CAMERA.height, 20);
  fs.mkdirSync(shots, { recursive: true });
  server = new ServerProcess({ tmp, port: HTTP_PORT });
  setTimeout(() => {
    console.error(`SELLER PHONE FAILED: scenario exceeded ${DEADLINE_MS} ms (server log in ${tmp})`);
    server.kill();
    process.exit(1);
  }, DEADLINE_MS).unref();
  await server.start();
  const browser = await launchBrowser(clip);
  await reportScenario({ tmp, server, browser, result }, () => run(browser));
}

// A landscape camera: a moving diagonal texture with a bright square in the middle (the
// "product"), neutral colour. `frames` frames, looped by Chromium.
function writeCameraClip(file, width, height, frames) {
  const fd = fs.openSync(file, 'w');
  fs.writeSync(fd, `YUV4MPEG2 W${width} H${height} F30:1 Ip A1:1 C420jpeg\n`);
  const ySize = width * height;
  const frame = Buffer.alloc(ySize + ySize / 2);
  frame.fill(128, ySize);
  for (let f = 0; f < frames; f++) {
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        const inProduct = Math.abs(x - width / 2) < height / 6 && Math.abs(y - height / 2) < height / 6;
        frame[y * width + x] = inProduct ? 230 : 30 + ((x + y + f * 8) % 120);
      }
    }
    fs.writeSync(fd, 'FRAME\n');
    fs.writeSync(fd, frame);
  }
  fs.closeSync(fd);
}

const shot = (page, name) => page.screenshot({ path: path.join(shots, `${name}.png`) });
const bodyState = page => page.evaluate(() => document.body.dataset.state);

async function devToken(role, name, identity) {
  const q = new URLSearchParams({ room: ROOM, role, name, identity });
  return (await (await fetch(`${base}/api/dev/token?${q}`)).json()).token;
}

async function frame(token, body) {
  const r = await fetch(`${base}/api/rooms/${ROOM}/frames`, {
    method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` }, body: JSON.stringify(body),
  });
  return r.json();
}

async function axe(page, where) {
  const bad = await seriousViolations(page);
  result.axe[where] = bad.length;
  if (bad.length) fail(describeViolations(bad, where));
}

// The camera track's settings and what the preview <video> decodes.
const cameraNow = page => page.evaluate(() => {
  const track = window.sellcast.media()?.getVideoTracks()[0];
  const v = document.getElementById('preview');
  const s = track?.getSettings() || {};
  return { width: s.width, height: s.height, preview: [v.videoWidth, v.videoHeight], text: document.getElementById('capture-size').textContent };
});

async function cameraIs(page, what, width, height) {
  return waitFor(`the camera sends ${width}x${height} (${what})`, async () => {
    const c = await cameraNow(page);
    return c.width === width && c.height === height && c.preview[0] === width && c.preview[1] === height ? c : { pending: c };
  }, 10_000);
}

// ----- the scenario -----
async function run(browser) {
  const hostCtx = await browser.newContext(PHONE);
  const host = await hostCtx.newPage();
  watchCsp(host, cspViolations);
  host.on('pageerror', e => console.error('host page error:', e.message));
  await host.goto(`${base}/host/${ROOM}?name=Sasha`);
  await waitFor('host console idle', async () => (await bodyState(host)) === 'idle');

  await videoShapeOnTheHost(host);
  result.phone_layout = await phoneLayout(host);
  await prepareFromThePhone(host);
  await host.tap('.sheet-tabs [data-open="products"]'); // close the sheet: back to the camera
  await waitFor('no sheet open', () => host.evaluate(() => !document.body.dataset.sheet));
  await axe(host, 'host phone before live');

  await host.tap('#go-live');
  await waitFor('the phone host is live', async () => (await bodyState(host)) === 'live');
  await shot(host, 'host-phone-live');
  await axe(host, 'host phone live');

  const viewerCtx = await browser.newContext(PHONE);
  const viewer = await viewerCtx.newPage();
  watchCsp(viewer, cspViolations);
  viewer.on('pageerror', e => console.error('viewer page error:', e.message));
  await viewer.goto(`${base}/watch/${ROOM}?name=Vera`);
  result.viewer_portrait = await viewerVideo(viewer, 'portrait');
  if (!(result.viewer_portrait.height > result.viewer_portrait.width)) fail(`the viewer's video is not portrait: ${JSON.stringify(result.viewer_portrait)}`);
  if (Math.abs(result.viewer_portrait.width / result.viewer_portrait.height - 9 / 16) > 0.03) fail(`the viewer's video is not 9:16: ${JSON.stringify(result.viewer_portrait)}`);
  if (!result.viewer_portrait.fills_screen) fail(`portrait video does not fill the phone: ${JSON.stringify(result.viewer_portrait)}`);
  await waitFor('the viewer sees the highlighted product', () => viewer.locator('.card').count());
  await viewer.fill('#chat-input', 'Does it come in blue?');
  await viewer.press('#chat-input', 'Enter');
  await waitFor('the viewer\'s chat shows', () => viewer.locator('#chat li:has-text("Does it come in blue?")').count());
  await shot(viewer, 'phone-portrait-video');
  await axe(viewer, 'viewer live with pinned product and chat');

  result.conversion = await salesAndConversion(host);
  result.phone_preview = await phonePreview(host);
  result.preview = await viewerPreview(browser);
  result.viewer_landscape = await landscapeShow(host, viewer);
  if (cspViolations.length) fail(`a page broke its Content-Security-Policy: ${cspViolations.join(' | ')}`);
  result.csp_violations = 0;
}

// Defect 16 on the host: portrait by default, the size the camera really gives, and a change of
// shape before going live applied to the open camera.
async function videoShapeOnTheHost(host) {
  const defaults = await host.evaluate(() => ({ shape: document.getElementById('shape').value, quality: document.getElementById('resolution').value }));
  if (defaults.shape !== 'portrait') fail(`the console must default to portrait: ${JSON.stringify(defaults)}`);
  await host.tap('.sheet-tabs [data-open="setup"]');
  await host.selectOption('#resolution', '720');
  const portrait = await cameraIs(host, 'portrait 720p', 405, 720);
  await host.selectOption('#shape', 'landscape');
  const landscape = await cameraIs(host, 'landscape 720p, applied before going live', 1280, 720);
  await host.selectOption('#shape', 'portrait');
  await cameraIs(host, 'portrait again', 405, 720);
  await shot(host, 'host-phone-setup');
  await host.tap('.sheet-tabs [data-open="setup"]');
  result.host_camera = { defaults, portrait_720p: portrait, landscape_720p: landscape };
}

// Geometry of the console at 390x844: the preview fills the screen, Go live is reachable and on
// top, and each tab opens its sheet with every visible control at least 44x44 px on screen.
async function phoneLayout(host) {
  const stage = await host.evaluate(() => {
    const v = document.getElementById('preview').getBoundingClientRect();
    const go = document.getElementById('go-live').getBoundingClientRect();
    const hit = document.elementFromPoint(go.left + go.width / 2, go.top + go.height / 2);
    return {
      preview: [v.left, v.top, v.width, v.height].map(Math.round),
      object_fit: getComputedStyle(document.getElementById('preview')).objectFit,
      go_live: [go.width, go.height].map(Math.round),
      go_live_on_top: hit === document.getElementById('go-live'),
      page_scrolls: document.scrollingElement.scrollHeight > innerHeight,
    };
  });
  if (stage.preview.join() !== '0,0,390,844' || stage.object_fit !== 'cover') fail(`the camera preview does not fill the phone: ${JSON.stringify(stage)}`);
  if (!stage.go_live_on_top || stage.go_live[0] < 44 || stage.go_live[1] < 44) fail(`Go live is not a reachable 44 px control: ${JSON.stringify(stage)}`);
  if (stage.page_scrolls) fail(`the phone console scrolls: ${JSON.stringify(stage)}`);
  const sheets = {};
  for (const name of ['setup', 'products', 'sales', 'orders', 'chat']) {
    await host.tap(`.sheet-tabs [data-open="${name}"]`);
    sheets[name] = await waitFor(`the ${name} sheet opens`, () => sheetGeometry(host, name));
    if (sheets[name].small.length) fail(`controls under 44x44 px in the ${name} sheet: ${JSON.stringify(sheets[name].small)}`);
    if (sheets[name].off_screen.length) fail(`controls off screen in the ${name} sheet: ${JSON.stringify(sheets[name].off_screen)}`);
    if (!sheets[name].tab_bar_visible) fail(`the ${name} sheet covers the tab bar`);
  }
  await host.tap('.sheet-tabs [data-open="chat"]');
  await waitFor('a second tap closes the sheet', () => host.evaluate(() => !document.body.dataset.sheet));
  return { ...stage, sheets };
}

// The sheet `name` is open: its panels are shown; the sizes of its visible controls.
function sheetGeometry(host, name) {
  return host.evaluate(name => {
    if (document.body.dataset.sheet !== name) return { pending: 'not open' };
    const panels = [...document.querySelectorAll(`body [data-sheet="${name}"]`)].filter(p => !p.hidden);
    const shown = panels.filter(p => p.getBoundingClientRect().height > 0);
    if (!shown.length) return { pending: 'no panel shown' };
    const others = [...document.querySelectorAll("body [data-sheet]")].filter(p => p.dataset.sheet !== name && p.getBoundingClientRect().height > 0 && p.id !== 'panel-setup');
    const controls = shown.flatMap(p => [...p.querySelectorAll('button, input, select, textarea')])
      .filter(c => { const r = c.getBoundingClientRect(); return r.width > 0 && r.height > 0 && getComputedStyle(c).visibility !== 'hidden'; });
    const label = c => c.id || c.name || c.className || c.textContent.trim().slice(0, 20);
    const sheet = (name === 'chat' ? document.querySelector('.chat-column') : document.querySelector('.console')).getBoundingClientRect();
    const small = [];
    const offScreen = [];
    for (const c of controls) {
      const r = c.getBoundingClientRect();
      if (r.width < 44 || r.height < 44) small.push(`${label(c)} ${Math.round(r.width)}x${Math.round(r.height)}`);
      // Inside the screen, or inside the sheet's own scroll area (reachable by scrolling it).
      if (r.left < 0 || r.right > innerWidth + 0.5 || (r.top < 0 && r.bottom < sheet.top)) offScreen.push(label(c));
    }
    const tabs = document.querySelector('.sheet-tabs').getBoundingClientRect();
    const tabHit = document.elementFromPoint(tabs.left + 20, tabs.top + tabs.height / 2);
    return {
      controls: controls.length,
      small,
      off_screen: offScreen,
      other_panels_shown: others.map(p => p.id),
      sheet_top: Math.round(sheet.top),
      tab_bar_visible: Boolean(tabHit?.closest('.sheet-tabs')),
    };
  }, name);
}

// The seller prepares from the phone: a product, its highlight and a sale, each from its sheet.
async function prepareFromThePhone(host) {
  await host.tap('.sheet-tabs [data-open="products"]');
  await host.fill('#product-form [name=title]', 'Linen shirt');
  await host.fill('#product-form [name=price]', '40.00');
  await host.fill('#product-form [name=stock]', '20');
  await host.tap('#product-form button[type=submit]');
  const item = '#product-list li:has-text("Linen shirt")';
  await waitFor('the product is listed', () => host.locator(item).count());
  await host.tap(`${item} button.highlight`);
  await waitFor('the product is highlighted', () => host.evaluate(() => document.querySelector('#product-list button.highlight')?.getAttribute('aria-pressed') === 'true'));
  await host.fill(`${item} .sale-form [name=stock]`, '5');
  await host.tap(`${item} .sale-form button.start-sale`);
  await waitFor('the sale runs', () => host.locator('#product-list .running:not([hidden]) .countdown').count());
  const controls = await sheetGeometry(host, 'products');
  if (controls.small.length) fail(`controls under 44x44 px with a running sale: ${JSON.stringify(controls.small)}`);
  await shot(host, 'host-phone-products');
  result.prepared_on_phone = { product: true, highlight: true, sale: true };
}

// The viewer's decoded video size once frames flow, and how the <video> sits on the screen.
async function viewerVideo(viewer, shape) {
  return waitFor(`the viewer plays ${shape} video`, () => viewer.evaluate(shape => {
    const v = document.getElementById('video');
    if (document.body.dataset.state !== 'live' || !v.videoWidth || document.body.dataset.videoShape !== shape) {
      return { pending: { state: document.body.dataset.state, size: [v.videoWidth, v.videoHeight], shape: document.body.dataset.videoShape } };
    }
    const r = v.getBoundingClientRect();
    // What sits under the picture: the product bar, else the chat.
    const bar = (document.querySelector('.products:not([hidden]) .card') ? document.querySelector('.products') : document.querySelector('.side')).getBoundingClientRect();
    // What sits over it: the badges, and the unmute pill while shown.
    const unmute = document.getElementById('unmute');
    const head = [document.querySelector('.show-head .badges'), unmute.hidden ? null : unmute]
      .filter(Boolean).map(e => e.getBoundingClientRect()).reduce((a, b) => (b.bottom > a.bottom ? b : a));
    // Where the picture is drawn inside the element (object-fit contain leaves bars; cover fills).
    const fit = getComputedStyle(v).objectFit;
    const scale = fit === 'cover' ? Math.max(r.width / v.videoWidth, r.height / v.videoHeight) : Math.min(r.width / v.videoWidth, r.height / v.videoHeight);
    const drawnH = v.videoHeight * scale;
    const picture = { top: r.top + (r.height - drawnH) / 2, bottom: r.top + (r.height + drawnH) / 2 };
    return {
      width: v.videoWidth,
      height: v.videoHeight,
      object_fit: fit,
      element: [r.left, r.top, r.width, r.height].map(Math.round),
      fills_screen: fit === 'cover' && Math.round(r.width) === innerWidth && Math.round(r.height) === innerHeight,
      picture_top: Math.round(picture.top),
      picture_bottom: Math.round(picture.bottom),
      below_header: picture.top >= head.bottom - 0.5,
      above_product_bar: picture.bottom <= bar.top + 0.5,
    };
  }, shape), 30_000, 200);
}

// One order by a buyer over the frames API: the Sales panel shows it with conversion = orders
// over the peak viewers (the phone viewer: 1).
async function salesAndConversion(host) {
  const sales = (await fetch(`${base}/api/rooms/${ROOM}/products`).then(r => r.json())).sales;
  const buyer = await devToken('viewer', 'Bea', 'bea');
  const answer = await frame(buyer, { type: 'buy', sale_id: sales[0].id, qty: 1, idempotency_key: 'bea-1' });
  if (!Array.isArray(answer) || !answer.some(f => f.type === 'order_confirmed')) fail(`the order was not confirmed: ${JSON.stringify(answer)}`);
  await host.tap('.sheet-tabs [data-open="sales"]');
  const row = await waitFor('the Sales panel shows the order and its conversion', () => host.evaluate(() => {
    const tr = document.querySelector('#sales-rows tr');
    const cells = tr ? [...tr.children].map(c => c.textContent) : [];
    const peak = document.getElementById('conversion-peak').textContent;
    return cells[2] === '1' && peak === '1' ? { cells, peak, note: document.getElementById('conversion-note').textContent } : { pending: { cells, peak } };
  }), 15_000);
  if (row.cells[3] !== '100 %') fail(`conversion for 1 order and a peak of 1 viewer: ${JSON.stringify(row)}`);
  await host.tap('.sheet-tabs [data-open="sales"]');
  return row;
}

// On the phone the preview is the whole screen: the watch page at the phone's own size, live,
// with a 44 px way back. Closing it ends its session.
async function phonePreview(host) {
  await host.tap('.sheet-tabs [data-open="setup"]');
  await host.tap('#preview-open');
  const seen = await waitFor('the phone preview plays full screen', () => host.evaluate(() => {
    const box = document.getElementById('viewer-preview').getBoundingClientRect();
    const frame = document.querySelector('#viewer-preview-frame iframe');
    const f = frame?.getBoundingClientRect();
    const d = frame?.contentDocument;
    const close = document.getElementById('preview-close').getBoundingClientRect();
    const hit = document.elementFromPoint(close.left + close.width / 2, close.top + close.height / 2);
    const value = { box: [box.left, box.top, box.width, box.height].map(Math.round), frame: f && [f.width, f.height].map(Math.round),
      state: d?.body?.dataset.state, close: [close.width, close.height].map(Math.round), close_on_top: hit?.id === 'preview-close' };
    return value.state === 'live' && value.box.join() === '0,0,390,844' ? value : { pending: value };
  }), 30_000, 200);
  if (!seen.close_on_top || seen.close[0] < 44 || seen.close[1] < 44) fail(`the preview's Close is not a reachable 44 px control: ${JSON.stringify(seen)}`);
  await host.tap('#preview-close');
  await host.tap('.sheet-tabs [data-open="setup"]');
  await waitFor('closing the phone preview ends its session', async () => (await (await fetch(`${base}/api/rooms/${ROOM}`)).json()).viewers === 1, 15_000, 200);
  return seen;
}

// The console at 1280x800 opens the viewer preview: a real watch page in a same-origin iframe,
// playing the show with its card; the server counts it, the console does not.
async function viewerPreview(browser) {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const desk = await ctx.newPage();
  watchCsp(desk, cspViolations);
  desk.on('pageerror', e => console.error('desktop host page error:', e.message));
  await desk.goto(`${base}/host/${ROOM}?name=Sasha`);
  await waitFor('desktop console idle', async () => (await bodyState(desk)) === 'idle');
  await desk.click('#preview-open');
  const preview = desk.frameLocator('#viewer-preview-frame iframe');
  const seen = await waitFor('the preview plays the show with its card', () => desk.evaluate(() => {
    const w = document.querySelector('#viewer-preview-frame iframe')?.contentWindow;
    const d = w?.document;
    const v = d?.getElementById('video');
    const ok = d?.body.dataset.state === 'live' && v?.videoWidth > 0 && d.querySelectorAll('.card').length === 1;
    const r = document.querySelector('#viewer-preview-frame').getBoundingClientRect();
    const value = { state: d?.body.dataset.state, size: [v?.videoWidth, v?.videoHeight], muted: v?.muted, cards: d?.querySelectorAll('.card').length, frame: [r.left, r.top, r.width, r.height].map(Math.round) };
    return ok ? value : { pending: value };
  }), 30_000, 200);
  if (!seen.muted) fail('the preview must start muted');
  if (!(seen.size[1] > seen.size[0])) fail(`the preview's video is not portrait: ${JSON.stringify(seen)}`);
  await waitFor('the preview shows the viewer\'s chat', () => preview.locator('#chat li:has-text("Does it come in blue?")').count());
  // Counts: the server has the phone viewer and the preview; the console shows the audience only.
  const counts = await waitFor('the console leaves its preview out of the viewer count', async () => {
    const server = (await (await fetch(`${base}/api/rooms/${ROOM}`)).json()).viewers;
    const shown = Number(await desk.evaluate(() => document.getElementById('viewers').textContent));
    return server === 2 && shown === 1 ? { server, shown } : { pending: { server, shown } };
  }, 15_000, 200);
  await shot(desk, 'host-preview');
  await axe(desk, 'host desktop with the viewer preview open');
  await desk.click('#preview-close');
  await waitFor('closing the preview ends its session', async () => (await (await fetch(`${base}/api/rooms/${ROOM}`)).json()).viewers === 1, 15_000, 200);
  await ctx.close();
  return { ...seen, counts };
}

// End, landscape, Go live: the phone viewer's video is landscape and letterboxed between the
// header and the product bar.
async function landscapeShow(host, viewer) {
  await host.tap('#end');
  await host.tap('#confirm button.yes');
  await waitFor('the show ended', async () => (await bodyState(host)) === 'ended');
  await waitFor('the summary opens on the phone', () => host.evaluate(() => document.body.dataset.sheet === 'sales' && !document.getElementById('summary').hidden));
  await host.tap('.sheet-tabs [data-open="setup"]');
  await host.selectOption('#shape', 'landscape');
  await host.tap('.sheet-tabs [data-open="setup"]');
  await host.tap('#go-live');
  await waitFor('live again, in landscape', async () => (await bodyState(host)) === 'live');
  await cameraIs(host, 'landscape 720p', 1280, 720);
  const seen = await viewerVideo(viewer, 'landscape');
  if (!(seen.width > seen.height) || Math.abs(seen.width / seen.height - 16 / 9) > 0.05) fail(`the viewer's video is not 16:9 landscape: ${JSON.stringify(seen)}`);
  if (seen.object_fit !== 'contain' || !seen.below_header || !seen.above_product_bar) fail(`landscape video is not letterboxed clear of the header and cards: ${JSON.stringify(seen)}`);
  await shot(viewer, 'phone-landscape-video');
  return seen;
}

main().catch(e => { console.error(`SELLER PHONE FAILED: ${e.stack || e.message}`); process.exit(1); });
