// The host page: camera preview, Go live over WHIP, and the show console.
//
// The console works whether or not the host is live. While live, frames travel on the WHIP
// session's data channel; otherwise each frame is POSTed to the frames API, and the page asks
// the room every second for what it missed (a `hello` with its position, over HTTP). Revenue,
// order counts and sales per product are the server's sums over every committed order (the
// snapshot, each order frame, the orders API): the page shows them and never adds up its own.
import { Session, getToken, roomFromPath } from './session.js';
import { RoomLink, Show, formatPrice, el } from './room.js';
import { ShowForm } from './show_form.js';
import { openCamera, bindCaptureControls, readChoice } from './capture.js';
import { bindViewerPreview, previewWatching } from './preview.js';
import { renderSales } from './sales_panel.js';
import { VariantFields } from './product_form.js';
import { encodingPlan, simulcastAllowed, addVideoTransceiver } from './simulcast.js';
import { renderLayers } from './layer_counts.js';

const room = roomFromPath();
const roomPath = encodeURIComponent(room);
// `/host/ROOM?codec=h264` (or vp8) asks for that video codec: the browser offers it first and the
// WHIP URL carries it, so the server makes it the room's codec.
const codec = ['h264', 'vp8'].find(c => c === new URLSearchParams(location.search).get('codec')?.toLowerCase()) || null;
const $ = id => document.getElementById(id);
const state = Object.assign(new Show(), {
  token: null,
  me: null,
  totals: null,          // the server's sums over every order of the room: orders, units, revenue
  productSales: new Map(), // product id -> the server's { orders, units } of it
  orders: new Map(),     // order id -> feed line
  sessionState: 'starting',
  serverDown: false,
  liveSince: null,       // when this show went on air (local clock), for the show clock
  peakViewers: 0,
});
let media = null;
const POLL_MS = 1000;

// ----- status -----
function setState(s, detail) {
  state.sessionState = s;
  document.body.dataset.state = s;
  if (s === 'live' && state.liveSince === null) state.liveSince = Date.now();
  if (s === 'live') session.refreshNodes();
  if (s === 'live') $('summary').hidden = true;
  $('message').textContent = detail || '';
  $('go-live').disabled = !['idle', 'ended', 'error'].includes(s);
  // The video's shape is chosen before going live: viewers do not see it change mid-show.
  $('shape').disabled = $('resolution').disabled = !['idle', 'ended', 'error', 'starting'].includes(s);
  $('end').disabled = ['idle', 'ended', 'error'].includes(s);
  renderStatus();
}

// The badge says `offline` as soon as the server stops answering, whatever the media session
// still believes (a dead peer takes seconds to time out).
function renderStatus() {
  document.body.dataset.server = state.serverDown ? 'down' : 'up';
  $('status').textContent = state.serverDown ? 'offline' : state.sessionState;
}

function setServerDown(down) {
  if (down === state.serverDown) return;
  state.serverDown = down;
  renderStatus();
  if (down) {
    $('message').textContent = 'connection to the server lost';
    // Reconnect now rather than after the media connection times out.
    if (['live', 'connecting', 'moving'].includes(state.sessionState)) session.retry('the server is unreachable');
  } else if ($('message').textContent === 'connection to the server lost') {
    $('message').textContent = '';
  }
}

const watchUrl = `${location.origin}/watch/${roomPath}`;
$('watch-url').href = watchUrl;
$('watch-url').textContent = watchUrl;

// A yes/no question in the page's own dialog (no blocking window.confirm).
function confirmAction(text, yes) {
  const dialog = $('confirm');
  $('confirm-text').textContent = text;
  dialog.querySelector('.yes').textContent = yes;
  dialog.returnValue = '';
  dialog.showModal();
  return new Promise(resolve => dialog.addEventListener('close', () => resolve(dialog.returnValue === 'yes'), { once: true }));
}

