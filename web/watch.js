// The viewer page: WHEP video, the room's data channel (chat, likes, products, sales, buys).
//
// What the page shows is derived in one place (`updateView`) from what it knows: the session's
// state, whether the server answers, whether the room is live or its show ended, and whether
// video frames are being presented now. LIVE is shown only while frames arrive.
import { Session, getToken, roomFromPath } from './session.js';
import { RoomLink, Show, formatPrice, el, newKey } from './room.js';
import { ShowHeader } from './show_header.js';
import { ActivityBanner } from './activity.js';
import { NamePrompt } from './name_prompt.js';
import { BuySheet } from './buy_sheet.js';
import { Bag } from './bag.js';
import { MyOrders } from './my_orders.js';
import { VideoCap } from './video_cap.js';

const room = roomFromPath();
const $ = id => document.getElementById(id);
const video = $('video');
const state = Object.assign(new Show(), { me: null, live: false, ended: false });
const CHAT_MAX = Number($('chat-input').maxLength) || 500;
const CHAT_WARN_AT = CHAT_MAX - 100;
let sessionState = 'connecting';
let sessionDetail = '';
let serverDown = false; // the last status poll got no answer at all
// Set when the server stopped answering: the channel may look open for seconds after the server
// is gone, so nothing is sent on it until a `welcome` comes (on a channel that works).
let awaitingWelcome = false;
const header = new ShowHeader({ room, serverNow: () => Date.now() + state.clockOffset });
const activity = new ActivityBanner($('banner'));

// ----- the shop: buy sheet, bag of every product, and the viewer's own orders (from the server) -----
const sheet = new BuySheet({ show: state, send: f => link.send(f), isEnded: () => state.ended });
const bag = new Bag({ show: state, button: $('bag-button'), onBuy: (id, opener) => sheet.open(id, opener), isEnded: () => state.ended });
const myOrders = new MyOrders({ room, token: async () => session.token, button: $('my-orders'), count: $('my-orders-count'), list: $('my-orders-list') });

// ----- video -----
const stream = new MediaStream();
// Attach after 'load': a <video> whose stream has no frames yet (room not live) holds back the
// document's load event, and the tab would show as loading for as long as the host is away.
if (document.readyState === 'complete') video.srcObject = stream;
else window.addEventListener('load', () => { video.srcObject = stream; video.play().catch(() => {}); }, { once: true });

// The data-saver toggle and the player's displayed size cap the layer the server sends
// (video_cap.js); sent on each welcome and when they change.
const videoCap = new VideoCap({ video, toggle: $('data-saver'), send: f => link.send(f) });
videoCap.observe();

function unmute() {
  if (!video.muted) return;
  video.muted = false;
  video.play().catch(() => {});
  $('unmute').hidden = true;
}
$('unmute').onclick = unmute;

// A tap on the video unmutes; a second tap within DOUBLE_TAP_MS is a like.
const DOUBLE_TAP_MS = 350;
let lastVideoTap = -Infinity;
video.addEventListener('click', () => {
  const now = performance.now();
  if (now - lastVideoTap < DOUBLE_TAP_MS) { like(); lastVideoTap = -Infinity; return; }
  lastVideoTap = now;
  unmute();
});

// LIVE means frames are being presented now, not that playback once started: after a host drop
// the <video> keeps its last frame and fires no new 'playing' when the host comes back, and before
// the first frame there is nothing but black.
let lastFrameAt = -Infinity;
function onFrame() { lastFrameAt = performance.now(); }
if ('requestVideoFrameCallback' in HTMLVideoElement.prototype) {
  const tick = () => { onFrame(); video.requestVideoFrameCallback(tick); };
  video.requestVideoFrameCallback(tick);
} else {
  video.addEventListener('timeupdate', () => { if (video.videoWidth > 0) onFrame(); });
}
const framesFlowing = () => performance.now() - lastFrameAt < 1500;

