//! A datagram flood keeps the media socket readable turn after turn. Commands waiting
//! meanwhile (a chat line for the whole room is one) are served in the same turns, not after
//! the flood; so is what ICE-TCP connections sent.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};

use super::{Driver, Turn, RECV_BURST};
use crate::interaction::registry::ShowRegistry;
use crate::interaction::store_client::StoreClient;
use crate::media::command::Command;
use crate::media::error::MediaError;
use crate::media::offer::SessionKind;
use crate::media::peer::PeerFactory;
use crate::media::relay;
use crate::media::router::MediaRouter;
use crate::media::status_board::StatusBoard;
use crate::supervision::Supervision;

/// Junk datagrams queued before the turn: several bursts' worth, well under a default socket
/// buffer (each small datagram costs about 1 KiB of it on loopback).
const FLOOD: u64 = 4 * RECV_BURST as u64;

pub(super) async fn driver(dir: &std::path::Path) -> anyhow::Result<(Driver, relay::RelayInbox)> {
    let provider = str0m::crypto::from_feature_flags();
    let cert = provider.dtls_provider.generate_certificate().ok_or_else(|| anyhow::anyhow!("no DTLS certificate"))?;
    let socket = UdpSocket::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
    let factory = PeerFactory { cert, candidate_addr: socket.local_addr()?, timeouts: Default::default(), tcp_candidate: None, shard: crate::media::relay::ShardId(0), bwe: true, transport_estimator: false };
    let store = StoreClient::open(&dir.join("s.db")).map_err(|e| anyhow::anyhow!("{e}"))?;
    let supervision = Arc::new(Supervision::new(store.inner().clone()));
    let (media_tx, _media_rx) = mpsc::channel(16);
    let shows = ShowRegistry::new(store, MediaRouter::new(vec![media_tx]), tokio::runtime::Handle::current(), supervision, Default::default());
    let (links, relays) = relay::mesh(1).pop().ok_or_else(|| anyhow::anyhow!("no shard"))?;
    Ok((Driver::new(socket, factory, Arc::new(StatusBoard::with_shards(1)), shows, links)?, relays))
}

#[tokio::test]
async fn a_waiting_command_is_answered_in_a_turn_that_reads_a_flood() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (mut driver, mut relays) = driver(dir.path()).await?;
    let junk = std::net::UdpSocket::bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
    for _ in 0..FLOOD {
        junk.send_to(&[0x55; 24], driver.local_addr)?;
    }
    let (commands_tx, mut commands) = mpsc::channel(8);
    let (reply, mut answered) = oneshot::channel();
    let end = Command::End { room: "show".into(), kind: SessionKind::Watch, session: "nobody".into(), reply };
    commands_tx.send(end).await.map_err(|_| anyhow::anyhow!("command queue closed"))?;
    // The turn below must see the socket ready, as under a flood it always is.
    driver.socket.readable().await?;

    let (_keep_running, mut shutdown) = oneshot::channel::<()>();
    let mut relays_open = false;
    let turn = driver.turn(&mut commands, &mut relays, &mut relays_open, &mut shutdown).await;

    assert_eq!(turn, Turn::Go);
    let read = driver.stats.datagrams_in;
    assert!(read > 0 && read < FLOOD, "the turn read {read} of {FLOOD} datagrams, not part of the flood");
    assert_eq!(driver.stats.unknown_source, read, "junk is dropped as from an unknown source");
    match answered.try_recv() {
        Ok(Err(MediaError::SessionNotFound)) => Ok(()),
        other => anyhow::bail!("the waiting command was not answered in the turn: {other:?}"),
    }
}

#[tokio::test]
async fn waiting_tcp_input_is_taken_in_a_turn_that_reads_a_flood() -> anyhow::Result<()> {
    use crate::media::tcp::{ConnId, ShardTcp, TcpInput, TcpLimits};
    let dir = tempfile::tempdir()?;
    let (driver, mut relays) = driver(dir.path()).await?;
    let (sender, inbox) = mpsc::channel(8);
    let tcp = ShardTcp {
        inbox,
        sender: sender.clone(),
        candidate: SocketAddr::from(([127, 0, 0, 1], 9)),
        limits: TcpLimits::default(),
        stats: Arc::default(),
    };
    let mut driver = driver.with_tcp(tcp);
    let junk = std::net::UdpSocket::bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
    for _ in 0..FLOOD {
        junk.send_to(&[0x55; 24], driver.local_addr)?;
    }
    // A frame from a connection the driver does not know: taken and ignored, which empties
    // the inbox only if the turn looked at it.
    sender.send(TcpInput::Frame { conn: ConnId(77), data: vec![1, 2, 3] }).await?;
    driver.socket.readable().await?;
    let (_commands_tx, mut commands) = mpsc::channel(8);
    let (_keep_running, mut shutdown) = oneshot::channel::<()>();
    let mut relays_open = false;
    let turn = driver.turn(&mut commands, &mut relays, &mut relays_open, &mut shutdown).await;
    assert_eq!(turn, Turn::Go);
    assert!(driver.stats.datagrams_in > 0, "the turn read the flood");
    let left = driver.tcp.as_mut().map(|t| t.inbox.try_recv().is_ok());
    assert_eq!(left, Some(false), "the TCP frame was taken in the same turn");
    Ok(())
}
