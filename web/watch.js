// The viewer page: WHEP video, the room's data channel (chat, likes, products, sales, buys).
import { Session, getToken, roomFromPath } from './session.js';
import { RoomLink, Show, formatPrice, el, newKey } from './room.js';

const room = roomFromPath();
const $ = id => document.getElementById(id);
const video = $('video');
const state = Object.assign(new Show(), { me: null, live: false });
let pendingLikes = 0;

function setState(s, detail) {
  document.body.dataset.state = s;
  $('status').textContent = detail ? `${s}: ${detail}` : s;
}

// ----- video -----
const stream = new MediaStream();
// Attach after 'load': a <video> whose stream has no frames yet (room not live) holds back the
// document's load event, and the tab would show as loading for as long as the host is away.
if (document.readyState === 'complete') video.srcObject = stream;
else window.addEventListener('load', () => { video.srcObject = stream; video.play().catch(() => {}); }, { once: true });
$('unmute').onclick = () => { video.muted = false; video.play().catch(() => {}); $('unmute').hidden = true; };

// LIVE means frames are arriving now, not that playback once started: after a host drop the
// <video> keeps its last frame and fires no new 'playing' when the host comes back.
let lastFrameAt = 0;
function onFrame() { lastFrameAt = performance.now(); }
if ('requestVideoFrameCallback' in HTMLVideoElement.prototype) {
  const tick = () => { onFrame(); video.requestVideoFrameCallback(tick); };
  video.requestVideoFrameCallback(tick);
} else {
  video.addEventListener('timeupdate', onFrame);
}
setInterval(() => {
  const flowing = state.live && performance.now() - lastFrameAt < 1500;
  $('live').hidden = !flowing;
}, 250);

// ----- room link -----
const link = new RoomLink({
  onWelcome: f => { state.me = f.you; state.clockOffset = f.server_now_ms - Date.now(); },
  onSnapshot: applySnapshot,
  onEvent: applyEvent,
  onDirect: applyDirect,
  onDraining: f => session.moveAfter(f.reconnect_after_ms),
});

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
  onState: (s, detail) => {
    if (s === 'live') setState(state.live ? 'live' : 'waiting');
    else setState(s, detail);
  },
});

async function pollRoom() {
  try {
    const s = await fetch(`/api/rooms/${encodeURIComponent(room)}`).then(r => r.json());
    state.live = s.live;
    $('waiting').hidden = s.live;
    $('viewers').textContent = s.viewers;
    if (document.body.dataset.state === 'waiting' && s.live) setState('live');
    if (document.body.dataset.state === 'live' && !s.live) setState('waiting');
  } catch { /* server restarting: the session reconnects by itself */ }
}

// ----- applying frames -----
function applySnapshot(s) {
  state.applySnapshot(s);
  state.loadMoreProducts(s, room).then(added => { if (added) renderProducts(); });
  $('likes').textContent = s.likes_total;
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
    case 'user_banned': break;
  }
}

// Per sale, the key of the buy tap that has no confirmation or rejection yet.
const unanswered = new Map();

function answered(key) {
  for (const [sale, k] of unanswered) if (k === key) unanswered.delete(sale);
}

function applyDirect(f) {
  switch (f.type) {
    case 'likes': $('likes').textContent = f.total; for (let i = 0; i < Math.min(f.delta, 8); i++) floatHeart(); break;
    case 'counters':
      state.applyCounters(f);
      renderProducts();
      break;
    case 'order_confirmed': answered(f.idempotency_key); toast(`Order #${f.order_id} confirmed: ${f.qty} × ${formatPrice(f.price_minor, f.currency)}`, 'ok'); break;
    case 'buy_rejected': answered(f.idempotency_key); toast({ sold_out: 'Sold out, sorry!', limit_reached: 'You reached the limit for this deal.', sale_not_active: 'This deal is not active.', invalid: 'That did not work.' }[f.reason] || f.reason, 'bad'); break;
    case 'buy_not_placed':
      toast(f.code === 'rate_limited' ? 'Too many taps: tap Buy again in a moment.' : 'The show is moving to another server: tap Buy again in a moment.', 'bad');
      break;
    case 'error': toast(f.message, 'bad'); break;
  }
}

