// Simulcast behind emulated links: a Chromium host page publishes three layers (rids q, h, f)
// from a 1280x720 fake camera, and three Chromium viewers, each in its own network namespace
// (links.mjs), watch: v1 unlimited, v2 at 1.2 Mbit/s, v3 at 350 kbit/s with 2 % loss.
//
// In order:
// 1. preflight: each link's rate and loss, measured with UDP datagrams before anyone joins;
// 2. the viewers join; for 20 s from each one's first decoded frame, the server's layer for
//    it (`/api/stats/media` viewers[]) and the page's (inbound-rtp frameHeight) are sampled: the
//    time each settles on its layer, and freezes (freezeCount, totalFreezesDuration) over the run;
// 3. glass-to-glass per viewer, from the frame numbers drawn in the clip;
// 4. v3's link opened to unlimited: the time it takes to reach the top layer;
// 5. v3's link cut to 100 kbit/s: the server pauses its video, audio and chat go on, the peer
//    connection stays connected; the link restored: video resumes.
// The layer-dependent steps observe with deadlines and report; the Rust side
// (browser_simulcast_links.rs) asserts on the report. Failures of the rig itself (a link that does
// not pass its rate, a page that never plays) fail here.
//
// Env: SELLCAST_BIN, SELLCAST_HTTP_PORT (19000), CHROMIUM, SIMULCAST_DEADLINE_MS (300000),
// SIMULCAST_HOST=0 to publish one layer (checking the rig against a single-layer server).
// Prints `RESULT {json}`.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { writeSizedClip, frameNumberReader, FPS } from './y4m.mjs';
import { fail, waitFor, observe, sleep, ServerProcess, launchPersistent, watchCsp } from './lib.mjs';
import { Link, SERVER_IP, prepareOuter } from './links.mjs';

// LINKS_NOISE=cell,lo,hi,pan tries another texture (see y4m.mjs); LINKS_LAYERS_ONLY=1 stops once
// the host's layers are measured.
const NOISE = process.env.LINKS_NOISE ? Object.fromEntries(process.env.LINKS_NOISE.split(',').map((v, i) => [['cell', 'lo', 'hi', 'pan'][i], Number(v)])) : { cell: 8, lo: 90, hi: 166, pan: 2 };
const CLIP = { width: 1280, height: 720, band: 72, texture: 'noise', noise: NOISE };
const CLIP_FRAMES = 120; // 4 s loop: frame numbers wrap at this (165 MB of Y4M)
const HTTP_PORT = Number(process.env.SELLCAST_HTTP_PORT || 19000);
const base = `http://${SERVER_IP}:${HTTP_PORT}`;
const ROOM = 'links';
const DEADLINE_MS = Number(process.env.SIMULCAST_DEADLINE_MS || 300_000);
const SIMULCAST = process.env.SIMULCAST_HOST !== '0';
const SETTLE_WINDOW_MS = 20_000;
const VIEWERS = [
  { name: 'v1', rateKbit: null, lossPct: 0, expect: 'full' },
  { name: 'v2', rateKbit: 1200, lossPct: 0, expect: 'half' },
  { name: 'v3', rateKbit: 350, lossPct: 2, expect: 'quarter' },
];
const result = { simulcast_host: SIMULCAST };
const cspViolations = [];

