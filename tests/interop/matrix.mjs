// The interop matrix: each third-party publisher goes live in its own room over WHIP, then every
// third-party viewer watches it over WHEP at the same time. Runs inside a private network
// namespace (run.sh). Per pair the viewer reports the video codec it negotiated, complete frames,
// the RTP time they span, audio packets, the first-frame time (WHEP POST -> end of the first
// complete key frame; first decoded frame for Chromium), and what its data channel got.
//
// Env: SELLCAST_BIN, SELLCAST_HTTP_PORT (18090), CHROMIUM (/usr/bin/chromium), PION_PEER (built by
// pion/build.sh if unset), GST_PLUGIN_DIR (a dir with libgstrswebrtc.so: adds the GStreamer
// publishers and viewer; without it they are reported as skipped), INTEROP_ONLY (comma-separated
// publisher names), INTEROP_DEADLINE_MS (170000). Prints `RESULT {json}`.
import { chromium } from 'playwright-core';
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { devToken, waitFor, sleep } from './lib.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '../..');
const bin = process.env.SELLCAST_BIN || path.join(repo, 'target/debug/sellcast');
const HTTP_PORT = Number(process.env.SELLCAST_HTTP_PORT || 18090);
const base = `http://127.0.0.1:${HTTP_PORT}`;
const DEADLINE_MS = Number(process.env.INTEROP_DEADLINE_MS || 170_000);
const VIEWER_TIMEOUT_MS = 20_000;
const gstDir = process.env.GST_PLUGIN_DIR && fs.existsSync(path.join(process.env.GST_PLUGIN_DIR, 'libgstrswebrtc.so')) ? process.env.GST_PLUGIN_DIR : null;
const children = new Set();

// ----- media clips, generated per run (nothing binary is committed) -----
function makeClips(tmp) {
  const src = ['-f', 'lavfi', '-i', 'testsrc2=size=320x240:rate=30', '-t', '4', '-pix_fmt', 'yuv420p'];
  const h264 = path.join(tmp, 'clip.h264');
  const ivf = path.join(tmp, 'clip.ivf');
  // Baseline, a key frame every second, no B-frames, an AUD before each access unit: what OBS sends.
  execFileSync('ffmpeg', ['-v', 'error', '-y', ...src, '-c:v', 'libx264', '-profile:v', 'baseline', '-level', '3.1', '-g', '30', '-bf', '0',
    '-x264-params', 'aud=1:repeat-headers=1', '-f', 'h264', h264]);
  execFileSync('ffmpeg', ['-v', 'error', '-y', ...src, '-c:v', 'libvpx', '-deadline', 'realtime', '-cpu-used', '8', '-b:v', '500k', '-g', '30', '-f', 'ivf', ivf]);
  return { h264, ivf };
}

// ----- child processes -----
function run(cmd, argv, { env = {}, name }) {
  const child = spawn(cmd, argv, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  child.on('exit', () => children.delete(child));
  child.log = [];
  const keep = line => { child.log.push(line); if (child.log.length > 40) child.log.shift(); };
  readline.createInterface({ input: child.stdout }).on('line', line => { keep(line); child.emit('line', line); });
  readline.createInterface({ input: child.stderr }).on('line', line => keep(`[${name}] ${line}`));
  return child;
}

function stop(child) {
  if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
}

// Run a viewer process to its end; its report is the last `VIEWER {json}` line.
function viewerProcess(name, cmd, argv, env = {}) {
  return new Promise(resolve => {
    const child = run(cmd, argv, { env, name });
    let report = null;
    child.on('line', line => { if (line.startsWith('VIEWER ')) { try { report = JSON.parse(line.slice(7)); } catch { /* kept in log */ } } });
    const timer = setTimeout(() => stop(child), VIEWER_TIMEOUT_MS + 10_000);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      resolve(report || { stack: name, error: `exited ${code ?? signal} without a report`, log: child.log.slice(-12) });
    });
  });
}

