//! Opening a caller's stream: the welcome, then the missed events (a resume within the replay
//! budget) or a full snapshot, then the latest likes and counters.

use crate::answer::{Answer, Caller};
use crate::identity::Identity;
use crate::protocol::{encode, DirectFrame, Position, Snapshot};

use super::{Class, Output, Show};

impl Show {
    /// A session gets its stream opened (welcome, then the missed events or a snapshot, then
    /// the latest counters); a call gets the same frames as its answer.
    pub(super) fn hello(&mut self, now_ms: i64, from: Caller, who: &Identity, resume: Option<Position>) {
        let position = self.log.position();
        let budget = self.config.replay_bytes;
        let missed = resume
            .and_then(|r| self.log.replay_after(r))
            .filter(|frames| frames.iter().map(|f| f.len()).sum::<usize>() <= budget);
        let participant = match from {
            Caller::Session(id) => Some(id),
            Caller::Call(_) => None,
        };
        let welcome = DirectFrame::Welcome {
            you: who.clone(),
            participant,
            epoch: position.epoch,
            seq: position.seq,
            server_now_ms: now_ms,
            resumed: missed.is_some(),
        };
        let mut frames = vec![(encode(&welcome), Class::Control)];
        match missed {
            Some(replayed) => frames.extend(replayed.into_iter().map(|f| (f, Class::Control))),
            None => {
                let snapshot = self.snapshot(now_ms, who.role.can_moderate());
                frames.push((encode(&DirectFrame::Snapshot(snapshot)), Class::Control));
            }
        }
        // Latest state follows the stream position, so counters are never stale on join.
        let likes = DirectFrame::Likes { total: self.likes.total(), delta: 0 };
        frames.push((encode(&likes), Class::Latest));
        frames.push((encode(&self.counters()), Class::Latest));
        if let Some(reconnect_after_ms) = self.draining {
            frames.push((encode(&DirectFrame::Draining { reconnect_after_ms }), Class::Control));
        }
        match participant {
            Some(to) => {
                for (frame, class) in frames {
                    self.outputs.push_back(Output::Send { to, frame, class });
                }
            }
            None => self.answer(from, Answer::Welcome(frames.into_iter().map(|(f, _)| f).collect())),
        }
    }

    pub(super) fn snapshot(&self, now_ms: i64, staff: bool) -> Snapshot {
        let position = self.log.position();
        Snapshot {
            epoch: position.epoch,
            seq: position.seq,
            server_now_ms: now_ms,
            products: self.products.clone(),
            pinned: self.pinned.clone(),
            sales: self.sales.iter().filter(|s| !s.is_over(now_ms)).cloned().collect(),
            chat: self.chat.history(),
            likes_total: self.likes.total(),
            viewers: self.viewer_count(),
            orders: staff.then(|| self.orders.iter().cloned().collect()),
            blocked_words: staff.then(|| self.chat.blocked_words()),
        }
    }
}