async function main() {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sellcast-links-'));
  const clip = path.join(tmp, 'clip.y4m');
  writeSizedClip(clip, CLIP_FRAMES, CLIP);
  const server = new ServerProcess({ tmp, port: HTTP_PORT, ip: SERVER_IP, args: ['--dev'] });
  setTimeout(() => {
    console.error(`SIMULCAST_LINKS FAILED: scenario exceeded ${DEADLINE_MS} ms (server log in ${tmp})`);
    server.kill();
    process.exit(1);
  }, DEADLINE_MS).unref();
  await prepareOuter();
  await server.start();
  const browsers = [];
  const links = [];
  try {
    for (const v of VIEWERS) links.push(await Link.create(v.name, { rateKbit: v.rateKbit, lossPct: v.lossPct }));
    await preflight(links);
    // A page served over plain HTTP on a non-loopback address is a secure context (camera,
    // crypto.randomUUID) only when told so.
    const extraArgs = [`--unsafely-treat-insecure-origin-as-secure=${base}`];
    const hostBrowser = await launchPersistent({ tmp, clip, viewport: { width: 1280, height: 800 }, extraArgs });
    browsers.push(hostBrowser);
    for (const link of links) {
      // A desktop screen: the player shows the 16:9 picture at least 720 px tall, so its
      // displayed-size cap (video_cap) leaves every layer open.
      browsers.push(await launchPersistent({ tmp, clip, viewport: { width: 1920, height: 1080 }, executable: link.chromiumPath(tmp), extraArgs }));
    }
    await run(hostBrowser, browsers.slice(1), links);
  } catch (e) {
    console.error(`server log kept in ${tmp}`);
    throw e;
  } finally {
    fs.rmSync(clip, { force: true }); // 165 MB; the server log stays on failure
    await Promise.all(browsers.map(b => b.close().catch(() => {})));
    await server.stop('SIGINT');
    for (const link of links) await link.close();
  }
  if (cspViolations.length) fail(`the pages broke their Content-Security-Policy: ${cspViolations.join(' | ')}`);
  fs.rmSync(tmp, { recursive: true, force: true });
  console.log(`RESULT ${JSON.stringify(result)}`);
}

// Each link passes about its configured rate (datagrams offered at twice the rate) and drops
// about its configured share (offered well under the rate).
async function preflight(links) {
  result.links = {};
  for (const [i, link] of links.entries()) {
    const v = VIEWERS[i];
    const rate = v.rateKbit ? await link.measure({ offerKbit: v.rateKbit * 2, seconds: 2, port: 40000 + i }) : null;
    const loss = await link.measure({ offerKbit: Math.min(v.rateKbit ?? 4000, 4000) / 2, seconds: 3, size: 64, port: 40010 + i });
    result.links[v.name] = { rate_kbit: v.rateKbit, measured_kbit: rate?.kbit ?? null, loss_pct: v.lossPct, measured_loss_pct: loss.loss_pct, loss_sample: loss.sent };
    console.log(`link ${v.name}: rate ${v.rateKbit ?? 'unlimited'} kbit/s -> measured ${rate?.kbit ?? '-'} kbit/s; loss ${v.lossPct} % -> measured ${loss.loss_pct} % of ${loss.sent}`);
    if (rate && Math.abs(rate.kbit - v.rateKbit) > v.rateKbit * 0.15) fail(`link ${v.name} passes ${rate.kbit} kbit/s, set to ${v.rateKbit}`);
    if (Math.abs(loss.loss_pct - v.lossPct) > 1.5) fail(`link ${v.name} loses ${loss.loss_pct} %, set to ${v.lossPct} %`);
  }
}

async function run(hostBrowser, viewerBrowsers, links) {
  const host = await goLive(hostBrowser);
  const layers = await hostLayers(host);
  result.host_layers = layers;
  console.log(`host sends ${JSON.stringify(layers)}`);
  if (process.env.LINKS_LAYERS_ONLY === '1') return;

  // ----- the viewers join one after the other, each tied to its server peer by the order of
  // joining (the peer that appears in the server's viewers[] while it joins) -----
  const viewers = [];
  const listsViewers = Array.isArray((await mediaStats()).viewers);
  for (const [i, b] of viewerBrowsers.entries()) {
    const before = new Set((await mediaStats()).viewers?.map(v => v.peer) ?? []);
    const page = b.pages()[0] || await b.newPage();
    watchCsp(page, cspViolations);
    page.on('pageerror', e => console.error(`${VIEWERS[i].name} page error:`, e.message));
    const joinedAt = Date.now();
    await page.goto(`${base}/watch/${ROOM}?name=${VIEWERS[i].name}`);
    await waitFor(`${VIEWERS[i].name} has a peer connection`, () => page.evaluate(() => Boolean(window.sellcast?.session?.pc)), 30_000);
    const peer = listsViewers ? await observe(async () => (await mediaStats()).viewers?.map(v => v.peer).filter(p => !before.has(p)), ps => ps?.length === 1, 10_000, 200) : null;
    viewers.push({ ...VIEWERS[i], page, link: links[i], joinedAt, peer: peer?.length === 1 ? peer[0] : null });
  }
  // A viewer whose link cannot carry the only layer (a single-layer host) may never decode: its
  // settle window then starts now, and the report says so.
  await Promise.all(viewers.map(async v => {
    const s = await observe(() => pageStats(v.page), x => x?.video?.framesDecoded > 0, 30_000, 100);
    v.firstFrameAt = Date.now();
    v.decoded = s?.video?.framesDecoded > 0;
  }));
  await throughTheirLinks(viewers);
  await settle(host, viewers, layers);
  await glassToGlass(host, viewers);
  await climb(host, viewers[2], layers);
  await pauseAndResume(viewers[2], viewers[0]);
}