// Sound still arriving while frames stopped: the server paused this viewer's video (its link
// cannot take even the lowest layer; audio and the data channel go on) rather than the
// connection being lost. Read from the audio receiver's packet count twice a second.
let audioAt = -Infinity;
let audioPackets = { pc: null, count: 0 }; // counted per connection: a new one starts at 0
setInterval(async () => {
  const pc = session.pc;
  const stats = await pc?.getStats().catch(() => null);
  stats?.forEach(s => {
    if (s.type !== 'inbound-rtp' || s.kind !== 'audio') return;
    const count = s.packetsReceived || 0;
    if (audioPackets.pc === pc && count > audioPackets.count) audioAt = performance.now();
    audioPackets = { pc, count };
  });
}, 500);
// Within a second: when a connection drops, sound stops being counted before frames do
// (framesFlowing's 1.5 s), so a lost connection never reads as a paused video.
const audioFlowing = () => performance.now() - audioAt < 1000;

// A session that was connected and is being redone is "reconnecting" (the server restarted or
// the network dropped), even while the room waits for its host. Before its first connection, a
// page whose room is not live waits (or says the show ended): its retries are for when the host comes.
let everConnected = false;
function viewState() {
  if (sessionState === 'error') return 'error';
  if (serverDown) return 'reconnecting';
  // The server is draining: it said where to go and closes this session soon.
  if (sessionState === 'moving') return 'moving';
  const redoing = sessionState === 'reconnecting' || sessionState === 'moving';
  if (redoing && everConnected) return 'reconnecting';
  if (!state.live) return state.ended ? 'ended' : 'waiting';
  if (redoing || sessionState === 'connecting') return 'connecting';
  return 'live';
}

const overlayText = {
  error: () => `Cannot watch: ${sessionDetail}`,
  reconnecting: () => 'Reconnecting…',
  moving: () => 'The show is moving to another server…',
  connecting: () => 'Connecting…',
  ended: () => 'Show ended',
  waiting: () => header.waitingText() || 'Waiting for the host…',
  live: () => {
    if (lastFrameAt === -Infinity) return 'Starting the video…';
    return audioFlowing() ? 'Video paused: your connection is slow. Sound goes on.' : 'Reconnecting…';
  },
};

function updateView() {
  const s = viewState();
  if (document.body.dataset.state !== s) {
    document.body.dataset.state = s;
    renderProducts(); // Buy follows the show's state
  }
  const status = s === sessionState && sessionDetail ? `${s}: ${sessionDetail}` : s;
  if ($('status').textContent !== status) $('status').textContent = status;
  const showing = s === 'live' && framesFlowing();
  $('live').hidden = !showing;
  $('waiting').hidden = showing;
  if (s !== 'waiting') header.hidePreShow();
  const text = overlayText[s]();
  if ($('waiting-text').textContent !== text) $('waiting-text').textContent = text;
  updateChatNote();
}
setInterval(updateView, 250);

// ----- room link -----
const link = new RoomLink({
  onWelcome: f => { awaitingWelcome = false; state.me = f.you; state.participant = f.participant ?? null; names.setMe(f.you); state.clockOffset = f.server_now_ms - Date.now(); videoCap.channelOpened(); resendBuysInFlight(); sheet.resend(); sendQueuedChat(); },
  onSnapshot: applySnapshot,
  onEvent: f => { noteEvent(f); applyEvent(f); },
  onDirect: applyDirect,
  onDraining: f => session.moveAfter(f.reconnect_after_ms),
});

// The room events this page applied, as (epoch, seq), the latest 10,000: what a test compares
// with another viewer's to show a move between nodes missed and repeated nothing.
const eventsSeen = [];
function noteEvent(f) {
  eventsSeen.push([f.epoch, f.seq]);
  if (eventsSeen.length > 10_000) eventsSeen.splice(0, eventsSeen.length - 10_000);
}

const session = new Session({
  endpoint: 'whep',
  room,
  token: null,
  setup: pc => {
    pc.addTransceiver('audio', { direction: 'recvonly' });
    pc.addTransceiver('video', { direction: 'recvonly' });
  },
  onTrack: ev => {
    for (const t of stream.getTracks()) if (t.kind === ev.track.kind) stream.removeTrack(t);
    stream.addTrack(ev.track);
    video.play().catch(() => {});
  },
  onChannel: ch => link.attach(ch),
  renewToken: () => getToken(room, 'viewer', { fresh: true }),
  // In a cluster the page watches from the least-loaded node, and moves to another by itself.
  placement: true,
  onState: (s, detail) => {
    myOrders.base = session.base; // the page's calls go to the node it is on
    sessionState = s;
    sessionDetail = detail || '';
    if (s === 'live') everConnected = true;
    updateView();
  },
});

