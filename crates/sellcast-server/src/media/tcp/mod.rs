//! ICE over TCP (RFC 6544): viewers whose network drops UDP still play.
//!
//! Every answer then carries a passive TCP host candidate besides the UDP one; a browser that
//! gets no answer over UDP connects to it and sends the same STUN, DTLS and SRTP, each behind a
//! two-byte length (RFC 4571, `framing`). str0m handles `Protocol::Tcp` like UDP once the
//! datagrams are cut out of the stream, so the TCP side is only IO:
//!
//! - `listener` (on the HTTP runtime): one port for the whole server. A connection is admitted
//!   under a total and a per-address cap, must send a STUN binding request as its first frame
//!   within `first_stun`, and is handed to the shard its ufrag names (our ufrags start with
//!   the shard, `ufrag_for`), as a datagram from a new address is routed by ufrag on UDP.
//! - `connection` (on the shard's runtime): reads frames into the shard's TCP inbox and writes
//!   what the driver queued for it. Each connection has its own bounded queue: a viewer that
//!   does not read loses its own packets, and the driver never waits for a socket.
//! - `links` (in the driver): which connection carries which peer, and the counters.
//!
//! A connection closes when its peer leaves, when it sends a frame that is not RFC 4571 or
//! longer than a datagram, when it is silent for `idle`, or when a write stalls.

mod budget;
pub(crate) mod connection;
pub mod framing;
pub(crate) mod links;
pub(crate) mod listener;
pub mod stats;

use std::net::SocketAddr;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::http::connections::ConnectionSlot;
use crate::media::relay::ShardId;
use crate::media::router::MAX_SHARDS;
use framing::FrameDecoder;

/// `--tcp-port` and its limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpMediaConfig {
    /// Port of the listener, on the UDP bind IP; 0 lets the OS pick (tests).
    pub port: u16,
    pub limits: TcpLimits,
}

/// Bounds on what TCP clients may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpLimits {
    /// Connections the server holds at once.
    pub total: usize,
    /// Connections one client address may hold. Generous: the networks that block UDP are
    /// offices and venues, which put many viewers behind one address.
    pub per_ip: usize,
    /// Connections one peer may hold (a browser opens one per local interface it tries).
    pub per_peer: usize,
    /// Time for a new connection's first frame, which must be a binding request for a peer.
    pub first_stun: Duration,
    /// A connection that sends nothing this long is closed. Browsers send a consent check
    /// every few seconds and a viewer's RTCP every second.
    pub idle: Duration,
    /// A write that does not finish in this long closes the connection: the client stopped
    /// reading for good.
    pub write_stall: Duration,
    /// Datagrams queued per connection before its own newest packets are dropped: about half
    /// a second of a 2.5 Mbit/s stream, on top of the kernel's send buffer. A viewer whose TCP
    /// path is slower than that cannot catch up by queueing, and each queued datagram is
    /// memory held for it.
    pub queue: usize,
    /// Frames one connection may hand its shard per second (a fifth of it at once); over it,
    /// its reads wait. A host publishing three layers sends a few hundred.
    pub frames_per_second: u32,
}

impl Default for TcpLimits {
    fn default() -> Self {
        Self {
            total: 4096,
            per_ip: 256,
            per_peer: 4,
            first_stun: Duration::from_secs(5),
            idle: Duration::from_secs(30),
            write_stall: Duration::from_secs(10),
            queue: 128,
            frames_per_second: 2000,
        }
    }
}

/// Server-wide key of one TCP connection (its shard's counter; never reused in a process).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnId(pub u64);

/// A connection the listener admitted, on its way to the shard its first request named.
#[derive(Debug)]
pub(crate) struct Handoff {
    pub stream: std::net::TcpStream,
    pub remote: SocketAddr,
    /// Holds whatever the client sent after its first frame.
    pub decoder: FrameDecoder,
    /// The binding request that named the shard.
    pub first: Vec<u8>,
    /// The connection's place under the caps, freed when the connection ends.
    pub slot: ConnectionSlot,
}

/// What reaches a shard's driver from the TCP side.
#[derive(Debug)]
pub(crate) enum TcpInput {
    Opened(Box<Handoff>),
    Frame { conn: ConnId, data: Vec<u8> },
    Closed { conn: ConnId },
}

/// Messages waiting per shard; a connection's reader waits when it is full (TCP pushes back).
pub(crate) const INBOX: usize = 1024;

/// One shard's end of the TCP side: the inbox its connections feed, and a sender to clone.
#[derive(Debug)]
pub(crate) struct ShardTcp {
    pub inbox: mpsc::Receiver<TcpInput>,
    pub sender: mpsc::Sender<TcpInput>,
    /// Our passive candidate as announced (str0m matches a request's destination to it).
    pub candidate: SocketAddr,
    pub limits: TcpLimits,
    pub stats: std::sync::Arc<stats::TcpStats>,
}

/// A fresh ICE ufrag for a peer on `shard`: two hex digits naming the shard, then 16 random
/// characters (str0m's own, at least the 24 bits RFC 8445 asks for).
pub fn ufrag_for(shard: ShardId) -> String {
    format!("{:02x}{}", shard.0 % MAX_SHARDS, str0m::IceCreds::new().ufrag)
}

/// The shard a ufrag made by [`ufrag_for`] names; `None` for anything else.
pub fn ufrag_shard(ufrag: &[u8]) -> Option<ShardId> {
    let digits = std::str::from_utf8(ufrag.get(..2)?).ok()?;
    let shard = usize::from_str_radix(digits, 16).ok()?;
    (shard < MAX_SHARDS).then_some(ShardId(shard))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ufrag_names_its_shard_and_stays_a_valid_ice_ufrag() {
        for shard in [0, 1, 9, 10, 63] {
            let ufrag = ufrag_for(ShardId(shard));
            assert_eq!(ufrag_shard(ufrag.as_bytes()), Some(ShardId(shard)));
            assert!(ufrag.len() >= 4 && ufrag.len() <= 256, "{ufrag}");
            assert!(ufrag.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/'), "{ufrag}");
        }
        assert_ne!(ufrag_for(ShardId(1)), ufrag_for(ShardId(1)));
        for foreign in [&b""[..], b"a", b"zz12", b"ff00", b"\xff\xfe", b"+/ab"] {
            assert_eq!(ufrag_shard(foreign), None, "{foreign:?}");
        }
    }
}
