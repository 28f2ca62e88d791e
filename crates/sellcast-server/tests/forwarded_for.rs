//! `--trust-forwarded-for`: behind a trusted reverse proxy each client has its own rate-limit
//! buckets and its own share of the per-address session cap, taken from `X-Forwarded-For`;
//! without the flag, or from a peer outside the trusted networks, the header is ignored and
//! every request counts against the TCP peer.
//!
//! The "proxy" is this test process on 127.0.0.1; an untrusted peer is the same process bound
//! to 127.0.0.2 (all of 127.0.0.0/8 is local).

mod common;

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use anyhow::{bail, Result};
use sellcast_server::{AdmissionLimits, Config, Rate, RateLimits};
use str0m::media::Direction;

/// One request per second, a burst of 3, on both classes: a burst of 4 is over either limit.
const TIGHT: Rate = Rate { per_second: 1, burst: 3 };

/// Refusals are answered at once: these tests ask whose bucket a request empties, and a 429
/// held for `REFUSAL_HOLD` (1 s) would let the bucket refill before the next request.
async fn server(trust: &str) -> Result<(sellcast_server::RunningServer, tempfile::TempDir)> {
    start(trust, |config| {
        config.rate_limits = RateLimits { signalling: TIGHT, api: TIGHT };
        config.refusal_hold = Duration::ZERO;
    })
    .await
}

async fn start(trust: &str, set: impl FnOnce(&mut Config)) -> Result<(sellcast_server::RunningServer, tempfile::TempDir)> {
    let dir = tempfile::tempdir()?;
    let mut config = Config::local(dir.path().join("sellcast.db"));
    config.trusted_proxies = trust.parse()?;
    set(&mut config);
    Ok((sellcast_server::start(config).await?, dir))
}

/// An HTTP client whose connections come from `from`.
fn client_from(from: Ipv4Addr) -> Result<reqwest::Client> {
    Ok(reqwest::Client::builder().local_address(IpAddr::V4(from)).timeout(Duration::from_secs(30)).build()?)
}

/// The two doors with a rate limit: an API read and a WHEP offer (refused or not, it is counted).
#[derive(Clone, Copy, Debug)]
enum Door {
    Api,
    Whep,
}

async fn status(http: &reqwest::Client, base: &str, door: Door, forwarded_for: &str) -> Result<u16> {
    let request = match door {
        Door::Api => http.get(format!("{base}/api/rooms/xff")),
        Door::Whep => http.post(format!("{base}/whep/xff")).header("content-type", "application/sdp").body("v=0\r\n"),
    };
    Ok(request.header("x-forwarded-for", forwarded_for).send().await?.status().as_u16())
}

/// Requests until one is refused with 429; how many got through first. Bounded: the limit is
/// 1/s with a burst of 3, so even a slow machine meets a 429 well within 50 requests.
async fn exhaust(http: &reqwest::Client, base: &str, door: Door, forwarded_for: &str) -> Result<usize> {
    for sent in 0..50 {
        if status(http, base, door, forwarded_for).await? == 429 {
            return Ok(sent);
        }
    }
    bail!("{door:?} as {forwarded_for}: no 429 in 50 requests")
}

#[tokio::test]
async fn clients_behind_a_trusted_proxy_get_their_own_rate_limit_buckets() -> Result<()> {
    let (server, _dir) = server("127.0.0.1").await?;
    let base = format!("http://{}", server.http_addr);
    let proxy = client_from(Ipv4Addr::LOCALHOST)?;
    for door in [Door::Api, Door::Whep] {
        let through = exhaust(&proxy, &base, door, "203.0.113.1").await?;
        assert!(through >= 3, "{door:?}: the first client's burst got through: {through}");
        let other = status(&proxy, &base, door, "203.0.113.2").await?;
        assert_ne!(other, 429, "{door:?}: a second client behind the same proxy has its own bucket");
        // The header's hops to the left of the proxy's are the client's own words: not believed.
        let spoofed = status(&proxy, &base, door, "203.0.113.2, 203.0.113.1").await?;
        assert_eq!(spoofed, 429, "{door:?}: the rightmost untrusted hop is the client, whatever it wrote before it");
    }
    server.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn without_the_flag_forwarded_for_is_ignored_and_clients_share_the_peer_bucket() -> Result<()> {
    let (server, _dir) = server("").await?;
    let base = format!("http://{}", server.http_addr);
    let proxy = client_from(Ipv4Addr::LOCALHOST)?;
    for door in [Door::Api, Door::Whep] {
        exhaust(&proxy, &base, door, "203.0.113.1").await?;
        let other = status(&proxy, &base, door, "203.0.113.2").await?;
        assert_eq!(other, 429, "{door:?}: without the flag both count against 127.0.0.1");
    }
    server.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn an_untrusted_peers_forwarded_for_is_ignored() -> Result<()> {
    let (server, _dir) = server("127.0.0.1").await?;
    let base = format!("http://{}", server.http_addr);
    let untrusted = client_from(Ipv4Addr::new(127, 0, 0, 2))?;
    let proxy = client_from(Ipv4Addr::LOCALHOST)?;
    for door in [Door::Api, Door::Whep] {
        exhaust(&untrusted, &base, door, "203.0.113.1").await?;
        let other = status(&untrusted, &base, door, "203.0.113.2").await?;
        assert_eq!(other, 429, "{door:?}: 127.0.0.2 is not trusted: its header names nobody");
        // And the trusted proxy naming 127.0.0.2 as its client finds that bucket empty too.
        let named = status(&proxy, &base, door, "127.0.0.2").await?;
        assert_eq!(named, 429, "{door:?}: the proxy's client 127.0.0.2 is the same client");
    }
    server.shutdown().await;
    Ok(())
}

/// A real offer for `room` as `who` (a host for WHIP), sent by the proxy on behalf of `client`.
async fn offer_as(api: &common::Api, endpoint: &str, room: &str, who: &str, client: &str) -> Result<u16> {
    let (role, direction) = if endpoint == "whip" { ("host", Direction::SendOnly) } else { ("viewer", Direction::RecvOnly) };
    let token = api.dev_token(room, role, who).await?;
    let answer = api
        .http
        .post(format!("{}/{endpoint}/{room}", api.base))
        .header("content-type", "application/sdp")
        .header("x-forwarded-for", client)
        .bearer_auth(token)
        .body(common::sdp_offer(direction))
        .send()
        .await?;
    Ok(answer.status().as_u16())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_per_address_session_cap_counts_each_client_behind_a_trusted_proxy() -> Result<()> {
    let (server, _dir) = start("127.0.0.1", |config| {
        config.media_threads = 1;
        config.admission = AdmissionLimits { max_sessions_per_ip: 1, ..AdmissionLimits::default() };
    })
    .await?;
    let api = common::Api::new(format!("http://{}", server.http_addr));
    assert_eq!(offer_as(&api, "whip", "shop", "host", "198.51.100.9").await?, 201, "the host");
    assert_eq!(offer_as(&api, "whep", "shop", "v1", "203.0.113.1").await?, 201, "a first viewer");
    assert_eq!(offer_as(&api, "whep", "shop", "v2", "203.0.113.1").await?, 503, "a second session from the same client is over its cap");
    assert_eq!(offer_as(&api, "whep", "shop", "v3", "203.0.113.2").await?, 201, "another client behind the same proxy has its own share");
    server.shutdown().await;
    Ok(())
}