// Polls the node the page is on: when it stops answering twice in a row (a process that died
// refuses at once; a host that died times out) the page moves to another node then, without
// waiting for WebRTC to give up on the connection (about 5 s in Chromium).
let pollsUnanswered = 0;
async function pollRoom() {
  try {
    const s = await fetch(`${session.base}/api/rooms/${encodeURIComponent(room)}`, { signal: AbortSignal.timeout(2000) }).then(r => r.json());
    serverDown = false;
    pollsUnanswered = 0;
    // A show that goes live again after it ended is a new show.
    if (s.live && !state.live) state.ended = false;
    state.live = s.live;
    $('viewers').textContent = s.viewers;
  } catch {
    serverDown = true; // the session reconnects by itself; until then the page says so
    awaitingWelcome = true;
    pollsUnanswered += 1;
    if (pollsUnanswered === 2) session.nodeNotAnswering();
  }
  updateView();
}

// ----- applying frames -----
function applySnapshot(s) {
  state.applySnapshot(s);
  state.loadMoreProducts(s, room, session.base).then(added => { if (added) renderProducts(); });
  $('likes').textContent = s.likes_total;
  header.apply(s.show);
  if (s.show?.ended_at_ms && !state.live) state.ended = true;
  $('chat').replaceChildren();
  for (const line of s.chat) addChat(line.seq, line.from, line.text);
  renderProducts();
}

function applyEvent(f) {
  if (state.applyEvent(f)) { renderProducts(); return; }
  switch (f.type) {
    case 'chat': addChat(f.seq, f.from, f.text); break;
    case 'chat_deleted': document.querySelector(`#chat [data-seq="${f.target_seq}"]`)?.remove(); break;
    case 'user_muted': if (state.me && f.identity === state.me.id) toast('A moderator muted you for a while.'); break;
    case 'show_ended': state.ended = true; updateView(); renderProducts(); break;
    case 'user_banned': break;
    case 'show_updated':
      header.apply(f.show);
      if (!f.show.ended_at_ms && !state.live) state.ended = false; // set up again: a new show is coming
      updateView();
      break;
  }
}

function applyDirect(f) {
  switch (f.type) {
    case 'likes': onLikes(f); break;
    case 'counters': state.applyCounters(f); renderProducts(); break;
    case 'activity': activity.show(f, state.me); break;
    case 'name_set': state.me = f.you; names.setMe(f.you); toast(`You appear as ${f.you.name}`, 'ok'); break;
    case 'order_confirmed':
      myOrders.refresh();
      if (sheet.handleAnswer(f)) break;
      buyAnswered(f.idempotency_key, true);
      toast(`Order #${f.order_id} confirmed: ${f.qty} × ${formatPrice(f.price_minor, f.currency)}`, 'ok');
      break;
    case 'buy_rejected':
      if (sheet.handleAnswer(f)) break;
      buyAnswered(f.idempotency_key, false);
      toast({ sold_out: 'Sold out, sorry!', limit_reached: 'You reached the limit for this deal.', sale_not_active: 'This deal is not active.', invalid: 'That did not work.' }[f.reason] || f.reason, 'bad');
      break;
    case 'buy_not_placed':
      if (sheet.handleAnswer(f)) break;
      buyNotPlaced(f.idempotency_key);
      toast(f.code === 'rate_limited' ? 'Too many taps: tap Buy again in a moment.' : 'The show is moving to another server: tap Buy again in a moment.', 'bad');
      break;
    case 'error':
      if (chatPending) chatRefused(f); else toast(f.message, 'bad');
      break;
  }
}

// ----- buying: one idempotency key per purchase intent -----
// A tap starts an intent unless one is in flight for that sale or was confirmed a moment ago (a
// double tap is one intent). The intent's key is kept until the server answers it, and any retry
// (a tap after `buy_not_placed`, a resend after reconnecting) reuses it, so the server makes at
// most one order of it whatever happens to the connection.
const BOUGHT_HOLD_MS = 1500;
const BUY_ANSWER_MS = 5000;
const intents = new Map(); // sale id -> { key, phase: 'flight' | 'retry' | 'bought', at }

