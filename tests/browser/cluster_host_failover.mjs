// The host page when the room's origin dies (cluster mode): NATS and three real nodes A, B, C.
// The host page goes live on A (A is the room's origin) and a watch page on C decodes its video.
// A is killed with SIGKILL. The host page, still the page A served (same camera stream, same
// page), must publish again on another node by itself (`Session.nodeGone`, cross-origin WHIP),
// that node's room status must show the host live, and the watch page on C must decode video
// again. The time from the kill to the host page live again is printed, not checked.
//
// Env: SELLCAST_BIN, SELLCAST_HTTP_PORT (19200: NATS on it, nodes on the next three),
// CHROMIUM, NATS_SERVER (nats-server). Prints `RESULT {json}`; exits non-zero on the first
// failed expectation.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn, execFileSync } from 'node:child_process';
import { writeClip } from './y4m.mjs';
import { fail, waitFor, repo, launchBrowser, inboundStats, sleep } from './lib.mjs';

const PORT = Number(process.env.SELLCAST_HTTP_PORT || 19200);
const BIN = process.env.SELLCAST_BIN || path.join(repo, 'target/debug/sellcast');
const SECRET = 'cluster-host-failover-secret-0123456789-0123456789';
const ROOM = 'moving-host';
const DEADLINE_MS = 120_000;
const children = [];
const result = {};

function start(cmd, args, env, log) {
  const out = fs.openSync(log, 'a');
  const child = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ['ignore', out, out] });
  children.push(child);
  return child;
}

function node(tmp, id, port) {
  const base = `http://127.0.0.1:${port}`;
  return { base, child: start(BIN, ['serve', '--http', `127.0.0.1:${port}`, '--udp-ip', '127.0.0.1', '--udp-port', '0', '--media-threads', '1',
    '--web-dir', path.join(repo, 'web'), '--db', path.join(tmp, `${id}.db`)], {
    SELLCAST_CLUSTER: `nats://127.0.0.1:${PORT}`, SELLCAST_NODE_ID: id, SELLCAST_PUBLIC_URL: base,
    SELLCAST_JWT_SECRET: SECRET, RUST_LOG: 'info',
  }, path.join(tmp, `${id}.log`)) };
}

function token(role, identity) {
  return execFileSync(BIN, ['token', '--room', ROOM, '--role', role, '--identity', identity, '--jwt-secret', SECRET]).toString().trim();
}

async function status(base) {
  return (await fetch(`${base}/api/rooms/${ROOM}`)).json();
}

async function main() {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sellcast-cluster-host-failover-'));
  const clip = path.join(tmp, 'clip.y4m');
  writeClip(clip, 300);
  setTimeout(() => {
    console.error(`CLUSTER HOST FAILOVER FAILED: scenario exceeded ${DEADLINE_MS} ms (logs in ${tmp})`);
    for (const c of children) c.kill('SIGKILL');
    process.exit(1);
  }, DEADLINE_MS).unref();
  start(process.env.NATS_SERVER || 'nats-server', ['-js', '-a', '127.0.0.1', '-p', String(PORT), '-sd', path.join(tmp, 'nats')], {}, path.join(tmp, 'nats.log'));
  await waitFor('nats-server', async () => { await sleep(200); return fs.existsSync(path.join(tmp, 'nats.log')) && fs.readFileSync(path.join(tmp, 'nats.log'), 'utf8').includes('Server is ready'); });
  const nodes = [node(tmp, 'node-a', PORT + 1), node(tmp, 'node-b', PORT + 2), node(tmp, 'node-c', PORT + 3)];
  const [a, b, c] = nodes.map(n => n.base);
  for (const base of [a, b, c]) await waitFor(`${base}/healthz`, async () => (await fetch(`${base}/healthz`)).ok, 30_000);
  // A knows B and C before it serves the host page: the page's connect-src lists them.
  await waitFor("A's registry view lists three nodes", async () => {
    const { nodes: listed } = await (await fetch(`${a}/api/rooms/${ROOM}/nodes`)).json();
    return listed.filter(n => n.url).length === 3 || { pending: listed };
  }, 30_000);
  const browser = await launchBrowser(clip);
  try {
    await run(browser, { a, b, c, killA: () => nodes[0].child.kill('SIGKILL') });
  } catch (e) {
    console.error(`logs kept in ${tmp}`);
    console.log(`RESULT ${JSON.stringify({ ...result, failed: e.message })}`);
    throw e;
  } finally {
    await browser.close().catch(() => {});
    for (const child of children) child.kill('SIGINT');
    await sleep(500);
    for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
  }
  fs.rmSync(tmp, { recursive: true, force: true });
  console.log(`RESULT ${JSON.stringify(result)}`);
}


