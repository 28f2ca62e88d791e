// What every browser scenario shares: bounded polling, the real server binary as a child process,
// and Chromium launched with a fake camera and the flags WebRTC on loopback needs.
import { chromium } from 'playwright-core';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
export const repo = path.resolve(here, '../..');

export function fail(msg) { throw new Error(msg); }
export const sleep = ms => new Promise(r => setTimeout(r, ms));

// Poll `fn` until it returns a truthy value; bounded, never a blind sleep. A `{ pending: ... }`
// value means "not yet" and is what a timeout reports.
export async function waitFor(what, fn, timeoutMs = 20_000, every = 100) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    try { last = await fn(); if (last && !last.pending) return last; } catch (e) { last = e.message; }
    await sleep(every);
  }
  fail(`timed out waiting for ${what} (last: ${JSON.stringify(last)})`);
}

// Poll like waitFor, but never fail: return the last value seen (the Rust side asserts on it).
export async function observe(fn, done, timeoutMs = 20_000, every = 100) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    try { last = await fn(); if (done(last)) return last; } catch (e) { last = undefined; }
    await sleep(every);
  }
  return last;
}

// The real server binary on `ip` (default 127.0.0.1):`port`, HTTP and UDP, serving the pages
// from web/ (or SELLCAST_WEB_DIR: a control run serves a deliberately broken copy), its log
// appended to `tmp`/server.log; `args` are more flags (a non-loopback `ip` needs `--dev`).
// `start` again after `stop` brings it back on the same port and database (a restart).
export class ServerProcess {
  constructor({ tmp, port, bin = process.env.SELLCAST_BIN || path.join(repo, 'target/debug/sellcast'), ip = '127.0.0.1', args = [] }) {
    Object.assign(this, { tmp, port, bin, ip, args, child: null });
    this.base = `http://${ip}:${port}`;
  }

  async start() {
    const child = spawn(this.bin, ['serve', '--http', `${this.ip}:${this.port}`, '--udp-ip', this.ip, '--udp-port', '0', '--web-dir', process.env.SELLCAST_WEB_DIR || path.join(repo, 'web'), '--db', path.join(this.tmp, 'sellcast.db'), ...this.args],
      { env: { ...process.env, RUST_LOG: process.env.RUST_LOG || 'info' }, stdio: ['ignore', 'pipe', 'pipe'] });
    // The server logs to stdout; panics and early errors go to stderr. Both are kept.
    const log = fs.createWriteStream(path.join(this.tmp, 'server.log'), { flags: 'a' });
    child.stdout.pipe(log, { end: false });
    child.stderr.pipe(log, { end: false });
    child.on('exit', (code, signal) => { if (code && !signal) console.error(`server exited with ${code}`); });
    this.child = child;
    await waitFor('server /healthz', async () => (await fetch(`${this.base}/healthz`)).ok, 20_000);
    return child;
  }

  async stop(signal) {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise(r => child.once('exit', r));
    child.kill(signal);
    await Promise.race([exited, sleep(3000)]);
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }

  kill() { this.child?.kill('SIGKILL'); }
}

// Chromium's flags: headless, fake media devices playing `clip`, autoplay allowed, WebRTC on loopback.
export function chromiumArgs(clip) {
  return ['--headless=new', '--no-sandbox', '--disable-gpu', '--allow-loopback-in-peer-connection',
    '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream', `--use-file-for-fake-video-capture=${clip}`,
    '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run',
    '--disable-features=WebRtcHideLocalIpsWithMdns', '--autoplay-policy=no-user-gesture-required',
    '--disable-background-timer-throttling', '--disable-renderer-backgrounding', '--disable-backgrounding-occluded-windows'];
}

const executablePath = () => process.env.CHROMIUM || '/usr/bin/chromium';

// One context in a fresh profile (every page shares it). `cspViolations` collects what the
// pages' Content-Security-Policy blocked.
export async function launchChromium(profile, clip, cspViolations) {
  const browser = await chromium.launchPersistentContext(profile, { executablePath: executablePath(), headless: false, args: chromiumArgs(clip) });
  browser.on('page', page => watchCsp(page, cspViolations));
  return browser;
}

// A browser for several contexts (a phone and a desktop side by side); pass each page to watchCsp.
export async function launchBrowser(clip) {
  return chromium.launch({ executablePath: executablePath(), headless: false, args: chromiumArgs(clip) });
}

// One context in a fresh profile under `tmp` whose pages all get `viewport`. `executable` may
// be a wrapper (Chromium in a viewer's network namespace: links.mjs); `extraArgs` go after ours.
export async function launchPersistent({ tmp, clip, viewport, executable = executablePath(), extraArgs = [] }) {
  const profile = fs.mkdtempSync(path.join(tmp, 'profile-'));
  return chromium.launchPersistentContext(profile, { executablePath: executable, headless: false, viewport, args: [...chromiumArgs(clip), ...extraArgs] });
}

export function watchCsp(page, cspViolations) {
  page.on('console', m => { if (/Content Security Policy/i.test(m.text())) cspViolations.push(m.text()); });
}

export async function inboundStats(page) {
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

// Runs `scenario()` against `server` in `browser` and prints `RESULT {json}` of `result` (with
// `failed`: the first failed expectation, rethrown); stops both, keeps `tmp` only on failure.
export async function reportScenario({ tmp, server, browser, result }, scenario) {
  try {
    await scenario();
  } catch (e) {
    console.error(`server log kept in ${tmp}`);
    console.log(`RESULT ${JSON.stringify({ ...result, failed: e.message })}`);
    throw e;
  } finally {
    await browser.close().catch(() => {});
    await server.stop('SIGINT');
  }
  fs.rmSync(tmp, { recursive: true, force: true });
  console.log(`RESULT ${JSON.stringify(result)}`);
}

// Answers the page's confirmation dialog (`#confirm`) with its `yes` or `no` button.
export async function confirmDialog(page, answer) {
  await waitFor('the confirmation dialog opens', () => page.evaluate(() => document.getElementById('confirm').open));
  await page.click(`#confirm button.${answer}`);
  await waitFor('the confirmation dialog closes', () => page.evaluate(() => !document.getElementById('confirm').open));
}
