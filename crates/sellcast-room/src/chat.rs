//! Chat admission and moderation: length, mutes, blocked words, per-user and per-room rates,
//! and the recent history a joining viewer sees.

use std::collections::{HashMap, VecDeque};

use crate::identity::Identity;
use crate::protocol::{ChatLine, ErrorCode, FrameError, MAX_CHAT_CHARS};
use crate::rate_limit::TokenBucket;

/// Messages kept for snapshots.
const HISTORY: usize = 50;

#[derive(Debug, Clone)]
pub struct ChatLimits {
    pub user_burst: u32,
    pub user_per_second: f64,
    pub room_burst: u32,
    pub room_per_second: f64,
}

impl Default for ChatLimits {
    fn default() -> Self {
        Self {
            user_burst: 5,
            user_per_second: 1.0,
            room_burst: 200,
            room_per_second: 100.0,
        }
    }
}

#[derive(Debug)]
pub struct ChatDesk {
    limits: ChatLimits,
    history: VecDeque<ChatLine>,
    mutes: HashMap<String, i64>,
    blocked_words: Vec<String>,
    users: HashMap<String, TokenBucket>,
    room: TokenBucket,
}

impl ChatDesk {
    pub fn new(limits: ChatLimits, blocked_words: Vec<String>, now_ms: i64) -> Self {
        Self {
            room: TokenBucket::new(limits.room_burst, limits.room_per_second, now_ms),
            limits,
            history: VecDeque::with_capacity(HISTORY),
            mutes: HashMap::new(),
            blocked_words: normalize_words(blocked_words),
            users: HashMap::new(),
        }
    }

    /// Decide whether `text` from `from` may be broadcast; returns the text to send.
    pub fn admit(&mut self, now_ms: i64, from: &Identity, text: &str) -> Result<String, FrameError> {
        let text: String = text.trim().chars().filter(|c| !c.is_control() || *c == '\n').collect();
        if text.is_empty() {
            return Err(FrameError::new(ErrorCode::Invalid, "empty message"));
        }
        if text.chars().count() > MAX_CHAT_CHARS {
            return Err(FrameError::new(ErrorCode::Invalid, format!("messages are at most {MAX_CHAT_CHARS} characters")));
        }
        if let Some(until) = self.mutes.get(&from.id) {
            if *until > now_ms {
                return Err(FrameError::new(ErrorCode::Muted, format!("muted for {} more seconds", (until - now_ms + 999) / 1000)));
            }
        }
        let lower = text.to_lowercase();
        if self.blocked_words.iter().any(|w| lower.contains(w.as_str())) {
            return Err(FrameError::new(ErrorCode::Blocked, "message contains a blocked word"));
        }
        // Staff are rate-limited too, but more generously: they answer many questions.
        let factor = if from.role.can_moderate() { 5.0 } else { 1.0 };
        let limits = &self.limits;
        let bucket = self.users.entry(from.id.clone()).or_insert_with(|| {
            TokenBucket::new((f64::from(limits.user_burst) * factor) as u32, limits.user_per_second * factor, now_ms)
        });
        if !bucket.try_take(now_ms) {
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

    pub fn mute(&mut self, identity: &str, until_ms: i64) {
        self.mutes.insert(identity.to_string(), until_ms);
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

    /// Forget the rate state of a user who left (keeps memory bounded by who is present).
    pub fn handle_leave(&mut self, identity: &str) {
        self.users.remove(identity);
    }
}

fn normalize_words(words: Vec<String>) -> Vec<String> {
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
    use crate::identity::Role;

    fn viewer(id: &str) -> Identity {
        Identity { id: id.into(), name: id.into(), role: Role::Viewer }
    }

    #[test]
    fn length_mute_and_blocked_words() {
        let mut chat = ChatDesk::new(ChatLimits::default(), vec!["Scam".into()], 0);
        let ann = viewer("ann");
        assert_eq!(chat.admit(0, &ann, "  hello  "), Ok("hello".into()));
        assert_eq!(chat.admit(0, &ann, "   ").map_err(|e| e.code), Err(ErrorCode::Invalid));
        let long: String = "é".repeat(MAX_CHAT_CHARS + 1);
        assert_eq!(chat.admit(0, &ann, &long).map_err(|e| e.code), Err(ErrorCode::Invalid));
        assert!(chat.admit(0, &ann, &"é".repeat(MAX_CHAT_CHARS)).is_ok(), "500 code points is fine");
        assert_eq!(chat.admit(0, &ann, "total SCAM").map_err(|e| e.code), Err(ErrorCode::Blocked));
        chat.mute("ann", 10_000);
        assert_eq!(chat.admit(5_000, &ann, "hi").map_err(|e| e.code), Err(ErrorCode::Muted));
        assert!(chat.admit(10_000, &ann, "back").is_ok());
    }

    #[test]
    fn one_flooder_does_not_starve_the_room() {
        let mut chat = ChatDesk::new(ChatLimits::default(), vec![], 0);
        let flooder = viewer("flood");
        let accepted = (0..10_000).filter(|i| chat.admit(i / 10, &flooder, "spam").is_ok()).count();
        assert!(accepted <= 6, "one user gets its burst and rate only: {accepted}");
        let others = (0..50).filter(|i| chat.admit(1_000, &viewer(&format!("u{i}")), "hi").is_ok()).count();
        assert_eq!(others, 50, "everyone else still chats");
    }
}