// The host page goes live from the fake camera at 1280x720; with SIMULCAST the page's video
// transceiver is given three encodings (until the page publishes simulcast by itself).
async function goLive(browser) {
  const host = browser.pages()[0] || await browser.newPage();
  watchCsp(host, cspViolations);
  host.on('pageerror', e => console.error('host page error:', e.message));
  if (SIMULCAST) await host.addInitScript(simulcastPatch);
  await host.goto(`${base}/host/${ROOM}?name=Hana&shape=landscape&quality=720`);
  await waitFor('host idle', () => host.evaluate(() => document.body.dataset.state === 'idle'));
  await host.click('#go-live');
  await waitFor('host live', () => host.evaluate(() => document.body.dataset.state === 'live'), 30_000);
  return host;
}

// Runs in the host page before its scripts: a video transceiver added without encodings gets
// quarter, half and full resolution layers.
function simulcastPatch() {
  const add = RTCPeerConnection.prototype.addTransceiver;
  RTCPeerConnection.prototype.addTransceiver = function (trackOrKind, init = {}) {
    const video = trackOrKind === 'video' || trackOrKind?.kind === 'video';
    if (video && !init.sendEncodings) {
      init = {
        ...init, sendEncodings: [
          { rid: 'q', scaleResolutionDownBy: 4, maxBitrate: 150_000 },
          { rid: 'h', scaleResolutionDownBy: 2, maxBitrate: 500_000 },
          { rid: 'f', scaleResolutionDownBy: 1, maxBitrate: 2_000_000 },
        ],
      };
    }
    return add.call(this, trackOrKind, init);
  };
}

// What the host's encoder sends per layer once every layer is up and at its rate (the host's own
// bandwidth estimate enables the upper layers, and raises their bitrates, as it grows):
// rid -> { height, kbit } over 2 s. With three layers the links are chosen around them: the full
// layer must not fit 1.2 Mbit/s, the half one must (with audio), and not fit 350 kbit/s; the rig
// waits up to 40 s for that and fails if it never holds.
async function hostLayers(host) {
  const read = () => host.evaluate(async () => {
    const out = {};
    (await window.sellcast.session.pc.getStats()).forEach(s => {
      if (s.type === 'outbound-rtp' && s.kind === 'video') out[s.rid ?? '-'] = { height: s.frameHeight ?? 0, bytes: s.bytesSent, at: s.timestamp, fps: s.framesPerSecond ?? 0, limit: s.qualityLimitationReason ?? null };
    });
    return out;
  });
  const want = SIMULCAST ? 3 : 1;
  const fits = l => !SIMULCAST || (l.f?.kbit > 1300 && l.h?.kbit < 1050 && l.h?.kbit > 330 && l.q?.kbit < 250);
  let rates = null;
  await waitFor(`host sends ${want} video layer(s) at rates around the links'`, async () => {
    const first = await read();
    const up = Object.values(first).filter(x => x.height > 0);
    if (up.length !== want) return { pending: first };
    await sleep(2000);
    const second = await read();
    rates = {};
    for (const [rid, l] of Object.entries(second)) {
      rates[rid] = { height: l.height, kbit: Math.round((l.bytes - (first[rid]?.bytes ?? 0)) * 8 / (l.at - (first[rid]?.at ?? 0))), fps: l.fps, limit: l.limit };
    }
    return fits(rates) ? rates : { pending: rates };
  }, 40_000, 250);
  return rates;
}

// The height the host's encoder sends now, per rid ('-' for a single layer).
async function hostHeights(host) {
  return host.evaluate(async () => {
    const out = {};
    (await window.sellcast.session.pc.getStats()).forEach(s => {
      if (s.type === 'outbound-rtp' && s.kind === 'video') out[s.rid ?? '-'] = s.frameHeight ?? 0;
    });
    return out;
  });
}

