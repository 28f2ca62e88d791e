//! One media shard's thread and its supervisor.
//!
//! The thread owns the shard's UDP socket, command queue, relay inbox and stop signal for the
//! life of the process, and lends them to a [`Driver`]. If the driver panics, the supervisor:
//! 1. closes every peer of the dead driver as a shutdown would: a DTLS close goes to each, so
//!    the pages see their connection end and reconnect at once (`web/session.js` retries on a
//!    closed or failed connection; a client that misses the close notices the silence through
//!    its ICE checks); each open data channel leaves its show; a host's end goes to the other
//!    shards; the shard's part of each room leaves the status board. If that too panics, a bare
//!    version that does not touch str0m does the room and directory part;
//! 2. starts a new driver on the same socket, queues and links, with no peers. Peer ids go on
//!    from where the dead driver stopped, so a room frame addressed to a dead peer can never
//!    reach a new one. The dead peers' sessions are gone (`DELETE` answers 404); offers queued
//!    meanwhile are served by the new driver, and a reconnecting page lands on whichever shard
//!    the router deals it (a host on its room's home shard, which runs again);
//! 3. asks the other shards to announce their live hosts again, so the new driver mirrors
//!    their rooms for viewers that land here.
//!
//! Restarting in place, rather than retiring the shard, keeps every room's home shard alive:
//! a host always publishes on the shard its room name hashes to.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use tracing::{error, info};

use super::command::Command;
use super::status_board::StatusBoard;
use super::driver::Driver;
use super::peer::PeerFactory;
use super::relay::{RelayInbox, ShardLinks};
use super::tcp::ShardTcp;
use crate::interaction::registry::ShowRegistry;
use crate::supervision::{hold_if_injected, panic_message, Supervision};

/// What one shard thread is given at start.
pub(crate) struct ShardParts {
    pub udp: std::net::UdpSocket,
    pub factory: PeerFactory,
    pub status_board: Arc<StatusBoard>,
    pub shows: Arc<ShowRegistry>,
    pub links: ShardLinks,
    pub commands: mpsc::Receiver<Command>,
    pub relays: RelayInbox,
    pub stop: oneshot::Receiver<()>,
    pub supervision: Arc<Supervision>,
    /// This shard's end of ICE over TCP, when `--tcp-port` is set.
    pub tcp: Option<ShardTcp>,
}

/// The shard thread's body: run a driver until stopped, restarting it after a panic.
pub(crate) fn run(parts: ShardParts) {
    let ShardParts { udp, factory, status_board, shows, links, mut commands, mut relays, mut stop, supervision, tcp } = parts;
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            error!(error = %e, "media runtime failed to start");
            return;
        }
    };
    let driver = runtime.block_on(async move {
        let socket = tokio::net::UdpSocket::from_std(udp)?;
        let driver = Driver::new(socket, factory, status_board, shows, links)?;
        std::io::Result::Ok(match tcp {
            Some(tcp) => driver.with_tcp(tcp),
            None => driver,
        })
    });
    let mut driver = match driver {
        Ok(d) => d,
        Err(e) => {
            error!(error = %e, "media driver failed to start");
            return;
        }
    };
    loop {
        let outcome = catch_unwind(AssertUnwindSafe(|| runtime.block_on(driver.run(&mut commands, &mut relays, &mut stop))));
        let mut payload = match outcome {
            Ok(()) => return,
            Err(payload) => payload,
        };
        supervision.media_shards.went_down();
        let shard = driver.shard();
        error!(shard = shard.0, panic = %panic_message(payload.as_ref()), "media shard panicked; closing its peers and restarting it");
        let closed = catch_unwind(AssertUnwindSafe(|| runtime.block_on(async { driver.close_after_panic() })));
        if closed.is_err() {
            error!(shard = shard.0, "closing the dead shard's peers panicked too; forgetting them without a DTLS close");
            driver.forget_after_panic();
        }
        if let Some(hold) = hold_if_injected(&mut payload) {
            hold.wait();
        }
        driver = runtime.block_on(async move { driver.restarted() });
        supervision.media_shards.came_back();
        info!(shard = shard.0, "media shard restarted");
    }
}
