//! One-tap buys: admission from memory, the store's outcome or failure, and what a committed
//! order changes (stock, the staff's order feed, revenue, sold out).

use crate::answer::{Answer, Caller};
use crate::buy_admission::{Admission, BuyAnswer, BuyItem, BuyTicket};
use crate::identity::{Identity, ParticipantId};
use crate::identity_limits::Limit;
use crate::protocol::{encode, DirectFrame, ErrorCode, FrameError, OrderLine, RoomEvent};

use super::{Class, Output, Show};

/// Orders kept for the host feed snapshot.
pub(super) const RECENT_ORDERS: usize = 50;

impl Show {
    pub(super) fn buy(&mut self, now_ms: i64, from: Caller, who: &Identity, item: BuyItem, key: &str) {
        let sale_id = item.sale_id;
        if !self.limits.try_take(now_ms, who, Limit::Buy) {
            // Nothing reserved or remembered: the same key may be sent again a moment later.
            self.tally.refused(ErrorCode::RateLimited);
            let error = FrameError::new(ErrorCode::RateLimited, "too many buys: tap again in a moment");
            self.answer(from, Answer::BuyNotPlaced { key: key.to_string(), sale_id, error });
            return;
        }
        let sale = sale_id.and_then(|id| self.sales.iter().find(|s| s.id == id));
        let product_id = match (sale, sale_id) {
            (Some(s), _) => Some(s.product_id),
            (None, Some(_)) => None,
            (None, None) => item.product_id,
        };
        let product = product_id.and_then(|id| self.products.iter().find(|p| p.id == id));
        match self.buys.admit(now_ms, from, who, (item, sale, product), key) {
            Admission::Answered(answer) => self.answer(from, Answer::Buy { key: key.to_string(), answer }),
            Admission::Joined => {}
            Admission::Submit(order) if self.draining.is_some() => {
                // No new work for the store while draining: the reservation `admit` made is
                // released and nothing is remembered, so the key may be sent again elsewhere.
                let error = FrameError::new(ErrorCode::Unavailable, "the server is restarting: buy again once reconnected");
                for to in self.buys.handle_failure(&order.ticket) {
                    self.answer(to, Answer::BuyNotPlaced { key: key.to_string(), sale_id, error: error.clone() });
                }
            }
            Admission::Submit(order) => self.outputs.push_back(Output::Buy(order)),
        }
    }

    /// The server is going away. Every participant, and anyone who says `hello` later, is told
    /// to reconnect after `reconnect_after_ms`; new buys are answered `buy_not_placed`, and the
    /// buys already with the store are answered as usual when it has committed them
    /// ([`Show::buys_in_flight`] counts them down to zero).
    pub fn handle_drain(&mut self, reconnect_after_ms: u64) {
        if self.draining.is_some() {
            return;
        }
        self.draining = Some(reconnect_after_ms);
        // The likes since the last save go to the store before the server exits.
        self.save_likes(self.likes_saved.1);
        let frame = encode(&DirectFrame::Draining { reconnect_after_ms });
        self.outputs.push_back(Output::Broadcast { frame, class: Class::Control, position: None });
    }

