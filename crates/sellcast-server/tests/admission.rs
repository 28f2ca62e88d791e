//! Session caps, rate limits and the offer gate, over real HTTP: a cap answers `503` with
//! `Retry-After` and frees its place when the session ends; a rate limit answers `429` with
//! `Retry-After`; an offer that fails the checks is a `400` that creates nothing.
//!
//! Every session here comes from 127.0.0.1, so each test sets the caps it exercises.

mod common;

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use reqwest::StatusCode;
use sellcast_server::{AdmissionLimits, Config, Rate, RateLimits};
use common::sdp_offer as offer;
use str0m::media::Direction;

struct Answer {
    status: StatusCode,
    retry_after: Option<u64>,
    body: String,
    location: Option<String>,
}

struct Client {
    api: common::Api,
}

impl Client {
    fn new(server: &sellcast_server::RunningServer) -> Self {
        Self { api: common::Api::new(format!("http://{}", server.http_addr)) }
    }

    async fn post_sdp(&self, endpoint: &str, room: &str, token: &str, sdp: impl Into<reqwest::Body>) -> Result<Answer> {
        let resp = self
            .api
            .http
            .post(format!("{}/{endpoint}/{room}", self.api.base))
            .header("content-type", "application/sdp")
            .bearer_auth(token)
            .body(sdp)
            .send()
            .await?;
        let header = |name: &str| resp.headers().get(name).and_then(|v| v.to_str().ok()).map(String::from);
        let (retry_after, location) = (header("retry-after").and_then(|v| v.parse().ok()), header("location"));
        Ok(Answer { status: resp.status(), retry_after, location, body: resp.text().await? })
    }

    async fn publish(&self, room: &str) -> Result<Answer> {
        let token = self.api.dev_token(room, "host", "host").await?;
        self.post_sdp("whip", room, &token, offer(Direction::SendOnly)).await
    }

    async fn watch(&self, room: &str, who: &str) -> Result<Answer> {
        let token = self.api.dev_token(room, "viewer", who).await?;
        self.post_sdp("whep", room, &token, offer(Direction::RecvOnly)).await
    }

    async fn delete(&self, location: &str) -> Result<StatusCode> {
        Ok(self.api.http.delete(format!("{}{location}", self.api.base)).send().await?.status())
    }
}

async fn start(admission: AdmissionLimits, rate_limits: RateLimits) -> Result<(sellcast_server::RunningServer, tempfile::TempDir)> {
    start_holding(admission, rate_limits, sellcast_server::http::rate_limit::REFUSAL_HOLD).await
}

/// With refusals over the rate limit answered after `refusal_hold`.
async fn start_holding(admission: AdmissionLimits, rate_limits: RateLimits, refusal_hold: Duration) -> Result<(sellcast_server::RunningServer, tempfile::TempDir)> {
    let dir = tempfile::tempdir()?;
    let config = Config { media_threads: 1, admission, rate_limits, refusal_hold, ..Config::local(dir.path().join("sellcast.db")) };
    Ok((sellcast_server::start(config).await?, dir))
}

