//! Test-only hooks that make each supervised part panic, compiled only with the `test-hooks`
//! feature (turned on by the test crates' dev-dependencies, never by a release build).
//!
//! Each hook can hold the restart: the part stays down until the returned [`Release`] is
//! dropped, so a test can see `/healthz` report it and what callers get meanwhile.

use std::sync::Arc;

use sellcast_store::PanicPoint;

use crate::interaction::messages::ShowMsg;
use crate::interaction::registry::ShowRegistry;
use crate::media::command::Command;
use crate::media::router::MediaRouter;
use crate::supervision::{Release, RestartHold};

/// Where a store writer panic strikes; see `sellcast_store::PanicPoint`.
pub use sellcast_store::PanicPoint as StorePanic;

pub struct TestHooks {
    store: sellcast_store::Store,
    media: MediaRouter,
    shows: Arc<ShowRegistry>,
}

impl std::fmt::Debug for TestHooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestHooks").finish_non_exhaustive()
    }
}

/// A hold when asked for, and the release that lets it go.
fn hold(held: bool) -> (Option<RestartHold>, Option<Release>) {
    if !held {
        return (None, None);
    }
    let (hold, release) = RestartHold::new();
    (Some(hold), Some(release))
}

impl TestHooks {
    pub(crate) fn new(store: sellcast_store::Store, media: MediaRouter, shows: Arc<ShowRegistry>) -> Self {
        Self { store, media, shows }
    }

    /// The room's show task panics on its next message after those already queued.
    pub async fn panic_room(&self, room: &str, held: bool) -> Option<Release> {
        let (hold, release) = hold(held);
        let _ = self.shows.get(room).tx.send(ShowMsg::InjectPanic { hold }).await;
        release
    }

    /// Shard `shard`'s driver panics on its next command.
    pub async fn panic_shard(&self, shard: usize, held: bool) -> Option<Release> {
        let (hold, release) = hold(held);
        let _ = self.media.send(Command::InjectPanic { shard, hold }).await;
        release
    }

    /// The store writer panics at `at`.
    pub fn panic_store(&self, at: PanicPoint, held: bool) -> Option<Release> {
        let (hold, release) = if held {
            let (tx, rx) = std::sync::mpsc::channel();
            (Some(sellcast_store::RestartHold(rx)), Some(Release::from_sender(tx)))
        } else {
            (None, None)
        };
        self.store.inject_panic(at, hold);
        release
    }
}
