// The shopping bag: every product of the show (not only the highlighted ones), each with its
// price (the sale's price while a sale runs) and a Buy that opens the buy sheet. It opens as a
// bottom sheet from the bag button and lists what the page knows now (the snapshot's catalog,
// the HTTP list for the rest, and every product event since).
import { el, formatPrice } from './room.js';
import { activeSale } from './purchase.js';

export class Bag {
  // show: the page's Show; button: the bag button; onBuy(productId, opener): open the buy sheet.
  constructor({ show, button, onBuy, isEnded = () => false }) {
    Object.assign(this, { show, button, onBuy, isEnded });
    this.root = el('div', { id: 'bag', class: 'sheet-layer' });
    this.root.hidden = true;
    this.root.addEventListener('click', ev => { if (ev.target === this.root) this.close(); });
    this.root.addEventListener('keydown', ev => { if (ev.key === 'Escape') this.close(); });
    document.body.append(this.root);
    button.setAttribute('aria-haspopup', 'dialog');
    button.setAttribute('aria-expanded', 'false');
    button.onclick = () => (this.root.hidden ? this.open() : this.close());
    this.render();
  }

  open() {
    this.root.hidden = false;
    this.button.setAttribute('aria-expanded', 'true');
    this.render();
    this.root.querySelector('.sheet-close')?.focus();
  }

  close() {
    if (this.root.hidden) return;
    this.root.hidden = true;
    this.button.setAttribute('aria-expanded', 'false');
    this.button.focus();
  }

  // Products or sales changed: the count on the button, and the list if it is open.
  render() {
    const products = [...this.show.products.values()].sort((a, b) => a.id - b.id);
    this.button.querySelector('.bag-count').textContent = String(products.length);
    if (this.root.hidden) return;
    const panel = el('section', { class: 'sheet bag', role: 'dialog', 'aria-modal': 'true', 'aria-labelledby': 'bag-title' },
      el('header', { class: 'sheet-head' }, el('h2', { id: 'bag-title' }, `Shop · ${products.length} products`),
        el('button', { type: 'button', class: 'sheet-close', 'aria-label': 'Close the shop', onclick: () => this.close() }, '✕')));
    const list = el('ul', { class: 'bag-list' });
    for (const p of products) list.append(this.item(p));
    if (!products.length) list.append(el('li', { class: 'bag-empty' }, 'No products yet.'));
    panel.append(list);
    this.root.replaceChildren(panel);
  }

  item(p) {
    const sale = activeSale(this.show, p.id);
    const price = el('p', { class: 'price' });
    if (sale) price.append(el('s', {}, formatPrice(p.price_minor, p.currency)), ' ', el('b', {}, formatPrice(sale.price_minor, sale.currency)), ' ', el('span', { class: 'deal' }, 'Deal'));
    else price.append(el('b', {}, formatPrice(p.price_minor, p.currency)));
    const soldOut = sale ? sale.stock_left === 0 || p.stock === 0 : p.stock === 0;
    const options = (p.variants || []).map(v => v.label).join(' · ');
    const buy = el('button', { type: 'button', class: 'bag-buy', 'aria-label': `Buy ${p.title}`, dataset: { productId: String(p.id) } },
      soldOut ? 'Sold out' : 'Buy');
    buy.disabled = soldOut || this.isEnded();
    buy.onclick = () => { this.close(); this.onBuy(p.id, this.button); };
    const info = el('div', { class: 'info' }, el('h3', { title: p.title }, p.title), price);
    if (options) info.append(el('p', { class: 'options' }, options));
    const li = el('li', { class: 'bag-item', dataset: { productId: String(p.id) } });
    if (p.image_url) li.append(el('img', { src: p.image_url, alt: '' }));
    li.append(info, buy);
    return li;
  }
}