// ----- devices -----
async function openMedia() {
  const next = await openCamera(readChoice(), $('camera').value, $('mic').value);
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

// After End the camera and microphone are given back (their lights go off); Go live opens them again.
function releaseMedia() {
  media?.getTracks().forEach(t => t.stop());
  media = null;
  $('preview').srcObject = null;
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
$('camera').onchange = () => (media ? openMedia() : Promise.resolve()).catch(e => setState('error', e.message));
$('mic').onchange = () => (media ? openMedia() : Promise.resolve()).catch(e => setState('error', e.message));

// ----- going live -----
const link = new RoomLink({
  onWelcome: f => {
    state.me = f.you;
    if (document.activeElement !== $('host-name')) $('host-name').value = f.you.name;
  },
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
      if (track.kind === 'video') {
        // Three layers (simulcast.js) when the picture is big enough, VP8 first; else one.
        const plan = encodingPlan({ captured: track.getSettings(), choice: readChoice(), codec, simulcast: simulcastAllowed(location.search) });
        const { transceiver } = addVideoTransceiver(pc, track, media, plan);
        document.body.dataset.layers = String(plan ? plan.length : 1);
        if (codec) preferCodec(transceiver, `video/${codec}`);
      } else {
        pc.addTransceiver(track, { direction: 'sendonly', streams: [media] });
      }
    }
  },
  onChannel: ch => link.attach(ch),
  onState: (s, detail) => setState(s, detail),
  renewToken: async () => (state.token = await getToken(room, 'host', { fresh: true })),
  follow: true,
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
    state.liveSince = null;
    state.peakViewers = 0;
    await session.start();
  } catch (e) {
    setState('error', e.message);
  }
};
$('end').onclick = async () => {
  if (!(await confirmAction('End the show? Viewers will see that it has ended.', 'End show'))) return;
  // Viewers are told the show ended (not that the host is away) before the session closes:
  // flushed on the data channel when live, else over HTTP.
  if (!(await link.sendFlushed({ type: 'end_show' }))) await send({ type: 'end_show' });
  await session.stop();
  releaseMedia();
  await loadOrders();
  showSummary();
};
window.addEventListener('pagehide', () => session.stop());

// ----- talking to the room with or without a data channel -----
const channelOpen = () => link.channel?.readyState === 'open';

// One frame to the room: on the data channel when live, else over HTTP, whose answer frames are
// handled as the channel's would be. Then the room is asked at once for what the frame changed.
async function send(frame) {
  if (link.send(frame)) return true;
  const frames = await call(frame);
  if (!frames) return false;
  for (const f of frames) link.receive(JSON.stringify(f));
  pollRoom();
  return !frames.some(f => f.type === 'error');
}

