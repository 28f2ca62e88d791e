// The host page: camera preview, Go live over WHIP, and the show console over the data channel.
import { Session, getToken, roomFromPath } from './session.js';
import { RoomLink, Show, formatPrice, el } from './room.js';

const room = roomFromPath();
// `/host/ROOM?codec=h264` (or vp8) asks for that video codec: the browser offers it first and the
// WHIP URL carries it, so the server makes it the room's codec.
const codec = ['h264', 'vp8'].find(c => c === new URLSearchParams(location.search).get('codec')?.toLowerCase()) || null;
const $ = id => document.getElementById(id);
const state = Object.assign(new Show(), { revenue: new Map(), token: null, me: null });
let media = null;

function setState(s, detail) {
  document.body.dataset.state = s;
  $('status').textContent = s;
  $('message').textContent = detail || '';
  $('go-live').disabled = !['idle', 'ended', 'error'].includes(s);
  $('end').disabled = ['idle', 'ended', 'error'].includes(s);
}

const watchUrl = `${location.origin}/watch/${encodeURIComponent(room)}`;
$('watch-url').href = watchUrl;
$('watch-url').textContent = watchUrl;

// ----- devices -----
async function openMedia() {
  const constraints = {
    video: $('camera').value ? { deviceId: { exact: $('camera').value } } : true,
    audio: $('mic').value ? { deviceId: { exact: $('mic').value } } : true,
  };
  const next = await navigator.mediaDevices.getUserMedia(constraints);
  const old = media;
  media = next;
  $('preview').srcObject = media;
  // While live, swap tracks in place: no renegotiation, viewers keep watching.
  const pc = session.pc;
  if (pc) {
    for (const sender of pc.getSenders()) {
      const track = media.getTracks().find(t => t.kind === sender.track?.kind);
      if (track) await sender.replaceTrack(track);
    }
  }
  old?.getTracks().forEach(t => t.stop());
}

async function listDevices() {
  const devices = await navigator.mediaDevices.enumerateDevices();
  for (const [select, kind] of [[$('camera'), 'videoinput'], [$('mic'), 'audioinput']]) {
    const current = select.value;
    select.replaceChildren(...devices.filter(d => d.kind === kind).map((d, i) => el('option', { value: d.deviceId }, d.label || `${kind} ${i + 1}`)));
    if (current) select.value = current;
  }
}
navigator.mediaDevices.addEventListener('devicechange', () => listDevices().catch(() => {}));
$('camera').onchange = () => openMedia().catch(e => setState('error', e.message));
$('mic').onchange = () => openMedia().catch(e => setState('error', e.message));

// ----- going live -----
const link = new RoomLink({
  onWelcome: f => { state.me = f.you; },
  onSnapshot: applySnapshot,
  onEvent: applyEvent,
  onDirect: applyDirect,
  onDraining: f => session.moveAfter(f.reconnect_after_ms),
});

const session = new Session({
  endpoint: 'whip',
  room,
  token: null,
  query: codec ? `?codec=${codec}` : '',
  setup: pc => {
    for (const track of media.getTracks()) {
      const transceiver = pc.addTransceiver(track, { direction: 'sendonly', streams: [media] });
      if (track.kind === 'video' && codec) preferCodec(transceiver, `video/${codec}`);
    }
  },
  onChannel: ch => link.attach(ch),
  onState: (s, detail) => setState(s, detail),
  renewToken: async () => (state.token = await getToken(room, 'host', { fresh: true })),
});

// Put `mimeType` first in the offer (the other codecs stay as fallbacks). Throws when this browser
// cannot send it, so the page says so instead of silently going live with another codec.
function preferCodec(transceiver, mimeType) {
  const all = RTCRtpSender.getCapabilities('video')?.codecs || [];
  const wanted = all.filter(c => c.mimeType.toLowerCase() === mimeType);
  if (wanted.length === 0) throw new Error(`this browser cannot send ${mimeType.split('/')[1].toUpperCase()}`);
  transceiver.setCodecPreferences([...wanted, ...all.filter(c => c.mimeType.toLowerCase() !== mimeType)]);
}

$('go-live').onclick = async () => {
  try {
    if (!media) await openMedia();
    await session.start();
  } catch (e) {
    setState('error', e.message);
  }
};
// Viewers are told the show ended (not that the host is away) before the session closes.
$('end').onclick = async () => { await link.sendFlushed({ type: 'end_show' }); session.stop(); };
window.addEventListener('pagehide', () => session.stop());

