// The viewer's buy sheet: a bottom sheet over the video with the product, its price (the sale's
// price and countdown while a sale runs), a variant picker, a quantity stepper, the total and an
// explicit Confirm. The answer (confirmed, sold out, limit reached...) shows in place.
//
// One purchase intent has one idempotency key (purchase.js): the first Confirm makes it, and any
// retry of that intent (no answer in time, the server did not place it, a reconnect) sends the same
// key, so the server makes at most one order of it. While an intent is open the choice is locked
// and Confirm is disabled in flight, so a double tap sends one buy; once confirmed, Confirm rests
// a moment and then turns into Close, so a late second tap neither starts a new intent nor hides
// the confirmation.
import { el, formatPrice } from './room.js';
import { BuyIntents, REJECTION_TEXT, activeSale } from './purchase.js';

const MAX_QTY = 99; // the server's cap on one order
const ANSWER_MS = 5000; // no answer by then: Confirm is offered again, with the same key
const DONE_HOLD_MS = 1500; // after a confirmation Confirm rests this long before it turns into Close

export class BuySheet {
  // show: the page's Show (products, sales, clockOffset); send(frame) -> bool sends on the
  // data channel; isEnded() -> bool: the show is over; onConfirmed(frame): after an order.
  constructor({ show, send, isEnded = () => false, onConfirmed = () => {} }) {
    Object.assign(this, { show, send, isEnded, onConfirmed });
    this.intents = new BuyIntents();
    this.opened = 0; // sheets opened so far: each opening is its own purchase intent
    this.view = null; // { intentId, productId, variantId, qty, phase: 'choose'|'flight'|'retry'|'done', sentAt, key, result }
    this.opener = null;
    this.root = el('div', { id: 'buy-sheet', class: 'sheet-layer' });
    this.root.hidden = true;
    this.root.addEventListener('click', ev => { if (ev.target === this.root) this.close(); });
    this.root.addEventListener('keydown', ev => { if (ev.key === 'Escape') this.close(); });
    document.body.append(this.root);
    setInterval(() => this.tick(), 500);
  }

  get isOpen() { return !this.root.hidden; }

  open(productId, opener = document.activeElement) {
    const p = this.show.products.get(productId);
    if (!p) return;
    this.opened += 1;
    const inStock = (p.variants || []).find(v => v.stock > 0);
    this.view = { intentId: `sheet-${this.opened}`, productId, variantId: inStock?.id ?? null, qty: 1, phase: 'choose', sentAt: 0, key: null, result: null, seen: false };
    this.opener = opener;
    this.root.hidden = false;
    this.render();
    this.root.querySelector('.sheet-close')?.focus();
  }

  close() {
    if (this.root.hidden) return;
    this.root.hidden = true;
    this.root.replaceChildren();
    if (this.opener?.isConnected) this.opener.focus();
  }

  // The choice as it stands: product, variant, sale, unit price and the most one can buy.
  choice() {
    const v = this.view;
    const p = this.show.products.get(v.productId);
    if (!p) return null;
    const variants = p.variants || [];
    const variant = variants.find(x => x.id === v.variantId) || null;
    const sale = activeSale(this.show, p.id) || null;
    const unitStock = variant ? variant.stock : (variants.length ? 0 : p.stock);
    let max = Math.min(MAX_QTY, unitStock);
    if (sale) max = Math.min(max, sale.stock_left, sale.per_user_limit);
    const price = sale ? { minor: sale.price_minor, currency: sale.currency } : { minor: p.price_minor, currency: p.currency };
    return { p, variants, variant, sale, max: Math.max(0, max), price };
  }

