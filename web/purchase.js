// Buying, as every viewer surface does it (the embeddable player; the watch page may use it too).
//
// One purchase intent has one idempotency key: a tap on Buy makes the key, a retry of the same
// intent (no answer yet, or the server restarted with it in hand) sends the same key again, so
// it can never become a second order. The answer (`order_confirmed` or `buy_rejected`) ends the
// intent; the next tap is a new one.

import { newKey } from './room.js';

export class BuyIntents {
  constructor() {
    this.open = new Map(); // sale id -> key of the intent not answered yet
  }

  // The key to send for a tap on `saleId`'s Buy: the open intent's, else a new one.
  keyFor(saleId) {
    const key = this.open.get(saleId) || newKey();
    this.open.set(saleId, key);
    return key;
  }

  // True while `saleId` has a tap with no answer (the button shows it is in flight).
  pending(saleId) {
    return this.open.has(saleId);
  }

  // An answer for `key` arrived: its intent is over.
  answered(key) {
    for (const [sale, k] of this.open) if (k === key) this.open.delete(sale);
  }
}

// The sale of `productId` a viewer can buy now (server time), if any.
export function activeSale(show, productId) {
  const now = Date.now() + show.clockOffset;
  return [...show.sales.values()].find(s => s.product_id === productId && !s.ended_at_ms && now >= s.starts_at_ms && now < s.ends_at_ms);
}

// What a viewer reads for a rejection reason.
export const REJECTION_TEXT = {
  sold_out: 'Sold out, sorry!',
  limit_reached: 'You reached the limit for this deal.',
  sale_not_active: 'This deal is not active.',
  invalid: 'That did not work.',
  unknown_product: 'This product is no longer for sale.',
  variant_required: 'Pick an option first.',
  unknown_variant: 'That option is no longer available.',
};