async function run(browser, { a, b, c, killA }) {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const host = await ctx.newPage();
  host.on('pageerror', e => console.error('host page error:', e.message));
  host.on('console', m => { if (m.type() === 'error') console.error('host page console:', m.text()); });
  await host.goto(`${a}/host/${ROOM}#token=${encodeURIComponent(token('host', 'host'))}`);
  await waitFor('host page idle on A', () => host.evaluate(() => document.body.dataset.state === 'idle'));
  await host.click('#go-live');
  await waitFor('host live on A', () => host.evaluate(() => document.body.dataset.state === 'live'));
  await waitFor("A's status shows the host live", async () => (await status(a)).live === true);
  // The page has the room's node list (asked when it went live) before A dies.
  await waitFor('the host page knows the three nodes', () => host.evaluate(() => window.sellcast.session.known.length === 3 || { pending: window.sellcast.session.known }));
  // A viewer on C watches.
  const viewer = await (await browser.newContext()).newPage();
  await viewer.goto(`${c}/watch/${ROOM}#token=${encodeURIComponent(token('viewer', 'cy'))}`);
  await waitFor('video decoded on C', async () => {
    const s = await inboundStats(viewer);
    return s?.video?.frames > 10 ? s : null;
  }, 30_000);

  const killedAt = Date.now();
  killA();
  const onAgain = await waitFor('the host page live again on another node', () => host.evaluate(() => {
    const base = window.sellcast.session.base;
    return document.body.dataset.state === 'live' && base !== '' ? base : { pending: { state: document.body.dataset.state, base, message: document.getElementById('message').textContent } };
  }), 90_000, 200);
  result.kill_to_host_live_again_ms = Date.now() - killedAt;
  console.log(`kill -9 of A to the host page live again on ${onAgain}: ${result.kill_to_host_live_again_ms} ms`);
  result.host_page_url_origin = new URL(host.url()).origin;
  result.host_now_on = onAgain;
  await waitFor(`${onAgain}'s status shows the host live`, async () => (await status(onAgain)).live === true || { pending: await status(onAgain) }, 30_000);
  result.live_on_new_node = true;
  // The watch page on C decodes video again: its decoded-frame count grows by 30 between two
  // readings (a new connection starts from 0, so the growth is measured from a reading after
  // the host is back).
  let first = null;
  const again = await waitFor('video decoded on C again', async () => {
    const frames = (await inboundStats(viewer))?.video?.frames ?? 0;
    if (first === null || frames < first) { first = frames; return { pending: { first } }; }
    return frames - first >= 30 ? frames - first : { pending: { first, frames } };
  }, 60_000, 200);
  result.frames_on_c_after_move = again;
  result.kill_to_video_on_c_ms = Date.now() - killedAt;
  // The console followed: a product added now is created on the new node.
  const created = await host.evaluate(async room => {
    const s = window.sellcast.session;
    const r = await fetch(`${s.base}/api/rooms/${encodeURIComponent(room)}/products`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${window.sellcast.state.token}` },
      body: JSON.stringify({ title: 'after the move', price_minor: 1000, currency: 'EUR', stock: 3, image_url: '', variants: [] }),
    });
    return r.status;
  }, ROOM);
  result.product_post_status_after_move = created;
}

main().catch(e => { console.error(e); process.exit(1); });