function buyButtonState(sale) {
  const it = intents.get(sale.id);
  if (state.ended) return { label: 'Show ended', disabled: true };
  if (sale.stock_left === 0) return { label: 'Sold out', disabled: true };
  if (it?.phase === 'flight') return { label: 'Buying…', disabled: true };
  if (it?.phase === 'bought' && performance.now() - it.at < BOUGHT_HOLD_MS) return { label: 'Bought ✓', disabled: true };
  return { label: 'Buy', disabled: false };
}

function tapBuy(sale) {
  if (buyButtonState(sale).disabled) return;
  const it = intents.get(sale.id);
  const key = it?.phase === 'retry' ? it.key : newKey();
  intents.set(sale.id, { key, phase: 'flight', at: performance.now() });
  if (!link.send({ type: 'buy', sale_id: sale.id, qty: 1, idempotency_key: key })) {
    intents.set(sale.id, { key, phase: 'retry', at: performance.now() });
    toast('Reconnecting: tap Buy again in a moment', 'bad');
  }
  renderProducts();
}

function intentFor(key) {
  for (const [saleId, it] of intents) if (it.key === key) return [saleId, it];
  return [null, null];
}

function buyAnswered(key, confirmed) {
  const [saleId] = intentFor(key);
  if (saleId === null) return;
  if (confirmed) {
    intents.set(saleId, { key, phase: 'bought', at: performance.now() });
    setTimeout(renderProducts, BOUGHT_HOLD_MS + 50);
  } else {
    intents.delete(saleId);
  }
  renderProducts();
}

function buyNotPlaced(key) {
  const [saleId] = intentFor(key);
  if (saleId !== null) intents.set(saleId, { key, phase: 'retry', at: performance.now() });
  renderProducts();
}

// After a reconnect, buys sent on the old channel and never answered go again with their key.
function resendBuysInFlight() {
  for (const [saleId, it] of intents) {
    if (it.phase === 'flight') link.send({ type: 'buy', sale_id: saleId, qty: 1, idempotency_key: it.key });
  }
}

// A buy with no answer for a while gives the button back; the next tap reuses the key.
setInterval(() => {
  for (const [saleId, it] of intents) {
    if (it.phase === 'flight' && performance.now() - it.at > BUY_ANSWER_MS) {
      intents.set(saleId, { key: it.key, phase: 'retry', at: performance.now() });
      renderProducts();
    }
  }
}, 500);

// ----- display name: the server keeps it and answers `name_set` (see name_prompt.js) -----
// Without a data channel the frame goes over the frames API; its empty answer means taken.
const names = new NamePrompt({
  send: async frame => {
    if (link.send(frame)) return true;
    const r = await fetch(`${session.base}/api/rooms/${encodeURIComponent(room)}/frames`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(session.token ? { authorization: `Bearer ${session.token}` } : {}) },
      body: JSON.stringify(frame),
    }).catch(() => null);
    const answer = r?.ok ? await r.json().catch(() => null) : null;
    if (!Array.isArray(answer)) return false;
    for (const f of answer) applyDirect(f);
    if (!answer.some(f => f.type === 'error') && state.me) names.setMe({ ...state.me, name: frame.name });
    return true;
  },
});

// ----- chat -----
// A message stays in the input until the server echoes it back: a refused (rate-limited, muted)
// or undelivered message is never lost, and the page says why. One sent while offline waits in
// the input and goes out when the room answers again (unless it was edited meanwhile).
let chatPending = null; // { text, at }
let chatQueued = null; // text
const CHAT_ANSWER_MS = 4000;

function addChat(seq, from, text) {
  const badge = from.role === 'host' ? el('span', { class: 'role host' }, 'HOST') : from.role === 'moderator' ? el('span', { class: 'role mod' }, 'MOD') : '';
  const line = el('li', { dataset: { seq: String(seq), identity: from.id } }, badge, el('b', {}, from.name), ' ', el('span', { class: 'text' }, text));
  $('chat').append(line);
  while ($('chat').children.length > 200) $('chat').firstChild.remove();
  $('chat').scrollTop = $('chat').scrollHeight;
  if (from.role === 'host' && from.name) { $('host-name').textContent = from.name; $('host-name').hidden = false; }
  if (chatPending && state.me && from.id === state.me.id && text === chatPending.text) {
    if ($('chat-input').value.trim() === text) $('chat-input').value = '';
    chatPending = null;
    setChatNote('');
    updateChatCount();
  }
}

