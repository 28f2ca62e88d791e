// ICE over TCP: a Chromium viewer whose network drops every UDP datagram plays through the
// server's passive TCP candidate (RFC 6544, RFC 4571 framing). The host publishes normally from
// this scenario's namespace; the viewer's Chromium runs in its own namespace behind a link that
// drops all UDP both ways (links.mjs).
//
// Asserted here (and again on the RESULT in crates/sellcast-server/tests/browser_tcp_only.rs):
// the viewer decodes a growing number of frames, its selected candidate pair is TCP on both
// ends, a chat line it sends comes back to it and reaches the host (the data channel), and the
// server counts the connection in /api/stats/media. With TCP_CONTROL=1 (tcp_only_control.mjs)
// the server runs without --tcp-port and the same viewer must not play: the scenario only
// reports what it saw, and the Rust test asserts that nothing played.
//
// Env: SELLCAST_BIN, SELLCAST_HTTP_PORT (19100; the TCP media port is the next one), CHROMIUM,
// TCP_CONTROL, TCP_DEADLINE_MS (120000), KEEP_TMP (keep the server log). Prints `RESULT {json}`.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { writeClip } from './y4m.mjs';
import { fail, observe, waitFor, launchPersistent, sleep, ServerProcess } from './lib.mjs';
import { Link, SERVER_IP } from './links.mjs';

const HTTP_PORT = Number(process.env.SELLCAST_HTTP_PORT || 19100);
const TCP_PORT = HTTP_PORT + 1;
const CONTROL = process.env.TCP_CONTROL === '1';
const base = `http://${SERVER_IP}:${HTTP_PORT}`;
const ROOM = 'tcponly';
const DEADLINE_MS = Number(process.env.TCP_DEADLINE_MS || 120_000);
const result = { control: CONTROL };
let server = null;
let link = null;

// What the viewer's connection is doing: frames decoded, and the selected pair's transports.
async function viewerStats(page) {
  return page.evaluate(async () => {
    const pc = window.sellcast?.session?.pc;
    if (!pc) return { frames: 0, pair: null, state: 'none' };
    const all = new Map();
    (await pc.getStats()).forEach(s => all.set(s.id, s));
    let frames = 0;
    let pairId = null;
    for (const s of all.values()) {
      if (s.type === 'inbound-rtp' && s.kind === 'video') frames = s.framesDecoded || 0;
      if (s.type === 'transport' && s.selectedCandidatePairId) pairId = s.selectedCandidatePairId;
    }
    const pair = pairId && all.get(pairId);
    const local = pair && all.get(pair.localCandidateId);
    const remote = pair && all.get(pair.remoteCandidateId);
    return {
      frames,
      state: pc.connectionState,
      pair: pair ? {
        local: { protocol: local?.protocol, type: local?.candidateType, tcpType: local?.tcpType ?? null, address: local?.address },
        remote: { protocol: remote?.protocol, type: remote?.candidateType, address: remote?.address, port: remote?.port },
      } : null,
    };
  });
}

const chatTexts = page => page.evaluate(() => [...document.querySelectorAll('#chat li .text, #chat li')].map(e => e.textContent));

