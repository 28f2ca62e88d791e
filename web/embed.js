// The embeddable player: <sellcast-player room="demo"> plays a show and lets the viewer buy
// the highlighted product. A merchant adds it to a product page with one script tag:
//
//   <script type="module" src="https://live.example.com/embed.js"></script>
//   <sellcast-player room="demo" token="VIEWER_TOKEN"></sellcast-player>
//
// The element lives in a Shadow DOM, so the merchant's CSS cannot break it and its CSS cannot
// leak into the merchant's page. It talks to the server this script came from (WHEP, the room's
// data channel, the room and product reads); the server must list the page's origin with
// `--allow-origin`. `token` is a viewer token the merchant's backend minted; without one, a
// dev-mode server hands out a guest token. Every user string is a text node.

import { Session } from '/static/session.js';
import { RoomLink, Show, el, formatPrice } from '/static/room.js';
import { BuyIntents, activeSale, REJECTION_TEXT } from '/static/purchase.js';
import { VideoCap } from '/static/video_cap.js';

const SERVER = new URL(import.meta.url).origin;

async function viewerToken(room, given) {
  if (given) return given;
  const config = await fetch(`${SERVER}/api/config`).then(r => r.json()).catch(() => ({ dev_mode: false }));
  if (!config.dev_mode) throw new Error('this player needs a token attribute');
  const key = `sellcast.embed-token.${SERVER}.${room}`;
  const stored = localStorage.getItem(key);
  if (stored) return stored;
  const r = await fetch(`${SERVER}/api/dev/token?${new URLSearchParams({ room, role: 'viewer', name: '' })}`);
  if (!r.ok) throw new Error(`token: ${r.status}`);
  const { token } = await r.json();
  localStorage.setItem(key, token);
  return token;
}

class SellcastPlayer extends HTMLElement {
  connectedCallback() {
    if (this.session) return;
    this.room = this.getAttribute('room') || 'demo';
    this.show = new Show();
    this.intents = new BuyIntents();
    this.ordersSeen = new Set(); // a retried intent is confirmed again with the same order id
    this.live = false;
    this.build();
    this.start().catch(e => this.setStatus('error', e.message));
  }

  disconnectedCallback() {
    this.session?.stop();
    clearInterval(this.poller);
    clearInterval(this.ticker);
    this.session = null;
  }

  build() {
    const root = this.attachShadow({ mode: 'open' });
    this.video = el('video', { autoplay: '', playsinline: '', part: 'video' });
    this.video.muted = true;
    this.liveBadge = el('span', { class: 'live', hidden: '' }, 'LIVE');
    this.waiting = el('div', { class: 'waiting' }, 'Waiting for the host…');
    this.unmute = el('button', { class: 'unmute', type: 'button' }, '🔇 Tap to unmute');
    this.unmute.onclick = () => { this.video.muted = false; this.video.play().catch(() => {}); this.unmute.hidden = true; };
    this.products = el('section', { class: 'products', 'aria-label': 'Highlighted products' });
    this.toastBox = el('div', { class: 'toast', role: 'status', hidden: '' });
    this.status = el('p', { class: 'status' }, 'connecting');
    const stage = el('div', { class: 'stage' }, this.video, this.liveBadge, this.waiting, this.unmute, this.products, this.toastBox);
    root.append(el('link', { rel: 'stylesheet', href: `${SERVER}/static/player.css` }), stage, this.status);
    this.stream = new MediaStream();
    this.video.srcObject = this.stream;
    this.lastFrameAt = 0;
    const tick = () => { this.lastFrameAt = performance.now(); this.video.requestVideoFrameCallback?.(tick); };
    if ('requestVideoFrameCallback' in HTMLVideoElement.prototype) this.video.requestVideoFrameCallback(tick);
    else this.video.addEventListener('timeupdate', tick);
  }

