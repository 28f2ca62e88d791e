// What the browser scenarios share: bounded polling, the server binary as a child process, and
// Chromium launched with a fake camera and microphone. Each scenario is its own .mjs, run by
// run.sh inside private network and PID namespaces.
import { chromium } from 'playwright-core';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
export const repo = path.resolve(here, '../..');
export const bin = process.env.SELLCAST_BIN || path.join(repo, 'target/debug/sellcast');

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

// The server binary, serving the pages from web/ (or SELLCAST_WEB_DIR: a control run serves a
// deliberately broken copy) and its database in `tmp`; `start` again after `stop` brings it back
// on the same port and database (a restart).
export class ServerProcess {
  constructor({ tmp, port }) {
    this.tmp = tmp;
    this.port = port;
    this.base = `http://127.0.0.1:${port}`;
    this.child = null;
  }

  async start() {
    const args = ['serve', '--http', `127.0.0.1:${this.port}`, '--udp-port', '0', '--web-dir', process.env.SELLCAST_WEB_DIR || path.join(repo, 'web'), '--db', path.join(this.tmp, 'sellcast.db')];
    const child = spawn(bin, args, { env: { ...process.env, RUST_LOG: process.env.RUST_LOG || 'info' }, stdio: ['ignore', 'ignore', 'pipe'] });
    const log = fs.createWriteStream(path.join(this.tmp, 'server.log'), { flags: 'a' });
    child.stderr.pipe(log);
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

// Headless Chromium with a fake camera playing `clip` (a Y4M file) and a fake microphone, and
// WebRTC allowed on loopback. `viewport` applies to every page it opens.
export async function launchBrowser({ tmp, clip, viewport }) {
  const profile = fs.mkdtempSync(path.join(tmp, 'profile-'));
  return chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: false,
    viewport,
    args: ['--headless=new', '--no-sandbox', '--disable-gpu', '--allow-loopback-in-peer-connection',
      '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream', `--use-file-for-fake-video-capture=${clip}`,
      '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run',
      '--disable-features=WebRtcHideLocalIpsWithMdns', '--autoplay-policy=no-user-gesture-required',
      '--disable-background-timer-throttling', '--disable-renderer-backgrounding', '--disable-backgrounding-occluded-windows'],
  });
}