async function main() {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sellcast-tcp-'));
  const clip = path.join(tmp, 'clip.y4m');
  writeClip(clip, 300);
  setTimeout(() => {
    console.error(`TCP FAILED: scenario exceeded ${DEADLINE_MS} ms (server log in ${tmp})`);
    server?.kill();
    process.exit(1);
  }, DEADLINE_MS).unref();
  // The real server on SERVER_IP, which the viewer's namespace reaches through its link (in
  // dev mode: a non-loopback address needs it or a JWT secret); TCP on the next port unless
  // this is the control run.
  const args = ['--dev', '--media-threads', '2'];
  if (!CONTROL) args.push('--tcp-port', String(TCP_PORT));
  server = new ServerProcess({ tmp, port: HTTP_PORT, ip: SERVER_IP, args });
  link = await Link.create('tcpv', { dropUdp: true });
  // A page served over plain HTTP on a non-loopback address is a secure context only when told so.
  const extraArgs = [`--unsafely-treat-insecure-origin-as-secure=${base}`];
  let host = null;
  let viewer = null;
  try {
    await server.start();
    host = await launchPersistent({ tmp, clip, extraArgs });
    viewer = await launchPersistent({ tmp, clip, executable: link.chromiumPath(tmp), extraArgs });
    await run(host, viewer);
  } catch (e) {
    console.error(`server log and clip kept in ${tmp}`);
    throw e;
  } finally {
    await viewer?.close().catch(() => {});
    await host?.close().catch(() => {});
    await server.stop('SIGINT');
    await link.close();
  }
  if (process.env.KEEP_TMP) console.error(`kept ${tmp}`); else fs.rmSync(tmp, { recursive: true, force: true });
  console.log(`RESULT ${JSON.stringify(result)}`);
}

async function run(hostBrowser, viewerBrowser) {
  const host = hostBrowser.pages()[0] || await hostBrowser.newPage();
  await host.goto(`${base}/host/${ROOM}?name=Hana`);
  await waitFor('host idle', () => host.evaluate(() => document.body.dataset.state === 'idle'));
  await host.click('#go-live');
  await waitFor('host live', () => host.evaluate(() => document.body.dataset.state === 'live'), 30_000);

  const page = viewerBrowser.pages()[0] || await viewerBrowser.newPage();
  const started = Date.now();
  await page.goto(`${base}/watch/${ROOM}?name=Tia`);
  if (CONTROL) {
    // Long enough for Chromium to give up on every pair it has (no TCP candidate to try).
    const seen = await observe(() => viewerStats(page), s => s && s.frames > 0, 25_000, 250);
    result.viewer = { frames: seen?.frames ?? 0, pair: seen?.pair ?? null, state: seen?.state ?? null };
    result.played = (seen?.frames ?? 0) > 0;
    result.udp_dropped = await link.droppedUdp();
    return;
  }
  const first = await waitFor('the viewer decodes video', async () => {
    const s = await viewerStats(page);
    return s.frames > 0 ? s : { pending: s };
  }, 30_000, 200);
  result.first_frame_ms = Date.now() - started;
  const later = await waitFor('decoded frames keep increasing', async () => {
    const s = await viewerStats(page);
    return s.frames >= first.frames + 30 ? s : { pending: s };
  }, 15_000, 200);
  result.viewer = { frames_first: first.frames, frames_later: later.frames, pair: later.pair, state: later.state };
  if (later.pair?.local?.protocol !== 'tcp') fail(`the selected pair is not TCP: ${JSON.stringify(later.pair)}`);

  // The data channel: a chat line goes up over TCP and comes back to the viewer and the host.
  await waitFor('viewer chat ready', () => page.evaluate(() => document.body.dataset.state === 'live'), 20_000);
  const line = `hello over tcp ${Date.now() % 100000}`;
  await page.fill('#chat-input', line);
  await page.press('#chat-input', 'Enter');
  await waitFor('the chat line comes back to the viewer', async () => (await chatTexts(page)).some(t => t.includes(line)), 15_000);
  await waitFor('the host sees the chat line', async () => (await chatTexts(host)).some(t => t.includes(line)), 15_000);
  result.chat = { round_trip: true };

  const stats = await waitFor('the server counts the tcp connection', async () => {
    const m = await (await fetch(`${base}/api/stats/media`)).json();
    return m.tcp && m.tcp.open >= 1 && m.tcp.frames_in > 0 && m.tcp.frames_out > 0 ? m.tcp : { pending: m.tcp };
  }, 10_000, 300);
  result.tcp_stats = stats;
  result.udp_dropped = await link.droppedUdp();
  result.played = true;
  await sleep(0);
}

main().catch(e => { console.error(e.stack || e.message); process.exit(1); });
