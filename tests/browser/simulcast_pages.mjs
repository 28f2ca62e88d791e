// The pages' side of simulcast, in Chromium against the real server:
// (a) the host page, from Chromium's built-in fake camera at 1280x720 (landscape 720p), publishes
//     three VP8 layers: its offer carries `a=rid` q, h, f and `a=simulcast:send q;h;f`, the WHIP
//     answer accepts them (`a=simulcast:recv`), and getStats on the host's RTCPeerConnection shows
//     three outbound video streams with rids q, h, f sending (framesSent rising) at heights
//     q < h < f; the server lists three layers for the room (`/api/stats/media` "layers") and the
//     console shows its viewers by quality;
// (b) a phone viewer (390x844, 3x) sends its displayed size on the channel (`cap_height` in
//     `/api/stats/media`), then its data-saver toggle (a labelled switch, >= 44 px, not covering the
//     cards or the unmute pill) makes the server mark it `data_saver` and send it the lowest
//     layer, while the video keeps playing;
// (c) after a reload the toggle is still on, and the new session is capped from its first frame.
//
// Env: SELLCAST_BIN, SELLCAST_HTTP_PORT (18900), CHROMIUM, SIMULCAST_DEADLINE_MS (150000). Prints
// `RESULT {json}` and exits non-zero on the first failed expectation.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { fail, waitFor, repo, ServerProcess, chromiumArgs, watchCsp, reportScenario } from './lib.mjs';
import { assertAccessible } from './a11y.mjs';

const HTTP_PORT = Number(process.env.SELLCAST_HTTP_PORT || 18900);
const base = `http://127.0.0.1:${HTTP_PORT}`;
const ROOM = 'layers';
const DEADLINE_MS = Number(process.env.SIMULCAST_DEADLINE_MS || 150_000);
const PHONE = { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, deviceScaleFactor: 3 };
const shots = path.join(repo, 'target/screenshots');
const result = {};
const cspViolations = [];
let server = null;

// Chromium's own fake camera (a moving test pattern at the size asked for), not a file: the host
// asks for 1280x720 and gets it.
const args = chromiumArgs('unused').filter(a => !a.startsWith('--use-file-for-fake-video-capture'));

async function main() {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sellcast-simulcast-'));
  fs.mkdirSync(shots, { recursive: true });
  setTimeout(() => {
    console.error(`SIMULCAST FAILED: scenario exceeded ${DEADLINE_MS} ms (server log in ${tmp})`);
    server?.kill();
    process.exit(1);
  }, DEADLINE_MS).unref();
  server = new ServerProcess({ tmp, port: HTTP_PORT });
  await server.start();
  const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || '/usr/bin/chromium', headless: false, args });
  await reportScenario({ tmp, server, browser, result }, () => run(browser));
}

const mediaStats = async () => (await fetch(`${base}/api/stats/media`)).json();

async function run(browser) {
  const hostCtx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const host = await hostCtx.newPage();
  watchCsp(host, cspViolations);
  host.on('pageerror', e => console.error('host page error:', e.message));
  await host.goto(`${base}/host/${ROOM}?name=Hana&shape=landscape&quality=720`);
  await waitFor('host idle', () => host.evaluate(() => document.body.dataset.state === 'idle'));
  await host.click('#go-live');
  await waitFor('host live', () => host.evaluate(() => document.body.dataset.state === 'live'), 30_000);
  await hostSdp(host);
  await hostLayers(host);
  await serverLayers();

  const phoneCtx = await browser.newContext(PHONE);
  const phone = await phoneCtx.newPage();
  watchCsp(phone, cspViolations);
  phone.on('pageerror', e => console.error('phone page error:', e.message));
  await phone.goto(`${base}/watch/${ROOM}?name=Pia`);
  await waitFor('phone plays', async () => (await decoded(phone)).frames > 10, 30_000);
  await toggleLooks(phone);
  await displayedSize(phone);
  await dataSaver(phone);
  await consoleCounts(host, phone);
  await persistsAcrossReload(phone);
  if (cspViolations.length) fail(`the pages broke their Content-Security-Policy: ${cspViolations.join(' | ')}`);
  result.csp_violations = cspViolations.length;
}

