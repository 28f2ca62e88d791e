//! The driver's view of its TCP connections: which peer each carries, where a transmit to an
//! address goes, and the per-packet counters. Sending is one map lookup and a `try_send`
//! into the connection's own bounded queue: no lock, no allocation, and never a wait.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use str0m::net::DatagramSend;
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;

use super::connection::Connection;
use super::stats::{ShardTcpCounters, TcpStats};
use super::{ConnId, Handoff, ShardTcp, TcpInput, TcpLimits};
use crate::media::peer::PeerId;
use crate::media::relay::ShardId;

/// One open connection as the driver knows it.
#[derive(Debug)]
struct Link {
    remote: SocketAddr,
    /// Set by its first request that a peer accepted; nothing else is taken before.
    peer: Option<PeerId>,
    out: mpsc::Sender<DatagramSend>,
}

/// Why a connection's frame reached no peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// No such connection (it closed meanwhile).
    Unknown,
    /// The peer already holds `per_peer` connections.
    PeerFull,
}

pub(crate) struct TcpLinks {
    pub inbox: mpsc::Receiver<TcpInput>,
    sender: mpsc::Sender<TcpInput>,
    /// Our passive candidate as announced: the destination str0m is given for every frame.
    pub candidate: SocketAddr,
    limits: TcpLimits,
    shared: Arc<TcpStats>,
    links: HashMap<ConnId, Link>,
    /// A transmit's destination is the client's address on one connection.
    by_remote: HashMap<SocketAddr, ConnId>,
    next: u64,
    shard: ShardId,
    pub counters: ShardTcpCounters,
}

impl TcpLinks {
    pub(crate) fn new(parts: ShardTcp, shard: ShardId) -> Self {
        let ShardTcp { inbox, sender, candidate, limits, stats } = parts;
        Self {
            inbox,
            sender,
            candidate,
            limits,
            shared: stats,
            links: HashMap::new(),
            by_remote: HashMap::new(),
            next: 1,
            shard,
            counters: ShardTcpCounters::default(),
        }
    }

    /// The same inbox and counters for a driver that replaces a dead one; the old driver's
    /// connections end as their queues close with it.
    pub(crate) fn restarted(self) -> Self {
        let TcpLinks { inbox, sender, candidate, limits, shared, next, shard, counters, .. } = self;
        Self { inbox, sender, candidate, limits, shared, links: HashMap::new(), by_remote: HashMap::new(), next, shard, counters }
    }

    /// Start serving a connection the listener handed over; returns its id and first frame.
    /// Must run on the shard's runtime (its task is spawned there).
    pub(crate) fn open(&mut self, handoff: Handoff) -> Option<(ConnId, SocketAddr, Vec<u8>)> {
        let Handoff { stream, remote, decoder, first, slot } = handoff;
        let stream = match tokio::net::TcpStream::from_std(stream) {
            Ok(s) => s,
            Err(_) => {
                self.shared.closed(super::stats::Closed::ClientGone);
                return None;
            }
        };
        let conn = ConnId(self.next);
        self.next += 1;
        let (out, out_rx) = mpsc::channel(self.limits.queue.max(1));
        let task = Connection {
            conn,
            stream,
            decoder,
            out: out_rx,
            inbox: self.sender.clone(),
            limits: self.limits,
            stats: self.shared.clone(),
            slot,
        };
        tokio::spawn(task.run());
        self.links.insert(conn, Link { remote, peer: None, out });
        Some((conn, remote, first))
    }

    /// The peer a connection carries, and its client address.
    pub(crate) fn peer_of(&self, conn: ConnId) -> Option<(Option<PeerId>, SocketAddr)> {
        self.links.get(&conn).map(|l| (l.peer, l.remote))
    }

    /// Bind a connection to the peer that accepted its first request.
    pub(crate) fn bind(&mut self, conn: ConnId, peer: PeerId) -> Result<(), Refused> {
        let held = self.links.values().filter(|l| l.peer == Some(peer)).count();
        if held >= self.limits.per_peer {
            return Err(Refused::PeerFull);
        }
        let link = self.links.get_mut(&conn).ok_or(Refused::Unknown)?;
        link.peer = Some(peer);
        self.by_remote.insert(link.remote, conn);
        Ok(())
    }

    /// Close a connection no peer took.
    pub(crate) fn refuse(&mut self, conn: ConnId) {
        self.counters.refused_not_a_peer += 1;
        self.close(conn);
    }

    /// Forget a connection: its queue closes, and its task writes what is queued and ends.
    pub(crate) fn close(&mut self, conn: ConnId) {
        if let Some(link) = self.links.remove(&conn) {
            if self.by_remote.get(&link.remote) == Some(&conn) {
                self.by_remote.remove(&link.remote);
            }
        }
    }

    /// Close every connection of a peer that left.
    pub(crate) fn forget_peer(&mut self, peer: PeerId) {
        let by_remote = &mut self.by_remote;
        self.links.retain(|conn, link| {
            let keep = link.peer != Some(peer);
            if !keep && by_remote.get(&link.remote) == Some(conn) {
                by_remote.remove(&link.remote);
            }
            keep
        });
    }