// POST one frame to the frames API; the room's answer frames, or null (and the reason shown).
async function call(frame) {
  try {
    const r = await fetch(`${session.base}/api/rooms/${roomPath}/frames`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${state.token}` },
      body: JSON.stringify(frame),
    });
    const body = await r.json().catch(() => null);
    if (!r.ok) { $('message').textContent = `${body?.code || r.status}: ${body?.message || 'refused'}`; return null; }
    return Array.isArray(body) ? body : [];
  } catch {
    setServerDown(true);
    return null;
  }
}

// Without a data channel: a `hello` from where the page stands (the room answers with the
// missed events, or a snapshot), then the orders and totals.
let polling = false;
async function pollRoom() {
  if (polling || channelOpen() || !state.token) return;
  polling = true;
  try {
    const frames = await call({ type: 'hello', resume: link.position });
    for (const f of frames || []) link.receive(JSON.stringify(f));
    if (frames && !channelOpen()) await loadOrders();
  } finally {
    polling = false;
  }
}

async function loadOrders() {
  const r = await fetch(`${session.base}/api/rooms/${roomPath}/orders`, { headers: { authorization: `Bearer ${state.token}` } }).catch(() => null);
  if (!r?.ok) return;
  const { orders, totals } = await r.json();
  const more = totals.orders !== state.totals?.orders;
  for (const o of orders) state.orders.set(o.order_id, o);
  applyTotals(totals);
  renderOrders();
  if (more) await loadStock();
}

// New orders took units off their products: read the stock left (live, order frames carry it).
async function loadStock() {
  const r = await fetch(`${session.base}/api/rooms/${roomPath}/products`).then(r => (r.ok ? r.json() : null)).catch(() => null);
  for (const p of r?.products || []) {
    const known = state.products.get(p.id);
    if (known) known.stock = p.stock;
  }
  renderProducts();
}

// The server answers (or not) once a second: the viewer count, and whether it is there at all.
// In a cluster, when the node the page publishes on misses two polls in a row while the WHIP
// session is down too (a node that died: kill -9, a lost machine), the page publishes again on
// the next node of the room's list (`Session.nodeGone`) and its console follows it there.
let pollsUnanswered = 0;
let heartbeats = 0;
async function heartbeat() {
  heartbeats += 1;
  if (heartbeats % 10 === 0 && state.sessionState === 'live') session.refreshNodes();
  try {
    const r = await fetch(`${session.base}/api/rooms/${roomPath}`, { cache: 'no-store', signal: AbortSignal.timeout(2000) });
    pollsUnanswered = 0;
    setServerDown(false);
    if (!r.ok) return;
    const s = await r.json();
    // The console's own viewer preview is a WHEP viewer too; it is not one of the audience.
    const viewers = Math.max(0, (Number(s.viewers) || 0) - previewWatching());
    $('viewers').textContent = String(viewers);
    const settings = media?.getVideoTracks()[0]?.getSettings();
    renderLayers($('layer-counts'), s, settings?.width && settings?.height ? settings.width / settings.height : 1);
    if (state.sessionState === 'live') state.peakViewers = Math.max(state.peakViewers, viewers);
    renderSales(state);
  } catch {
    pollsUnanswered += 1;
    setServerDown(true);
    if (pollsUnanswered >= 2 && state.sessionState !== 'live' && session.nodeGone()) pollsUnanswered = 0;
  }
}

// ----- products -----
const variantFields = new VariantFields($('product-form'));
$('product-form').onsubmit = async ev => {
  ev.preventDefault();
  const f = new FormData(ev.target);
  const body = {
    variants: variantFields.values(),
    title: f.get('title'),
    price_minor: Math.round(Number(f.get('price')) * 100),
    currency: String(f.get('currency')).toUpperCase(),
    stock: Number(f.get('stock') ?? 0),
    image_url: f.get('image_url') || '',
  };
  const r = await fetch(`${session.base}/api/rooms/${roomPath}/products`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${state.token}` },
    body: JSON.stringify(body),
  }).catch(() => null);
  if (!r) { setServerDown(true); return; }
  const answer = await r.json().catch(() => ({}));
  if (r.status !== 201) { $('message').textContent = answer.message || `HTTP ${r.status}`; return; }
  state.products.set(answer.id, answer);
  ev.target.reset();
  variantFields.reset();
  renderProducts();
};

function openSale(productId) {
  const now = Date.now() + state.clockOffset;
  return [...state.sales.values()].find(s => s.product_id === productId && !s.ended_at_ms && now < s.ends_at_ms);
}

const unitsSold = id => state.productSales.get(id)?.units ?? 0;

// One row per product, kept across renders (typed values and focus in its sale form survive
// the updates that arrive every second).
const rows = new Map();

function field(label, attrs) {
  return el('label', {}, el('span', {}, label), el('input', attrs));
}

function makeRow(p) {
  const info = el('span', { class: 'info' });
  const pin = el('button', { type: 'button', class: 'highlight', onclick: () => togglePin(p.id) });
  const deal = el('span', { class: 'sale' });
  const countdown = el('span', { class: 'countdown' });
  const endSale = el('button', { type: 'button', class: 'end-sale', onclick: () => { const s = openSale(p.id); if (s) send({ type: 'end_sale', sale_id: s.id }); } }, 'End sale');
  const saleBox = el('div', { class: 'running' }, deal, countdown, endSale);
  const form = el('form', { class: 'sale-form' },
    field('Sale price', { name: 'price', type: 'number', step: '0.01', min: '0', value: (p.price_minor * 0.8 / 100).toFixed(2), required: '' }),
    field('Units', { name: 'stock', type: 'number', min: '1', value: String(Math.max(1, Math.min(50, p.stock))), required: '' }),
    field('Per buyer', { name: 'limit', type: 'number', min: '1', value: '2', required: '' }),
    field('Minutes', { name: 'minutes', type: 'number', min: '1', value: '10', required: '' }),
    el('button', { type: 'submit', class: 'start-sale' }, 'Start sale'));
  form.onsubmit = ev => {
    ev.preventDefault();
    const f = new FormData(form);
    const now = Date.now() + state.clockOffset;
    send({
      type: 'start_sale', product_id: p.id, price_minor: Math.round(Number(f.get('price')) * 100),
      stock: Number(f.get('stock')), per_user_limit: Number(f.get('limit')),
      starts_at_ms: now, ends_at_ms: now + Number(f.get('minutes')) * 60_000,
    });
  };
  const li = el('li', { dataset: { productId: String(p.id) } }, el('div', { class: 'line' }, info, pin), saleBox, form);
  return { li, info, pin, deal, countdown, saleBox, form };
}