  confirm() {
    const v = this.view;
    if (!v) return;
    if (v.phase === 'done') { if (!this.resting()) this.close(); return; }
    if (v.phase === 'flight' || this.isEnded()) return;
    const c = this.choice();
    if (!c || c.max < 1 || v.qty < 1 || v.qty > c.max || (c.variants.length && !c.variant)) return;
    if (v.phase === 'choose') v.seen = false; // a new intent (a retry keeps its key and what was seen)
    v.key = this.intents.keyFor(v.intentId);
    v.frame = { type: 'buy', product_id: c.p.id, qty: v.qty, idempotency_key: v.key };
    if (c.sale) v.frame.sale_id = c.sale.id;
    if (c.variant) v.frame.variant_id = c.variant.id;
    this.sendIntent();
  }

  sendIntent() {
    const v = this.view;
    v.sentAt = performance.now();
    if (this.send(v.frame)) {
      v.phase = 'flight';
      v.result = null;
    } else {
      v.phase = 'retry';
      v.result = { kind: 'bad', text: 'Reconnecting: tap Confirm again in a moment.' };
    }
    this.render();
  }

  // Units of sale `saleId` this sheet's unanswered buy asked for that no stock counter showed
  // yet (the "someone just bought" banner must not announce them); they count as shown now.
  takeUnseen(saleId) {
    const v = this.view;
    if (v?.phase !== 'flight' || v.frame?.sale_id !== saleId || v.seen) return 0;
    v.seen = true;
    return v.frame.qty;
  }

  // A stock counter already showed the units of the buy with `key`.
  seen(key) {
    return this.view?.key === key && Boolean(this.view.seen);
  }

  // After a reconnect, the intent sent on the old channel and never answered goes again.
  resend() {
    if (this.view?.phase === 'flight' && this.view.frame) this.sendIntent();
  }

  // An answer from the server; true when it belongs to this sheet's intent.
  handleAnswer(f) {
    const v = this.view;
    if (!v || !v.key || f.idempotency_key !== v.key) return false;
    if (f.type === 'buy_not_placed') {
      v.phase = 'retry';
      v.result = { kind: 'bad', text: f.code === 'rate_limited' ? 'Too many taps: tap Confirm again in a moment.' : 'Not placed yet: tap Confirm again in a moment.' };
    } else if (f.type === 'order_confirmed') {
      this.intents.answered(f.idempotency_key);
      v.phase = 'done';
      v.doneAt = performance.now();
      v.result = { kind: 'ok', text: `Order #${f.order_id} confirmed: ${f.qty} × ${formatPrice(f.price_minor, f.currency)}` };
      this.onConfirmed(f);
    } else if (f.type === 'buy_rejected') {
      this.intents.answered(f.idempotency_key);
      v.phase = 'choose';
      v.key = null;
      v.result = { kind: 'bad', text: REJECTION_TEXT[f.reason] || f.reason };
    } else {
      return false;
    }
    if (this.isOpen) this.render();
    return true;
  }

  // Just confirmed: Confirm does nothing yet.
  resting() {
    return this.view?.phase === 'done' && performance.now() - this.view.doneAt < DONE_HOLD_MS;
  }

  tick() {
    const v = this.view;
    if (v?.phase === 'done' && v.resting && !this.resting()) {
      v.resting = false;
      if (this.isOpen) this.render();
    }
    if (v?.phase === 'flight' && performance.now() - v.sentAt > ANSWER_MS) {
      v.phase = 'retry';
      v.result = { kind: 'bad', text: 'No answer yet: tap Confirm to try again (you will not be charged twice).' };
      if (this.isOpen) this.render();
    }
    const countdown = this.root.querySelector('.sheet-countdown');
    if (countdown && this.isOpen) countdown.textContent = this.countdownText(this.choice()?.sale);
  }

  countdownText(sale) {
    if (!sale) return '';
    const s = Math.max(0, Math.ceil((sale.ends_at_ms - (Date.now() + this.show.clockOffset)) / 1000));
    return `Deal ends in ${String(Math.floor(s / 60)).padStart(2, '0')}:${String(s % 60).padStart(2, '0')}`;
  }

