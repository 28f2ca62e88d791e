//! Likes: clients batch taps, the room sums them and announces `{total, delta}` once per tick,
//! so a thousand hearts a second cost one frame per viewer per tick.

use std::collections::HashMap;

#[derive(Debug)]
pub struct LikeCounter {
    total: u64,
    delta: u64,
    /// Likes accepted from each user in the current tick.
    this_tick: HashMap<String, u32>,
    cap_per_user_per_tick: u32,
}

impl LikeCounter {
    pub fn new(total: u64, cap_per_user_per_tick: u32) -> Self {
        Self {
            total,
            delta: 0,
            this_tick: HashMap::new(),
            cap_per_user_per_tick,
        }
    }

    /// Add a client's batch; anything over the per-user cap for this tick is ignored.
    /// Returns how many were counted.
    pub fn handle_likes(&mut self, user: &str, count: u32) -> u32 {
        let used = self.this_tick.entry(user.to_string()).or_insert(0);
        let accepted = count.min(self.cap_per_user_per_tick.saturating_sub(*used));
        *used += accepted;
        self.delta += u64::from(accepted);
        accepted
    }

    /// Likes another node already summed for its own viewers this tick (each capped there per
    /// user, as [`LikeCounter::handle_likes`] does here): counted as they are.
    pub fn handle_node_sum(&mut self, count: u32) {
        self.delta += u64::from(count);
    }

    /// End of a tick: `(total, delta)` to announce, if anything changed.
    pub fn handle_tick(&mut self) -> Option<(u64, u64)> {
        self.this_tick.clear();
        if self.delta == 0 {
            return None;
        }
        self.total += self.delta;
        let delta = std::mem::take(&mut self.delta);
        Some((self.total, delta))
    }

    pub fn total(&self) -> u64 {
        self.total + self.delta
    }
}

#[cfg(test)]
mod tests {
    use super::LikeCounter;

    #[test]
    fn sums_per_tick_with_a_per_user_cap() {
        let mut likes = LikeCounter::new(100, 20);
        assert_eq!(likes.handle_likes("ann", 5), 5);
        assert_eq!(likes.handle_likes("bob", 50), 20, "capped");
        assert_eq!(likes.handle_likes("bob", 1), 0, "cap holds within the tick");
        assert_eq!(likes.handle_tick(), Some((125, 25)));
        assert_eq!(likes.handle_tick(), None, "quiet tick announces nothing");
        assert_eq!(likes.handle_likes("bob", 3), 3, "cap resets each tick");
        assert_eq!(likes.handle_tick(), Some((128, 3)));
    }

    #[test]
    fn another_nodes_sum_is_added_to_the_tick_uncapped() {
        let mut likes = LikeCounter::new(0, 20);
        likes.handle_likes("ann", 5);
        likes.handle_node_sum(70);
        assert_eq!(likes.total(), 75);
        assert_eq!(likes.handle_tick(), Some((75, 75)));
    }
}