function chatOnline() {
  return link.channel?.readyState === 'open' && !serverDown && !awaitingWelcome && state.me !== null;
}

function sendChat(text) {
  if (!chatOnline() || !link.send({ type: 'chat', text })) return false;
  chatPending = { text, at: performance.now() };
  return true;
}

function sendQueuedChat() {
  const text = chatQueued;
  if (text === null || chatPending || !chatOnline()) return;
  chatQueued = null;
  if ($('chat-input').value.trim() !== text) { setChatNote(''); return; }
  if (sendChat(text)) setChatNote('');
  else chatQueued = text;
}

let chatNote = '';
function setChatNote(text) { chatNote = text; updateChatNote(); }
function updateChatNote() {
  if (chatPending && performance.now() - chatPending.at > CHAT_ANSWER_MS) {
    chatQueued = chatPending.text; // goes again once the room answers
    chatPending = null;
    chatNote = 'Not sent yet: reconnecting… your message will be sent when you are back.';
  }
  const offline = !chatOnline();
  const typing = $('chat-input').value.trim().length > 0;
  if (chatQueued !== null && !offline) sendQueuedChat();
  const text = chatNote || (offline && typing ? 'Offline: reconnecting… your message will wait here.' : '');
  const note = $('chat-note');
  if (note.textContent !== text) note.textContent = text;
  note.hidden = !text;
  $('chat-form').classList.toggle('offline', offline);
}

function chatRefused(f) {
  chatPending = null;
  const why = { rate_limited: 'Slow down: your message was not sent. Send it again in a moment.', muted: 'You are muted for now: your message was not sent.' }[f.code];
  setChatNote(why || `Not sent: ${f.message}`);
}

function updateChatCount() {
  const n = $('chat-input').value.length;
  const count = $('chat-count');
  count.hidden = n < CHAT_WARN_AT;
  count.textContent = n >= CHAT_MAX ? `${n}/${CHAT_MAX} max` : `${n}/${CHAT_MAX}`;
  count.classList.toggle('full', n >= CHAT_MAX);
}

// A clamped message opens in full on a tap, and closes on the next.
$('chat').addEventListener('click', ev => ev.target.closest('#chat li')?.classList.toggle('open'));

$('chat-input').addEventListener('input', () => {
  const input = $('chat-input');
  if (input.value.length > CHAT_MAX) input.value = input.value.slice(0, CHAT_MAX); // pasted past the cap: the counter says so
  if (!chatPending) chatNote = '';
  updateChatCount();
  updateChatNote();
});

$('chat-form').onsubmit = ev => {
  ev.preventDefault();
  const text = $('chat-input').value.trim();
  if (!text || chatPending) return;
  if (!sendChat(text)) {
    chatQueued = text;
    setChatNote('Offline: reconnecting… your message will be sent when you are back.');
  }
};

// ----- likes: batched, one frame per 250 ms at most -----
// Own hearts float at the tap; the server's like ticks count them again, so the page takes its
// own taps out of each tick's delta and floats only the others'.
let pendingLikes = 0; // tapped, not sent yet
let ownUncounted = 0; // tapped, not yet seen in a server tick
let lastOwnLikeAt = -Infinity;

function like() {
  pendingLikes += 1;
  ownUncounted += 1;
  lastOwnLikeAt = performance.now();
  floatHeart();
}
$('heart').onclick = like;

function onLikes(f) {
  $('likes').textContent = f.total;
  const own = Math.min(ownUncounted, f.delta);
  ownUncounted -= own;
  for (let i = 0; i < Math.min(f.delta - own, 8); i++) floatHeart();
}

setInterval(() => {
  if (pendingLikes > 0 && link.send({ type: 'like', count: pendingLikes })) pendingLikes = 0;
  // Taps the server never counted (refused, lost) must not hide others' hearts for long.
  if (pendingLikes === 0 && ownUncounted > 0 && performance.now() - lastOwnLikeAt > 3000) ownUncounted = 0;
}, 250);

function floatHeart() {
  const h = el('span', { class: 'float-heart' }, '❤');
  h.style.left = `${20 + Math.random() * 60}%`;
  $('hearts').append(h);
  setTimeout(() => h.remove(), 2000);
}

