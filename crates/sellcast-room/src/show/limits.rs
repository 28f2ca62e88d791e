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
    /// The most bytes a snapshot frame takes. It is written at once behind the welcome, into a
    /// channel buffer of 128 KiB (str0m's default, which the server keeps): a larger one is
    /// refused there and costs the viewer its connection on every join. It also stays under
    /// 64 KiB, the largest message a peer that does not advertise `a=max-message-size` takes
    /// (RFC 8841). Chat and the host's order feed get a quarter each, the products what is
    /// left (`show::snapshots`).
    pub snapshot_bytes: usize,
    pub likes_per_user_per_tick: u32,
    /// Each identity's buckets (frames, chat, buys, snapshots), shared by all its sessions
    /// and calls.
    pub identities: IdentityRates,
    pub max_pins: usize,
    /// Sales not yet over (running or scheduled) at once. Every snapshot carries them all,
    /// beside the highlighted products and the staff's blocked words: these caps keep that
    /// fixed part well inside `snapshot_bytes` (with chat and orders at a quarter each).
    pub max_open_sales: usize,
    /// The blocked-word list as JSON, in bytes (500 words of 64 emoji would be 130 KB).
    pub max_blocked_words_bytes: usize,
    /// Buy answers kept in memory; older ones are read back from the store.
    pub recent_answers: usize,
}

impl Default for ShowLimits {
    fn default() -> Self {
        Self {
            chat: ChatLimits::default(),
            replay_events: 2048,
            replay_bytes: 64 * 1024,
            snapshot_bytes: 60 * 1024,
            likes_per_user_per_tick: 30,
            identities: IdentityRates::default(),
            max_pins: 3,
            max_open_sales: 20,
            max_blocked_words_bytes: 8 * 1024,
            recent_answers: 100_000,
        }
    }
}