async function mediaStats() {
  return (await fetch(`${base}/api/stats/media`)).json();
}

// The server's view of a viewer: { layer, layer_index, paused, estimate_bps, ... } or null.
async function serverView(peer) {
  const all = (await mediaStats()).viewers;
  return all?.find(v => v.peer === peer) ?? null;
}

async function pageStats(page) {
  return page.evaluate(async () => {
    const pc = window.sellcast?.session?.pc;
    if (!pc) return null;
    const out = { connection: pc.connectionState };
    (await pc.getStats()).forEach(s => {
      if (s.type !== 'inbound-rtp') return;
      out[s.kind] = {
        packetsReceived: s.packetsReceived ?? 0, packetsLost: s.packetsLost ?? 0, framesDecoded: s.framesDecoded ?? 0,
        frameHeight: s.frameHeight ?? 0, freezeCount: s.freezeCount ?? 0, totalFreezesDuration: s.totalFreezesDuration ?? 0,
      };
    });
    return out;
  });
}

// Each viewer's media flows through its own link: its peer connection's selected candidate pair
// has the link's address on the viewer's side and the server's on the other. Also reported: the
// player's displayed height in device pixels (the page caps its layer at it).
async function throughTheirLinks(viewers) {
  result.paths = {};
  for (const v of viewers) {
    const p = await waitFor(`${v.name}'s selected candidate pair`, () => v.page.evaluate(async () => {
      const stats = [...(await window.sellcast.session.pc.getStats()).values()];
      const transport = stats.find(s => s.type === 'transport');
      const pair = stats.find(s => s.id === transport?.selectedCandidatePairId);
      const local = stats.find(s => s.id === pair?.localCandidateId);
      const remote = stats.find(s => s.id === pair?.remoteCandidateId);
      const video = document.getElementById('video');
      const box = video.getBoundingClientRect();
      return local && remote && { local: local.address, remote: remote.address, protocol: local.protocol,
        box: [Math.round(box.width), Math.round(box.height)], fit: getComputedStyle(video).objectFit, dpr: devicePixelRatio };
    }), 10_000, 200);
    result.paths[v.name] = p;
    console.log(`${v.name}: ${p.protocol} ${p.local} -> ${p.remote}; player box ${p.box.join('x')} (${p.fit}, dpr ${p.dpr})`);
    if (p.local !== v.link.ip || p.remote !== SERVER_IP) fail(`${v.name}'s media goes ${p.local} -> ${p.remote}, not through its link (${v.link.ip} -> ${SERVER_IP})`);
  }
}

