// The host page's Banned list and its Unban button, against the real server: a viewer watching
// with identity `xena` chats, the host bans her from the chat line (the page's own Ban control),
// the Banned list shows her, and a new watch page of hers is refused; the host clicks Unban on
// the page; the server's `GET /api/rooms/{room}/bans` no longer lists her, and a new watch page
// of hers is welcomed as `xena` and plays. Run inside private namespaces (run.sh).
//
// Env: SELLCAST_BIN, SELLCAST_HTTP_PORT (19300), SELLCAST_WEB_DIR (pages; a control run points
// it at a copy whose unban handler is broken), CHROMIUM. Prints `RESULT {json}`; exits non-zero
// on the first failed expectation.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { writeClip } from './y4m.mjs';
import { ServerProcess, launchPersistent, fail, waitFor, reportScenario, confirmDialog } from './lib.mjs';

const HTTP_PORT = Number(process.env.SELLCAST_HTTP_PORT || 19300);
const base = `http://127.0.0.1:${HTTP_PORT}`;
const ROOM = 'unban';
const X = { identity: 'xena', name: 'Xena' };
const DEADLINE_MS = Number(process.env.E2E_DEADLINE_MS || 150_000);
const result = {};
let server = null;

async function main() {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sellcast-unban-'));
  const clip = path.join(tmp, 'clip.y4m');
  writeClip(clip, 60);
  server = new ServerProcess({ tmp, port: HTTP_PORT });
  setTimeout(() => {
    console.error(`HOST UNBAN FAILED: scenario exceeded ${DEADLINE_MS} ms (server log in ${tmp})`);
    server.kill();
    process.exit(1);
  }, DEADLINE_MS).unref();
  await server.start();
  const browser = await launchPersistent({ tmp, clip, viewport: { width: 1280, height: 800 } });
  await reportScenario({ tmp, server, browser, result }, () => run(browser));
}

async function devToken(role, name, identity) {
  const q = new URLSearchParams({ room: ROOM, role, name, identity });
  return (await (await fetch(`${base}/api/dev/token?${q}`)).json()).token;
}

// The identities the server lists as banned, asked with the host page's own token.
async function serverBans(host) {
  const token = await host.evaluate(() => window.sellcast.state.token);
  const r = await fetch(`${base}/api/rooms/${ROOM}/bans`, { headers: { authorization: `Bearer ${token}` } });
  if (!r.ok) fail(`GET /api/rooms/${ROOM}/bans answered ${r.status}`);
  return (await r.json()).bans.map(b => b.identity);
}

const bannedOnPage = host => host.evaluate(() => [...document.querySelectorAll('#bans li')].map(li => li.dataset.identity));

// A new tab watching as X: a new WHEP session, a new data channel.
async function watchAsX(browser, token) {
  const page = await browser.newPage();
  page.on('pageerror', e => console.error('viewer page error:', e.message));
  await page.goto(`${base}/watch/${ROOM}#token=${encodeURIComponent(token)}`);
  return page;
}

// X's page was welcomed on its data channel as X, and the show plays.
const welcomedAsX = page => page.evaluate(id => window.sellcast?.state?.me?.id === id && document.body.dataset.state === 'live', X.identity);

async function run(browser) {
  const host = await browser.newPage();
  host.on('pageerror', e => console.error('host page error:', e.message));
  await host.goto(`${base}/host/${ROOM}?name=Hana`);
  await waitFor('host page idle', () => host.evaluate(() => document.body.dataset.state === 'idle'));
  await host.click('#go-live');
  await waitFor('host live', () => host.evaluate(() => document.body.dataset.state === 'live'), 30_000);

  const token = await devToken('viewer', X.name, X.identity);
  const first = await watchAsX(browser, token);
  await waitFor(`${X.identity} welcomed and watching`, () => welcomedAsX(first), 30_000);
  await first.fill('#chat-input', 'hello from xena');
  await first.press('#chat-input', 'Enter');
  const line = `#chat li[data-identity="${X.identity}"]`;
  await waitFor(`${X.identity}'s chat reaches the host page`, () => host.locator(line).count());

  // Banned from the host page's own control on her chat line.
  await host.click(`${line} button.ban`);
  await confirmDialog(host, 'yes');
  await waitFor(`the host page's Banned list shows ${X.identity}`, async () => (await bannedOnPage(host)).includes(X.identity) || { pending: await bannedOnPage(host) });
  result.banned_on_page = await bannedOnPage(host);
  result.server_bans_before_unban = await serverBans(host);
  if (!result.server_bans_before_unban.includes(X.identity)) fail(`the server does not list ${X.identity} after the ban: ${JSON.stringify(result.server_bans_before_unban)}`);
  await first.close();

  // While banned, a new session of hers is refused (so the welcome below means something).
  const refused = await watchAsX(browser, token);
  result.refused_while_banned = await waitFor(`a new session of ${X.identity} is refused while banned`, async () => {
    const seen = await refused.evaluate(() => ({ state: document.body.dataset.state, status: document.getElementById('status').textContent }));
    return seen.state === 'error' ? seen.status : { pending: seen };
  }, 30_000);
  if (!/banned/i.test(result.refused_while_banned)) fail(`the refusal does not say banned: ${result.refused_while_banned}`);
  await refused.close();

  // Unban from the page.
  await host.click(`#bans li[data-identity="${X.identity}"] button.unban`);
  let lastBans = null;
  await waitFor(`the server stops listing ${X.identity} after Unban was clicked on the host page`, async () => {
    lastBans = await serverBans(host);
    return !lastBans.includes(X.identity) || { pending: { server_bans: lastBans, page_message: await host.evaluate(() => document.getElementById('message')?.textContent) } };
  }, 10_000);
  result.server_bans_after_unban = lastBans;
  await waitFor(`the host page's Banned list drops ${X.identity}`, async () => !(await bannedOnPage(host)).includes(X.identity) || { pending: await bannedOnPage(host) });
  result.banned_on_page_after_unban = await bannedOnPage(host);

  // She can come back: a new session is welcomed as her and plays.
  const again = await watchAsX(browser, token);
  await waitFor(`a new session of ${X.identity} is welcomed after the unban`, async () => (await welcomedAsX(again)) || {
    pending: await again.evaluate(() => ({ state: document.body.dataset.state, status: document.getElementById('status').textContent, me: window.sellcast?.state?.me?.id })),
  }, 30_000);
  result.rejoined_welcomed_as = await again.evaluate(() => window.sellcast.state.me.id);
  await again.close();
}

main().catch(e => { console.error(`HOST UNBAN FAILED: ${e.message}`); process.exit(1); });