// ----- chat -----
function addChat(seq, from, text) {
  const badge = from.role === 'host' ? el('span', { class: 'role host' }, 'HOST') : from.role === 'moderator' ? el('span', { class: 'role mod' }, 'MOD') : '';
  const line = el('li', { dataset: { seq: String(seq), identity: from.id } }, badge, el('b', {}, from.name), ' ', el('span', { class: 'text' }, text));
  $('chat').append(line);
  while ($('chat').children.length > 200) $('chat').firstChild.remove();
  $('chat').scrollTop = $('chat').scrollHeight;
}

$('chat-form').onsubmit = ev => {
  ev.preventDefault();
  const text = $('chat-input').value.trim();
  if (text && link.send({ type: 'chat', text })) $('chat-input').value = '';
};

// ----- likes: batched, one frame per 250 ms at most -----
$('heart').onclick = () => { pendingLikes += 1; floatHeart(); };
setInterval(() => {
  if (pendingLikes > 0 && link.send({ type: 'like', count: pendingLikes })) pendingLikes = 0;
}, 250);

function floatHeart() {
  const h = el('span', { class: 'float-heart' }, '❤');
  h.style.left = `${20 + Math.random() * 60}%`;
  $('hearts').append(h);
  setTimeout(() => h.remove(), 2000);
}

// ----- products and sales -----
function activeSaleFor(productId) {
  const now = Date.now() + state.clockOffset;
  return [...state.sales.values()].find(s => s.product_id === productId && !s.ended_at_ms && now < s.ends_at_ms);
}

function renderProducts() {
  const box = $('products');
  box.replaceChildren();
  for (const id of state.pinned) {
    const p = state.products.get(id);
    if (!p) continue;
    const sale = activeSaleFor(id);
    const card = el('article', { class: 'card', dataset: { productId: String(id) } });
    if (p.image_url) card.append(el('img', { src: p.image_url, alt: '' }));
    const info = el('div', { class: 'info' }, el('h3', {}, p.title));
    if (sale) {
      info.append(el('p', { class: 'price' }, el('s', {}, formatPrice(p.price_minor, p.currency)), ' ', el('b', {}, formatPrice(sale.price_minor, sale.currency))));
      const left = sale.stock_left;
      const bar = el('div', { class: 'stock' }, el('div', { class: 'fill' }));
      bar.firstChild.style.width = `${Math.round(100 * left / sale.stock_total)}%`;
      info.append(bar, el('p', { class: 'countdown', dataset: { saleId: String(sale.id) } }, ''), el('p', { class: 'left' }, left > 0 ? `${left} left` : 'Sold out'));
      const buy = el('button', { class: 'buy', dataset: { saleId: String(sale.id) } }, left > 0 ? 'Buy' : 'Sold out');
      buy.disabled = left === 0;
      buy.onclick = () => {
        // A tap not answered yet (or answered `unavailable`: the server restarted with it in
        // hand) is retried with its own key, so it can never become a second order.
        const key = unanswered.get(sale.id) || newKey();
        unanswered.set(sale.id, key);
        if (!link.send({ type: 'buy', sale_id: sale.id, qty: 1, idempotency_key: key })) toast('Reconnecting, try again in a moment', 'bad');
      };
      info.append(buy);
    } else {
      info.append(el('p', { class: 'price' }, formatPrice(p.price_minor, p.currency)));
    }
    card.append(info);
    box.append(card);
  }
  tickCountdowns();
}

function tickCountdowns() {
  const now = Date.now() + state.clockOffset;
  for (const node of document.querySelectorAll('.countdown')) {
    const sale = state.sales.get(Number(node.dataset.saleId));
    if (!sale) continue;
    const ms = now < sale.starts_at_ms ? sale.starts_at_ms - now : sale.ends_at_ms - now;
    const s = Math.max(0, Math.ceil(ms / 1000));
    const text = `${String(Math.floor(s / 60)).padStart(2, '0')}:${String(s % 60).padStart(2, '0')}`;
    node.textContent = now < sale.starts_at_ms ? `Starts in ${text}` : `Ends in ${text}`;
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
    setState('error', e.message);
    return;
  }
  await pollRoom();
  setInterval(pollRoom, 1000);
  await session.start();
})();
window.addEventListener('pagehide', () => session.stop());
window.sellcast = { session, link, state };
