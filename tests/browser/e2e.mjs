// Browser end-to-end: a host page with a fake camera (a numbered Y4M clip), three viewer pages,
// real WebRTC through the real server. Run inside a private network namespace (see run.sh).
// Prints `RESULT {json}` and exits non-zero on the first failed expectation.
import { chromium } from 'playwright-core';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeClip, readFrameNumberSource, FPS } from './y4m.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '../..');
const bin = process.env.SELLCAST_BIN || path.join(repo, 'target/debug/sellcast');
const HTTP_PORT = Number(process.env.SELLCAST_HTTP_PORT || 18080);
const base = `http://127.0.0.1:${HTTP_PORT}`;
const ROOM = 'e2e';
const result = {};

function fail(msg) { throw new Error(msg); }
const sleep = ms => new Promise(r => setTimeout(r, ms));

// Poll `fn` until it returns a truthy value; bounded, never a blind sleep.
async function waitFor(what, fn, timeoutMs = 20_000, every = 100) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    try { last = await fn(); if (last) return last; } catch (e) { last = e.message; }
    await sleep(every);
  }
  fail(`timed out waiting for ${what} (last: ${JSON.stringify(last)})`);
}

function percentile(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.round((sorted.length - 1) * p))];
}

async function startServer(tmp) {
  const child = spawn(bin, ['serve', '--http', `127.0.0.1:${HTTP_PORT}`, '--udp-port', '0', '--web-dir', path.join(repo, 'web'), '--db', path.join(tmp, 'sellcast.db')],
    { env: { ...process.env, RUST_LOG: process.env.RUST_LOG || 'info' }, stdio: ['ignore', 'ignore', 'pipe'] });
  const log = fs.createWriteStream(path.join(tmp, 'server.log'));
  child.stderr.pipe(log);
  child.on('exit', code => { if (code !== null && code !== 0) console.error(`server exited with ${code}`); });
  await waitFor('server /healthz', async () => (await fetch(`${base}/healthz`)).ok, 20_000);
  return child;
}

async function inboundStats(page) {
  return page.evaluate(async () => {
    const pc = window.sellcast?.session?.pc;
    if (!pc) return null;
    const out = {};
    (await pc.getStats()).forEach(s => {
      if (s.type === 'inbound-rtp') out[s.kind] = { packets: s.packetsReceived || 0, frames: s.framesDecoded || 0 };
    });
    return out;
  });
}

async function main() {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sellcast-e2e-'));
  const clip = path.join(tmp, 'clip.y4m');
  writeClip(clip, 300);
  const server = await startServer(tmp);
  const profile = fs.mkdtempSync(path.join(tmp, 'profile-'));
  const browser = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: false,
    args: ['--headless=new', '--no-sandbox', '--disable-gpu', '--allow-loopback-in-peer-connection',
      '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream', `--use-file-for-fake-video-capture=${clip}`,
      '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run',
      '--disable-features=WebRtcHideLocalIpsWithMdns', '--autoplay-policy=no-user-gesture-required',
      '--disable-background-timer-throttling', '--disable-renderer-backgrounding', '--disable-backgrounding-occluded-windows'],
  });
  try {
    await run(browser);
  } finally {
    await browser.close().catch(() => {});
    server.kill('SIGINT');
    await new Promise(r => { server.once('exit', r); setTimeout(r, 3000); });
  }
  console.log(`RESULT ${JSON.stringify(result)}`);
}