function renderProducts() {
  const list = $('product-list');
  for (const [id, row] of rows) {
    if (!state.products.has(id)) { row.li.remove(); rows.delete(id); }
  }
  for (const p of [...state.products.values()].sort((a, b) => a.id - b.id)) {
    let row = rows.get(p.id);
    if (!row) { row = makeRow(p); rows.set(p.id, row); list.append(row.li); }
    const variants = (p.variants || []).map(v => `${v.label} ${v.stock}`).join(', ');
    row.info.replaceChildren(el('b', {}, p.title), ` ${formatPrice(p.price_minor, p.currency)} · stock ${p.stock}${variants ? ` (${variants})` : ''} · sold ${unitsSold(p.id)}`);
    const pinned = state.pinned.includes(p.id);
    row.pin.textContent = pinned ? 'Unhighlight' : 'Highlight';
    row.pin.setAttribute('aria-pressed', String(pinned));
    row.li.classList.toggle('pinned', pinned);
    const sale = openSale(p.id);
    row.saleBox.hidden = !sale;
    row.form.hidden = Boolean(sale);
    if (sale) {
      row.deal.textContent = `deal ${formatPrice(sale.price_minor, sale.currency)}: ${sale.stock_left}/${sale.stock_total} left `;
      row.countdown.dataset.endsAt = String(sale.ends_at_ms);
    }
  }
  renderSales(state);
  tickClocks();
}

function togglePin(id) {
  const pins = state.pinned.includes(id) ? state.pinned.filter(x => x !== id) : [...state.pinned, id].slice(-3);
  send({ type: 'pin', product_ids: pins });
}

const mmss = ms => {
  const s = Math.max(0, Math.floor(ms / 1000));
  const h = Math.floor(s / 3600);
  const m = String(Math.floor((s % 3600) / 60)).padStart(2, '0');
  const sec = String(s % 60).padStart(2, '0');
  return h ? `${h}:${m}:${sec}` : `${m}:${sec}`;
};

// Once a second: the countdown of every running sale (on the server's clock) and the show clock.
function tickClocks() {
  const now = Date.now() + state.clockOffset;
  for (const row of rows.values()) {
    if (row.saleBox.hidden) continue;
    const left = Number(row.countdown.dataset.endsAt) - now;
    if (left <= 0) { renderProducts(); return; }
    row.countdown.textContent = `ends in ${mmss(left)} `;
  }
  const onAir = state.sessionState === 'live' || state.sessionState === 'reconnecting' || state.sessionState === 'moving';
  $('show-clock').hidden = !(onAir && state.liveSince !== null);
  if (state.liveSince !== null) $('show-clock').textContent = `● ${mmss(Date.now() - state.liveSince)}`;
}

// ----- frames -----
function applySnapshot(s) {
  state.applySnapshot(s);
  state.loadMoreProducts(s, room, session.base).then(added => { if (added) renderProducts(); });
  $('likes').textContent = s.likes_total;
  $('chat').replaceChildren();
  for (const line of s.chat) addChat(line.seq, line.from, line.text);
  for (const o of s.orders || []) state.orders.set(o.order_id, o);
  if (s.totals) applyTotals(s.totals);
  renderOrders();
  if (s.blocked_words) $('blocked-words').value = s.blocked_words.join(', ');
  showForm.fill(s.show);
  renderProducts();
  loadBans();
}