// ----- products and sales: one compact bar, swiped sideways when several are highlighted -----
function activeSaleFor(productId) {
  const now = Date.now() + state.clockOffset;
  return [...state.sales.values()].find(s => s.product_id === productId && !s.ended_at_ms && now < s.ends_at_ms);
}

function renderProducts() {
  const box = $('products');
  const scroll = box.scrollLeft;
  box.replaceChildren();
  for (const id of state.pinned) {
    const p = state.products.get(id);
    if (!p) continue;
    const sale = activeSaleFor(id);
    const card = el('article', { class: 'card', dataset: { productId: String(id) } });
    if (p.image_url) card.append(el('img', { src: p.image_url, alt: '' }));
    const info = el('div', { class: 'info' }, el('h3', { title: p.title }, p.title));
    if (sale) {
      const left = sale.stock_left;
      info.append(el('p', { class: 'price' }, el('s', {}, formatPrice(p.price_minor, p.currency)), ' ', el('b', {}, formatPrice(sale.price_minor, sale.currency)),
        ' ', el('span', { class: 'left' }, left > 0 ? `${left} left` : 'Sold out')));
      const bar = el('div', { class: 'stock' }, el('div', { class: 'fill' }));
      bar.firstChild.style.width = `${Math.round(100 * left / sale.stock_total)}%`;
      info.append(bar);
      const look = buyButtonState(sale);
      const buy = el('button', { class: 'buy', type: 'button', dataset: { saleId: String(sale.id) } }, look.label);
      buy.disabled = look.disabled;
      // A product with variants is bought through the sheet, which asks which one.
      buy.onclick = () => (p.variants?.length ? sheet.open(id, buy) : tapBuy(sale));
      card.append(info, el('div', { class: 'act' }, el('p', { class: 'countdown', dataset: { saleId: String(sale.id) } }, ''), buy));
    } else {
      info.append(el('p', { class: 'price' }, formatPrice(p.price_minor, p.currency)));
      // At its list price: the buy sheet takes the variant and quantity.
      const buy = el('button', { class: 'shop-buy', type: 'button', dataset: { productId: String(id) } }, p.stock > 0 ? 'Buy' : 'Sold out');
      buy.disabled = state.ended || p.stock === 0;
      buy.onclick = () => sheet.open(id, buy);
      card.append(info, el('div', { class: 'act' }, buy));
    }
    box.append(card);
  }
  box.scrollLeft = scroll;
  box.hidden = box.children.length === 0;
  bag.render();
  if (sheet.isOpen) sheet.render();
  tickCountdowns();
}

function tickCountdowns() {
  const now = Date.now() + state.clockOffset;
  for (const node of document.querySelectorAll('.countdown')) {
    const sale = state.sales.get(Number(node.dataset.saleId));
    if (!sale) continue;
    if (state.ended) { node.textContent = ''; continue; }
    const ms = now < sale.starts_at_ms ? sale.starts_at_ms - now : sale.ends_at_ms - now;
    const s = Math.max(0, Math.ceil(ms / 1000));
    const text = `${String(Math.floor(s / 60)).padStart(2, '0')}:${String(s % 60).padStart(2, '0')}`;
    node.textContent = now < sale.starts_at_ms ? `Starts in ${text}` : `Ends in ${text}`;
    node.classList.toggle('soon', now >= sale.starts_at_ms && s <= 10);
    if (ms <= 0 && now >= sale.ends_at_ms) renderProducts();
  }
}
setInterval(tickCountdowns, 500);

let toastTimer = null;
function toast(text, kind = '') {
  const t = $('toast');
  t.textContent = text;
  t.className = `toast ${kind}`;
  t.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { t.hidden = true; }, 4000);
}

// ----- start -----
(async () => {
  try {
    session.token = await getToken(room, 'viewer');
  } catch (e) {
    sessionState = 'error';
    sessionDetail = e.message;
    updateView();
    return;
  }
  header.load();
  myOrders.refresh();
  await pollRoom();
  setInterval(pollRoom, 1000);
  await session.start();
})();
window.addEventListener('pagehide', () => session.stop());
window.sellcast = { session, link, state, sheet, bag, myOrders, videoCap, eventsSeen };