// ----- publishers: each returns { stop(), codec? } once it is sending -----
async function publishWithProcess(name, cmd, argv, env = {}) {
  const child = run(cmd, argv, { env, name });
  await waitFor(`${name} publishing`, () => {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`${name} exited: ${child.log.slice(-8).join(' | ')}`);
    return child.log.includes('PUBLISHING');
  }, 20_000, 50);
  return { stop: () => stop(child), child };
}

async function publishChromium(browser, room, codec) {
  const page = await browser.newPage();
  page.on('pageerror', e => console.error(`host page (${room}) error:`, e.message));
  await page.goto(`${base}/host/${room}?name=Host${codec ? `&codec=${codec}` : ''}`);
  await waitFor('host page idle', () => page.evaluate(() => document.body.dataset.state === 'idle'));
  await page.click('#go-live');
  await waitFor('host page live', () => page.evaluate(() => document.body.dataset.state === 'live' || (document.body.dataset.state === 'error' && document.getElementById('message').textContent)), 20_000)
    .then(s => { if (s !== true) throw new Error(`host page: ${s}`); });
  // What Chromium actually encodes (it may lack an H264 encoder).
  const sent = await waitFor('host sending video', () => page.evaluate(async () => {
    const stats = await window.sellcast.session.pc.getStats();
    let out = null;
    stats.forEach(s => { if (s.type === 'outbound-rtp' && s.kind === 'video' && s.framesEncoded > 0) out = { codec: stats.get(s.codecId)?.mimeType, encoder: s.encoderImplementation }; });
    return out;
  }), 10_000);
  return { stop: () => page.close().catch(() => {}), sent };
}

// ----- viewers -----
async function viewChromium(browser, url, token) {
  const page = await browser.newPage();
  try {
    await page.goto(`${base}/healthz`);
    await page.evaluate(async ({ url, token }) => {
      const pc = new RTCPeerConnection({ iceServers: [] });
      pc.addTransceiver('video', { direction: 'recvonly' });
      pc.addTransceiver('audio', { direction: 'recvonly' });
      const video = document.createElement('video');
      video.muted = true; video.autoplay = true; video.playsInline = true;
      document.body.append(video);
      const w = window.viewer = { pc, first: null, t0: 0 };
      pc.ontrack = ev => {
        if (ev.track.kind !== 'video') return;
        video.srcObject = new MediaStream([ev.track]);
        video.requestVideoFrameCallback(() => { w.first ??= performance.now(); });
      };
      await pc.setLocalDescription();
      await new Promise(r => { if (pc.iceGatheringState === 'complete') r(); else pc.onicegatheringstatechange = () => pc.iceGatheringState === 'complete' && r(); });
      w.t0 = performance.now();
      const resp = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/sdp', authorization: `Bearer ${token}` }, body: pc.localDescription.sdp });
      const text = await resp.text();
      if (resp.status !== 201) throw new Error(`HTTP ${resp.status}: ${text.trim()}`);
      await pc.setRemoteDescription({ type: 'answer', sdp: text });
    }, { url, token });
    const stats = () => page.evaluate(async () => {
      const w = window.viewer;
      const all = await w.pc.getStats();
      const out = { frames: 0, audio: 0, codec: null, audioCodec: null, first: w.first === null ? null : Math.round(w.first - w.t0), sinceFirst: w.first === null ? 0 : performance.now() - w.first, state: w.pc.connectionState };
      all.forEach(s => {
        if (s.type !== 'inbound-rtp') return;
        const codec = all.get(s.codecId)?.mimeType?.split('/')[1]?.toUpperCase() ?? null;
        if (s.kind === 'video') { out.frames = s.framesDecoded || 0; out.codec = codec; }
        if (s.kind === 'audio') { out.audio = s.packetsReceived || 0; out.audioCodec = codec; }
      });
      return out;
    });
    let s = null;
    await waitFor('2 s of decoded video', async () => { s = await stats(); return s.frames >= 20 && s.sinceFirst >= 2000 && s.audio > 0; }, VIEWER_TIMEOUT_MS, 100).catch(() => {});
    s = s || await stats();
    return { stack: 'chromium', codec: s.codec, frames: s.frames, span_ms: Math.round(s.sinceFirst), first_frame_ms: s.first, audio_packets: s.audio, audio_codec: s.audioCodec, channel: null, state: s.state };
  } catch (e) {
    return { stack: 'chromium', error: e.message };
  } finally {
    await page.close().catch(() => {});
  }
}

