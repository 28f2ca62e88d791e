//! A show that continues another show's event stream (cluster mode: the room's new owner
//! after its old one died; see [`Show::continuing`]) takes over the old show's last events as
//! the stream holds them: a resume from among them is replayed instead of answered with a
//! snapshot, and their chat lines are the history a snapshot shows.

use std::sync::Arc;

use serde::Deserialize;

use crate::identity::Identity;
use crate::protocol::ChatLine;

use super::Show;

/// What a takeover reads of an adopted event: chat lines and their deletions.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Adopted {
    Chat { from: Identity, text: String, at_ms: i64 },
    ChatDeleted { target_seq: u64 },
    #[serde(other)]
    Other,
}

impl Show {
    /// Adopt `tail`: the events up to this show's start, `(seq, frame)` as the old show
    /// published them, oldest first and contiguous. Before this show's first event only; a
    /// tail with a gap, or not ending at the start, is ignored (resumes from before the start
    /// then take a snapshot, as they would without it). True if adopted.
    pub fn adopt_events(&mut self, tail: &[(u64, Arc<str>)]) -> bool {
        if !self.log.adopt(tail) {
            return false;
        }
        for (seq, frame) in tail {
            match serde_json::from_str::<Adopted>(frame) {
                Ok(Adopted::Chat { from, text, at_ms }) => self.chat.record(ChatLine { seq: *seq, from, text, at_ms }),
                Ok(Adopted::ChatDeleted { target_seq }) => {
                    self.chat.delete(target_seq);
                }
                Ok(Adopted::Other) | Err(_) => {}
            }
        }
        true
    }
}