// For SETTLE_WINDOW_MS after each viewer's first frame: sample the server's layer and the page's
// frame height every 250 ms. A viewer has settled when both show its layer from then to the end
// of the window; its settle time is measured from its first decoded frame.
async function settle(host, viewers, layers) {
  const byIndex = rankLayers(layers);
  const expectIndex = { full: byIndex.length - 1, half: Math.max(0, byIndex.length - 2), quarter: 0 };
  const samples = viewers.map(() => []);
  const end = Math.max(...viewers.map(v => v.firstFrameAt)) + SETTLE_WINDOW_MS;
  // About once a second: [ms since the window began, { rid: the server's measure of the layer, kbit/s }].
  const layerTrail = [];
  const began = Date.now();
  for (let k = 0; Date.now() < end; k++) {
    const heights = await hostHeights(host);
    if (k % 4 === 0) {
      const ls = (await mediaStats()).layers ?? [];
      layerTrail.push([Date.now() - began, Object.fromEntries(ls.map(l => [l.rid, Math.round(l.bitrate_bps / 1000)]))]);
    }
    await Promise.all(viewers.map(async (v, i) => {
      const [server, page] = await Promise.all([serverView(v.peer), pageStats(v.page)]);
      const height = page?.video?.frameHeight ?? 0;
      samples[i].push({
        t: Date.now() - v.firstFrameAt, index: server?.layer_index ?? null, rid: server?.layer ?? null,
        paused: server?.paused ?? null, estimate: server?.estimate_bps ?? null, loss: server?.loss_permille ?? null, height,
        pageIndex: byIndex.findIndex(l => heights[l.rid] === height),
      });
    }));
    await sleep(250);
  }
  result.layer_trail = layerTrail;
  result.settle = {};
  for (const [i, v] of viewers.entries()) {
    const want = expectIndex[v.expect];
    const wantHeight = byIndex[want]?.height ?? null;
    const s = samples[i];
    // The page's layer: the one whose height the host sends now is the height the page decodes
    // (the host's encoder may scale its layers down when its CPU is short).
    const onLayer = x => x.index === want && !x.paused && x.pageIndex === want;
    let k = s.length;
    while (k > 0 && onLayer(s[k - 1])) k--;
    const settledMs = k < s.length ? s[k].t : null;
    const last = s[s.length - 1];
    const page = await pageStats(v.page);
    result.settle[v.name] = {
      expect: v.expect, expect_index: want, expect_height: wantHeight, settled_ms: settledMs,
      peer: v.peer, last: { layer: last.rid, layer_index: last.index, paused: last.paused, estimate_bps: last.estimate, frame_height: last.height, page_layer_index: last.pageIndex },
      first_frame_ms: v.decoded ? v.firstFrameAt - v.joinedAt : null,
      layer_changes: changes(s.map(x => x.index)), height_changes: changes(s.map(x => x.height)),
      freeze_count: page.video.freezeCount, total_freezes_s: round3(page.video.totalFreezesDuration),
      frames_decoded: page.video.framesDecoded, packets_lost: page.video.packetsLost,
      // About once a second: [ms after the first frame, server's layer index (-1 paused), estimate
      // kbit/s, the latest receiver report's video loss in permille].
      trail: s.filter((_, j) => j % 4 === 0).map(x => [x.t, x.paused ? -1 : x.index, x.estimate === null ? null : Math.round(x.estimate / 1000), x.loss]),
    };
    console.log(`settle ${v.name} (${v.expect}): ${settledMs === null ? 'never' : `${settledMs} ms`} after its first frame; server ${last.rid}/${last.index} estimate ${last.estimate}; page height ${last.height}; freezes ${page.video.freezeCount} (${round3(page.video.totalFreezesDuration)} s); first frame ${v.firstFrameAt - v.joinedAt} ms after join`);
  }
}

// Layers lowest first (by the host's sent bitrate, as the server ranks them): [{ rid, height, kbit }].
function rankLayers(layers) {
  return Object.entries(layers).map(([rid, l]) => ({ rid, ...l })).sort((a, b) => a.kbit - b.kbit);
}

// The distinct values of a series in order: [value, ...] with repeats collapsed.
function changes(xs) {
  return xs.filter((x, i) => i === 0 || x !== xs[i - 1]);
}

const round3 = x => Math.round(x * 1000) / 1000;

function percentile(sorted, p) {
  return sorted.length ? sorted[Math.min(sorted.length - 1, Math.round((sorted.length - 1) * p))] : null;
}

// Glass-to-glass per viewer: every page reads the frame number in the picture it shows every
// ~10 ms for 6 s; a viewer's delay for a frame is when it first showed it minus when the host's
// preview last started showing it before that (numbers repeat every CLIP_FRAMES, so only a host
// showing within half a loop counts).
async function glassToGlass(host, viewers) {
  const read = frameNumberReader(CLIP);
  const sampler = `async ({ selector, ms }) => {
    const read = ${read};
    const video = document.querySelector(selector);
    const samples = [];
    const end = performance.now() + ms;
    while (performance.now() < end) {
      const n = read(video);
      if (n >= 0 && (samples.length === 0 || samples[samples.length - 1][1] !== n)) samples.push([performance.timeOrigin + performance.now(), n]);
      await new Promise(r => setTimeout(r, 10));
    }
    return samples;
  }`;
  const ms = 6000;
  const [hostRun, ...viewerRuns] = await Promise.all([
    host.evaluate(`(${sampler})({ selector: '#preview', ms: ${ms} })`),
    ...viewers.map(v => v.page.evaluate(`(${sampler})({ selector: '#video', ms: ${ms} })`)),
  ]);
  const loopMs = CLIP_FRAMES * 1000 / FPS;
  result.glass_to_glass_ms = {};
  for (const [i, run] of viewerRuns.entries()) {
    const delays = [];
    for (const [t, n] of run) {
      let best = null;
      for (const [th, nh] of hostRun) if (nh === n && th <= t && t - th < loopMs / 2) best = th;
      if (best !== null) delays.push(t - best);
    }
    delays.sort((a, b) => a - b);
    const g = { p50: Math.round(percentile(delays, 0.5)), p95: Math.round(percentile(delays, 0.95)), samples: delays.length };
    result.glass_to_glass_ms[viewers[i].name] = g;
    console.log(`glass-to-glass ${viewers[i].name}: p50 ${g.p50} ms, p95 ${g.p95} ms (${g.samples} frames)`);
  }
}