async function run(browser) {
  // ----- the host goes live -----
  const host = await browser.newPage();
  host.on('pageerror', e => console.error('host page error:', e.message));
  await host.goto(`${base}/host/${ROOM}?name=Hana`);
  await waitFor('host idle', () => host.evaluate(() => document.body.dataset.state === 'idle'));
  await host.click('#go-live');
  await waitFor('host live', () => host.evaluate(() => document.body.dataset.state === 'live'));

  // ----- three viewers -----
  const viewers = [];
  for (let i = 1; i <= 3; i++) {
    const v = await browser.newPage();
    v.on('pageerror', e => console.error(`viewer ${i} page error:`, e.message));
    await v.goto(`${base}/watch/${ROOM}?name=Viewer${i}`);
    viewers.push(v);
  }
  for (const [i, v] of viewers.entries()) {
    const first = await waitFor(`viewer ${i + 1} decodes video`, async () => {
      const s = await inboundStats(v);
      return s?.video?.frames > 0 && s?.audio?.packets > 0 && s;
    }, 30_000);
    const later = await waitFor(`viewer ${i + 1} keeps decoding`, async () => {
      const s = await inboundStats(v);
      return s.video.frames > first.video.frames + 10 && s.audio.packets > first.audio.packets && s;
    });
    result[`viewer${i + 1}`] = { frames: later.video.frames, audio_packets: later.audio.packets };
  }
  await waitFor('host shows 3 viewers', () => host.evaluate(() => document.getElementById('viewers').textContent === '3'));
  result.viewers_on_host_page = 3;

  // ----- glass-to-glass: the frame number on the host preview vs on each viewer -----
  const sampler = `async ({ selector, ms }) => {
    const read = ${readFrameNumberSource};
    const video = document.querySelector(selector);
    const seen = {};
    const end = performance.now() + ms;
    while (performance.now() < end) {
      const n = read(video);
      const t = performance.timeOrigin + performance.now();
      if (n >= 0 && !(n in seen)) seen[n] = t;
      await new Promise(r => requestAnimationFrame ? setTimeout(r, 5) : setTimeout(r, 5));
    }
    return seen;
  }`;
  const window_ms = 8000; // shorter than the 10 s clip loop, so frame numbers do not repeat
  const [hostSeen, ...viewerSeen] = await Promise.all([
    host.evaluate(`(${sampler})({ selector: '#preview', ms: ${window_ms} })`),
    ...viewers.map(v => v.evaluate(`(${sampler})({ selector: '#video', ms: ${window_ms} })`)),
  ]);
  const delays = [];
  let advancing = 0;
  for (const seen of viewerSeen) {
    const frames = Object.keys(seen).map(Number).sort((a, b) => a - b);
    if (frames.length > 1 && frames[frames.length - 1] > frames[0]) advancing++;
    for (const n of frames) if (n in hostSeen) delays.push(seen[n] - hostSeen[n]);
  }
  delays.sort((a, b) => a - b);
  if (delays.length <= 50) fail(`too few glass-to-glass samples: ${delays.length}`);
  if (advancing !== viewers.length) fail('decoded frame counters must move forward on every viewer');
  result.glass_to_glass_ms = { p50: Math.round(percentile(delays, 0.5)), p95: Math.round(percentile(delays, 0.95)), samples: delays.length, frame_ms: Math.round(1000 / FPS) };
  console.log(`glass_to_glass_ms p50=${result.glass_to_glass_ms.p50} p95=${result.glass_to_glass_ms.p95} samples=${delays.length}`);

  await commerce(host, viewers);
  await hostDrop(browser, host, viewers);
}

