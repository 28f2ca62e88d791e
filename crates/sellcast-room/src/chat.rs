//! Chat admission and moderation: length, mutes, blocked words, per-user and per-room rates,
//! and the recent history a joining viewer sees.

use std::collections::{HashMap, VecDeque};

use crate::identity::{Identity, Role};
use crate::identity_limits::{IdentityLimits, Limit};
use crate::protocol::{ChatLine, ErrorCode, FrameError, MAX_CHAT_CHARS};
use crate::rate_limit::TokenBucket;

/// Messages kept for snapshots.
const HISTORY: usize = 50;

/// The room-wide chat rate (each identity's own rate is in [`crate::IdentityRates`]).
#[derive(Debug, Clone)]
pub struct ChatLimits {
    pub room_burst: u32,
    pub room_per_second: f64,
}

impl Default for ChatLimits {
    fn default() -> Self {
        Self {
            room_burst: 200,
            room_per_second: 100.0,
        }
    }
}

/// A mute: until when, and the role of who placed it (it binds only roles below that).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mute {
    pub until_ms: i64,
    pub by: Role,
}

#[derive(Debug)]
pub struct ChatDesk {
    history: VecDeque<ChatLine>,
    mutes: HashMap<String, Mute>,
    blocked_words: Vec<String>,
    room: TokenBucket,
}

impl ChatDesk {
    pub fn new(limits: ChatLimits, blocked_words: Vec<String>, now_ms: i64) -> Self {
        Self {
            room: TokenBucket::new(limits.room_burst, limits.room_per_second, now_ms),
            history: VecDeque::with_capacity(HISTORY),
            mutes: HashMap::new(),
            blocked_words: normalize_words(blocked_words),
        }
    }

    /// Decide whether `text` from `from` may be broadcast; returns the text to send. The
    /// sender's own chat rate is drawn from its identity's bucket in `limits`.
    pub fn admit(&mut self, now_ms: i64, from: &Identity, text: &str, limits: &mut IdentityLimits) -> Result<String, FrameError> {
        let text: String = text.trim().chars().filter(|c| !c.is_control() || *c == '\n').collect();
        if text.is_empty() {
            return Err(FrameError::new(ErrorCode::Invalid, "empty message"));
        }
        if text.chars().count() > MAX_CHAT_CHARS {
            return Err(FrameError::new(ErrorCode::Invalid, format!("messages are at most {MAX_CHAT_CHARS} characters")));
        }
        if let Some(mute) = self.mutes.get(&from.id) {
            if mute.until_ms > now_ms && from.role < mute.by {
                let left = (mute.until_ms - now_ms + 999) / 1000;
                return Err(FrameError::new(ErrorCode::Muted, format!("muted for {left} more seconds")));
            }
        }
        let lower = text.to_lowercase();
        if self.blocked_words.iter().any(|w| lower.contains(w.as_str())) {
            return Err(FrameError::new(ErrorCode::Blocked, "message contains a blocked word"));
        }
        // Staff are rate-limited too, but more generously (their identity's bucket is larger).
        if !limits.try_take(now_ms, from, Limit::Chat) {
            return Err(FrameError::new(ErrorCode::RateLimited, "slow down: too many messages"));
        }
        if !self.room.try_take(now_ms) {
            return Err(FrameError::new(ErrorCode::RateLimited, "the room chat is busy, try again"));
        }
        Ok(text)
    }

    pub fn record(&mut self, line: ChatLine) {
        if self.history.len() == HISTORY {
            self.history.pop_front();
        }
        self.history.push_back(line);
    }

    /// Remove a message from history; true if it was there.
    pub fn delete(&mut self, seq: u64) -> bool {
        let before = self.history.len();
        self.history.retain(|l| l.seq != seq);
        before != self.history.len()
    }

    /// Mute `identity` until `until_ms` (expired mutes are forgotten here, so the map holds
    /// only running ones).
    pub fn mute(&mut self, now_ms: i64, identity: &str, until_ms: i64, by: Role) {
        self.mutes.retain(|_, m| m.until_ms > now_ms);
        self.mutes.insert(identity.to_string(), Mute { until_ms, by });
    }

    /// The mute on `identity` still running at `now_ms`.
    pub fn mute_of(&self, identity: &str, now_ms: i64) -> Option<Mute> {
        self.mutes.get(identity).copied().filter(|m| m.until_ms > now_ms)
    }

    /// Lift a mute; true if there was one.
    pub fn unmute(&mut self, identity: &str) -> bool {
        self.mutes.remove(identity).is_some()
    }

    /// The message `seq` in recent history, if it is there.
    pub fn line(&self, seq: u64) -> Option<&ChatLine> {
        self.history.iter().find(|l| l.seq == seq)
    }

    pub fn set_blocked_words(&mut self, words: Vec<String>) {
        self.blocked_words = normalize_words(words);
    }

    pub fn blocked_words(&self) -> Vec<String> {
        self.blocked_words.clone()
    }

    pub fn history(&self) -> Vec<ChatLine> {
        self.history.iter().cloned().collect()
    }
}

/// The list as it is matched and shown: trimmed, lowercased, sorted, without empties or repeats.
pub(crate) fn normalize_words(words: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = words
        .into_iter()
        .map(|w| w.trim().to_lowercase())
        .filter(|w| !w.is_empty())
        .collect();
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity_limits::IdentityRates;

    fn viewer(id: &str) -> Identity {
        Identity { id: id.into(), name: id.into(), role: Role::Viewer }
    }

    #[test]
    fn length_mute_and_blocked_words() {
        let mut chat = ChatDesk::new(ChatLimits::default(), vec!["Scam".into()], 0);
        let mut limits = IdentityLimits::new(IdentityRates::default(), 0);
        let ann = viewer("ann");
        assert_eq!(chat.admit(0, &ann, "  hello  ", &mut limits), Ok("hello".into()));
        assert_eq!(chat.admit(0, &ann, "   ", &mut limits).map_err(|e| e.code), Err(ErrorCode::Invalid));
        let long: String = "é".repeat(MAX_CHAT_CHARS + 1);
        assert_eq!(chat.admit(0, &ann, &long, &mut limits).map_err(|e| e.code), Err(ErrorCode::Invalid));
        assert!(chat.admit(0, &ann, &"é".repeat(MAX_CHAT_CHARS), &mut limits).is_ok(), "500 code points is fine");
        assert_eq!(chat.admit(0, &ann, "total SCAM", &mut limits).map_err(|e| e.code), Err(ErrorCode::Blocked));
        chat.mute(0, "ann", 10_000, Role::Moderator);
        assert_eq!(chat.admit(5_000, &ann, "hi", &mut limits).map_err(|e| e.code), Err(ErrorCode::Muted));
        assert!(chat.admit(10_000, &ann, "back", &mut limits).is_ok());
    }

    #[test]
    fn one_flooder_does_not_starve_the_room() {
        let mut chat = ChatDesk::new(ChatLimits::default(), vec![], 0);
        let mut limits = IdentityLimits::new(IdentityRates::default(), 0);
        let flooder = viewer("flood");
        let accepted = (0..10_000).filter(|i| chat.admit(i / 10, &flooder, "spam", &mut limits).is_ok()).count();
        assert!(accepted <= 6, "one user gets its burst and rate only: {accepted}");
        let others = (0..50).filter(|i| chat.admit(1_000, &viewer(&format!("u{i}")), "hi", &mut limits).is_ok()).count();
        assert_eq!(others, 50, "everyone else still chats");
    }
}
