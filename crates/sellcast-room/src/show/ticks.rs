//! The fixed tick: likes summed, sales ending by the clock announced, and latest-state counters
//! sent when something moved.

use crate::protocol::{DirectFrame, RoomEvent, SaleCounter};

use super::{Class, Show};

impl Show {
    /// Fixed tick (every 250-500 ms): likes, counters, sales ending by the clock.
    pub fn handle_tick(&mut self, now_ms: i64) {
        self.limits.handle_tick(now_ms);
        if let Some((total, delta)) = self.likes.handle_tick() {
            self.broadcast(&DirectFrame::Likes { total, delta }, Class::Latest);
        }
        let ending: Vec<(i64, u32)> = self
            .sales
            .iter()
            .filter(|s| s.is_over(now_ms) && !self.end_announced.contains(&s.id))
            .map(|s| (s.id, s.sold()))
            .collect();
        for (sale_id, sold) in ending {
            self.end_announced.push(sale_id);
            self.broadcast_event(now_ms, RoomEvent::SaleEnded { sale_id, sold });
        }
        self.lifecycle_tick(now_ms);
        if std::mem::take(&mut self.counters_dirty) {
            let counters = self.counters();
            self.broadcast(&counters, Class::Latest);
        }
    }

    pub(super) fn counters(&self) -> DirectFrame {
        DirectFrame::Counters {
            viewers: self.viewer_count(),
            sales: self
                .sales
                .iter()
                .filter(|s| s.ended_at_ms.is_none())
                .map(|s| SaleCounter { sale_id: s.id, stock_left: s.stock_left, sold: s.sold() })
                .collect(),
        }
    }
}
