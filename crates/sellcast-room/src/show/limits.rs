//! The limits a show enforces.

use crate::chat::ChatLimits;
use crate::identity_limits::IdentityRates;

/// The limits a show enforces: frame rates, chat, likes, replay size, pins.
#[derive(Debug, Clone)]
pub struct ShowLimits {
    pub chat: ChatLimits,
    pub replay_events: usize,
    /// The most bytes of missed events a resume replays; past it the client gets a snapshot.
    /// A transport buffers about this much for a viewer (the server's data channels take
    /// 128 KiB), and a replay it cannot take would cost the viewer its connection again.
    pub replay_bytes: usize,
    pub likes_per_user_per_tick: u32,
    /// Each identity's buckets (frames, chat, buys, snapshots), shared by all its sessions
    /// and calls.
    pub identities: IdentityRates,
    pub max_pins: usize,
    /// Buy answers kept in memory; older ones are read back from the store.
    pub recent_answers: usize,
}

impl Default for ShowLimits {
    fn default() -> Self {
        Self {
            chat: ChatLimits::default(),
            replay_events: 2048,
            replay_bytes: 64 * 1024,
            likes_per_user_per_tick: 30,
            identities: IdentityRates::default(),
            max_pins: 3,
            recent_answers: 100_000,
        }
    }
}
