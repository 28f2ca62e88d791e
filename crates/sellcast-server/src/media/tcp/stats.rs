//! What the TCP side did, for `/api/stats/media` and `/metrics`. The listener and each
//! connection count once per connection (atomics); the per-packet counts are each driver's
//! own, copied here with its other counters every half second, so nothing per packet is
//! shared between shards.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use serde::{Deserialize, Serialize};

use crate::http::connections::{ConnectionTable, Refusal};
use crate::media::relay::ShardId;

/// Why a connection ended after it was admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closed {
    /// No binding request as the first frame within `first_stun`, or a first frame that was
    /// not one for any shard: closed before reaching a shard.
    NoStun,
    /// A frame longer than a datagram, or an empty one.
    BadFrame,
    /// Nothing received for `idle`.
    Idle,
    /// A write did not finish within `write_stall`.
    WriteStalled,
    /// The client closed it, or the socket failed.
    ClientGone,
    /// The server closed it: its peer left, no peer took its first request
    /// (`refused_not_a_peer`), or the shard stopped.
    PeerGone,
}

/// Per-packet counts of one shard's driver.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardTcpCounters {
    /// Frames handed to a peer.
    pub frames_in: u64,
    /// Datagrams queued for a connection.
    pub frames_out: u64,
    /// Datagrams dropped because their connection's queue was full (its viewer reads too
    /// slowly) or it was closing.
    pub dropped_queue_full: u64,
    /// Transmits to an address no connection holds (a closed one).
    pub dropped_no_connection: u64,
    /// Connections whose first request named this shard but that no peer took (unknown
    /// ufrag, failed integrity, or the peer's connection cap): closed by the server.
    pub refused_not_a_peer: u64,
}

/// The TCP side's counters since start.
#[derive(Debug, Default)]
pub struct TcpStats {
    /// The listener's port, once bound (0: TCP off).
    port: AtomicU64,
    accepted: AtomicU64,
    refused_total: AtomicU64,
    refused_per_ip: AtomicU64,
    /// The listener's caps: its count of held places is the number of open connections.
    table: OnceLock<Arc<ConnectionTable>>,
    closed: [AtomicU64; 6],
    shards: Mutex<Vec<ShardTcpCounters>>,
}

impl TcpStats {
    /// The listener is bound to `port` and admits under `table`.
    pub(crate) fn listening(&self, port: u16, table: Arc<ConnectionTable>) {
        self.port.store(u64::from(port), Ordering::Relaxed);
        let _ = self.table.set(table);
    }

    pub(crate) fn accepted(&self) {
        self.accepted.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn refused(&self, why: Refusal) {
        let counter = match why {
            Refusal::Total => &self.refused_total,
            Refusal::PerIp => &self.refused_per_ip,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// An admitted connection ended (each one exactly once).
    pub(crate) fn closed(&self, why: Closed) {
        self.closed[why as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn publish_shard(&self, shard: ShardId, counters: ShardTcpCounters) {
        let mut all = self.shards.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if all.len() <= shard.0 {
            all.resize(shard.0 + 1, ShardTcpCounters::default());
        }
        all[shard.0] = counters;
    }

    /// `None` while TCP is off.
    pub fn report(&self) -> Option<TcpReport> {
        let port = u16::try_from(self.port.load(Ordering::Relaxed)).ok().filter(|p| *p != 0)?;
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let sum = self
            .shards
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .fold(ShardTcpCounters::default(), |mut s, c| {
                s.frames_in += c.frames_in;
                s.frames_out += c.frames_out;
                s.dropped_queue_full += c.dropped_queue_full;
                s.dropped_no_connection += c.dropped_no_connection;
                s.refused_not_a_peer += c.refused_not_a_peer;
                s
            });
        let closed = |why: Closed| load(&self.closed[why as usize]);
        Some(TcpReport {
            port,
            open: self.table.get().map_or(0, |t| t.held() as u64),
            accepted: load(&self.accepted),
            refused_total: load(&self.refused_total),
            refused_per_ip: load(&self.refused_per_ip),
            closed_no_stun: closed(Closed::NoStun),
            closed_bad_frame: closed(Closed::BadFrame),
            closed_idle: closed(Closed::Idle),
            closed_write_stalled: closed(Closed::WriteStalled),
            closed_client_gone: closed(Closed::ClientGone),
            closed_peer_gone: closed(Closed::PeerGone),
            counters: sum,
        })
    }
}

/// `tcp` in `/api/stats/media`: connections open, refused at the door (caps) and closed by
/// reason, and the frames they carried.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TcpReport {
    pub port: u16,
    pub open: u64,
    pub accepted: u64,
    pub refused_total: u64,
    pub refused_per_ip: u64,
    pub closed_no_stun: u64,
    pub closed_bad_frame: u64,
    pub closed_idle: u64,
    pub closed_write_stalled: u64,
    pub closed_client_gone: u64,
    pub closed_peer_gone: u64,
    #[serde(flatten)]
    pub counters: ShardTcpCounters,
}