  render() {
    const v = this.view;
    const c = v && this.choice();
    if (!c) { this.close(); return; }
    const locked = v.phase !== 'choose'; // an open intent keeps its choice
    if (v.qty > c.max && !locked) v.qty = Math.max(1, c.max);
    const panel = el('section', { class: 'sheet', role: 'dialog', 'aria-modal': 'true', 'aria-labelledby': 'sheet-title' });
    const head = el('header', { class: 'sheet-head' });
    if (c.p.image_url) head.append(el('img', { src: c.p.image_url, alt: '' }));
    head.append(el('h2', { id: 'sheet-title' }, c.p.title),
      el('button', { type: 'button', class: 'sheet-close', 'aria-label': 'Close', onclick: () => this.close() }, '✕'));
    const price = el('p', { class: 'sheet-price' });
    if (c.sale) {
      price.append(el('s', {}, formatPrice(c.p.price_minor, c.p.currency)), ' ', el('b', {}, formatPrice(c.price.minor, c.price.currency)),
        ' ', el('span', { class: 'sheet-countdown' }, this.countdownText(c.sale)));
    } else {
      price.append(el('b', {}, formatPrice(c.price.minor, c.price.currency)));
    }
    panel.append(head, price);
    if (c.variants.length) {
      const group = el('fieldset', { class: 'variants' }, el('legend', {}, 'Option'));
      for (const x of c.variants) {
        const input = el('input', { type: 'radio', name: 'variant', value: String(x.id) });
        input.checked = x.id === v.variantId;
        input.disabled = locked || x.stock === 0;
        input.onchange = () => { v.variantId = x.id; v.result = null; this.render(); };
        group.append(el('label', { class: 'variant' }, input, el('span', {}, x.stock === 0 ? `${x.label} · sold out` : x.label)));
      }
      panel.append(group);
    }
    const less = el('button', { type: 'button', class: 'step', 'aria-label': 'One less', onclick: () => { v.qty -= 1; v.result = null; this.render(); } }, '−');
    const more = el('button', { type: 'button', class: 'step', 'aria-label': 'One more', onclick: () => { v.qty += 1; v.result = null; this.render(); } }, '+');
    less.disabled = locked || v.qty <= 1;
    more.disabled = locked || v.qty >= c.max;
    panel.append(el('div', { class: 'qty' }, el('span', { id: 'qty-label' }, 'Quantity'), less,
      el('output', { class: 'qty-value', 'aria-labelledby': 'qty-label', 'aria-live': 'polite' }, String(v.qty)), more));
    const total = el('p', { class: 'sheet-total' }, 'Total ', el('b', {}, formatPrice(c.price.minor * v.qty, c.price.currency)));
    const soldOut = c.max < 1;
    v.resting = this.resting();
    const label = this.isEnded() ? 'Show ended' : v.resting ? 'Bought ✓' : v.phase === 'done' ? 'Close' : v.phase === 'flight' ? 'Confirming…'
      : soldOut ? 'Sold out' : c.variants.length && !c.variant ? 'Pick an option' : v.phase === 'retry' ? 'Confirm again' : 'Confirm';
    const confirm = el('button', { type: 'button', class: 'confirm', onclick: () => this.confirm() }, label);
    confirm.disabled = v.resting || (v.phase !== 'done' && (v.phase === 'flight' || this.isEnded() || (v.phase === 'choose' && (soldOut || (c.variants.length && !c.variant)))));
    const result = el('p', { class: `sheet-result ${v.result?.kind || ''}`, role: 'status' }, v.result?.text || '');
    panel.append(total, confirm, result);
    const focused = document.activeElement && this.root.contains(document.activeElement) ? document.activeElement.className : null;
    this.root.replaceChildren(panel);
    if (focused) (panel.querySelector(`.${focused.split(' ')[0]}:not(:disabled)`) || panel.querySelector('.sheet-close')).focus();
  }
}