    /// The store committed (or replayed) a buy.
    pub fn handle_buy_outcome(&mut self, now_ms: i64, ticket: &BuyTicket, answer: BuyAnswer, replayed: bool, stock_left: Option<u32>) {
        let settled = self.buys.handle_outcome(ticket, answer.clone(), replayed);
        for to in settled.waiters {
            self.answer(to, Answer::Buy { key: ticket.key.clone(), answer: answer.clone() });
        }
        let BuyAnswer::Confirmed { order_id, sale_id, product_id, variant_id, qty, price_minor, currency } = answer else {
            return;
        };
        if replayed {
            return;
        }
        let mut sale_sold = 0;
        let mut sold_out = None;
        let mut product_id = product_id;
        if let Some(sale) = sale_id.and_then(|id| self.sales.iter_mut().find(|s| s.id == id)) {
            // Outcomes of one group commit may be applied in any order; the store's stock only
            // ever goes down, so the lowest value it reported is the committed truth. Without a
            // report, count this order off.
            sale.stock_left = match stock_left {
                Some(left) => left.min(sale.stock_left),
                None => sale.stock_left.saturating_sub(qty),
            };
            sold_out = (sale.stock_left == 0).then_some(sale.id);
            sale_sold = sale.sold();
            product_id = sale.product_id;
        }
        // The store took the units off the product's stock (and the variant's) in the order's
        // transaction. For a list-price order it reported what is left of them.
        let unit_left = if sale_id.is_none() { stock_left } else { None };
        let (title, variant, product_stock, unit_sold_out) = match self.products.iter_mut().find(|p| p.id == product_id) {
            Some(p) => {
                // What the store reported is the committed truth (outcomes of a batch may come
                // in any order, and stock only goes down); without a report, count this off.
                let count_off = |stock: u32| unit_left.map_or(stock.saturating_sub(qty), |l| l.min(stock));
                let mut label = String::new();
                let left = match variant_id.and_then(|v| p.variants.iter_mut().find(|x| x.id == v)) {
                    Some(v) => {
                        v.stock = count_off(v.stock);
                        label = v.label.clone();
                        let left = v.stock;
                        // A product with variants holds their sum.
                        p.stock = p.variants.iter().map(|v| v.stock).fold(0u32, u32::saturating_add);
                        left
                    }
                    None => {
                        p.stock = count_off(p.stock);
                        p.stock
                    }
                };
                let sold_out = sale_id.is_none() && left == 0;
                (p.title.clone(), label, p.stock, sold_out.then(|| p.clone()))
            }
            None => (String::new(), String::new(), 0, None),
        };
        let buyer = settled
            .buyer
            .or_else(|| self.participants.values().find(|p| p.identity.id == ticket.identity).map(|p| p.identity.clone()))
            .unwrap_or_else(|| Identity { id: ticket.identity.clone(), name: ticket.identity.clone(), role: crate::identity::Role::Viewer });
        self.announce_order(&buyer, product_id, &title);
        let product_sales = self.totals.add_order(product_id, qty, price_minor, &currency);
        let order = OrderLine { order_id, sale_id, product_id, title, variant_id, variant, buyer, qty, price_minor, currency, at_ms: now_ms };
        let revenue_minor = match sale_id {
            Some(id) => {
                let revenue = self.revenue.entry(id).or_insert(0);
                *revenue = crate::money::add_line(*revenue, price_minor, qty);
                *revenue
            }
            None => 0,
        };
        if self.orders.len() == RECENT_ORDERS {
            self.orders.pop_front();
        }
        self.orders.push_back(order.clone());
        let feed = DirectFrame::Order { order, sale_sold, revenue_minor, totals: self.totals.totals.clone(), product_sales, product_stock };
        let staff: Vec<ParticipantId> = self
            .participants
            .iter()
            .filter(|(_, p)| p.identity.role.can_moderate())
            .map(|(id, _)| *id)
            .collect();
        for to in staff {
            self.send(to, &feed, Class::Control);
        }
        self.counters_dirty = true;
        if let Some(sale_id) = sold_out {
            self.broadcast_event(now_ms, RoomEvent::SoldOut { sale_id });
        }
        // A list-price product (or variant) that ran out: viewers see it sold out.
        if let Some(product) = unit_sold_out {
            self.broadcast_event(now_ms, RoomEvent::ProductUpdated { product });
        }
    }

    /// The store could not commit a buy: nothing happened, the buyer may retry with its key.
    pub fn handle_buy_failure(&mut self, ticket: &BuyTicket) {
        for to in self.buys.handle_failure(ticket) {
            self.tally.buy_unavailable();
            let error = FrameError::new(ErrorCode::Unavailable, "order not placed, please retry");
            self.answer(to, Answer::Refused(error));
        }
    }

    /// The show's task is being replaced (it panicked): tell every buyer still waiting for
    /// the store that its answer is unknown. The store may still commit the buy; a retry with
    /// the same key gets the store's one answer, so the buyer must retry with that key.
    pub fn abandon_buys_in_flight(&mut self) {
        for ticket in self.buys.tickets_in_flight() {
            for to in self.buys.handle_failure(&ticket) {
                self.tally.buy_unavailable();
                let error = FrameError::new(ErrorCode::Unavailable, "the room restarted before this order was answered; retry it");
                self.answer(to, Answer::Refused(error));
            }
        }
    }
}
