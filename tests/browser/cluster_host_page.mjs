// The host page on a node that is not the room's origin (cluster mode): NATS and three real
// nodes A, B, C. The host goes live on A (A is the room's origin), leaves, and opens the host
// page on B within the claim's idle wait: the page asks B for the room's origin
// (GET /api/rooms/{room}/origin), moves to A with its token in the fragment, and goes live
// there. Checked: the page ends on A, A's room status shows the host live, and a watch page
// on C (a mirror of A's room) gets video.
//
// Env: SELLCAST_BIN, SELLCAST_HTTP_PORT (18950: NATS on it, nodes on the next three),
// CHROMIUM, NATS_SERVER (nats-server). Prints `RESULT {json}`; exits non-zero on the first
// failed expectation.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn, execFileSync } from 'node:child_process';
import { writeClip } from './y4m.mjs';
import { fail, waitFor, repo, launchBrowser, inboundStats, sleep } from './lib.mjs';

const PORT = Number(process.env.SELLCAST_HTTP_PORT || 18950);
const BIN = process.env.SELLCAST_BIN || path.join(repo, 'target/debug/sellcast');
const SECRET = 'cluster-host-page-secret-0123456789-0123456789';
const ROOM = 'origin-room';
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
  start(BIN, ['serve', '--http', `127.0.0.1:${port}`, '--udp-ip', '127.0.0.1', '--udp-port', '0', '--media-threads', '1',
    '--web-dir', path.join(repo, 'web'), '--db', path.join(tmp, `${id}.db`)], {
    SELLCAST_CLUSTER: `nats://127.0.0.1:${PORT}`, SELLCAST_NODE_ID: id, SELLCAST_PUBLIC_URL: base,
    SELLCAST_JWT_SECRET: SECRET, RUST_LOG: 'info',
  }, path.join(tmp, `${id}.log`));
  return base;
}

function token(role, identity) {
  return execFileSync(BIN, ['token', '--room', ROOM, '--role', role, '--identity', identity, '--jwt-secret', SECRET]).toString().trim();
}

async function status(base) {
  return (await fetch(`${base}/api/rooms/${ROOM}`)).json();
}

async function main() {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sellcast-cluster-host-'));
  const clip = path.join(tmp, 'clip.y4m');
  writeClip(clip, 300);
  setTimeout(() => {
    console.error(`CLUSTER HOST PAGE FAILED: scenario exceeded ${DEADLINE_MS} ms (logs in ${tmp})`);
    for (const c of children) c.kill('SIGKILL');
    process.exit(1);
  }, DEADLINE_MS).unref();
  start(process.env.NATS_SERVER || 'nats-server', ['-js', '-a', '127.0.0.1', '-p', String(PORT), '-sd', path.join(tmp, 'nats')], {}, path.join(tmp, 'nats.log'));
  await waitFor('nats-server', async () => { await sleep(200); return fs.existsSync(path.join(tmp, 'nats.log')) && fs.readFileSync(path.join(tmp, 'nats.log'), 'utf8').includes('Server is ready'); });
  const [a, b, c] = [node(tmp, 'node-a', PORT + 1), node(tmp, 'node-b', PORT + 2), node(tmp, 'node-c', PORT + 3)];
  for (const base of [a, b, c]) await waitFor(`${base}/healthz`, async () => (await fetch(`${base}/healthz`)).ok, 30_000);
  const browser = await launchBrowser(clip);
  try {
    await run(browser, { a, b, c });
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

async function hostPage(browser, base) {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await ctx.newPage();
  page.on('pageerror', e => console.error('host page error:', e.message));
  await page.goto(`${base}/host/${ROOM}#token=${encodeURIComponent(token('host', 'host'))}`);
  return { ctx, page };
}

async function run(browser, { a, b, c }) {
  // The host goes live on A: A is the room's origin.
  const first = await hostPage(browser, a);
  await waitFor('host page idle on A', () => first.page.evaluate(() => document.body.dataset.state === 'idle'));
  await first.page.click('#go-live');
  await waitFor('host live on A', () => first.page.evaluate(() => document.body.dataset.state === 'live'));
  const originOnB = await (await fetch(`${b}/api/rooms/${ROOM}/origin`)).json();
  result.origin_named_by_b = originOnB.origin;
  if (originOnB.origin !== a) fail(`B names the origin ${JSON.stringify(originOnB)}, not ${a}`);
  // The host leaves (its page closed), and opens the host page on B.
  await first.ctx.close();
  await waitFor('A shows the host gone', async () => (await status(a)).live === false);
  const second = await hostPage(browser, b);
  await waitFor('the host page moved to A', () => second.page.url().startsWith(`${a}/host/${ROOM}`), 20_000);
  result.host_page_url_origin = new URL(second.page.url()).origin;
  await waitFor('host page idle on A', () => second.page.evaluate(() => document.body.dataset.state === 'idle'));
  await second.page.click('#go-live');
  await waitFor('host live again', () => second.page.evaluate(() => document.body.dataset.state === 'live'));
  await waitFor("A's status shows the host live", async () => (await status(a)).live === true);
  result.live_on_a = true;
  result.live_on_b = (await status(b)).live;
  // A viewer on C gets the host's video.
  const viewer = await (await browser.newContext()).newPage();
  await viewer.goto(`${c}/watch/${ROOM}#token=${encodeURIComponent(token('viewer', 'cy'))}`);
  const stats = await waitFor('video decoded on C', async () => {
    const s = await inboundStats(viewer);
    return s?.video?.frames > 10 ? s : null;
  }, 30_000);
  result.video_frames_on_c = stats.video.frames;
}

main().catch(e => { console.error(e); process.exit(1); });
