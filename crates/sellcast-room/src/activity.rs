//! "Ana and 12 others joined", "Bo just bought Glow serum": who arrived and who bought,
//! coalesced into at most one frame per [`ACTIVITY_INTERVAL_MS`] for the whole room.
//!
//! Coalesced here, on the server, and not on the pages: a frame per join sent to every viewer
//! costs n frames per join, n^2 for a room of n that fills up (500 viewers joining in a burst
//! would be 250,000 frames). One frame per interval costs n per interval whatever the rate of
//! joins and orders, and every viewer sees the same count.

use std::collections::HashSet;

use serde::Serialize;

use crate::identity::Identity;

/// At most one activity frame per this many milliseconds.
pub const ACTIVITY_INTERVAL_MS: i64 = 3000;
/// Identities remembered as already announced in this show. Past it the memory starts over
/// (someone may then be announced twice); it bounds the room's memory in a long show.
const SEEN_CAP: usize = 50_000;

/// One participant as an activity line names them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Someone {
    pub id: String,
    pub name: String,
}

impl From<&Identity> for Someone {
    fn from(who: &Identity) -> Self {
        Someone { id: who.id.clone(), name: who.name.clone() }
    }
}

/// The first to join since the last frame, and how many joined after them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Joined {
    pub first: Someone,
    pub others: u32,
}

/// The first order since the last frame (its buyer and product), and how many came after it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Bought {
    pub first: Someone,
    pub product_id: i64,
    pub title: String,
    pub others: u32,
}

/// Joins and orders waiting for the next activity frame.
#[derive(Debug, Default)]
pub struct Activity {
    joined: Option<Joined>,
    bought: Option<Bought>,
    last_sent_ms: Option<i64>,
    seen: HashSet<String>,
}

impl Activity {
    /// A viewer's first session in this show (a reconnect of someone already announced is not
    /// news).
    pub fn handle_join(&mut self, who: &Identity) {
        if self.seen.len() >= SEEN_CAP {
            self.seen.clear();
        }
        if !self.seen.insert(who.id.clone()) {
            return;
        }
        match &mut self.joined {
            Some(j) => j.others = j.others.saturating_add(1),
            None => self.joined = Some(Joined { first: who.into(), others: 0 }),
        }
    }

    /// A committed order.
    pub fn handle_order(&mut self, buyer: &Identity, product_id: i64, title: &str) {
        match &mut self.bought {
            Some(b) => b.others = b.others.saturating_add(1),
            None => {
                self.bought = Some(Bought { first: buyer.into(), product_id, title: title.to_string(), others: 0 })
            }
        }
    }

    /// What to announce now, if anything is waiting and the last frame is an interval old.
    pub fn poll_announcement(&mut self, now_ms: i64) -> Option<(Option<Joined>, Option<Bought>)> {
        if self.joined.is_none() && self.bought.is_none() {
            return None;
        }
        if self.last_sent_ms.is_some_and(|at| now_ms - at < ACTIVITY_INTERVAL_MS) {
            return None;
        }
        self.last_sent_ms = Some(now_ms);
        Some((self.joined.take(), self.bought.take()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Role;

    fn viewer(i: usize) -> Identity {
        Identity { id: format!("v{i}"), name: format!("Viewer {i}"), role: Role::Viewer }
    }

    #[test]
    fn a_burst_of_500_joins_is_one_frame_naming_the_first_and_counting_the_rest() {
        let mut a = Activity::default();
        for i in 0..500 {
            a.handle_join(&viewer(i));
        }
        let (joined, bought) = a.poll_announcement(0).expect("one announcement");
        assert_eq!(joined, Some(Joined { first: Someone { id: "v0".into(), name: "Viewer 0".into() }, others: 499 }));
        assert_eq!(bought, None);
        assert_eq!(a.poll_announcement(1), None, "nothing new");
    }

    #[test]
    fn frames_are_at_least_an_interval_apart_and_nothing_is_lost_meanwhile() {
        let mut a = Activity::default();
        a.handle_join(&viewer(1));
        assert!(a.poll_announcement(1000).is_some());
        a.handle_join(&viewer(2));
        a.handle_order(&viewer(3), 7, "Mug");
        a.handle_order(&viewer(4), 8, "Cup");
        assert_eq!(a.poll_announcement(1000 + ACTIVITY_INTERVAL_MS - 1), None, "too soon");
        let (joined, bought) = a.poll_announcement(1000 + ACTIVITY_INTERVAL_MS).expect("due");
        assert_eq!(joined.map(|j| (j.first.id, j.others)), Some(("v2".into(), 0)));
        assert_eq!(bought.map(|b| (b.first.id, b.product_id, b.others)), Some(("v3".into(), 7, 1)));
    }

    #[test]
    fn a_reconnect_of_someone_already_announced_is_not_announced_again() {
        let mut a = Activity::default();
        a.handle_join(&viewer(1));
        assert!(a.poll_announcement(0).is_some());
        a.handle_join(&viewer(1));
        assert_eq!(a.poll_announcement(ACTIVITY_INTERVAL_MS * 2), None);
    }
}
