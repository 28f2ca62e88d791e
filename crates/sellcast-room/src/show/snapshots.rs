//! Opening a caller's stream: the welcome, then the missed events (a resume within the replay
//! budget) or a full snapshot, then the latest likes and counters.
//!
//! A snapshot is sized to `ShowLimits::snapshot_bytes`: the newest chat lines within a quarter
//! of it, the host's newest orders within another quarter, the highlighted products always,
//! and then the catalog in id order until the budget is spent (`more_products` says the HTTP
//! list has the rest). Sizes are measured as JSON without building the frame.

use serde::Serialize;

use crate::answer::{Answer, Caller};
use crate::identity::Identity;
use crate::protocol::{encode, DirectFrame, Position, Snapshot};

use super::{Class, Output, Show};

/// What `{"type":"snapshot",` adds to the snapshot's own JSON.
const SNAPSHOT_TAG_BYTES: usize = 20;

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
        let limit = self.config.snapshot_bytes;
        let (mut chat, _) = fit(self.chat.history().into_iter().rev(), limit / 4);
        chat.reverse();
        let orders = staff.then(|| {
            let (mut orders, _) = fit(self.orders.iter().rev().cloned(), limit / 4);
            orders.reverse();
            orders
        });
        let mut snapshot = Snapshot {
            epoch: position.epoch,
            seq: position.seq,
            server_now_ms: now_ms,
            products: self.products.iter().filter(|p| self.pinned.contains(&p.id)).cloned().collect(),
            more_products: false,
            pinned: self.pinned.clone(),
            sales: self.sales.iter().filter(|s| !s.is_over(now_ms)).cloned().collect(),
            chat,
            likes_total: self.likes.total(),
            viewers: self.viewer_count(),
            show: self.info.clone(),
            orders,
            blocked_words: staff.then(|| self.chat.blocked_words()),
            totals: staff.then(|| self.totals.totals.clone()),
        };
        let used = encoded_len(&snapshot) + SNAPSHOT_TAG_BYTES;
        let rest = self.products.iter().filter(|p| !self.pinned.contains(&p.id)).cloned();
        let (more, cut) = fit(rest, limit.saturating_sub(used));
        snapshot.products.extend(more);
        snapshot.products.sort_by_key(|p| p.id);
        snapshot.more_products = cut;
        snapshot
    }
}

/// The leading `items` whose JSON, comma-separated, fits in `budget` bytes; and whether any
/// item was left out. Stops at the first that does not fit, so what is kept is a prefix.
pub(crate) fn fit<T: Serialize>(items: impl IntoIterator<Item = T>, budget: usize) -> (Vec<T>, bool) {
    let mut kept = Vec::new();
    let mut used = 0;
    for item in items {
        let size = encoded_len(&item) + 1;
        if used + size > budget {
            return (kept, true);
        }
        used += size;
        kept.push(item);
    }
    (kept, false)
}

/// Bytes of `value` as JSON, counted without keeping them.
pub(crate) fn encoded_len<T: Serialize + ?Sized>(value: &T) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    // Plain data with string keys: serialization cannot fail (and a failure would only
    // undercount a size already bounded by the store's field limits).
    let _ = serde_json::to_writer(&mut count, value);
    count.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fit_keeps_the_prefix_whose_json_fits_and_says_when_it_cut() {
        let words = ["aaaa", "bbbb", "cccc"]; // 6 bytes of JSON each, plus a comma
        assert_eq!(fit(words, 21), (words.to_vec(), false));
        assert_eq!(fit(words, 20), (words[..2].to_vec(), true));
        assert_eq!(fit(words, 6), (Vec::<&str>::new(), true));
        assert_eq!(fit(Vec::<&str>::new(), 0), (Vec::new(), false));
    }

    #[test]
    fn a_later_small_item_is_not_taken_past_one_that_did_not_fit() {
        let long = "b".repeat(100);
        let items = ["a", long.as_str(), "c"];
        assert_eq!(fit(items, 50), (vec!["a"], true));
    }

    #[test]
    fn encoded_len_counts_json_bytes_with_escapes_and_multibyte_text() {
        assert_eq!(encoded_len("😀"), 6);
        assert_eq!(encoded_len("a\"b"), 6);
        assert_eq!(encoded_len(&vec![1, 22]), 6);
    }
}
