//! ICE over TCP against hostile clients, on the real server: while a host publishes and a
//! viewer watches over UDP, 344 TCP connections from one address try every way in that is not a
//! session of theirs: silence (64, holding every place the address has), 100 more past the cap,
//! then waves of HTTP, an oversize frame, a binding request for a ufrag no peer has (on a shard
//! that exists), and one for a shard that does not exist. Asserted: the per-address cap refuses
//! the excess at the door, every admitted connection is closed for its own reason and counted
//! exactly, every place under the caps is free again, and the viewer's video kept arriving
//! through the attack.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use sellcast_peer::{PublishOptions, Publisher, Viewer};
use sellcast_server::{TcpLimits, TcpMediaConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const PER_IP: usize = 64;
/// Connections past the cap while the silent ones hold it.
const EXCESS: usize = 100;
/// Waves of junk within the cap, `WAVE` connections each (a multiple of the 4 kinds).
const WAVES: usize = 3;
const WAVE: usize = 60;

async fn until(within: Duration, what: &str, mut f: impl FnMut() -> bool) -> Result<()> {
    let deadline = Instant::now() + within;
    while !f() {
        if Instant::now() > deadline {
            bail!("timed out waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// A STUN binding request whose USERNAME is `ours:attacker`, framed (RFC 4571).
fn framed_binding_request(ours: &str) -> Vec<u8> {
    let username = format!("{ours}:attacker");
    let mut body = Vec::new();
    body.extend_from_slice(&0x0006u16.to_be_bytes());
    body.extend_from_slice(&(username.len() as u16).to_be_bytes());
    body.extend_from_slice(username.as_bytes());
    body.resize(body.len().div_ceil(4) * 4, 0);
    let mut stun = vec![0x00, 0x01];
    stun.extend_from_slice(&(body.len() as u16).to_be_bytes());
    stun.extend_from_slice(&[0x21, 0x12, 0xA4, 0x42]);
    stun.extend_from_slice(&[9; 12]);
    stun.extend_from_slice(&body);
    let mut framed = (stun.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(&stun);
    framed
}

/// One attacker: connect, send its kind of junk, and report whether the server closed it.
async fn attack(addr: SocketAddr, kind: usize) -> Result<bool> {
    let mut stream = TcpStream::connect(addr).await?;
    let junk: Vec<u8> = match kind % 5 {
        0 => Vec::new(),
        1 => b"GET / HTTP/1.1\r\nHost: sellcast\r\n\r\n".to_vec(),
        2 => vec![0xFF, 0xFF, 1, 2, 3, 4],
        // Shard 0 exists; no peer has this ufrag.
        3 => framed_binding_request("00notapeeratall00"),
        _ => framed_binding_request("3fnosuchshard000"),
    };
    // A refused connection may be closed before this write lands.
    let _ = stream.write_all(&junk).await;
    let mut buf = [0u8; 64];
    let closed = matches!(tokio::time::timeout(Duration::from_secs(15), stream.read(&mut buf)).await, Ok(Ok(0) | Err(_)));
    Ok(closed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_tcp_clients_are_closed_and_counted_while_a_viewer_keeps_watching() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let limits = TcpLimits { per_ip: PER_IP, first_stun: Duration::from_secs(2), ..TcpLimits::default() };
    let config = sellcast_server::Config {
        media_threads: 1,
        tcp: Some(TcpMediaConfig { port: 0, limits }),
        ..sellcast_server::Config::local(dir.path().join("sellcast.db"))
    };
    let server = sellcast_server::start(config).await?;
    let base = format!("http://{}", server.http_addr);
    let Some(tcp_addr) = server.tcp_addr else {
        bail!("no TCP listener");
    };
    let test = async {
        let options = PublishOptions { connect_timeout: Duration::from_secs(10), ..PublishOptions::default() };
        let publisher = Publisher::connect(&base, "tcpattack", options).await?;
        let viewer = Viewer::connect(&base, "tcpattack", None).await?;
        until(Duration::from_secs(15), "the viewer receives video", || viewer.inspect(|s| s.video.packets > 30)).await?;

        let before = viewer.inspect(|s| s.video.packets);
        let started = Instant::now();
        let board = server.status_board.clone();
        let report = || board.tcp.report();
        let open = || report().map_or(usize::MAX, |r| r.open as usize);
        // Silent openers take every place this address has; the next ones are refused at the
        // door. The silent ones are closed at their first-request deadline.
        let silent: Vec<_> = (0..PER_IP).map(|_| tokio::spawn(attack(tcp_addr, 0))).collect();
        until(Duration::from_secs(5), "the silent ones hold every place", || open() == PER_IP).await?;
        let refused: Vec<_> = (0..EXCESS).map(|i| tokio::spawn(attack(tcp_addr, 1 + i % 4))).collect();
        let mut closed = 0;
        for a in silent.into_iter().chain(refused) {
            closed += usize::from(a.await??);
        }
        // Then waves of junk, each within the cap, each closed before the next.
        for _ in 0..WAVES {
            until(Duration::from_secs(5), "every place free", || open() == 0).await?;
            let wave: Vec<_> = (0..WAVE).map(|i| tokio::spawn(attack(tcp_addr, 1 + i % 4))).collect();
            for a in wave {
                closed += usize::from(a.await??);
            }
        }
        let attack_time = started.elapsed();
        let during = viewer.inspect(|s| s.video.packets) - before;
        assert_eq!(closed, PER_IP + EXCESS + WAVES * WAVE, "the server closed every attacker");

        until(Duration::from_secs(5), "every place under the caps is free", || open() == 0).await?;
        // The shard copies its counters out twice a second.
        let per_kind = (WAVES * WAVE / 4) as u64;
        until(Duration::from_secs(5), "the shard's counters", || report().is_some_and(|r| r.counters.refused_not_a_peer >= per_kind)).await?;
        let Some(r) = report() else {
            bail!("no TCP report");
        };
        println!("attack over in {attack_time:?}; viewer got {during} video packets meanwhile; {r:?}");
        assert_eq!(r.refused_per_ip, EXCESS as u64, "the per-address cap refused the excess at the door: {r:?}");
        assert_eq!(r.accepted, (PER_IP + WAVES * WAVE) as u64, "{r:?}");
        assert_eq!(r.closed_no_stun, PER_IP as u64 + per_kind, "silence and a foreign shard: {r:?}");
        assert_eq!(r.closed_bad_frame, 2 * per_kind, "HTTP and an oversize frame: {r:?}");
        assert_eq!(r.counters.refused_not_a_peer, per_kind, "an unknown ufrag reached its shard and was refused: {r:?}");
        assert_eq!(r.closed_peer_gone, per_kind, "{r:?}");
        assert_eq!((r.closed_idle, r.closed_write_stalled, r.closed_client_gone, r.counters.frames_in), (0, 0, 0, 0), "{r:?}");
        // Video kept coming: the stream is ~30 packets/s or more, so any real stall shows.
        let expected = attack_time.as_secs_f64() * 10.0;
        assert!(during as f64 >= expected, "viewer got {during} video packets in {attack_time:?} of attack");
        viewer.close().await;
        publisher.close().await;
        anyhow::Ok(())
    };
    let result = tokio::time::timeout(Duration::from_secs(90), test).await;
    server.shutdown().await;
    result?
}