// The offer Chromium made for the host page's video, and the server's answer to it.
async function hostSdp(host) {
  const sdp = await host.evaluate(() => ({ offer: window.sellcast.session.pc.localDescription.sdp, answer: window.sellcast.session.pc.remoteDescription.sdp }));
  const video = text => text.split(/\r?\nm=/).find(s => s.startsWith('video')) || '';
  const offer = video(sdp.offer);
  const answer = video(sdp.answer);
  const rids = [...offer.matchAll(/a=rid:(\S+) send/g)].map(m => m[1]);
  const send = offer.match(/a=simulcast:send (\S+)/)?.[1] || null;
  const recv = answer.match(/a=simulcast:recv (\S+)/)?.[1] || null;
  const firstCodec = offer.match(/a=rtpmap:\d+ ([^/]+)\//)?.[1] || null;
  result.sdp = { offer_rids: rids, simulcast_send: send, answer_simulcast_recv: recv, offer_first_codec: firstCodec };
  console.log(`host offer: rids ${rids.join(',')}, simulcast:send ${send}, first codec ${firstCodec}; answer simulcast:recv ${recv}`);
  if (rids.join(',') !== 'q,h,f' || send !== 'q;h;f') fail(`the host offered no q,h,f simulcast: ${JSON.stringify(result.sdp)}`);
  if (recv !== 'q;h;f') fail(`the WHIP answer does not accept the three layers: ${JSON.stringify(result.sdp)}`);
  if (firstCodec !== 'VP8') fail(`VP8 is not the host's first video codec: ${firstCodec}`);
}

async function outbound(host) {
  return host.evaluate(async () => {
    const out = {};
    (await window.sellcast.session.pc.getStats()).forEach(s => {
      if (s.type === 'outbound-rtp' && s.kind === 'video' && s.rid) out[s.rid] = { frames: s.framesSent || 0, height: s.frameHeight || 0, width: s.frameWidth || 0, active: s.active, limit: s.qualityLimitationReason, bytes: s.bytesSent || 0 };
    });
    return out;
  });
}

// Three outbound streams with rids q, h, f, each sending (frames rising over a second), at
// heights q < h < f (the full one 720 rows: Chromium's fake camera at 1280x720).
async function hostLayers(host) {
  const started = Date.now();
  let first = null;
  const last = await waitFor('three layers sending at q < h < f', async () => {
    const now = await outbound(host);
    const rids = Object.keys(now).sort().join(',');
    if (rids !== 'f,h,q') return { pending: now };
    if (!first) { first = now; return { pending: now }; }
    const rising = ['q', 'h', 'f'].every(r => now[r].frames > first[r].frames);
    const ordered = now.q.height > 0 && now.q.height < now.h.height && now.h.height < now.f.height;
    if (!(rising && ordered)) { first = now; return { pending: now }; }
    return now;
  }, 40_000, 1000);
  result.host_layers = last;
  result.host_layers_ms = Date.now() - started;
  console.log(`host sends three layers after ${result.host_layers_ms} ms: ${JSON.stringify(last)}`);
  if (last.f.height !== 720) fail(`the full layer is ${last.f.width}x${last.f.height}, not 720 rows`);
}

// The server takes them as three layers of the room's video (the coordinator's core).
async function serverLayers() {
  const layers = await waitFor('the server lists three layers for the room', async () => {
    const s = await mediaStats();
    const mine = (s.layers || []).filter(l => l.room === ROOM);
    return mine.length === 3 ? mine : { pending: s.layers ?? 'no "layers" in /api/stats/media' };
  }, 20_000, 250);
  result.server_layers = layers.map(l => ({ rid: l.rid, index: l.index, bitrate_bps: l.bitrate_bps, height: l.height }));
  console.log(`server layers: ${JSON.stringify(result.server_layers)}`);
}

async function decoded(page) {
  return page.evaluate(async () => {
    const pc = window.sellcast?.session?.pc;
    if (!pc) return { frames: 0, height: 0 };
    let v = { frames: 0, height: 0 };
    (await pc.getStats()).forEach(s => { if (s.type === 'inbound-rtp' && s.kind === 'video') v = { frames: s.framesDecoded || 0, height: s.frameHeight || 0 }; });
    return v;
  });
}

// The toggle: a labelled switch, a tap target of at least 44 px, on top (nothing over it), and
// covering neither the product cards nor the unmute pill.
async function toggleLooks(phone) {
  const m = await phone.evaluate(() => {
    const input = document.getElementById('data-saver');
    const label = input.closest('label');
    const r = label.getBoundingClientRect();
    const at = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
    const overlaps = el => { if (!el || el.hidden) return false; const o = el.getBoundingClientRect(); return o.width > 0 && !(o.right <= r.left || o.left >= r.right || o.bottom <= r.top || o.top >= r.bottom); };
    return {
      name: label.textContent.trim(), role: input.getAttribute('role'), checked: input.checked,
      size: [Math.round(r.width), Math.round(r.height)], on_top: at === label || label.contains(at),
      covers_unmute: overlaps(document.getElementById('unmute')), covers_products: overlaps(document.getElementById('products')),
    };
  });
  result.toggle = m;
  if (m.name !== 'Data saver' || m.role !== 'switch') fail(`the toggle is not a labelled switch: ${JSON.stringify(m)}`);
  if (m.size[0] < 44 || m.size[1] < 44) fail(`the toggle is ${m.size.join('x')}, under 44 px`);
  if (!m.on_top || m.covers_unmute || m.covers_products) fail(`the toggle is covered or covers something: ${JSON.stringify(m)}`);
  if (m.checked) fail('the toggle starts on in a fresh profile');
  await phone.screenshot({ path: path.join(shots, 'phone-data-saver.png') });
}

const myViewer = async phone => {
  const peer = await phone.evaluate(() => window.sellcast.state.participant);
  const s = await mediaStats();
  return (s.viewers || []).find(v => v.peer === peer) || { pending: { peer, viewers: s.viewers ?? 'no "viewers" in /api/stats/media' } };
};

// The page's displayed size reaches the server: the cap it reports is the page's own measure.
async function displayedSize(phone) {
  const expected = await phone.evaluate(() => {
    const v = document.getElementById('video');
    const r = v.getBoundingClientRect();
    const fit = getComputedStyle(v).objectFit;
    const scale = fit === 'contain' ? Math.min(r.width / v.videoWidth, r.height / v.videoHeight) : Math.max(r.width / v.videoWidth, r.height / v.videoHeight);
    return Math.ceil(v.videoHeight * scale * devicePixelRatio - 1e-6);
  });
  const viewer = await waitFor('the server knows the phone\'s displayed height', async () => {
    const v = await myViewer(phone);
    return v.pending || Math.abs((v.cap_height ?? -1) - expected) > 0.1 * expected ? { pending: { v, expected } } : v;
  }, 20_000, 250);
  result.displayed = { expected_cap_height: expected, cap_height: viewer.cap_height, layer: viewer.layer };
  console.log(`phone displays ${expected} device px; server cap_height ${viewer.cap_height}, layer ${viewer.layer}`);
}

// Data saver on: the server marks the viewer and sends it the lowest layer; frames keep coming.
async function dataSaver(phone) {
  const before = await decoded(phone);
  await phone.locator('label.data-saver').tap();
  if (!(await phone.evaluate(() => document.getElementById('data-saver').checked))) fail('a tap on the label does not switch it on');
  const started = Date.now();
  const viewer = await waitFor('the server marks the phone data_saver and sends it the lowest layer', async () => {
    const v = await myViewer(phone);
    return v.pending || !(v.data_saver === true && v.layer_index === 0) ? { pending: v } : v;
  }, 20_000, 250);
  result.data_saver = { server: { data_saver: viewer.data_saver, layer: viewer.layer, layer_index: viewer.layer_index }, server_ms: Date.now() - started };
  const low = await waitFor('the phone decodes the quarter layer and keeps playing', async () => {
    const d = await decoded(phone);
    return d.height > 0 && d.height <= 180 && d.frames > before.frames + 30 ? d : { pending: d };
  }, 20_000, 250);
  const playing = await phone.evaluate(() => !document.getElementById('video').paused && document.body.dataset.state === 'live');
  result.data_saver.phone = { frames_before: before.frames, frames_after: low.frames, height_after: low.height, playing };
  console.log(`data saver: server ${JSON.stringify(result.data_saver.server)} after ${result.data_saver.server_ms} ms; phone now ${low.height} rows, ${low.frames - before.frames} more frames`);
  if (!playing) fail('the video stopped after data saver');
}

// The console's line while the phone is on the quarter layer.
async function consoleCounts(host, phone) {
  const text = await waitFor('the console shows viewers by quality', async () => {
    const t = await host.evaluate(() => { const n = document.getElementById('layer-counts'); return n.hidden ? null : n.textContent; });
    return t && /180p 1\b/.test(t) ? t : { pending: t };
  }, 20_000, 250);
  result.console = { text };
  await host.screenshot({ path: path.join(shots, 'host-layer-counts.png') });
  await assertAccessible(host, 'the host console showing viewers by quality');
  await assertAccessible(phone, 'the watch page with the data-saver switch');
  result.console.axe_serious = 0;
}

// A reload keeps the toggle on, and the new session is capped at once.
async function persistsAcrossReload(phone) {
  await phone.reload();
  await waitFor('phone plays again', async () => (await decoded(phone)).frames > 10, 30_000);
  const checked = await phone.evaluate(() => document.getElementById('data-saver').checked);
  if (!checked) fail('the data-saver toggle was not kept across a reload');
  const viewer = await waitFor('the new session is data_saver too', async () => {
    const v = await myViewer(phone);
    return v.pending || v.data_saver !== true ? { pending: v } : v;
  }, 20_000, 250);
  result.reload = { checked, server_data_saver: viewer.data_saver, layer_index: viewer.layer_index };
}

main().catch(e => { console.error(`SIMULCAST FAILED: ${e.message}`); process.exit(1); });
