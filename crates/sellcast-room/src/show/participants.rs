//! Who is in the room: sessions join and leave, banned identities are turned away, and the
//! viewer count that the counters report.

use crate::identity::{Identity, ParticipantId};
use crate::rate_limit::TokenBucket;

use super::{Output, Show};

#[derive(Debug)]
pub(super) struct Participant {
    pub(super) identity: Identity,
    pub(super) frames: TokenBucket,
    /// Error replies are rate-limited too, so a flood is not answered with a flood.
    pub(super) errors: TokenBucket,
    pub(super) muted_errors: u64,
}

impl Show {
    /// A session joined (its data channel opened, or an HTTP caller).
    pub fn handle_join(&mut self, now_ms: i64, id: ParticipantId, identity: Identity) {
        if self.is_banned(&identity.id, now_ms) {
            self.outputs.push_back(Output::Kick { participant: id });
            return;
        }
        let c = &self.config;
        self.participants.insert(
            id,
            Participant {
                identity,
                frames: TokenBucket::new(c.frame_burst, c.frames_per_second, now_ms),
                errors: TokenBucket::new(5, 1.0, now_ms),
                muted_errors: 0,
            },
        );
        self.counters_dirty = true;
    }

    pub fn handle_leave(&mut self, id: ParticipantId) {
        if let Some(p) = self.participants.remove(&id) {
            if !self.participants.values().any(|o| o.identity.id == p.identity.id) {
                self.chat.handle_leave(&p.identity.id);
            }
            self.counters_dirty = true;
        }
    }

    pub fn participant_count(&self) -> usize {
        self.participants.len()
    }

    pub fn is_banned(&self, identity: &str, now_ms: i64) -> bool {
        matches!(self.banned.get(identity), Some(None)) || matches!(self.banned.get(identity), Some(Some(until)) if *until > now_ms)
    }

    pub(super) fn viewer_count(&self) -> usize {
        self.participants.values().filter(|p| !p.identity.role.can_run_show()).count()
    }
}
