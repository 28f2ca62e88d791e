// The room protocol over the `sellcast` data channel: hello/resume, gap detection, dedupe.
//
// Every broadcast event carries (epoch, seq). The client remembers the last one it applied.
// On a new channel (reconnect) it says hello with that position and the server sends exactly
// the missed events, or a snapshot when it cannot (other epoch / too far behind). A gap inside
// one channel (a frame the server could not deliver) triggers the same resume.
// A `draining` frame (the server is restarting) goes to onDraining: the page's Session moves
// when the server closes the connection.

export class RoomLink {
  constructor(handlers) {
    this.handlers = handlers; // { onEvent(frame), onDirect(frame), onSnapshot(snapshot), onWelcome(frame), onDraining(frame) }
    this.position = null;     // { epoch, seq } of the last applied event
    this.channel = null;
    this.pendingResume = false;
  }

  attach(channel) {
    this.channel = channel;
    channel.onopen = () => this.hello();
    channel.onmessage = ev => this.receive(ev.data);
  }

  hello() {
    this.send({ type: 'hello', resume: this.position });
  }

  send(frame) {
    if (this.channel?.readyState === 'open') {
      this.channel.send(JSON.stringify(frame));
      return true;
    }
    return false;
  }

  // Sends and resolves once the channel has handed the frame on (or after `timeoutMs`): for a
  // last frame before the connection is closed, which would drop what is still buffered.
  async sendFlushed(frame, timeoutMs = 500) {
    if (!this.send(frame)) return false;
    const deadline = performance.now() + timeoutMs;
    while (this.channel.bufferedAmount > 0 && performance.now() < deadline) await new Promise(r => setTimeout(r, 10));
    return true;
  }

  receive(data) {
    let frame;
    try { frame = JSON.parse(data); } catch { return; }
    if (frame.type === 'welcome') {
      this.pendingResume = false;
      this.handlers.onWelcome?.(frame);
      if (!frame.resumed) this.position = { epoch: frame.epoch, seq: frame.seq };
      return;
    }
    if (frame.type === 'draining') {
      this.handlers.onDraining?.(frame);
      return;
    }
    if (frame.type === 'snapshot') {
      this.position = { epoch: frame.epoch, seq: frame.seq };
      this.handlers.onSnapshot?.(frame);
      return;
    }
    if (typeof frame.seq === 'number' && typeof frame.epoch === 'number') {
      const p = this.position;
      if (p && frame.epoch === p.epoch && frame.seq <= p.seq) return; // already applied
      if (p && (frame.epoch !== p.epoch || frame.seq > p.seq + 1)) {
        // Missed something: ask for it instead of applying out of order.
        if (!this.pendingResume) { this.pendingResume = true; this.hello(); }
        return;
      }
      this.position = { epoch: frame.epoch, seq: frame.seq };
      this.handlers.onEvent?.(frame);
      return;
    }
    if (frame.type === 'error' && frame.code === 'rate_limited' && this.pendingResume) {
      // Snapshots are throttled per identity: ask again once the next one is allowed.
      setTimeout(() => this.hello(), 1200);
      return;
    }
    this.handlers.onDirect?.(frame);
  }
}

export function formatPrice(minor, currency) {
  try {
    return new Intl.NumberFormat(undefined, { style: 'currency', currency }).format(minor / 100);
  } catch {
    return `${(minor / 100).toFixed(2)} ${currency}`;
  }
}

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') node.className = v;
    else if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
    else if (k === 'dataset') Object.assign(node.dataset, v);
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}

export function newKey() {
  return crypto.randomUUID ? crypto.randomUUID() : `${Date.now()}-${Math.random().toString(36).slice(2)}`;
}

// The show as both pages see it: products, highlights, sales and the server's clock. Commerce
// events change it the same way on the host console and on the watch page.
export class Show {
  constructor() {
    this.products = new Map();
    this.pinned = [];
    this.sales = new Map();
    this.clockOffset = 0; // server time minus local time, so every countdown agrees
  }

  applySnapshot(s) {
    this.clockOffset = s.server_now_ms - Date.now();
    this.products = new Map(s.products.map(p => [p.id, p]));
    this.pinned = s.pinned;
    this.sales = new Map(s.sales.map(x => [x.id, x]));
  }

  // A snapshot carries the highlighted products and as much of the catalog as fits the data
  // channel (`more_products` says the rest is in the HTTP list). Resolves true when products
  // were added, so the caller re-renders. Products the channel already updated are kept.
  // `base` is the server's origin when the page is on another one ('' for this origin).
  async loadMoreProducts(s, room, base = '') {
    if (!s.more_products) return false;
    const r = await fetch(`${base}/api/rooms/${encodeURIComponent(room)}/products`).then(r => (r.ok ? r.json() : null)).catch(() => null);
    if (!Array.isArray(r?.products)) return false;
    let added = false;
    for (const p of r.products) {
      if (!this.products.has(p.id)) { this.products.set(p.id, p); added = true; }
    }
    return added;
  }

  // Applies a commerce event; true if products or sales changed (the caller re-renders).
  applyEvent(f) {
    switch (f.type) {
      case 'pinned':
        for (const p of f.products) this.products.set(p.id, p);
        this.pinned = f.products.map(p => p.id);
        return true;
      case 'product_updated': this.products.set(f.product.id, f.product); return true;
      case 'sale_started': this.sales.set(f.sale.id, f.sale); this.clockOffset = f.server_now_ms - Date.now(); return true;
      case 'sale_ended': { const s = this.sales.get(f.sale_id); if (s) s.ended_at_ms = f.server_now_ms; return true; }
      case 'sold_out': { const s = this.sales.get(f.sale_id); if (s) s.stock_left = 0; return true; }
      default: return false;
    }
  }

  applyCounters(f) {
    for (const c of f.sales) {
      const s = this.sales.get(c.sale_id);
      if (s) s.stock_left = c.stock_left;
    }
  }
}
