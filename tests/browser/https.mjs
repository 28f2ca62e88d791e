// HTTPS end to end, as on a public server: the server serves pages, API, WHIP and WHEP over TLS
// (--tls-cert/--tls-key) on a non-loopback address, with a certificate from a test CA that this
// Chromium trusts through its NSS database (no --ignore-certificate-errors). Run by https.sh.
//
// In order: the host page is a secure context and goes live with the fake camera; a viewer
// plays; controls: a Chromium that does not trust the CA refuses the page, and the same page
// over plain HTTP on this address is not a secure context (no camera API); then SIGTERM: both
// pages are told to move, the server exits 0, and when it is back the pages reconnect by
// themselves and the viewer plays again.
//
// Env: SELLCAST_BIN, SELLCAST_TEST_ADDR, SELLCAST_HTTPS_PORT, SELLCAST_TLS_DIR (ca.pem,
// cert.pem, key.pem), CHROMIUM (/usr/bin/chromium), NODE_EXTRA_CA_CERTS (the CA, for fetch).
// Prints `RESULT {json}`; exits non-zero on the first failed expectation.
import { chromium } from 'playwright-core';
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { writeClip } from './y4m.mjs';

const bin = process.env.SELLCAST_BIN || fail('SELLCAST_BIN');
const ADDR = process.env.SELLCAST_TEST_ADDR || fail('SELLCAST_TEST_ADDR');
const PORT = Number(process.env.SELLCAST_HTTPS_PORT || 18443);
const TLS = process.env.SELLCAST_TLS_DIR || fail('SELLCAST_TLS_DIR');
const base = `https://${ADDR}:${PORT}`;
const ROOM = 'https';
const DEADLINE_MS = 150_000;
const result = {};
let server = null;

function fail(msg) { throw new Error(msg); }
const sleep = ms => new Promise(r => setTimeout(r, ms));

async function waitFor(what, fn, timeoutMs = 20_000, every = 100) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    try { last = await fn(); if (last && !last.pending) return last; } catch (e) { last = e.message; }
    await sleep(every);
  }
  fail(`timed out waiting for ${what} (last: ${JSON.stringify(last)})`);
}

// The server, started in a directory with no web/: the pages come from the binary.
async function startServer(tmp, { tls = true, port = PORT } = {}) {
  // A non-loopback address without a secret: dev mode needs --dev there.
  const args = ['serve', '--http', `${ADDR}:${port}`, '--dev', '--udp-ip', ADDR, '--udp-port', '0', '--db', path.join(tmp, 'sellcast.db')];
  if (tls) args.push('--tls-cert', path.join(TLS, 'cert.pem'), '--tls-key', path.join(TLS, 'key.pem'));
  const cwd = fs.mkdtempSync(path.join(tmp, 'cwd-'));
  const child = spawn(bin, args, { cwd, env: { ...process.env, RUST_LOG: 'info' }, stdio: ['ignore', 'ignore', 'pipe'] });
  child.stderr.pipe(fs.createWriteStream(path.join(tmp, `server-${port}.log`), { flags: 'a' }));
  const exited = new Promise(r => child.once('exit', (code, signal) => r({ code, signal, at: Date.now() })));
  const url = `${tls ? 'https' : 'http'}://${ADDR}:${port}/healthz`;
  await waitFor(`server ${url}`, async () => (await fetch(url)).ok, 20_000);
  return { child, exited };
}

// An NSS database in a fresh HOME that trusts the test CA for TLS servers; Chromium on Linux
// reads its trust from $HOME/.pki/nssdb.
function trustingHome(tmp) {
  const home = path.join(tmp, 'home-trusting');
  const db = path.join(home, '.pki/nssdb');
  fs.mkdirSync(db, { recursive: true });
  execFileSync('certutil', ['-d', `sql:${db}`, '-N', '--empty-password']);
  execFileSync('certutil', ['-d', `sql:${db}`, '-A', '-t', 'C,,', '-n', 'sellcast-test-ca', '-i', path.join(TLS, 'ca.pem')]);
  return home;
}

function launch(tmp, home, clip) {
  return chromium.launchPersistentContext(fs.mkdtempSync(path.join(tmp, 'profile-')), {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: false,
    env: { ...process.env, HOME: home },
    args: ['--headless=new', '--no-sandbox', '--disable-gpu', '--allow-loopback-in-peer-connection',
      '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream', `--use-file-for-fake-video-capture=${clip}`,
      '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run',
      '--disable-features=WebRtcHideLocalIpsWithMdns', '--autoplay-policy=no-user-gesture-required',
      '--disable-background-timer-throttling', '--disable-renderer-backgrounding', '--disable-backgrounding-occluded-windows'],
  });
}

