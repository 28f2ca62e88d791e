// "My orders": the viewer's own orders in this room (product, variant, quantity, total, time),
// read from the server for the page's own identity (`GET /api/rooms/{room}/orders/mine` with its
// token), so they are listed after a reload or on another device with the same identity, and
// never anyone else's.
import { el, formatPrice } from './room.js';

export class MyOrders {
  // button, count, list: the page's My orders toggle, its counter and its list; token() -> the
  // page's token (or null); base: the server's origin ('' for this one).
  constructor({ room, token, button, count, list, base = '' }) {
    Object.assign(this, { room, token, button, count, list, base });
    this.orders = [];
    this.loading = null;
    button.onclick = () => {
      list.hidden = !list.hidden;
      button.setAttribute('aria-expanded', String(!list.hidden));
      if (!list.hidden) this.refresh();
    };
  }

  // Read the list again (at start, after each confirmed order). Calls made while one is in
  // flight share its answer and one more read after it, so the newest order is never missed.
  refresh() {
    if (this.loading) { this.again = true; return this.loading; }
    this.loading = this.load().finally(() => {
      this.loading = null;
      if (this.again) { this.again = false; this.refresh(); }
    });
    return this.loading;
  }

  async load() {
    const token = await this.token();
    if (!token) return;
    const r = await fetch(`${this.base}/api/rooms/${encodeURIComponent(this.room)}/orders/mine`, { headers: { authorization: `Bearer ${token}` } })
      .catch(() => null);
    if (!r?.ok) return; // offline or refused: keep what is shown
    const body = await r.json().catch(() => null);
    if (!Array.isArray(body?.orders)) return;
    this.orders = body.orders;
    this.render();
  }

  render() {
    this.button.hidden = this.orders.length === 0;
    this.count.textContent = String(this.orders.length);
    this.list.replaceChildren(...this.orders.map(o => {
      const at = new Date(o.at_ms);
      const what = o.variant ? `${o.title} (${o.variant})` : o.title;
      return el('li', { dataset: { orderId: String(o.order_id) } },
        el('b', {}, what || `product ${o.product_id}`),
        ` · ${o.qty} × ${formatPrice(o.price_minor, o.currency)} = ${formatPrice(o.price_minor * o.qty, o.currency)} · `,
        el('time', { datetime: at.toISOString() }, at.toLocaleTimeString()),
        ` · #${o.order_id}`);
    }));
  }
}
