//! Rate limits that follow an identity (the token's subject), not a connection: every session
//! of one identity, and every HTTP call made with its token, draws from the same buckets, so
//! reconnecting or switching to the HTTP frames API never refills them.
//!
//! Memory stays bounded. An identity whose buckets have all refilled is indistinguishable from
//! one never seen (a new entry starts full), so such entries are dropped on a periodic sweep.
//! Past `max_identities`, the sweep runs at once, and if every entry is still refilling, the
//! least recently used eighth is dropped: those identities get full buckets a little early,
//! which only an attacker holding that many tokens could notice, and each of its tokens
//! already has buckets of its own.

use std::collections::HashMap;

use crate::identity::Identity;
use crate::rate_limit::TokenBucket;

/// Burst and sustained rate of one kind of bucket.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub burst: u32,
    pub per_second: f64,
}

/// The buckets every identity gets.
#[derive(Debug, Clone, PartialEq)]
pub struct IdentityRates {
    /// Frames of any kind, from any session or call.
    pub frames: Rate,
    /// Chat lines (staff get `staff_chat_factor` times this).
    pub chat: Rate,
    pub staff_chat_factor: f64,
    /// Buy attempts (retries included).
    pub buys: Rate,
    /// Snapshots served: a `hello` over HTTP, or a second `hello` on one session.
    pub snapshots: Rate,
    /// Most identities tracked at once (see the module doc).
    pub max_identities: usize,
}

impl Default for IdentityRates {
    fn default() -> Self {
        Self {
            frames: Rate { burst: 60, per_second: 30.0 },
            chat: Rate { burst: 5, per_second: 1.0 },
            staff_chat_factor: 5.0,
            buys: Rate { burst: 10, per_second: 2.0 },
            snapshots: Rate { burst: 5, per_second: 1.0 },
            max_identities: 20_000,
        }
    }
}

/// Which bucket to draw from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    Frame,
    Chat,
    Buy,
    Snapshot,
}

#[derive(Debug)]
struct Buckets {
    frames: TokenBucket,
    chat: TokenBucket,
    buys: TokenBucket,
    snapshots: TokenBucket,
    last_used_ms: i64,
}

impl Buckets {
    fn full_at(&self, now_ms: i64) -> bool {
        [&self.frames, &self.chat, &self.buys, &self.snapshots].iter().all(|b| b.is_full(now_ms))
    }
}

/// Every identity's buckets in one room (see the module doc).
#[derive(Debug)]
pub struct IdentityLimits {
    rates: IdentityRates,
    entries: HashMap<String, Buckets>,
    last_sweep_ms: i64,
}

/// How often full entries are swept out, at most.
const SWEEP_EVERY_MS: i64 = 10_000;

impl IdentityLimits {
    pub fn new(rates: IdentityRates, now_ms: i64) -> Self {
        Self { rates, entries: HashMap::new(), last_sweep_ms: now_ms }
    }

    /// Take one token of `limit` from `who`'s buckets; false when they are empty.
    pub fn try_take(&mut self, now_ms: i64, who: &Identity, limit: Limit) -> bool {
        if !self.entries.contains_key(&who.id) && self.entries.len() >= self.rates.max_identities {
            self.make_room(now_ms);
        }
        let rates = &self.rates;
        let entry = self.entries.entry(who.id.clone()).or_insert_with(|| {
            let bucket = |r: Rate| TokenBucket::new(r.burst, r.per_second, now_ms);
            let factor = if who.role.can_moderate() { rates.staff_chat_factor } else { 1.0 };
            let chat = Rate { burst: (f64::from(rates.chat.burst) * factor) as u32, per_second: rates.chat.per_second * factor };
            Buckets {
                frames: bucket(rates.frames),
                chat: bucket(chat),
                buys: bucket(rates.buys),
                snapshots: bucket(rates.snapshots),
                last_used_ms: now_ms,
            }
        });
        entry.last_used_ms = entry.last_used_ms.max(now_ms);
        let bucket = match limit {
            Limit::Frame => &mut entry.frames,
            Limit::Chat => &mut entry.chat,
            Limit::Buy => &mut entry.buys,
            Limit::Snapshot => &mut entry.snapshots,
        };
        bucket.try_take(now_ms)
    }

    /// Drop the entries that are full again, at most every [`SWEEP_EVERY_MS`] (on the tick).
    pub fn handle_tick(&mut self, now_ms: i64) {
        if now_ms - self.last_sweep_ms >= SWEEP_EVERY_MS {
            self.sweep(now_ms);
        }
    }

    /// Identities tracked now.
    pub fn tracked(&self) -> usize {
        self.entries.len()
    }

    fn sweep(&mut self, now_ms: i64) {
        self.last_sweep_ms = now_ms;
        self.entries.retain(|_, b| !b.full_at(now_ms));
    }

    /// At the cap: sweep, and if that freed too little, drop the least recently used eighth.
    fn make_room(&mut self, now_ms: i64) {
        self.sweep(now_ms);
        let cap = self.rates.max_identities;
        if self.entries.len() < cap {
            return;
        }
        let drop = (cap / 8).max(1);
        let mut ages: Vec<i64> = self.entries.values().map(|b| b.last_used_ms).collect();
        let (_, nth, _) = ages.select_nth_unstable(drop - 1);
        let threshold = *nth;
        let mut dropped = 0;
        self.entries.retain(|_, b| {
            if dropped < drop && b.last_used_ms <= threshold {
                dropped += 1;
                false
            } else {
                true
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Role;

    fn viewer(id: &str) -> Identity {
        Identity { id: id.into(), name: id.into(), role: Role::Viewer }
    }

    #[test]
    fn buckets_belong_to_the_identity_and_entries_go_once_full_again() {
        let rates = IdentityRates { snapshots: Rate { burst: 3, per_second: 0.2 }, ..IdentityRates::default() };
        let mut limits = IdentityLimits::new(rates, 0);
        let ann = viewer("ann");
        let granted = (0..20).filter(|_| limits.try_take(0, &ann, Limit::Snapshot)).count();
        assert_eq!(granted, 3, "burst of 3 snapshots");
        assert!(!limits.try_take(500, &ann, Limit::Snapshot), "still empty");
        limits.handle_tick(10_000);
        assert_eq!(limits.tracked(), 1, "kept while refilling (3 snapshots at 0.2/s take 15 s)");
        limits.handle_tick(40_000);
        assert_eq!(limits.tracked(), 0, "full again: forgotten");
    }

    #[test]
    fn the_map_never_grows_past_its_cap() {
        let rates = IdentityRates { max_identities: 64, ..IdentityRates::default() };
        let mut limits = IdentityLimits::new(rates, 0);
        for i in 0..1_000 {
            assert!(limits.try_take(i, &viewer(&format!("u{i}")), Limit::Chat));
            assert!(limits.tracked() <= 64, "{} tracked", limits.tracked());
        }
        // The most recent identity keeps its (spent) bucket.
        let last = viewer("u999");
        let more = (0..10).filter(|_| limits.try_take(999, &last, Limit::Chat)).count();
        assert_eq!(more, 4);
    }
}
