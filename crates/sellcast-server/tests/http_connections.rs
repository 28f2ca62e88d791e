//! HTTP connections have an owner, a deadline and a cap: a client sending its request head a
//! byte at a time (slowloris) is cut at the header deadline, one address cannot hold more than
//! its share of connections, and the server keeps answering everyone else meanwhile.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use sellcast_server::{Config, ConnectionLimits};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

async fn server(limits: ConnectionLimits) -> Result<(sellcast_server::RunningServer, tempfile::TempDir)> {
    let dir = tempfile::tempdir()?;
    let config = Config { http_limits: limits, ..Config::local(dir.path().join("sellcast.db")) };
    Ok((sellcast_server::start(config).await?, dir))
}

/// A TCP connection to `to` from the loopback address `from` (127.0.0.0/8 is all local).
async fn connect_from(from: Ipv4Addr, to: SocketAddr) -> Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(IpAddr::V4(from), 0))?;
    Ok(socket.connect(to).await?)
}

/// Whether the server closed `stream` within `limit` (EOF or reset), reading and discarding
/// whatever it sent first.
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

/// A plain GET from `from`; the status code the server answered with.
async fn get_status(from: Ipv4Addr, to: SocketAddr, path: &str) -> Result<u16> {
    let mut stream = connect_from(from, to).await?;
    stream.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes()).await?;
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await.context("no answer")??;
    let text = String::from_utf8_lossy(&answer);
    let status = text.split_whitespace().nth(1).context("no status line")?;
    Ok(status.parse()?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_head_sent_a_byte_at_a_time_is_cut_at_the_header_deadline() -> Result<()> {
    let limits = ConnectionLimits { per_ip: 64, total: 1024, header_timeout: Duration::from_secs(1) };
    let (server, _dir) = server(limits).await?;
    let mut slow = connect_from(Ipv4Addr::new(127, 0, 0, 1), server.http_addr).await?;
    let started = Instant::now();
    slow.write_all(b"GET /healthz HTTP/1.1\r\n").await?;
    // One more header byte every 200 ms: the connection is never idle, the head never ends.
    let cut = async {
        for byte in b"X-Slow: ".iter().cycle() {
            if slow.write_all(&[*byte]).await.is_err() {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            if started.elapsed() > Duration::from_secs(20) {
                bail!("still open after 20 s of trickling a request head");
            }
        }
        Ok(())
    };
    cut.await?;
    let held = started.elapsed();
    assert!(held >= Duration::from_millis(900), "cut before its deadline: {held:?}");
    // Meanwhile, and after, a normal request is answered.
    assert_eq!(get_status(Ipv4Addr::new(127, 0, 0, 1), server.http_addr, "/healthz").await?, 200);
    server.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_past_its_connection_cap_is_closed_and_others_are_served() -> Result<()> {
    let limits = ConnectionLimits { per_ip: 4, total: 1024, header_timeout: Duration::from_secs(30) };
    let (server, _dir) = server(limits).await?;
    let attacker = Ipv4Addr::new(127, 0, 0, 2);
    let mut held = Vec::new();
    for _ in 0..4 {
        let mut c = connect_from(attacker, server.http_addr).await?;
        c.write_all(b"GET / HTTP/1.1\r\n").await?; // a head that never ends
        held.push(c);
    }
    // The fifth from the same address is closed at once, without an answer.
    let mut fifth = connect_from(attacker, server.http_addr).await?;
    assert!(closed_within(&mut fifth, Duration::from_secs(10)).await, "the fifth connection from one address was kept");
    // The first four are still held (their head deadline is 30 s away).
    for c in &mut held {
        assert!(!closed_within(c, Duration::from_millis(50)).await, "a connection under the cap was closed");
    }
    // Another address is served.
    assert_eq!(get_status(Ipv4Addr::new(127, 0, 0, 3), server.http_addr, "/healthz").await?, 200);
    // Closing them frees the address's places.
    drop(held);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match get_status(attacker, server.http_addr, "/healthz").await {
            Ok(200) => break,
            _ if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(20)).await,
            other => bail!("the address was not let back in after closing its connections: {other:?}"),
        }
    }
    let metrics = server.metrics.render();
    assert!(
        metrics.lines().any(|l| l.starts_with("sellcast_http_connections_refused_total{cap=\"per_ip\"} ") && !l.ends_with(" 0")),
        "the refusal is counted:\n{}",
        metrics.lines().filter(|l| l.contains("http_connections")).collect::<Vec<_>>().join("\n")
    );
    server.shutdown().await;
    Ok(())
}
