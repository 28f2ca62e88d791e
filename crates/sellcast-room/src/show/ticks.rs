//! The fixed tick: likes summed, sales ending by the clock announced, and latest-state counters
//! sent when something moved.

use crate::protocol::{DirectFrame, RoomEvent, SaleCounter};

use super::{Class, Show};

impl Show {
    /// Likes another node summed for its viewers in one of its ticks (cluster mode): each
    /// viewer there was held to [`crate::ShowLimits::likes_per_user_per_tick`] by that node.
    /// They are announced with this room's own on its next tick.
    pub fn handle_node_likes(&mut self, count: u32) {
        self.likes.handle_node_sum(count);
    }

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