  async start() {
    const token = await viewerToken(this.room, this.getAttribute('token'));
    // The player's displayed size caps the layer it is sent (no data-saver toggle here: the
    // merchant's page decides the player's size, and its storage is the merchant's).
    this.videoCap = new VideoCap({ video: this.video, send: f => this.link?.send(f) ?? false, storage: null });
    this.videoCap.observe();
    this.link = new RoomLink({
      onWelcome: f => { this.show.clockOffset = f.server_now_ms - Date.now(); this.videoCap.channelOpened(); },
      onSnapshot: s => {
        this.show.applySnapshot(s);
        this.show.loadMoreProducts(s, this.room, this.session?.base ?? SERVER).then(added => { if (added) this.render(); });
        this.render();
      },
      onEvent: f => { if (this.show.applyEvent(f)) this.render(); },
      onDirect: f => this.direct(f),
      onDraining: f => this.session?.moveAfter(f.reconnect_after_ms),
    });
    this.session = new Session({
      endpoint: 'whep',
      room: this.room,
      token,
      base: SERVER,
      // In a cluster the player watches from the least-loaded node and moves by itself; each
      // node must allow the merchant's origin (`--allow-origin`).
      placement: true,
      setup: pc => {
        pc.addTransceiver('audio', { direction: 'recvonly' });
        pc.addTransceiver('video', { direction: 'recvonly' });
      },
      onTrack: ev => {
        for (const t of this.stream.getTracks()) if (t.kind === ev.track.kind) this.stream.removeTrack(t);
        this.stream.addTrack(ev.track);
        this.video.play().catch(() => {});
      },
      onChannel: ch => this.link.attach(ch),
      onState: (s, detail) => this.setStatus(s, detail),
    });
    await this.pollRoom();
    this.poller = setInterval(() => this.pollRoom(), 1000);
    this.ticker = setInterval(() => this.tick(), 250);
    await this.session.start();
  }

  async pollRoom() {
    try {
      const s = await fetch(`${this.session?.base ?? SERVER}/api/rooms/${encodeURIComponent(this.room)}`).then(r => r.json());
      this.live = Boolean(s.live);
      this.waiting.hidden = this.live;
    } catch { /* the session reconnects by itself */ }
  }

  // LIVE means frames are arriving now.
  tick() {
    const flowing = this.live && performance.now() - this.lastFrameAt < 1500;
    this.liveBadge.hidden = !flowing;
    this.dataset.playing = flowing ? 'yes' : 'no';
  }

  setStatus(state, detail) {
    this.dataset.state = state;
    this.status.textContent = detail ? `${state}: ${detail}` : state;
  }

  direct(f) {
    switch (f.type) {
      case 'counters': this.show.applyCounters(f); this.render(); break;
      case 'order_confirmed':
        this.intents.answered(f.idempotency_key);
        this.toast(`Order #${f.order_id} confirmed: ${f.qty} × ${formatPrice(f.price_minor, f.currency)}`, 'ok');
        if (this.ordersSeen.has(f.order_id)) { this.render(); break; }
        this.ordersSeen.add(f.order_id);
        this.dispatchEvent(new CustomEvent('sellcast-order', { detail: { orderId: f.order_id, saleId: f.sale_id, qty: f.qty }, bubbles: true, composed: true }));
        this.render();
        break;
      case 'buy_rejected':
        this.intents.answered(f.idempotency_key);
        this.toast(REJECTION_TEXT[f.reason] || f.reason, 'bad');
        this.render();
        break;
      case 'buy_not_placed': this.toast('Tap Buy again in a moment.', 'bad'); break;
      case 'error': this.toast(f.message, 'bad'); break;
    }
  }

  render() {
    this.products.replaceChildren();
    for (const id of this.show.pinned.slice(0, 1)) {
      const p = this.show.products.get(id);
      if (!p) continue;
      const sale = activeSale(this.show, id);
      const info = el('div', { class: 'info' }, el('h3', { title: p.title }, p.title));
      const card = el('article', { class: 'card', dataset: { productId: String(id) } });
      if (p.image_url) card.append(el('img', { src: p.image_url, alt: '' }));
      if (sale) {
        info.append(el('p', { class: 'price' }, el('s', {}, formatPrice(p.price_minor, p.currency)), ' ', el('b', {}, formatPrice(sale.price_minor, sale.currency))));
        const left = sale.stock_left;
        const inFlight = this.intents.pending(sale.id);
        const buy = el('button', { class: 'buy', type: 'button', dataset: { saleId: String(sale.id) } }, left > 0 ? (inFlight ? 'Buying…' : 'Buy') : 'Sold out');
        buy.disabled = left === 0 || inFlight;
        buy.onclick = () => this.buy(sale.id);
        info.append(el('p', { class: 'left' }, left > 0 ? `${left} left` : 'Sold out'), buy);
      } else {
        info.append(el('p', { class: 'price' }, formatPrice(p.price_minor, p.currency)));
      }
      card.append(info);
      this.products.append(card);
    }
  }

  buy(saleId) {
    const key = this.intents.keyFor(saleId);
    if (!this.link.send({ type: 'buy', sale_id: saleId, qty: 1, idempotency_key: key })) {
      this.toast('Reconnecting, try again in a moment', 'bad');
    }
    this.render();
  }

  toast(text, kind = '') {
    this.toastBox.textContent = text;
    this.toastBox.className = `toast ${kind}`;
    this.toastBox.hidden = false;
    clearTimeout(this.toastTimer);
    this.toastTimer = setTimeout(() => { this.toastBox.hidden = true; }, 4000);
  }
}

if (!customElements.get('sellcast-player')) customElements.define('sellcast-player', SellcastPlayer);