    /// Close everything (shutdown).
    pub(crate) fn close_all(&mut self) {
        self.links.clear();
        self.by_remote.clear();
    }

    /// Queue one datagram for the connection whose client is `to`. Dropped, and counted, if
    /// that queue is full: the viewer behind it reads too slowly, and only it pays.
    pub(crate) fn send(&mut self, to: SocketAddr, datagram: DatagramSend) {
        let Some(link) = self.by_remote.get(&to).and_then(|c| self.links.get(c)) else {
            self.counters.dropped_no_connection += 1;
            return;
        };
        match link.out.try_send(datagram) {
            Ok(()) => self.counters.frames_out += 1,
            Err(TrySendError::Full(_) | TrySendError::Closed(_)) => self.counters.dropped_queue_full += 1,
        }
    }

    /// Copy the counters out for the HTTP side.
    pub(crate) fn publish(&self) {
        self.shared.publish_shard(self.shard, self.counters);
    }

    #[cfg(test)]
    pub(crate) fn open_count(&self) -> usize {
        self.links.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::connections::{ConnectionLimits, ConnectionTable};
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn links(limits: TcpLimits) -> TcpLinks {
        let (sender, inbox) = mpsc::channel(16);
        let parts = ShardTcp {
            inbox,
            sender,
            candidate: SocketAddr::from(([127, 0, 0, 1], 9)),
            limits,
            stats: Arc::new(TcpStats::default()),
        };
        TcpLinks::new(parts, ShardId(0))
    }

    /// A connected pair: the server end handed over as the listener would.
    async fn handoff(table: &Arc<ConnectionTable>) -> std::io::Result<(Handoff, tokio::net::TcpStream)> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let client = tokio::net::TcpStream::connect(listener.local_addr()?).await?;
        let (server, remote) = listener.accept().await?;
        let slot = table.admit(remote.ip()).map_err(|_| std::io::Error::other("cap"))?;
        let handoff = Handoff { stream: server.into_std()?, remote, decoder: Default::default(), first: b"stun".to_vec(), slot };
        Ok((handoff, client))
    }

    fn table() -> Arc<ConnectionTable> {
        ConnectionTable::new(ConnectionLimits { per_ip: 10, total: 10, header_timeout: Duration::from_secs(1) })
    }

    #[tokio::test]
    async fn a_slow_reader_loses_its_own_packets_and_the_driver_never_waits() -> std::io::Result<()> {
        let limits = TcpLimits { queue: 4, ..TcpLimits::default() };
        let mut links = links(limits);
        let table = table();
        let (slow, _slow_client) = handoff(&table).await?;
        let (fast, mut fast_client) = handoff(&table).await?;
        let (slow_conn, slow_remote, _) = links.open(slow).expect("opened");
        let (fast_conn, fast_remote, _) = links.open(fast).expect("opened");
        links.bind(slow_conn, PeerId(1)).expect("bound");
        links.bind(fast_conn, PeerId(2)).expect("bound");
        // The slow client never reads: its queue and its socket fill, then its packets drop.
        // Nothing here awaits, so the loop itself proves the driver is never held up.
        for _ in 0..20_000 {
            links.send(slow_remote, vec![7u8; 1200].into());
        }
        assert!(links.counters.dropped_queue_full > 0, "{:?}", links.counters);
        let dropped = links.counters.dropped_queue_full;
        links.send(fast_remote, vec![1, 2, 3].into());
        let mut got = [0u8; 5];
        tokio::time::timeout(Duration::from_secs(5), fast_client.read_exact(&mut got)).await??;
        assert_eq!(got, [0, 3, 1, 2, 3], "the other viewer's packet arrives framed");
        assert_eq!(links.counters.dropped_queue_full, dropped, "the fast one lost nothing");
        Ok(())
    }

    #[tokio::test]
    async fn a_peer_holds_at_most_per_peer_connections_and_its_leaving_closes_them() -> std::io::Result<()> {
        let mut links = links(TcpLimits { per_peer: 2, ..TcpLimits::default() });
        let table = table();
        let mut clients = Vec::new();
        let mut conns = Vec::new();
        for _ in 0..3 {
            let (h, client) = handoff(&table).await?;
            clients.push(client);
            conns.push(links.open(h).expect("opened").0);
        }
        assert_eq!(links.bind(conns[0], PeerId(5)), Ok(()));
        assert_eq!(links.bind(conns[1], PeerId(5)), Ok(()));
        assert_eq!(links.bind(conns[2], PeerId(5)), Err(Refused::PeerFull));
        links.refuse(conns[2]);
        links.forget_peer(PeerId(5));
        assert_eq!(links.open_count(), 0);
        // Each client sees its connection end (EOF), and every place under the caps is free.
        for client in &mut clients {
            let mut b = [0u8; 1];
            let n = tokio::time::timeout(Duration::from_secs(5), client.read(&mut b)).await??;
            assert_eq!(n, 0);
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while table.held() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(table.held(), 0);
        assert_eq!(links.counters.refused_not_a_peer, 1);
        let _ = clients[0].write_all(b"x").await;
        Ok(())
    }
}