async function videoFrames(page) {
  return page.evaluate(async () => {
    const pc = window.sellcast?.session?.pc;
    if (!pc) return 0;
    let frames = 0;
    (await pc.getStats()).forEach(s => { if (s.type === 'inbound-rtp' && s.kind === 'video') frames = s.framesDecoded || 0; });
    return frames;
  });
}

async function main() {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sellcast-https-'));
  const clip = path.join(tmp, 'clip.y4m');
  writeClip(clip, 150);
  setTimeout(() => {
    console.error(`HTTPS E2E FAILED: scenario exceeded ${DEADLINE_MS} ms (logs in ${tmp})`);
    server?.child.kill('SIGKILL');
    process.exit(1);
  }, DEADLINE_MS).unref();
  server = await startServer(tmp);
  const browser = await launch(tmp, trustingHome(tmp), clip);
  try {
    await run(browser, tmp, clip);
  } catch (e) {
    console.error(`logs kept in ${tmp}`);
    throw e;
  } finally {
    await browser.close().catch(() => {});
    server?.child.kill('SIGKILL');
  }
  fs.rmSync(tmp, { recursive: true, force: true });
  console.log(`RESULT ${JSON.stringify(result)}`);
}

async function run(browser, tmp, clip) {
  // ----- the host goes live over HTTPS -----
  const host = await browser.newPage();
  host.on('pageerror', e => console.error('host page error:', e.message));
  await host.goto(`${base}/host/${ROOM}?name=Hana`);
  result.host = await host.evaluate(() => ({ secure: window.isSecureContext, protocol: location.protocol, camera_api: !!navigator.mediaDevices }));
  await waitFor('host idle', () => host.evaluate(() => document.body.dataset.state === 'idle'));
  await host.click('#go-live');
  await waitFor('host live', () => host.evaluate(() => document.body.dataset.state === 'live'), 30_000);
  result.host.live = true;

  // ----- a viewer plays -----
  const viewer = await browser.newPage();
  viewer.on('pageerror', e => console.error('viewer page error:', e.message));
  await viewer.goto(`${base}/watch/${ROOM}?name=Vera`);
  result.viewer = { protocol: await viewer.evaluate(() => location.protocol) };
  result.viewer.frames = await waitFor('viewer decodes video', async () => { const n = await videoFrames(viewer); return n > 10 && n; }, 30_000);

  // ----- control: a browser that does not trust the test CA refuses the page -----
  const untrusting = await launch(tmp, fs.mkdtempSync(path.join(tmp, 'home-empty-')), clip);
  try {
    const page = await untrusting.newPage();
    result.untrusted = await page.goto(`${base}/host/${ROOM}`).then(() => ({ loaded: true }), e => ({ loaded: false, error: e.message.split('\n')[0] }));
  } finally {
    await untrusting.close().catch(() => {});
  }

  // ----- control: the same page over plain HTTP on this address is not a secure context -----
  const plain = await startServer(tmp, { tls: false, port: PORT + 1 });
  try {
    const page = await browser.newPage();
    await page.goto(`http://${ADDR}:${PORT + 1}/host/${ROOM}`);
    result.plain_http = await page.evaluate(() => ({ secure: window.isSecureContext, camera_api: !!navigator.mediaDevices }));
    await page.close();
  } finally {
    plain.child.kill('SIGKILL');
  }

  // ----- SIGTERM: the pages are told to move, the server drains and exits 0 -----
  const pages = { host, viewer };
  const moving = {};
  const watchers = Object.entries(pages).map(([name, page]) =>
    waitFor(`${name} page moving`, () => page.evaluate(() => document.body.dataset.state === 'moving'), 10_000, 20).then(() => { moving[name] = true; }));
  const t0 = Date.now();
  server.child.kill('SIGTERM');
  await Promise.all(watchers);
  const exit = await server.exited;
  result.drain = { moving, exit_code: exit.code, exit_signal: exit.signal, exit_ms: exit.at - t0 };

  // ----- back again: both pages reconnect by themselves, the viewer plays -----
  server = await startServer(tmp);
  await waitFor('host live again', () => host.evaluate(() => document.body.dataset.state === 'live'), 30_000);
  const frames = await waitFor('viewer decodes video again', async () => { const n = await videoFrames(viewer); return n > 10 && n; }, 30_000);
  result.after_restart = { host_live: true, viewer_frames: frames };
}

main().catch(e => { console.error(`HTTPS E2E FAILED: ${e.stack || e}`); process.exit(1); });
