//! Durable host actions, applied only after the store committed them: products, highlights,
//! sales, bans and blocked words. The caller who asked is answered here.

use crate::answer::{Answer, Caller};
use crate::catalog::{Product, Sale};
use crate::identity::{ParticipantId, Role};
use crate::protocol::{FrameError, RoomEvent};

use super::{Output, Show};

impl Show {
    pub fn apply_product(&mut self, now_ms: i64, product: Product) {
        match self.products.iter_mut().find(|p| p.id == product.id) {
            Some(p) => *p = product.clone(),
            None => self.products.push(product.clone()),
        }
        self.broadcast_event(now_ms, RoomEvent::ProductUpdated { product });
    }

    pub fn apply_product_deleted(&mut self, now_ms: i64, product_id: i64) {
        self.products.retain(|p| p.id != product_id);
        if self.pinned.contains(&product_id) {
            let pins: Vec<i64> = self.pinned.iter().copied().filter(|id| *id != product_id).collect();
            self.apply_pins(now_ms, pins);
        }
    }

    pub fn apply_pins(&mut self, now_ms: i64, pins: Vec<i64>) {
        self.pinned = pins;
        let products = self
            .pinned
            .iter()
            .filter_map(|id| self.products.iter().find(|p| p.id == *id).cloned())
            .collect();
        self.broadcast_event(now_ms, RoomEvent::Pinned { products });
    }

    pub fn apply_sale(&mut self, now_ms: i64, sale: Sale) {
        let ended = sale.ended_at_ms.is_some();
        let (id, sold) = (sale.id, sale.sold());
        match self.sales.iter_mut().find(|s| s.id == sale.id) {
            Some(s) => *s = sale.clone(),
            None => self.sales.push(sale.clone()),
        }
        if ended {
            if !self.end_announced.contains(&id) {
                self.end_announced.push(id);
                self.broadcast_event(now_ms, RoomEvent::SaleEnded { sale_id: id, sold });
            }
        } else {
            self.broadcast_event(now_ms, RoomEvent::SaleStarted { sale });
        }
        self.counters_dirty = true;
    }

    /// A committed ban: sessions of `identity` below the banning role `by` are closed.
    pub fn apply_ban(&mut self, now_ms: i64, identity: String, until_ms: Option<i64>, by: Role) {
        self.banned.insert(identity.clone(), super::Ban { until_ms, by });
        let kicked: Vec<ParticipantId> = self
            .participants
            .iter()
            .filter(|(_, p)| p.identity.id == identity && p.identity.role < by)
            .map(|(id, _)| *id)
            .collect();
        for participant in kicked {
            self.participants.remove(&participant);
            self.outputs.push_back(Output::Kick { participant });
        }
        self.broadcast_event(now_ms, RoomEvent::UserBanned { identity });
        self.counters_dirty = true;
    }

    /// A committed unban: the identity may join and chat again.
    pub fn apply_unban(&mut self, now_ms: i64, identity: String) {
        if self.banned.remove(&identity).is_some() {
            self.broadcast_event(now_ms, RoomEvent::UserUnbanned { identity });
        }
    }

    pub fn apply_blocked_words(&mut self, words: Vec<String>) {
        self.chat.set_blocked_words(words);
    }

    /// The store committed a host action and its `apply_*` ran: a call is told it is done.
    pub fn handle_persisted(&mut self, from: Caller) {
        self.accepted(from);
    }

    /// A durable action failed; tell whoever asked.
    pub fn handle_persist_failure(&mut self, to: Caller, error: FrameError) {
        self.answer(to, Answer::Refused(error));
    }
}
