// Sales by product on the host console: units sold and orders (the server's sums over every
// order of the room, as the product list shows them) and a conversion figure.
//
// Conversion = the product's orders ÷ the peak viewer count, the peak being what this console
// saw since Go live (the server keeps no peak; a reload during the show starts it again). It
// reads as "orders per viewer at the busiest moment": a buyer who orders twice counts twice.
// With no viewers seen yet there is no conversion to show, and the cell says so.
import { el } from './room.js';

const $ = id => document.getElementById(id);

export function conversionText(orders, peakViewers) {
  if (!peakViewers) return '–';
  const pct = (100 * orders) / peakViewers;
  return `${pct >= 10 || pct === 0 ? Math.round(pct) : pct.toFixed(1)} %`;
}

// `show`: the host page's state (products, productSales, peakViewers).
export function renderSales(show) {
  const body = $('sales-rows');
  if (!body) return;
  const rows = [...show.products.values()].sort((a, b) => a.id - b.id).map(p => {
    const sales = show.productSales.get(p.id) || { orders: 0, units: 0 };
    return el('tr', { dataset: { productId: String(p.id) } },
      el('th', { scope: 'row' }, p.title),
      el('td', { class: 'units' }, String(sales.units)),
      el('td', { class: 'orders' }, String(sales.orders)),
      el('td', { class: 'conversion' }, conversionText(sales.orders, show.peakViewers)));
  });
  // Rebuilt only when a figure changed (this runs every second).
  const key = rows.map(r => r.textContent).join('|') + `|${show.peakViewers}`;
  if (body.dataset.key === key) return;
  body.dataset.key = key;
  body.replaceChildren(...rows);
  $('conversion-peak').textContent = String(show.peakViewers);
}
