//! The tenure of each room as the lease loop last learned it, for the rooms' owners to read
//! (`across_nodes::owner_relay`): the room placement writes it on every claim, renewal, loss
//! and release; an owner reads it before each buy, event and call ([`LeaseWatch::standing`])
//! and hears when the room is lost ([`LeaseWatch::lost`]).
//!
//! One `watch` channel per room: a write is a value swap, a read a borrow, and nobody waits
//! on anybody. Entries nobody watches and this node does not hold are pruned each lease round.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::watch;

use super::lease_standing::{self, LeaseStanding, Tenure};
use super::unix_millis::UnixMillis;

/// Every room's tenure on this node.
#[derive(Debug, Default)]
pub struct LeaseBook {
    rooms: Mutex<HashMap<String, watch::Sender<Tenure>>>,
}

impl LeaseBook {
    /// This node wrote (or read back) its claim on `room`, leased until `lease_until`.
    pub fn handle_renewed(&self, room: &str, lease_until: UnixMillis) {
        self.set(room, Tenure::Held { renewed_at: lease_standing::renewed_at(lease_until) });
    }

    /// Another node claims `room`: if this node held it, it gives it up.
    pub fn handle_lost(&self, room: &str) {
        if let Some(tenure) = self.rooms().get(room) {
            tenure.send_if_modified(|t| match t {
                Tenure::Held { .. } => {
                    *t = Tenure::Lost;
                    true
                }
                _ => false,
            });
        }
    }

    /// This node released its claim on `room` (no host any more): nobody claims it.
    pub fn handle_released(&self, room: &str) {
        if let Some(tenure) = self.rooms().get(room) {
            tenure.send_replace(Tenure::Unclaimed);
        }
    }

    /// Forget the rooms nobody watches that this node does not hold.
    pub fn prune(&self) {
        self.rooms().retain(|_, t| t.receiver_count() > 0 || matches!(*t.borrow(), Tenure::Held { .. }));
    }

    /// A watch on `room`'s tenure (an owner starting).
    pub fn watch(&self, room: &str) -> LeaseWatch {
        let rx = self.rooms().entry(room.to_string()).or_insert_with(|| watch::channel(Tenure::Unclaimed).0).subscribe();
        LeaseWatch { rx }
    }

    fn set(&self, room: &str, tenure: Tenure) {
        let mut rooms = self.rooms();
        match rooms.get(room) {
            Some(sender) => {
                sender.send_replace(tenure);
            }
            None => {
                rooms.insert(room.to_string(), watch::channel(tenure).0);
            }
        }
    }

    fn rooms(&self) -> std::sync::MutexGuard<'_, HashMap<String, watch::Sender<Tenure>>> {
        // Never held across an await; a panic while holding it left plain data.
        self.rooms.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// One owner's view of its room's tenure.
#[derive(Debug, Clone)]
pub struct LeaseWatch {
    rx: watch::Receiver<Tenure>,
}

impl LeaseWatch {
    /// A watch that always reads `tenure` (a room with no lease loop behind it).
    pub fn fixed(tenure: Tenure) -> Self {
        let (tx, rx) = watch::channel(tenure);
        // The last value stays readable after the sender is gone.
        drop(tx);
        Self { rx }
    }

    /// What the owner may do at `now`.
    pub fn standing(&self, now: UnixMillis) -> LeaseStanding {
        lease_standing::standing(*self.rx.borrow(), now)
    }

    /// Resolves once the room is lost to another node (never, if the book is gone first).
    pub async fn lost(&mut self) {
        let heard = self.rx.wait_for(|t| *t == Tenure::Lost).await.is_ok();
        if !heard {
            std::future::pending::<()>().await;
        }
    }

    /// Resolves at the next change of the tenure (a renewal, a loss); never if the book is gone.
    pub async fn changed(&mut self) {
        let heard = self.rx.changed().await.is_ok();
        if !heard {
            std::future::pending::<()>().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::room_claim::LEASE;
    use std::time::Duration;

    const T0: UnixMillis = UnixMillis(1_000_000);

    #[tokio::test]
    async fn an_owner_reads_its_renewals_and_hears_the_loss() {
        let book = LeaseBook::default();
        book.handle_renewed("shop", T0.plus(LEASE));
        let mut watch = book.watch("shop");
        let late = T0.plus(Duration::from_secs(10));
        assert_eq!(watch.standing(late), LeaseStanding::Fenced);
        book.handle_renewed("shop", late.plus(LEASE));
        assert_eq!(watch.standing(late), LeaseStanding::Owner);
        book.handle_lost("shop");
        assert_eq!(watch.standing(late), LeaseStanding::GaveUp);
        tokio::time::timeout(Duration::from_secs(1), watch.lost()).await.expect("the loss is heard");
    }

    #[test]
    fn a_room_never_held_is_not_lost_and_a_released_one_runs_as_before() {
        let book = LeaseBook::default();
        let watch = book.watch("shop");
        book.handle_lost("shop");
        assert_eq!(watch.standing(T0), LeaseStanding::Owner);
        book.handle_renewed("shop", T0.plus(LEASE));
        book.handle_released("shop");
        assert_eq!(watch.standing(T0.plus(Duration::from_secs(600))), LeaseStanding::Owner);
    }

    #[test]
    fn prune_keeps_held_and_watched_rooms() {
        let book = LeaseBook::default();
        book.handle_renewed("held", T0);
        let watch = book.watch("watched");
        drop(book.watch("gone"));
        book.prune();
        let names: Vec<String> = book.rooms().keys().cloned().collect();
        assert!(names.contains(&"held".to_string()) && names.contains(&"watched".to_string()) && !names.contains(&"gone".to_string()), "{names:?}");
        drop(watch);
    }
}
