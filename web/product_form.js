// The host's product form, its variants part: an optional list of variants (a label such as
// "S" or "Red", and its own stock) added to the product being created. With variants, the
// product's stock is their sum (the server computes it), so the form's Stock field is not used.
import { el } from './room.js';

const MAX_VARIANTS = 20; // the server's cap

export class VariantFields {
  // form: the product form; the fieldset goes before its submit button.
  constructor(form) {
    this.form = form;
    this.count = 0;
    this.list = el('ol', { class: 'variant-rows' });
    this.add = el('button', { type: 'button', class: 'add-variant' }, '+ Add variant');
    this.add.onclick = () => this.addRow();
    this.fieldset = el('fieldset', { class: 'variants wide' },
      el('legend', {}, 'Variants (optional: size, colour…)'), this.list, this.add);
    form.querySelector('button[type=submit]').before(this.fieldset);
  }

  addRow() {
    if (this.list.children.length >= MAX_VARIANTS) return;
    this.count += 1;
    const n = this.count;
    const label = el('input', { name: `variant-label-${n}`, class: 'variant-label', maxlength: '32', required: '', placeholder: 'e.g. M' });
    const stock = el('input', { name: `variant-stock-${n}`, class: 'variant-stock', type: 'number', min: '0', value: '10', required: '' });
    const remove = el('button', { type: 'button', class: 'remove-variant', 'aria-label': `Remove variant ${n}` }, '✕');
    const row = el('li', { class: 'variant-row' },
      el('label', {}, `Variant ${n} label`, label), el('label', {}, `Variant ${n} stock`, stock), remove);
    remove.onclick = () => { row.remove(); this.syncStock(); };
    this.list.append(row);
    this.syncStock();
    label.focus();
  }

  // With variants the product's own Stock field does not apply.
  syncStock() {
    const stock = this.form.querySelector('[name=stock]');
    if (stock) stock.disabled = this.list.children.length > 0;
  }

  // The variants as the products API takes them.
  values() {
    return [...this.list.children].map(row => ({
      label: row.querySelector('.variant-label').value.trim(),
      stock: Number(row.querySelector('.variant-stock').value),
    }));
  }

  reset() {
    this.list.replaceChildren();
    this.syncStock();
  }
}