function applyEvent(f) {
  if (state.applyEvent(f)) { renderProducts(); return; }
  switch (f.type) {
    case 'chat': addChat(f.seq, f.from, f.text); break;
    case 'chat_deleted': document.querySelector(`#chat [data-seq="${f.target_seq}"]`)?.remove(); break;
    case 'user_banned': case 'user_unbanned': loadBans(); break;
    case 'show_updated': showForm.fill(f.show); break;
  }
}

function applyDirect(f) {
  switch (f.type) {
    case 'likes': $('likes').textContent = f.total; break;
    case 'counters': state.applyCounters(f); renderProducts(); break;
    case 'order': {
      state.orders.set(f.order.order_id, f.order);
      const p = state.products.get(f.order.product_id);
      if (p) p.stock = f.product_stock;
      state.productSales.set(f.product_sales.product_id, f.product_sales);
      applyTotals(f.totals);
      renderOrders();
      renderProducts();
      break;
    }
    case 'name_set': state.me = f.you; break;
    case 'error': $('message').textContent = `${f.code}: ${f.message}`; break;
  }
}

// The server's totals, shown as they are (with the per-product sales when the orders API gave them).
function applyTotals(t) {
  if (!t) return;
  state.totals = t;
  if (t.products) state.productSales = new Map(t.products.map(p => [p.product_id, p]));
  $('revenue').textContent = revenueText(t);
  $('order-count').textContent = String(t.orders);
}

const revenueText = t => (t.revenue.length ? t.revenue.map(r => formatPrice(r.minor, r.currency)).join(' + ') : formatPrice(0, 'EUR'));

function renderOrders() {
  const newest = [...state.orders.values()].sort((a, b) => b.order_id - a.order_id).slice(0, 100);
  for (const o of [...state.orders.keys()]) if (!newest.some(n => n.order_id === o)) state.orders.delete(o);
  $('orders').replaceChildren(...newest.map(o => {
    const at = new Date(o.at_ms);
    return el('li', { dataset: { orderId: String(o.order_id) } },
      el('b', {}, `#${o.order_id}`), ` ${o.buyer.name} bought ${o.qty} × `,
      el('span', { class: 'product' }, o.title || `product ${o.product_id}`),
      o.variant ? el('span', { class: 'variant' }, ` (${o.variant})`) : '',
      ` at ${formatPrice(o.price_minor, o.currency)} `,
      el('time', { datetime: at.toISOString() }, at.toLocaleTimeString()));
  }));
}

function addChat(seq, from, text) {
  const line = el('li', { dataset: { seq: String(seq), identity: from.id } },
    el('b', {}, from.name), ' ', el('span', { class: 'text' }, text));
  if (state.me && from.id !== state.me.id) {
    line.append(
      el('button', { class: 'mod delete', title: 'Delete', 'aria-label': `Delete this message from ${from.name}`, onclick: () => send({ type: 'delete_message', seq }) }, '🗑'),
      el('button', { class: 'mod mute', title: 'Mute 60 s', 'aria-label': `Mute ${from.name} for 60 s`, onclick: () => send({ type: 'mute', identity: from.id, seconds: 60 }) }, '🔇'),
      el('button', { class: 'mod ban', title: 'Ban', 'aria-label': `Ban ${from.name}`, onclick: () => ban(from) }, '⛔'));
  }
  $('chat').append(line);
  while ($('chat').children.length > 200) $('chat').firstChild.remove();
  $('chat').scrollTop = $('chat').scrollHeight;
}

async function ban(who) {
  if (await confirmAction(`Ban ${who.name}? They leave the show and cannot come back until unbanned.`, 'Ban')) {
    send({ type: 'ban', identity: who.id });
  }
}

// ----- end of show -----
function showSummary() {
  const t = state.totals || { orders: 0, revenue: [] };
  $('summary-duration').textContent = state.liveSince === null ? '00:00' : mmss(Date.now() - state.liveSince);
  $('summary-peak').textContent = String(state.peakViewers);
  $('summary-orders').textContent = String(t.orders);
  $('summary-revenue').textContent = revenueText(t);
  $('summary-products').replaceChildren(...[...state.productSales.values()].map(p =>
    el('li', {}, el('b', {}, state.products.get(p.product_id)?.title || `product ${p.product_id}`), ` ${p.units} sold in ${p.orders} orders`)));
  $('summary').hidden = false;
  state.liveSince = null;
  tickClocks();
}

