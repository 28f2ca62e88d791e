//! Two independent WebRTC stacks: a webrtc-rs publisher sends synthetic VP8 + Opus over WHIP to
//! the str0m-based server, and webrtc-rs viewers receive it over WHEP.

use std::future::Future;
use std::ops::Range;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use sellcast_peer::{PublishOptions, Publisher, Viewer, ViewerStats};

const VIEWERS: usize = 20;
/// Media measured after every viewer is receiving.
const WINDOW: Duration = Duration::from_secs(8);

/// Media shards the server runs here: two, whatever the machine, so viewers always sit on
/// both the host's shard and a shard fed by the relay.
const SHARDS: usize = 2;

async fn server() -> Result<(sellcast_server::RunningServer, tempfile::TempDir)> {
    let dir = tempfile::tempdir()?;
    let config = sellcast_server::Config { media_threads: SHARDS, ..sellcast_server::Config::local(dir.path().join("sellcast.db")) };
    let s = sellcast_server::start(config).await?;
    Ok((s, dir))
}

/// One test of this file at a time: each runs a server and up to 21 WebRTC peers, and two at
/// once on a 2-core machine starve the peers enough to blur what is being tested.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The whole test, bounded: a hang fails instead of stalling the suite.
async fn bounded(limit: Duration, test: impl Future<Output = Result<()>>) -> Result<()> {
    let _turn = ONE_AT_A_TIME.lock().await;
    tokio::time::timeout(limit, test).await.with_context(|| format!("the test did not finish within {limit:?}"))?
}

