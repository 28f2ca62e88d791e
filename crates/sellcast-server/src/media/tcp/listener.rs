//! The TCP port's accept loop. A connection gets a place under the caps before a byte is read
//! (`ConnectionTable`, shared with nothing else), then has `first_stun` to send one whole
//! frame that is a STUN binding request whose ufrag names one of our shards. Only then does it
//! cost a shard anything: it is handed over, with whatever else it already sent, and the
//! shard's peer checks the request's integrity. Junk, port scans and slow openers end here.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use anyhow::Context;
use thiserror::Error;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tracing::{debug, info};

use super::framing::{FrameDecoder, FramingError};
use super::stats::{Closed, TcpStats};
use super::{ufrag_shard, Handoff, ShardTcp, TcpInput, TcpLimits, TcpMediaConfig, INBOX};
use crate::http::connections::{ConnectionLimits, ConnectionSlot, ConnectionTable};
use crate::media::status_board::StatusBoard;
use crate::media::stun_route::binding_request_ufrag;

/// Why a new connection never reached a shard.
#[derive(Debug, Error)]
pub(crate) enum OpenError {
    #[error("no whole frame within the deadline")]
    Timeout,
    #[error("closed before its first frame")]
    ClosedEarly,
    #[error("reading: {0}")]
    Io(#[from] std::io::Error),
    #[error("framing: {0}")]
    Framing(#[from] FramingError),
    #[error("the first frame is not a binding request naming one of our shards")]
    NotOurs,
    #[error("its shard is not taking connections")]
    ShardGone,
}

impl OpenError {
    fn counted_as(&self) -> Closed {
        match self {
            OpenError::Framing(_) => Closed::BadFrame,
            OpenError::ClosedEarly | OpenError::Io(_) => Closed::ClientGone,
            OpenError::ShardGone => Closed::PeerGone,
            OpenError::Timeout | OpenError::NotOurs => Closed::NoStun,
        }
    }
}

/// Accept until the task is aborted. `shards[i]` is shard `i`'s TCP inbox.
pub(crate) async fn run(
    listener: TcpListener,
    table: Arc<ConnectionTable>,
    shards: Arc<[mpsc::Sender<TcpInput>]>,
    limits: TcpLimits,
    stats: Arc<TcpStats>,
) {
    loop {
        let (stream, remote) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors, or a connection reset before accept: wait a moment
                // rather than spin, and go on.
                debug!(error = %e, "tcp media accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        let slot = match table.admit(remote.ip()) {
            Ok(slot) => slot,
            Err(why) => {
                stats.refused(why);
                continue;
            }
        };
        stats.accepted();
        let (shards, stats) = (shards.clone(), stats.clone());
        tokio::spawn(async move {
            if let Err(e) = open(stream, remote, slot, &shards, limits).await {
                debug!(%remote, error = %e, "tcp media connection refused");
                stats.closed(e.counted_as());
            }
        });
    }
}

/// Read the first frame and hand the connection to the shard it names.
async fn open(
    mut stream: TcpStream,
    remote: SocketAddr,
    slot: ConnectionSlot,
    shards: &[mpsc::Sender<TcpInput>],
    limits: TcpLimits,
) -> Result<(), OpenError> {
    // Media: every frame leaves at once.
    stream.set_nodelay(true)?;
    let mut decoder = FrameDecoder::new();
    let first = tokio::time::timeout(limits.first_stun, first_frame(&mut stream, &mut decoder))
        .await
        .map_err(|_| OpenError::Timeout)??;
    let shard = binding_request_ufrag(&first).and_then(ufrag_shard).ok_or(OpenError::NotOurs)?;
    let inbox = shards.get(shard.0).ok_or(OpenError::NotOurs)?;
    let stream = stream.into_std()?;
    let handoff = Box::new(Handoff { stream, remote, decoder, first, slot });
    // The shard's inbox is shared with its live connections' frames: a full one is a shard
    // under load, and the client's ICE retries over another pair or later.
    inbox.try_send(TcpInput::Opened(handoff)).map_err(|_| OpenError::ShardGone)
}

/// The first whole frame, copied out; what follows it stays in `decoder`.
async fn first_frame(stream: &mut TcpStream, decoder: &mut FrameDecoder) -> Result<Vec<u8>, OpenError> {
    loop {
        if let Some(frame) = decoder.next_frame()? {
            return Ok(frame.to_vec());
        }
        let n = stream.read(decoder.space()).await?;
        if n == 0 {
            return Err(OpenError::ClosedEarly);
        }
        decoder.filled(n);
    }
}

/// The TCP side between binding and running: the listener, and each shard's end.
pub(crate) struct TcpSide {
    /// Where the listener is bound.
    pub addr: SocketAddr,
    /// Our passive candidate as announced (the announce IP, the bound port).
    pub candidate: SocketAddr,
    /// Shard `i`'s end, taken in shard order.
    pub shards: std::vec::IntoIter<ShardTcp>,
    listener: TcpListener,
    table: Arc<ConnectionTable>,
    senders: Arc<[mpsc::Sender<TcpInput>]>,
    limits: TcpLimits,
    stats: Arc<TcpStats>,
}

impl TcpSide {
    /// Bind `ip:config.port` and make every shard's inbox.
    pub(crate) async fn bind(
        config: TcpMediaConfig,
        ip: IpAddr,
        announce_ip: IpAddr,
        shard_count: usize,
        board: &StatusBoard,
    ) -> anyhow::Result<Self> {
        let want = SocketAddr::new(ip, config.port);
        let listener = TcpListener::bind(want).await.with_context(|| format!("binding TCP media {want}"))?;
        let addr = listener.local_addr()?;
        let candidate = SocketAddr::new(announce_ip, addr.port());
        let limits = config.limits;
        // The header deadline is unused here (`first_stun` bounds the opening instead).
        let table = ConnectionTable::new(ConnectionLimits { per_ip: limits.per_ip, total: limits.total, header_timeout: limits.first_stun });
        let stats = board.tcp.clone();
        stats.listening(addr.port(), table.clone());
        let (senders, shards): (Vec<_>, Vec<_>) = (0..shard_count)
            .map(|_| {
                let (sender, inbox) = mpsc::channel(INBOX);
                let end = ShardTcp { inbox, sender: sender.clone(), candidate, limits, stats: stats.clone() };
                (sender, end)
            })
            .unzip();
        Ok(Self { addr, candidate, shards: shards.into_iter(), listener, table, senders: senders.into(), limits, stats })
    }

    /// Accept in a task of the current runtime until it is aborted.
    pub(crate) fn spawn(self) -> tokio::task::JoinHandle<()> {
        info!(tcp = %self.addr, candidate = %self.candidate, "ICE over TCP listening");
        tokio::spawn(run(self.listener, self.table, self.senders, self.limits, self.stats))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::AsyncWriteExt;

    use super::*;
    use crate::media::relay::ShardId;
    use crate::media::tcp::framing::encode_frame;
    use crate::media::tcp::ufrag_for;

    struct Running {
        addr: SocketAddr,
        stats: Arc<TcpStats>,
        table: Arc<ConnectionTable>,
        inbox: mpsc::Receiver<TcpInput>,
        task: tokio::task::JoinHandle<()>,
    }

    async fn start(limits: TcpLimits) -> std::io::Result<Running> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let table = ConnectionTable::new(ConnectionLimits { per_ip: limits.per_ip, total: limits.total, header_timeout: limits.first_stun });
        let stats = Arc::new(TcpStats::default());
        stats.listening(addr.port(), table.clone());
        let (sender, inbox) = mpsc::channel(8);
        let task = tokio::spawn(run(listener, table.clone(), Arc::from(vec![sender]), limits, stats.clone()));
        Ok(Running { addr, stats, table, inbox, task })
    }

    /// A binding request as a browser's first frame: USERNAME `ours:theirs`.
    fn binding_request(ours: &str) -> Vec<u8> {
        let username = format!("{ours}:cli1");
        let mut body = Vec::new();
        body.extend_from_slice(&0x0006u16.to_be_bytes());
        body.extend_from_slice(&(username.len() as u16).to_be_bytes());
        body.extend_from_slice(username.as_bytes());
        body.resize(body.len().div_ceil(4) * 4, 0);
        let mut d = vec![0x00, 0x01];
        d.extend_from_slice(&(body.len() as u16).to_be_bytes());
        d.extend_from_slice(&[0x21, 0x12, 0xA4, 0x42]);
        d.extend_from_slice(&[3; 12]);
        d.extend_from_slice(&body);
        d
    }

    /// Wait (bounded) until the client's connection is closed by the server.
    async fn closed_by_server(client: &mut TcpStream) -> bool {
        let mut b = [0u8; 16];
        matches!(tokio::time::timeout(Duration::from_secs(5), client.read(&mut b)).await, Ok(Ok(0) | Err(_)))
    }

    async fn until(what: &str, f: impl Fn() -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while !f() {
            assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    #[tokio::test]
    async fn a_binding_request_for_our_shard_is_handed_over_with_what_followed_it() -> anyhow::Result<()> {
        let mut r = start(TcpLimits::default()).await?;
        let mut client = TcpStream::connect(r.addr).await?;
        let request = binding_request(&ufrag_for(ShardId(0)));
        let mut bytes = Vec::new();
        encode_frame(&mut bytes, &request)?;
        encode_frame(&mut bytes, b"next frame")?;
        // Split mid-prefix: the listener reassembles.
        client.write_all(&bytes[..1]).await?;
        client.write_all(&bytes[1..]).await?;
        let handed = tokio::time::timeout(Duration::from_secs(5), r.inbox.recv()).await?;
        let Some(TcpInput::Opened(mut handoff)) = handed else {
            anyhow::bail!("expected a handoff, got {handed:?}");
        };
        assert_eq!(handoff.first, request);
        assert_eq!(handoff.decoder.next_frame()?, Some(&b"next frame"[..]));
        assert_eq!(r.table.held(), 1, "the handoff holds its place");
        drop(handoff);
        assert_eq!(r.table.held(), 0);
        r.task.abort();
        Ok(())
    }

    #[tokio::test]
    async fn silence_garbage_and_foreign_ufrags_are_closed_before_any_shard_sees_them() -> anyhow::Result<()> {
        let limits = TcpLimits { first_stun: Duration::from_millis(300), ..TcpLimits::default() };
        let mut r = start(limits).await?;
        let mut silent = TcpStream::connect(r.addr).await?;
        let mut http = TcpStream::connect(r.addr).await?;
        http.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await?;
        let mut foreign = TcpStream::connect(r.addr).await?;
        let mut bytes = Vec::new();
        // Shard 0x3f does not exist on this one-shard server; an RTP-looking frame is no request.
        encode_frame(&mut bytes, &binding_request("3fabcdefgh"))?;
        foreign.write_all(&bytes).await?;
        let mut rtp = TcpStream::connect(r.addr).await?;
        bytes.clear();
        encode_frame(&mut bytes, &[0x80, 96, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1])?;
        rtp.write_all(&bytes).await?;
        for (name, client) in [("silent", &mut silent), ("http", &mut http), ("foreign", &mut foreign), ("rtp", &mut rtp)] {
            assert!(closed_by_server(client).await, "{name} is closed");
        }
        until("every place freed", || r.table.held() == 0).await;
        let report = r.stats.report().expect("listening");
        assert_eq!((report.accepted, report.closed_no_stun, report.closed_bad_frame), (4, 3, 1), "{report:?}");
        assert!(r.inbox.try_recv().is_err(), "nothing reached the shard");
        r.task.abort();
        Ok(())
    }

    #[tokio::test]
    async fn connections_past_the_per_address_and_total_caps_are_closed_at_once() -> anyhow::Result<()> {
        let r = start(TcpLimits { per_ip: 2, total: 3, ..TcpLimits::default() }).await?;
        let _a = TcpStream::connect(r.addr).await?;
        let _b = TcpStream::connect(r.addr).await?;
        until("two held", || r.table.held() == 2).await;
        let mut third = TcpStream::connect(r.addr).await?;
        assert!(closed_by_server(&mut third).await, "a third from one address is closed");
        let report = r.stats.report().expect("listening");
        assert_eq!((report.refused_per_ip, report.open), (1, 2), "{report:?}");
        r.task.abort();
        Ok(())
    }
}