fn assert_full(answer: &Answer, cause: &str) {
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE, "{}", answer.body);
    assert!(answer.retry_after.is_some_and(|s| s >= 1), "503 carries Retry-After: {:?}", answer.retry_after);
    let body: serde_json::Value = serde_json::from_str(&answer.body).unwrap_or_default();
    assert_eq!(body["code"], cause, "{}", answer.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_address_cap_answers_503_with_retry_after_and_frees_the_place_on_delete() -> Result<()> {
    let limits = AdmissionLimits { max_sessions_per_ip: 2, ..AdmissionLimits::default() };
    let (server, _dir) = start(limits, RateLimits::OFF).await?;
    let c = Client::new(&server);
    let host = c.publish("shop").await?;
    assert_eq!(host.status, StatusCode::CREATED, "{}", host.body);
    let first = c.watch("shop", "v1").await?;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    let refused = c.watch("shop", "v2").await?;
    assert_full(&refused, "address_full");
    assert_eq!(server.admission.counts().sessions(), 2, "a refused offer holds no place");

    assert_eq!(c.delete(first.location.as_deref().context("Location")?).await?, StatusCode::OK);
    let again = c.watch("shop", "v2").await?;
    assert_eq!(again.status, StatusCode::CREATED, "the place freed by DELETE is taken again: {}", again.body);
    server.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn room_and_total_caps_answer_503() -> Result<()> {
    let limits = AdmissionLimits { max_sessions: 3, max_sessions_per_room: 2, max_sessions_per_ip: 100, max_rooms: 100 };
    let (server, _dir) = start(limits, RateLimits::OFF).await?;
    let c = Client::new(&server);
    assert_eq!(c.publish("one").await?.status, StatusCode::CREATED);
    assert_eq!(c.watch("one", "v1").await?.status, StatusCode::CREATED);
    assert_full(&c.watch("one", "v2").await?, "room_full");
    assert_eq!(c.publish("two").await?.status, StatusCode::CREATED);
    assert_full(&c.publish("three").await?, "server_full");
    let metrics = server.metrics.render();
    assert!(metrics.contains("sellcast_sessions{kind=\"host\"} 2"), "{metrics}");
    assert!(metrics.contains("sellcast_sessions{kind=\"viewer\"} 1"), "{metrics}");
    assert!(metrics.contains("sellcast_sessions_refused_total{cause=\"room_full\",endpoint=\"whep\",status=\"503\"} 1"), "{metrics}");
    server.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn room_cap_answers_503_for_a_new_room_only() -> Result<()> {
    let limits = AdmissionLimits { max_rooms: 1, ..AdmissionLimits::generous() };
    let (server, _dir) = start(limits, RateLimits::OFF).await?;
    let c = Client::new(&server);
    assert_eq!(c.publish("one").await?.status, StatusCode::CREATED);
    assert_full(&c.publish("two").await?, "too_many_rooms");
    assert_eq!(c.watch("one", "v1").await?.status, StatusCode::CREATED, "the existing room still takes viewers");
    assert_eq!(server.rooms_loaded(), 1, "the refused room was not loaded");
    server.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_answer_429_with_retry_after_and_leave_pages_alone() -> Result<()> {
    let limits = RateLimits { signalling: Rate { per_second: 1, burst: 2 }, api: Rate { per_second: 1, burst: 3 } };
    let (server, _dir) = start(AdmissionLimits::generous(), limits).await?;
    let base = format!("http://{}", server.http_addr);
    let http = reqwest::Client::new();

    let mut api = Vec::new();
    for _ in 0..4 {
        api.push(http.get(format!("{base}/api/config")).send().await?);
    }
    let statuses: Vec<u16> = api.iter().map(|r| r.status().as_u16()).collect();
    assert_eq!(statuses, [200, 200, 200, 429], "a burst of 3 on the API, then 429");
    let retry_after: u64 = api[3].headers().get("retry-after").context("429 carries Retry-After")?.to_str()?.parse()?;
    assert!(retry_after >= 1);

    let mut whep = Vec::new();
    for _ in 0..3 {
        whep.push(http.post(format!("{base}/whep/shop")).header("content-type", "application/sdp").body("v=0\r\n").send().await?.status().as_u16());
    }
    assert_eq!(whep[2], 429, "a burst of 2 on signalling, then 429: {whep:?}");
    assert_ne!(whep[0], 429);

    for _ in 0..10 {
        assert_eq!(http.get(format!("{base}/watch/shop")).send().await?.status(), StatusCode::OK, "pages are not rate limited");
    }
    let metrics = server.metrics.render();
    assert!(metrics.contains("sellcast_rate_limited_total{bucket=\"api\"} 1"), "{metrics}");
    assert!(metrics.contains("sellcast_rate_limited_total{bucket=\"signalling\"} 1"), "{metrics}");
    server.shutdown().await;
    Ok(())
}

/// A flood that sends each request once the last is answered gets one refusal a second: the
/// server holds each 429 for `REFUSAL_HOLD` (1 s) instead of answering thousands a second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_over_its_rate_gets_its_refusals_no_faster_than_one_a_second_per_connection() -> Result<()> {
    let limits = RateLimits { signalling: Rate::OFF, api: Rate { per_second: 1, burst: 2 } };
    let (server, _dir) = start(AdmissionLimits::generous(), limits).await?;
    let base = format!("http://{}", server.http_addr);
    let http = reqwest::Client::builder().pool_max_idle_per_host(1).build()?;
    let flood = Duration::from_secs(3);
    let started = Instant::now();
    let (mut admitted, mut refused) = (0u32, 0u32);
    while started.elapsed() < flood {
        let answer = http.get(format!("{base}/api/config")).send().await?;
        match answer.status() {
            StatusCode::OK => admitted += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                assert!(answer.headers().contains_key("retry-after"), "a held 429 still carries Retry-After");
                refused += 1;
            }
            other => anyhow::bail!("unexpected {other}"),
        }
    }
    println!("in {:?}: {admitted} admitted, {refused} refused", started.elapsed());
    assert!(refused >= 1, "the flood went over its rate: {admitted} admitted, {refused} refused");
    // 3 s of one-after-another requests: at most 4 held refusals (one per second, and the one
    // in flight when the 3 s ended), where answering at once gives hundreds.
    assert!(refused <= 4, "{refused} refusals in {flood:?} for one connection");
    assert!(admitted <= 2 + 4, "the bucket (burst 2, 1/s) admitted {admitted}");
    server.shutdown().await;
    Ok(())
}

/// Ending a session only frees: it is held to the API's budget, not to the offers' (where 50
/// viewers behind one address leaving at once were refused and held their places until the
/// idle deadline).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_deletes_are_not_held_to_the_offer_rate() -> Result<()> {
    let limits = RateLimits { signalling: Rate { per_second: 1, burst: 3 }, api: Rate { per_second: 1, burst: 100 } };
    // Refusals at once: a held 429 would let the offers' bucket refill before the DELETE.
    let (server, _dir) = start_holding(AdmissionLimits::generous(), limits, Duration::ZERO).await?;
    let c = Client::new(&server);
    assert_eq!(c.publish("shop").await?.status, StatusCode::CREATED);
    let v1 = c.watch("shop", "v1").await?;
    let v2 = c.watch("shop", "v2").await?;
    assert_eq!((v1.status, v2.status), (StatusCode::CREATED, StatusCode::CREATED));
    for answer in [&v1, &v2] {
        // The offers' bucket is empty right before the DELETE, however slowly this machine
        // ran the offers above (it refills one a second).
        use_up_offers(&server).await?;
        let status = c.delete(answer.location.as_deref().context("Location")?).await?;
        assert_eq!(status, StatusCode::OK, "a DELETE after the offers' budget is spent still ends its session");
    }
    assert_eq!(server.admission.counts().sessions(), 1, "only the host is left");
    server.shutdown().await;
    Ok(())
}

/// Cheap offers (the rate limit counts them before the checks refuse them) until one is
/// refused with 429.
async fn use_up_offers(server: &sellcast_server::RunningServer) -> Result<()> {
    let http = reqwest::Client::new();
    let url = format!("http://{}/whep/shop", server.http_addr);
    for _ in 0..50 {
        let status = http.post(&url).header("content-type", "application/sdp").body("v=0\r\n").send().await?.status();
        if status == StatusCode::TOO_MANY_REQUESTS {
            return Ok(());
        }
    }
    anyhow::bail!("50 offers in a row and none refused with 429")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offer_failing_the_checks_is_400_before_any_room_or_place_is_taken() -> Result<()> {
    let (server, _dir) = start(AdmissionLimits::generous(), RateLimits::OFF).await?;
    let c = Client::new(&server);
    let token = c.api.dev_token("shop", "host", "host").await?;
    let valid = offer(Direction::SendOnly);
    let mut seventeen = valid.clone();
    seventeen.push_str(&"m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=rtpmap:111 opus/48000/2\r\n".repeat(17));
    let mut long = valid.clone();
    long.push_str(&"b=AS:1\r\n".repeat(3_000));
    let no_fingerprint: String = valid.split_inclusive('\n').filter(|l| !l.starts_with("a=fingerprint")).collect();
    let mut not_utf8 = valid.clone().into_bytes();
    not_utf8.extend_from_slice(&[0xff, 0xfe, b'\r', b'\n']);
    let cases: [(&str, Vec<u8>); 4] = [
        ("more than 16 m-lines", seventeen.into_bytes()),
        ("more than 2000 lines", long.into_bytes()),
        ("no a=fingerprint", no_fingerprint.into_bytes()),
        ("not UTF-8", not_utf8),
    ];
    for (why, body) in cases {
        let answer = c.post_sdp("whip", "shop", &token, body).await?;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{why}: {}", answer.body);
        assert!(answer.body.contains(why), "the body says {why}: {}", answer.body);
    }
    assert_eq!(server.rooms_loaded(), 0, "no room was created for a refused offer");
    assert_eq!(server.admission.counts().sessions(), 0);
    let answer = c.post_sdp("whip", "shop", &token, valid).await?;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
    server.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_offer_frees_its_place_with_the_command() -> Result<()> {
    let limits = AdmissionLimits { max_sessions_per_ip: 2, ..AdmissionLimits::default() };
    let (server, _dir) = start(limits, RateLimits::OFF).await?;
    let c = Client::new(&server);
    assert_eq!(c.publish("shop").await?.status, StatusCode::CREATED);
    // A second host while the first holds the room: refused by the media shard (409), after
    // admission, so only the ticket's drop gives the place back.
    let second = c.publish("shop").await?;
    assert_eq!(second.status, StatusCode::CONFLICT, "{}", second.body);
    let deadline = Instant::now() + Duration::from_secs(5);
    while server.admission.counts().sessions() != 1 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(server.admission.counts().sessions(), 1);
    server.shutdown().await;
    Ok(())
}