/// Poll `cond` every 20 ms until true or `limit` passes.
async fn until(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) -> Result<()> {
    let deadline = Instant::now() + limit;
    while !cond() {
        if Instant::now() > deadline {
            bail!("timed out after {limit:?}: {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// A host live in `room` and `n` viewers, once every viewer receives video.
async fn live_room(base: &str, room: &str, n: usize) -> Result<(Publisher, Vec<Viewer>)> {
    let publisher = Publisher::connect(base, room, PublishOptions::default()).await?;
    let mut viewers = Vec::new();
    for _ in 0..n {
        viewers.push(Viewer::connect(base, room, None).await?);
    }
    until(Duration::from_secs(20), "every viewer receives video", || {
        viewers.iter().all(|v| v.inspect(|s| s.video.packets > 0))
    })
    .await?;
    Ok((publisher, viewers))
}

fn percentile(mut v: Vec<f64>, p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(((v.len().saturating_sub(1)) as f64 * p).round() as usize).copied().unwrap_or(f64::NAN)
}

/// Publisher counters sent in a window, per kind.
struct Sent {
    video: Range<u64>,
    audio: Range<u64>,
}

impl Sent {
    /// Fractions (video, audio) of the window's packets that `s` received.
    fn received(&self, s: &ViewerStats) -> (f64, f64) {
        let share = |got: usize, r: &Range<u64>| got as f64 / (r.end - r.start).max(1) as f64;
        (
            share(s.video.counters.range(self.video.clone()).count(), &self.video),
            share(s.audio.counters.range(self.audio.clone()).count(), &self.audio),
        )
    }
}

/// Where a viewer's missing counters lie (first few runs), for a failure message.
fn missing(s: &sellcast_peer::KindStats, sent: &Range<u64>) -> String {
    let mut runs: Vec<Range<u64>> = Vec::new();
    for c in sent.clone().filter(|c| !s.counters.contains(*c)) {
        match runs.last_mut() {
            Some(r) if r.end == c => r.end += 1,
            _ => runs.push(c..c + 1),
        }
    }
    format!(
        "missing runs {:?}{}; seq jumps {}, out of order {}, duplicates {}",
        &runs[..runs.len().min(6)],
        if runs.len() > 6 { " ..." } else { "" },
        s.seq_jumps,
        s.out_of_order,
        s.duplicates
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_viewers_each_receive_99_percent_of_packets_and_start_on_a_keyframe() -> Result<()> {
    bounded(Duration::from_secs(90), async {
        let (server, _dir) = server().await?;
        let base = format!("http://{}", server.http_addr);
        let (publisher, viewers) = live_room(&base, "fanout", VIEWERS).await?;

        // The window: at least 99 % of the packets the publisher sends in it must reach each
        // viewer (loopback on a busy box can drop a packet under load). Records
        // start afresh so the latency samples leave out the keyframe group replayed at join.
        let before = (publisher.video_sent(), publisher.audio_sent());
        viewers.iter().for_each(Viewer::reset);
        tokio::time::sleep(WINDOW).await;
        let sent = Sent { video: before.0..publisher.video_sent(), audio: before.1..publisher.audio_sent() };
        assert!(sent.video.end - sent.video.start > 1000, "the publisher really sent video: {:?}", sent.video);
        // Packets still in flight at the window's end land within a bounded wait.
        let complete = |v: &Viewer| {
            let (video, audio) = v.inspect(|s| sent.received(s));
            video >= 0.99 && audio >= 0.99
        };
        if until(Duration::from_secs(3), "stragglers", || viewers.iter().all(complete)).await.is_err() {
            // Fall through: the assertions below say which viewer fell short.
        }

        let mut first_frame_ms = Vec::new();
        let mut latency_ms = Vec::new();
        let mut short = Vec::new();
        for (i, v) in viewers.iter().enumerate() {
            let s = v.stats();
            let (video, audio) = sent.received(&s);
            if video < 0.99 {
                short.push(format!("viewer {i} got {:.2}% of video {:?}: {}", video * 100.0, sent.video, missing(&s.video, &sent.video)));
            }
            if audio < 0.99 {
                short.push(format!("viewer {i} got {:.2}% of audio {:?}: {}", audio * 100.0, sent.audio, missing(&s.audio, &sent.audio)));
            }
            assert_eq!(s.first_video_is_keyframe, Some(true), "viewer {i}'s first video packet begins a keyframe: {:?}", s.first_video);
            let first = s.first_video_after.context("first video time")?;
            first_frame_ms.push(first.as_secs_f64() * 1000.0);
            latency_ms.extend(s.video.latency_us.iter().chain(&s.audio.latency_us).map(|us| *us as f64 / 1000.0));
        }
        assert!(
            short.is_empty(),
            "every viewer gets >= 99% of each kind:\n{}\n(the publisher was sent {} NACKs)",
            short.join("\n"),
            publisher.nacks()
        );
        // The server's own account (GET /api/stats/media, copied out twice a second): every
        // live packet sent in the window was timed through the server, and datagrams left in
        // sendmmsg batches rather than one syscall each.
        tokio::time::sleep(Duration::from_millis(600)).await;
        let media: serde_json::Value = reqwest::get(format!("{base}/api/stats/media")).await?.json().await?;
        let window_packets = (sent.video.end - sent.video.start + sent.audio.end - sent.audio.start) * VIEWERS as u64;
        let timed = media["forward_latency_us"]["count"].as_u64().context("forward_latency_us.count")?;
        let (out, calls) = (media["datagrams_out"].as_u64().unwrap_or(0), media["send_syscalls"].as_u64().unwrap_or(0));
        assert!(timed * 100 >= window_packets * 99, "live packets timed {timed} < 99% of the window's {window_packets}");
        assert!(out >= timed, "datagrams out {out} >= packets timed {timed}");
        assert!(calls > 0 && out > calls * 2, "{out} datagrams in {calls} send syscalls: not batched");
        // Viewers were dealt over both shards, both shards sent media, and the host's shard
        // handed each of its packets to the other shard once (not once per viewer).
        let shards = media["shards"].as_array().context("shards")?;
        assert_eq!(shards.len(), SHARDS);
        for (i, shard) in shards.iter().enumerate() {
            let (peers, out) = (shard["peers"].as_u64().unwrap_or(0), shard["datagrams_out"].as_u64().unwrap_or(0));
            assert!(peers >= (VIEWERS / SHARDS) as u64, "shard {i} holds {peers} peers, expected at least {}", VIEWERS / SHARDS);
            assert!(out * SHARDS as u64 * 2 >= timed, "shard {i} sent {out} datagrams of {timed} timed packets");
        }
        let host_packets = sent.video.end - sent.video.start + sent.audio.end - sent.audio.start;
        let relayed = media["relayed"].as_u64().unwrap_or(0);
        assert!(relayed >= host_packets, "relayed {relayed} < the window's {host_packets} host packets");
        let ever_sent = publisher.video_sent() + publisher.audio_sent();
        assert!(relayed <= ever_sent + 8, "relayed {relayed} of {ever_sent} host packets: more than once per packet");
        println!(
            "server: forward latency us p50={} p99={} ({} datagrams per send syscall)",
            media["forward_latency_us"]["p50"], media["forward_latency_us"]["p99"], out / calls.max(1)
        );
        println!(
            "first_frame_ms viewers={VIEWERS} p50={:.1} p99={:.1}",
            percentile(first_frame_ms.clone(), 0.5),
            percentile(first_frame_ms, 0.99)
        );
        println!(
            "one_way_latency_ms p50={:.2} p99={:.2} at_publisher keyframe_requests={} nacks={}",
            percentile(latency_ms.clone(), 0.5),
            percentile(latency_ms, 0.99),
            publisher.keyframe_requests(),
            publisher.nacks()
        );
        for v in viewers {
            v.close().await;
        }
        publisher.close().await;
        server.shutdown().await;
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn early_viewers_get_the_host_and_seq_continues_across_a_host_restart() -> Result<()> {
    bounded(Duration::from_secs(90), async {
        let (server, _dir) = server().await?;
        let base = format!("http://{}", server.http_addr);
        // Viewers join the room before the host is live.
        server.open_room("restart")?;
        let mut viewers = Vec::new();
        for _ in 0..3 {
            viewers.push(Viewer::connect(&base, "restart", None).await?);
        }
        let first = Publisher::connect(&base, "restart", PublishOptions::default()).await?;
        until(Duration::from_secs(15), "media after the host went live", || {
            viewers.iter().all(|v| v.inspect(|s| s.video.packets > 100 && s.audio.packets > 10))
        })
        .await?;
        for (i, v) in viewers.iter().enumerate() {
            assert_eq!(v.inspect(|s| s.first_video_is_keyframe), Some(true), "early viewer {i} starts on a keyframe");
        }
        first.close().await;
        until(Duration::from_secs(10), "room offline", || !server.status_board.status("restart").live).await?;
        let at_drop: Vec<(u64, u64)> = viewers.iter().map(|v| v.inspect(|s| (s.video.packets, s.audio.packets))).collect();

        // A new host session (new SSRCs, seq and timestamp bases, counters from 0) in the same room.
        let second = Publisher::connect(&base, "restart", PublishOptions::default()).await?;
        until(Duration::from_secs(15), "media after the host came back", || {
            viewers.iter().zip(&at_drop).all(|(v, (video, audio))| {
                v.inspect(|s| s.video.packets > video + 100 && s.audio.packets > audio + 10)
            })
        })
        .await?;
        for (i, v) in viewers.iter().enumerate() {
            let s = v.stats();
            assert_eq!(s.video.publishers, 2, "viewer {i} saw the second publisher's counters start over");
            assert_eq!(s.video.seq_jumps, 0, "viewer {i}'s video seq never jumped across the restart");
            assert_eq!(s.audio.seq_jumps, 0, "viewer {i}'s audio seq never jumped across the restart");
            assert_eq!(s.video.out_of_order + s.audio.out_of_order, 0, "viewer {i} got nothing out of order");
        }
        for v in viewers {
            v.close().await;
        }
        second.close().await;
        server.shutdown().await;
        Ok(())
    })
    .await
}

/// A viewer's keyframe request reaches the host from either shard (the mirror sends it home),
/// and a storm of them from viewers on both shards reaches the host as a trickle.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyframe_requests_from_both_shards_reach_the_host_throttled() -> Result<()> {
    bounded(Duration::from_secs(90), async {
        let (server, _dir) = server().await?;
        let base = format!("http://{}", server.http_addr);
        // Viewers are dealt round robin: two on each shard, whichever is the host's.
        let (publisher, viewers) = live_room(&base, "pli", 4).await?;
        // The stats are copied out twice a second: wait for a copy showing both shards' viewers.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let media: serde_json::Value = reqwest::get(format!("{base}/api/stats/media")).await?.json().await?;
            let shards = media["shards"].as_array().context("shards")?;
            let peers: Vec<u64> = shards.iter().map(|s| s["peers"].as_u64().unwrap_or(0)).collect();
            if peers.len() == SHARDS && peers.iter().all(|p| *p >= 2) {
                break;
            }
            if Instant::now() > deadline {
                bail!("viewers not on both shards: peers per shard {peers:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }

        // One viewer on each shard in turn asks until the host hears it.
        for (i, viewer) in viewers.iter().take(2).enumerate() {
            let before = publisher.keyframe_requests();
            let deadline = Instant::now() + Duration::from_secs(10);
            while publisher.keyframe_requests() == before {
                if Instant::now() > deadline {
                    bail!("viewer {i}'s keyframe requests never reached the host");
                }
                viewer.request_keyframe().await?;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }

        // A storm: every viewer asks every 25 ms for 2 s (about 300 requests); the host is asked
        // at most once per second by the home shard, whatever the mirrors relay.
        let before = publisher.keyframe_requests();
        let storm = Instant::now();
        let mut sent = 0;
        while storm.elapsed() < Duration::from_secs(2) {
            for v in &viewers {
                v.request_keyframe().await?;
                sent += 1;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        tokio::time::sleep(Duration::from_millis(1200)).await; // a deferred request may still fire
        let reached = publisher.keyframe_requests() - before;
        let window = storm.elapsed();
        println!("keyframe storm: {sent} viewer requests, {reached} reached the host in {window:?}");
        assert!(reached >= 1, "the storm reached the host at all");
        // One per second of the window, plus one for where the window began in the interval.
        let allowed = window.as_secs() + 2;
        assert!(reached <= allowed, "{reached} of {sent} requests reached the host in {window:?}: not throttled to 1/s");
        for v in viewers {
            v.close().await;
        }
        publisher.close().await;
        server.shutdown().await;
        Ok(())
    })
    .await
}