async function pollViewers() {
  try {
    const s = await fetch(`/api/rooms/${encodeURIComponent(room)}`).then(r => r.json());
    $('viewers').textContent = s.viewers;
  } catch { /* retry next tick */ }
}

// ----- products -----
$('product-form').onsubmit = async ev => {
  ev.preventDefault();
  const f = new FormData(ev.target);
  const body = {
    title: f.get('title'),
    price_minor: Math.round(Number(f.get('price')) * 100),
    currency: String(f.get('currency')).toUpperCase(),
    stock: Number(f.get('stock')),
    image_url: f.get('image_url') || '',
  };
  const r = await fetch(`/api/rooms/${encodeURIComponent(room)}/products`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${state.token}` },
    body: JSON.stringify(body),
  });
  const answer = await r.json().catch(() => ({}));
  if (r.status !== 201) { $('message').textContent = answer.message || `HTTP ${r.status}`; return; }
  state.products.set(answer.id, answer);
  ev.target.reset();
  renderProducts();
};

function openSale(productId) {
  return [...state.sales.values()].find(s => s.product_id === productId && !s.ended_at_ms && Date.now() < s.ends_at_ms + 5000);
}

function renderProducts() {
  const list = $('product-list');
  list.replaceChildren();
  for (const p of state.products.values()) {
    const pinned = state.pinned.includes(p.id);
    const sale = openSale(p.id);
    const item = el('li', { dataset: { productId: String(p.id) } },
      el('b', {}, p.title), ' ', formatPrice(p.price_minor, p.currency), ` · stock ${p.stock} `);
    item.append(el('button', { class: 'highlight', onclick: () => togglePin(p.id) }, pinned ? 'Unhighlight' : 'Highlight'));
    if (sale) {
      item.append(el('span', { class: 'sale' }, ` deal ${formatPrice(sale.price_minor, sale.currency)}: ${sale.stock_left}/${sale.stock_total} left `));
      item.append(el('button', { class: 'end-sale', onclick: () => link.send({ type: 'end_sale', sale_id: sale.id }) }, 'End sale'));
    } else {
      const form = el('form', { class: 'sale-form' },
        el('input', { name: 'price', type: 'number', step: '0.01', min: '0', value: (p.price_minor * 0.8 / 100).toFixed(2), 'aria-label': 'Sale price' }),
        el('input', { name: 'stock', type: 'number', min: '1', value: '50', 'aria-label': 'Units' }),
        el('input', { name: 'limit', type: 'number', min: '1', value: '2', 'aria-label': 'Per buyer' }),
        el('input', { name: 'minutes', type: 'number', min: '1', value: '10', 'aria-label': 'Minutes' }),
        el('button', { type: 'submit', class: 'start-sale' }, 'Start sale'));
      form.onsubmit = ev => {
        ev.preventDefault();
        const f = new FormData(form);
        const now = Date.now();
        link.send({
          type: 'start_sale', product_id: p.id, price_minor: Math.round(Number(f.get('price')) * 100),
          stock: Number(f.get('stock')), per_user_limit: Number(f.get('limit')),
          starts_at_ms: now, ends_at_ms: now + Number(f.get('minutes')) * 60_000,
        });
      };
      item.append(form);
    }
    list.append(item);
  }
}

function togglePin(id) {
  const pins = state.pinned.includes(id) ? state.pinned.filter(x => x !== id) : [...state.pinned, id].slice(-3);
  link.send({ type: 'pin', product_ids: pins });
}

// ----- frames -----
function applySnapshot(s) {
  state.applySnapshot(s);
  state.loadMoreProducts(s, room).then(added => { if (added) renderProducts(); });
  $('likes').textContent = s.likes_total;
  $('chat').replaceChildren();
  for (const line of s.chat) addChat(line.seq, line.from, line.text);
  $('orders').replaceChildren();
  for (const o of s.orders || []) addOrder(o);
  if (s.blocked_words) $('blocked-words').value = s.blocked_words.join(', ');
  renderProducts();
  loadBans();
}

function applyEvent(f) {
  if (state.applyEvent(f)) { renderProducts(); return; }
  switch (f.type) {
    case 'chat': addChat(f.seq, f.from, f.text); break;
    case 'chat_deleted': document.querySelector(`#chat [data-seq="${f.target_seq}"]`)?.remove(); break;
    case 'user_banned': case 'user_unbanned': loadBans(); break;
  }
}