function gstEnv() {
  return { GST_PLUGIN_PATH: gstDir, GST_DEBUG: process.env.GST_DEBUG || '1' };
}

const VIEWERS = {
  chromium: (ctx, url, token) => viewChromium(ctx.browser, url, token),
  pion: (ctx, url, token) => viewerProcess('pion', ctx.pion, ['view', '-url', url, '-token', token, '-channel', `-timeout=${VIEWER_TIMEOUT_MS}ms`]),
  werift: (ctx, url, token) => viewerProcess('werift', process.execPath, [path.join(here, 'werift-viewer.mjs'), '--url', url, '--token', token, '--channel', 'no', '--timeout', String(VIEWER_TIMEOUT_MS)]),
  libdatachannel: (ctx, url, token) => viewerProcess('libdatachannel', process.execPath, [path.join(here, 'ldc-viewer.mjs'), '--url', url, '--token', token, '--channel', 'yes', '--timeout', String(VIEWER_TIMEOUT_MS)]),
  gstreamer: (ctx, url, token) => viewerProcess('gstreamer', '/usr/bin/python3', [path.join(here, 'gst/whep_viewer.py'), '--url', url, '--token', token, '--timeout', String(VIEWER_TIMEOUT_MS)], gstEnv()),
};

const PUBLISHERS = [
  { name: 'chromium-vp8', codec: 'VP8', start: (ctx, room) => publishChromium(ctx.browser, room, null) },
  { name: 'chromium-h264', codec: 'H264', start: (ctx, room) => publishChromium(ctx.browser, room, 'h264') },
  { name: 'obs-like-libdatachannel-h264', codec: 'H264', start: async (ctx, room, url, token) => publishWithProcess('obs-like', process.execPath, [path.join(here, 'ldc-publisher.mjs'), '--url', url, '--token', token, '--clip', ctx.clips.h264]) },
  { name: 'pion-vp8', codec: 'VP8', start: (ctx, room, url, token) => publishWithProcess('pion-publisher', ctx.pion, ['publish', '-url', url, '-token', token, '-ivf', ctx.clips.ivf]) },
  { name: 'gstreamer-vp8', codec: 'VP8', gst: true, start: (ctx, room, url, token) => publishWithProcess('gst-vp8', '/usr/bin/python3', [path.join(here, 'gst/whip_publisher.py'), '--url', url, '--token', token, '--codec', 'vp8'], gstEnv()) },
  { name: 'gstreamer-h264', codec: 'H264', gst: true, start: (ctx, room, url, token) => publishWithProcess('gst-h264', '/usr/bin/python3', [path.join(here, 'gst/whip_publisher.py'), '--url', url, '--token', token, '--codec', 'h264'], gstEnv()) },
];

async function roomLive(room) {
  return (await (await fetch(`${base}/api/rooms/${room}`)).json()).live === true;
}

