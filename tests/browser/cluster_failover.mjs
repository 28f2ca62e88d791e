// A real watch page in a three-node cluster, driven by `tests/browser_cluster_failover.rs`
// (which runs the nodes, the chat and the reference viewer, all inside one network namespace,
// and kills the node). The host is a host page in the same Chromium, publishing its fake
// camera (a generated clip) to A: the page must decode real video. Talks with the Rust side
// over stdin/stdout, one line each:
//   -> `HOSTING`          the host page is live on A
//   <- `WATCH`            the reference viewer and the chat are running: open the watch page
//   -> `ON <base>`        the page plays and has events; <base> is the node it watches from
//   <- `KILLED`           that node was just killed with SIGKILL
//   -> `MOVED <base>`     the page is on another node, decoding video and getting events
//   <- `FINAL <seq>`      the chat stopped; the reference viewer's newest event is <seq>
//   -> `RESULT {json}`    the page's events, the nodes it was on, the times after the kill
// Env: HOST_URL (A's host page), PAGE_URL (A's watch page), each with #token=...; CHROMIUM. Exits non-zero on a failed wait.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { launchPersistent, inboundStats, waitFor, fail } from './lib.mjs';
import { writeClip } from './y4m.mjs';

const PAGE_URL = process.env.PAGE_URL || fail('PAGE_URL is not set');
const HOST_URL = process.env.HOST_URL || fail('HOST_URL is not set');
const pageOrigin = new URL(PAGE_URL).origin;
const lines = readline.createInterface({ input: process.stdin })[Symbol.asyncIterator]();
async function expect(word) {
  const { value, done } = await lines.next();
  if (done || !value.startsWith(word)) fail(`expected ${word} from the test, got ${done ? 'end of input' : value}`);
  return value.slice(word.length).trim();
}

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sellcast-cluster-page-'));
const clip = path.join(tmp, 'clip.y4m');
writeClip(clip, 300);
const browser = await launchPersistent({ tmp, clip, viewport: { width: 390, height: 844 } });
const result = {};
try {
  const host = await browser.newPage();
  await host.goto(HOST_URL);
  await waitFor('host idle', () => host.evaluate(() => document.body.dataset.state === 'idle'), 30_000);
  await host.click('#go-live');
  await waitFor('host live', () => host.evaluate(() => document.body.dataset.state === 'live'), 30_000);
  console.log('HOSTING');
  await expect('WATCH');
  const page = await browser.newPage();
  page.on('console', m => { if (m.type() === 'error') console.error(`page: ${m.text()}`); });
  await page.goto(PAGE_URL);
  const node = () => page.evaluate(() => window.sellcast?.session?.base ?? null);
  const seen = () => page.evaluate(() => window.sellcast?.eventsSeen?.length ?? 0);
  await waitFor('the page decodes video', async () => {
    const stats = await inboundStats(page);
    return stats?.video?.frames > 10 || { pending: { stats, on: await node() } };
  }, 60_000);
  await waitFor('the page gets room events', async () => (await seen()) >= 3, 60_000);
  const first = (await node()) || pageOrigin;
  result.first_node = first;
  console.log(`ON ${first}`);

  await expect('KILLED');
  const killedAt = Date.now();
  const eventsAtKill = await seen();
  let firstEventMs = null;
  let firstFrameMs = null;
  let noticedMs = null; // the page's connection left `connected`: it noticed its node is gone
  await waitFor('the page moves to another node, decodes video and gets events', async () => {
    const on = (await node()) || pageOrigin;
    if (noticedMs === null && (on !== first || await page.evaluate(() => window.sellcast.session.pc?.connectionState !== 'connected'))) noticedMs = Date.now() - killedAt;
    const stats = on !== first ? await inboundStats(page) : null;
    if (firstFrameMs === null && stats?.video?.frames > 0) firstFrameMs = Date.now() - killedAt;
    if (firstEventMs === null && on !== first && (await seen()) > eventsAtKill) firstEventMs = Date.now() - killedAt;
    return firstFrameMs !== null && firstEventMs !== null ? on : { pending: { on, stats } };
  }, 90_000, 50);
  result.moved_to = (await node()) || pageOrigin;
  result.kill_to_first_event_ms = firstEventMs;
  result.kill_to_first_frame_ms = firstFrameMs;
  result.kill_to_noticed_ms = noticedMs;
  console.log(`MOVED ${result.moved_to}`);

  const final = Number(await expect('FINAL'));
  await waitFor(`the page has the event ${final}`, () => page.evaluate(f => window.sellcast.eventsSeen.some(([, s]) => s >= f), final), 30_000)
    .catch(() => {}); // the Rust side says what is missing
  result.events = await page.evaluate(() => window.sellcast.eventsSeen);
  result.frames_after = (await inboundStats(page))?.video?.frames ?? 0;
} finally {
  await browser.close();
}
console.log(`RESULT ${JSON.stringify(result)}`);
process.exit(0); // stdin is still open for reading