function applyDirect(f) {
  switch (f.type) {
    case 'likes': $('likes').textContent = f.total; break;
    case 'counters': state.applyCounters(f); renderProducts(); break;
    case 'order':
      addOrder(f.order);
      state.revenue.set(f.order.sale_id, f.revenue_minor);
      showRevenue(f.order.currency);
      break;
    case 'error': $('message').textContent = `${f.code}: ${f.message}`; break;
  }
}

function addOrder(o) {
  $('orders').prepend(el('li', { dataset: { orderId: String(o.order_id) } },
    el('b', {}, `#${o.order_id}`), ` ${o.buyer.name} bought ${o.qty} × ${formatPrice(o.price_minor, o.currency)}`));
  while ($('orders').children.length > 100) $('orders').lastChild.remove();
  if (!state.revenue.has(o.sale_id)) {
    state.revenue.set(o.sale_id, 0);
  }
}

function showRevenue(currency) {
  const total = [...state.revenue.values()].reduce((a, b) => a + b, 0);
  $('revenue').textContent = formatPrice(total, currency || 'EUR');
}

function addChat(seq, from, text) {
  const line = el('li', { dataset: { seq: String(seq), identity: from.id } },
    el('b', {}, from.name), ' ', el('span', { class: 'text' }, text));
  if (state.me && from.id !== state.me.id) {
    line.append(
      el('button', { class: 'mod delete', title: 'Delete', onclick: () => link.send({ type: 'delete_message', seq }) }, '🗑'),
      el('button', { class: 'mod mute', title: 'Mute 60 s', onclick: () => link.send({ type: 'mute', identity: from.id, seconds: 60 }) }, '🔇'),
      el('button', { class: 'mod ban', title: 'Ban', onclick: () => link.send({ type: 'ban', identity: from.id }) }, '⛔'));
  }
  $('chat').append(line);
  while ($('chat').children.length > 200) $('chat').firstChild.remove();
  $('chat').scrollTop = $('chat').scrollHeight;
}

// ----- bans -----
// The bans in force, from the staff-only API; each with an Unban button (DELETE on the ban).
async function loadBans() {
  if (!state.token) return;
  const r = await fetch(`/api/rooms/${encodeURIComponent(room)}/bans`, { headers: { authorization: `Bearer ${state.token}` } }).catch(() => null);
  if (!r?.ok) return;
  const { bans } = await r.json();
  $('bans').replaceChildren(...bans.map(b => el('li', { dataset: { identity: b.identity } },
    el('b', {}, b.identity), b.until_ms ? ` until ${new Date(b.until_ms).toLocaleString()} ` : ' ',
    el('button', { class: 'unban', onclick: () => unban(b.identity) }, 'Unban'))));
}

async function unban(identity) {
  const r = await fetch(`/api/rooms/${encodeURIComponent(room)}/bans/${encodeURIComponent(identity)}`, {
    method: 'DELETE', headers: { authorization: `Bearer ${state.token}` },
  });
  if (r.status !== 204) {
    const answer = await r.json().catch(() => ({}));
    $('message').textContent = `${answer.code || r.status}: ${answer.message || 'unban refused'}`;
  }
  loadBans();
}

$('chat-form').onsubmit = ev => {
  ev.preventDefault();
  const text = $('chat-input').value.trim();
  if (text && link.send({ type: 'chat', text })) $('chat-input').value = '';
};
$('words-form').onsubmit = ev => {
  ev.preventDefault();
  const words = $('blocked-words').value.split(',').map(w => w.trim()).filter(Boolean);
  link.send({ type: 'set_blocked_words', words });
};

// ----- start -----
(async () => {
  try {
    state.token = await getToken(room, 'host');
    session.token = state.token;
    await openMedia();
    await listDevices();
    setState('idle');
  } catch (e) {
    setState('error', e.message);
  }
  pollViewers();
  setInterval(pollViewers, 1000);
  loadBans();
  const r = await fetch(`/api/rooms/${encodeURIComponent(room)}/products`).then(r => r.json()).catch(() => null);
  if (r) {
    for (const p of r.products) state.products.set(p.id, p);
    for (const s of r.sales) state.sales.set(s.id, s);
    renderProducts();
  }
})();
window.sellcast = { session, link, state, loadBans };