// ----- bans -----
// The bans in force, from the staff-only API; each with an Unban button (DELETE on the ban).
async function loadBans() {
  if (!state.token) return;
  const r = await fetch(`${session.base}/api/rooms/${roomPath}/bans`, { headers: { authorization: `Bearer ${state.token}` } }).catch(() => null);
  if (!r?.ok) return;
  const { bans } = await r.json();
  $('bans').replaceChildren(...bans.map(b => el('li', { dataset: { identity: b.identity } },
    el('b', {}, b.identity), b.until_ms ? ` until ${new Date(b.until_ms).toLocaleString()} ` : ' ',
    el('button', { class: 'unban', onclick: () => unban(b.identity) }, 'Unban'))));
}

async function unban(identity) {
  const r = await fetch(`${session.base}/api/rooms/${roomPath}/bans/${encodeURIComponent(identity)}`, {
    method: 'DELETE', headers: { authorization: `Bearer ${state.token}` },
  });
  if (r.status !== 204) {
    const answer = await r.json().catch(() => ({}));
    $('message').textContent = `${answer.code || r.status}: ${answer.message || 'unban refused'}`;
  }
  loadBans();
}

// Title, scheduled start, avatar and the host's name (show_form.js), before or while live.
const showForm = new ShowForm({ send, onName: name => { if (state.me) state.me = { ...state.me, name }; } });

$('chat-form').onsubmit = async ev => {
  ev.preventDefault();
  const text = $('chat-input').value.trim();
  if (text && await send({ type: 'chat', text })) $('chat-input').value = '';
};
$('words-form').onsubmit = ev => {
  ev.preventDefault();
  const words = $('blocked-words').value.split(',').map(w => w.trim()).filter(Boolean);
  send({ type: 'set_blocked_words', words });
};

// ----- start -----
// In a cluster the room's host publishes on the room's origin node. When that is another node,
// this page moves there before opening the camera, its token in the fragment (which no server
// sees; session.js keeps it for the tab): following WHIP's 307 would lose the token on the way
// (browsers drop Authorization on a cross-origin redirect) and answer 401.
async function moveToOrigin(token) {
  const r = await fetch(`/api/rooms/${roomPath}/origin`).then(r => (r.ok ? r.json() : null)).catch(() => null);
  const origin = typeof r?.origin === 'string' ? r.origin.replace(/\/$/, '') : '';
  if (!origin || origin === location.origin) return false;
  setState('moving', `this room is live on ${origin}`);
  location.replace(`${origin}${location.pathname}${location.search}#token=${encodeURIComponent(token)}`);
  return true;
}

bindCaptureControls(() => media?.getVideoTracks()[0] || null, $('preview'), e => { $('message').textContent = `camera: ${e.message}`; });
bindViewerPreview(room);
(async () => {
  try {
    state.token = await getToken(room, 'host');
    session.token = state.token;
    if (await moveToOrigin(state.token)) return;
    await openMedia();
    await listDevices();
    setState('idle');
  } catch (e) {
    setState('error', e.message);
  }
  await pollRoom();
  // Only a products list is read as one: an error body (a room the restarted server does not
  // know answers 404 with `{"type":"error",...}`) or a cut-off answer is no catalog.
  const r = await fetch(`${session.base}/api/rooms/${roomPath}/products`).then(r => (r.ok ? r.json() : null)).catch(() => null);
  if (Array.isArray(r?.products)) {
    for (const p of r.products) if (!state.products.has(p.id)) state.products.set(p.id, p);
    for (const s of r.sales || []) if (!state.sales.has(s.id)) state.sales.set(s.id, s);
    renderProducts();
  }
  heartbeat();
  setInterval(() => { heartbeat(); pollRoom(); }, POLL_MS);
  setInterval(tickClocks, 1000);
})();
window.sellcast = { session, link, state, loadBans, media: () => media };