async function runPublisher(ctx, pub, result) {
  const room = pub.name.replace(/[^a-z0-9]/g, '').slice(0, 24);
  const url = `${base}/whip/${room}${pub.codec === 'H264' ? '?codec=h264' : ''}`;
  const t0 = Date.now();
  let handle = null;
  try {
    const token = await devToken(base, room, 'host', `host-${room}`);
    handle = await pub.start(ctx, room, url, token);
    await waitFor(`${room} live`, () => roomLive(room), 10_000);
    result.publishers[pub.name] = { ok: true, expected_codec: pub.codec, publish_ms: Date.now() - t0, ...(handle.sent ? { sent: handle.sent } : {}) };
  } catch (e) {
    result.publishers[pub.name] = { ok: false, expected_codec: pub.codec, error: e.message };
    handle?.stop();
    return;
  }
  const viewers = Object.entries(VIEWERS).filter(([v]) => v !== 'gstreamer' || gstDir);
  const reports = await Promise.all(viewers.map(async ([v, view], i) => {
    const token = await devToken(base, room, 'viewer', `${v}-${i}`);
    return [v, await view(ctx, `${base}/whep/${room}`, token)];
  }));
  for (const [v, r] of reports) result.pairs[`${pub.name} -> ${v}`] = { expected_codec: pub.codec, ...r };
  handle.stop();
}

async function main() {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sellcast-interop-'));
  setTimeout(() => {
    console.error(`INTEROP FAILED: matrix exceeded ${DEADLINE_MS} ms (server log in ${tmp})`);
    for (const c of children) stop(c);
    process.exit(1);
  }, DEADLINE_MS).unref();
  const clips = makeClips(tmp);
  let pion = process.env.PION_PEER;
  if (!pion) {
    pion = path.join(tmp, 'pion-peer');
    execFileSync('sh', [path.join(here, 'pion/build.sh'), pion], { stdio: 'inherit' });
  }
  const server = run(bin, ['serve', '--http', `127.0.0.1:${HTTP_PORT}`, '--udp-port', '0', '--web-dir', path.join(repo, 'web'), '--db', path.join(tmp, 'sellcast.db')],
    { env: { RUST_LOG: process.env.RUST_LOG || 'info' }, name: 'server' });
  const serverLog = fs.createWriteStream(path.join(tmp, 'server.log'));
  server.stderr.pipe(serverLog);
  await waitFor('server /healthz', async () => (await fetch(`${base}/healthz`)).ok, 20_000);
  const browser = await chromium.launchPersistentContext(fs.mkdtempSync(path.join(tmp, 'profile-')), {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: false,
    args: ['--headless=new', '--no-sandbox', '--disable-gpu', '--allow-loopback-in-peer-connection',
      '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream',
      '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run',
      '--disable-features=WebRtcHideLocalIpsWithMdns', '--autoplay-policy=no-user-gesture-required',
      '--disable-background-timer-throttling', '--disable-renderer-backgrounding', '--disable-backgrounding-occluded-windows'],
  });
  const result = { publishers: {}, pairs: {}, skipped: [] };
  try {
    // Can this Chromium encode H264 at all? (Debian's build relies on its bundled OpenH264.)
    const page = await browser.newPage();
    await page.goto(`${base}/healthz`);
    result.chromium_send_codecs = await page.evaluate(() => [...new Set(RTCRtpSender.getCapabilities('video').codecs.map(c => c.mimeType))]);
    await page.close();
    const only = process.env.INTEROP_ONLY ? process.env.INTEROP_ONLY.split(',') : null;
    const ctx = { browser, clips, pion };
    for (const pub of PUBLISHERS) {
      if (only && !only.includes(pub.name)) continue;
      if (pub.gst && !gstDir) { result.skipped.push(pub.name); continue; }
      const t0 = Date.now();
      await runPublisher(ctx, pub, result);
      console.error(`${pub.name}: ${Date.now() - t0} ms`);
    }
    if (!gstDir) result.skipped.push('gstreamer (viewer)');
  } finally {
    await browser.close().catch(() => {});
    for (const c of children) stop(c);
  }
  console.log(`RESULT ${JSON.stringify(result)}`);
  await sleep(100);
  process.exit(0);
}

main().catch(e => { console.error(e); for (const c of children) stop(c); process.exit(1); });
