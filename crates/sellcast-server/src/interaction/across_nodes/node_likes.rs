//! Likes from this node's viewers of a room owned elsewhere, summed per tick: the owner gets
//! one message per node per tick, not one per like. Each identity is held to the room's
//! per-user cap for the tick here, as the owner holds its own viewers.

use sellcast_room::{LikeCounter, ShowLimits};

#[derive(Debug)]
pub struct NodeLikes {
    counter: LikeCounter,
}

impl Default for NodeLikes {
    fn default() -> Self {
        Self::new(ShowLimits::default().likes_per_user_per_tick)
    }
}

impl NodeLikes {
    pub fn new(cap_per_user_per_tick: u32) -> Self {
        Self { counter: LikeCounter::new(0, cap_per_user_per_tick) }
    }

    /// A viewer's `like` frame.
    pub fn handle_like(&mut self, identity: &str, count: u32) {
        self.counter.handle_likes(identity, count);
    }

    /// End of a tick: the sum to send to the owner, if any like came.
    pub fn poll_tick(&mut self) -> Option<u32> {
        self.counter.handle_tick().map(|(_, delta)| u32::try_from(delta).unwrap_or(u32::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tick_sends_one_sum_for_all_its_likes() {
        let mut likes = NodeLikes::new(30);
        for viewer in ["ann", "bob", "cy"] {
            for _ in 0..4 {
                likes.handle_like(viewer, 2);
            }
        }
        assert_eq!(likes.poll_tick(), Some(24));
        assert_eq!(likes.poll_tick(), None, "a quiet tick sends nothing");
    }

    #[test]
    fn each_identity_is_capped_per_tick_before_summing() {
        let mut likes = NodeLikes::new(30);
        likes.handle_like("ann", 25);
        likes.handle_like("ann", 25);
        likes.handle_like("bob", 1);
        assert_eq!(likes.poll_tick(), Some(31));
        likes.handle_like("ann", 25);
        assert_eq!(likes.poll_tick(), Some(25), "the cap starts again each tick");
    }
}