// v3's link opened to unlimited (its loss stays): time until the server sends it the top layer
// and the page decodes at the top layer's height.
async function climb(host, v, layers) {
  const ranked = rankLayers(layers);
  const top = ranked.at(-1);
  const t0 = Date.now();
  await v.link.setRate(null);
  const onTop = x => x?.index === ranked.length - 1 && x.height === x.topHeight;
  const reached = await observe(async () => {
    const [server, page, heights] = await Promise.all([serverView(v.peer), pageStats(v.page), hostHeights(host)]);
    return { index: server?.layer_index ?? null, rid: server?.layer ?? null, height: page?.video?.frameHeight ?? 0, topHeight: heights[top.rid] };
  }, onTop, 20_000, 200);
  const ms = onTop(reached) ? Date.now() - t0 : null;
  result.climb = { to: top.rid, climbed_ms: ms, last: reached };
  console.log(`climb ${v.name} to ${top.rid}: ${ms === null ? 'not within 20 s' : `${ms} ms`} (last ${JSON.stringify(reached)})`);
}

// v3's link cut to 100 kbit/s: the server pauses its video; audio packets and a chat line from
// `other` still arrive; its peer connection stays connected. Then the link is restored.
async function pauseAndResume(v, other) {
  const states = new Set();
  const t0 = Date.now();
  await v.link.setRate(100);
  const paused = await observe(async () => {
    const [server, page] = await Promise.all([serverView(v.peer), pageStats(v.page)]);
    states.add(page?.connection);
    return { paused: server?.paused ?? null, page };
  }, x => x?.paused === true, 20_000, 200);
  const pausedMs = paused?.paused ? Date.now() - t0 : null;
  // While paused (or, on a server that never pauses, while starved): audio and frames over 3 s.
  const a = await pageStats(v.page);
  await sleep(3000);
  const b = await pageStats(v.page);
  states.add(b.connection);
  const chat = `still here ${Date.now()}`;
  await other.page.fill('#chat-input', chat);
  await other.page.press('#chat-input', 'Enter');
  const chatArrived = await observe(() => v.page.evaluate(text => [...document.querySelectorAll('#chat li .text')].some(el => el.textContent === text), chat), Boolean, 15_000, 200);
  const stillPaused = (await serverView(v.peer))?.paused ?? null;
  states.add((await pageStats(v.page)).connection);

  const t1 = Date.now();
  await v.link.setRate(null);
  const c = await pageStats(v.page);
  const resumed = await observe(async () => {
    const [server, page] = await Promise.all([serverView(v.peer), pageStats(v.page)]);
    states.add(page?.connection);
    return { paused: server?.paused ?? null, frames: page?.video?.framesDecoded ?? 0 };
  }, x => x?.paused === false && x.frames > c.video.framesDecoded + 30, 20_000, 200);
  const resumedMs = resumed?.paused === false && resumed.frames > c.video.framesDecoded + 30 ? Date.now() - t1 : null;
  states.add((await pageStats(v.page)).connection);
  result.pause = {
    paused_ms: pausedMs, still_paused_after_chat: stillPaused,
    audio_packets_in_3s: b.audio.packetsReceived - a.audio.packetsReceived,
    frames_in_3s: b.video.framesDecoded - a.video.framesDecoded,
    chat_arrived: Boolean(chatArrived), connection_states: [...states],
    resumed_ms: resumedMs, frames_after_resume: (resumed?.frames ?? 0) - c.video.framesDecoded,
  };
  console.log(`pause ${v.name} at 100 kbit/s: ${JSON.stringify(result.pause)}`);
}

main().catch(e => { console.error(`SIMULCAST_LINKS FAILED: ${e.stack || e.message}`); process.exit(1); });