async function commerce(host, viewers) {
  const [v1, v2, v3] = viewers;
  // The host adds a product, highlights it and starts a flash sale from the console.
  await host.fill('#product-form [name=title]', 'Glow serum');
  await host.fill('#product-form [name=price]', '25.00');
  await host.fill('#product-form [name=stock]', '40');
  await host.click('#product-form button[type=submit]');
  const item = '#product-list li:has-text("Glow serum")';
  await waitFor('product listed on host', () => host.locator(item).count());
  await host.click(`${item} button.highlight`);
  await waitFor('viewers see the highlighted product', async () => (await Promise.all(viewers.map(v => v.locator('.card:has-text("Glow serum")').count()))).every(n => n === 1));
  await host.fill(`${item} .sale-form [name=stock]`, '5');
  await host.fill(`${item} .sale-form [name=limit]`, '1');
  await host.click(`${item} .sale-form button.start-sale`);
  await waitFor('viewers see the sale', async () => (await Promise.all(viewers.map(v => v.locator('.card button.buy:not([disabled])').count()))).every(n => n === 1));
  const countdown = await v1.locator('.card .countdown').textContent();
  if (!/Ends in \d\d:\d\d/.test(countdown)) fail(`countdown shows ${countdown}`);

  // Two viewers chat and see each other, names stamped by the server from their tokens.
  await v1.fill('#chat-input', 'is it vegan?');
  await v1.press('#chat-input', 'Enter');
  await v2.fill('#chat-input', '<img src=x onerror="window.pwned=1">');
  await v2.press('#chat-input', 'Enter');
  for (const [v, name, text] of [[v2, 'Viewer1', 'is it vegan?'], [v1, 'Viewer2', '<img src=x onerror="window.pwned=1">']]) {
    await waitFor(`${name}'s message reaches the other viewer`, () => v.evaluate(([name, text]) =>
      [...document.querySelectorAll('#chat li')].some(li => li.querySelector('b')?.textContent === name && li.querySelector('.text')?.textContent === text), [name, text]));
  }
  const injected = await v1.evaluate(() => document.querySelectorAll('#chat img').length + (window.pwned ? 1 : 0));
  if (injected !== 0) fail('chat must render as text, never HTML');
  await waitFor('host sees the chat', () => host.locator('#chat li:has-text("is it vegan?")').count());

  // Likes: batched by the page, summed by the server, shown on the host.
  for (let i = 0; i < 3; i++) await v1.click('#heart');
  await waitFor('host sees the likes', () => host.evaluate(() => Number(document.getElementById('likes').textContent) >= 3));

  // One-tap buy: confirmed to the buyer, live on the host's orders feed.
  await v1.click('.card button.buy');
  await waitFor('buyer sees the confirmation', () => v1.evaluate(() => /Order #\d+ confirmed/.test(document.getElementById('toast').textContent)));
  await waitFor('host sees the order', () => host.locator('#orders li:has-text("Viewer1 bought 1")').count());
  await waitFor('stock shown to others drops to 4', () => v2.evaluate(() => document.querySelector('.card .left')?.textContent === '4 left'));
  // The per-user limit is 1: a second tap is refused with a reason.
  await v1.click('.card button.buy');
  await waitFor('second buy refused', () => v1.evaluate(() => /limit/.test(document.getElementById('toast').textContent)));

  // A viewer token cannot highlight products.
  const refusal = await v3.evaluate(async () => {
    const link = window.sellcast.link;
    const seen = [];
    const prev = link.handlers.onDirect;
    link.handlers.onDirect = f => { seen.push(f); prev?.(f); };
    link.send({ type: 'pin', product_ids: [] });
    for (let i = 0; i < 100 && !seen.some(f => f.type === 'error'); i++) await new Promise(r => setTimeout(r, 50));
    return seen.find(f => f.type === 'error') || null;
  });
  if (refusal?.code !== 'forbidden') fail(`viewer pin should be forbidden, got ${JSON.stringify(refusal)}`);
  const stillPinned = await v2.locator('.card:has-text("Glow serum")').count();
  if (stillPinned !== 1) fail('the refused pin must change nothing');
  result.commerce = { chat: true, likes: true, order: true, limit_refused: true, viewer_pin_refused: refusal.code };
}

async function hostDrop(browser, host, viewers) {
  // The host reloads the page (connection gone) and goes live again; viewers never reload.
  const before = await inboundStats(viewers[0]);
  await host.reload();
  await waitFor('room goes offline', async () => !(await (await fetch(`${base}/api/rooms/${ROOM}`)).json()).live, 15_000);
  await waitFor('host idle again', () => host.evaluate(() => document.body.dataset.state === 'idle'));
  const gone = await inboundStats(viewers[0]);
  await host.click('#go-live');
  await waitFor('host live again', () => host.evaluate(() => document.body.dataset.state === 'live'));
  for (const [i, v] of viewers.entries()) {
    const start = await inboundStats(v);
    await waitFor(`viewer ${i + 1} decodes again after the host came back`, async () => {
      const s = await inboundStats(v);
      return s && s.video.frames > start.video.frames + 15;
    }, 30_000);
  }
  result.host_drop = { frames_before: before.video.frames, frames_at_drop: gone.video.frames, resumed: true };
}

main().catch(e => { console.error(`E2E FAILED: ${e.stack || e.message}`); process.exit(1); });
