//! Third-party-like viewers on a slow link, against the real binary: a simulcast synthetic
//! host (rids q, h, f at 150 kbit/s, 500 kbit/s and 1.7 Mbit/s) and two WHEP viewers, each
//! behind a 600 kbit/s downlink emulated in its own receive path (a `tbf`-like bucket with a
//! 200 ms queue):
//! - one offers only REMB (no `transport-cc`) and sends REMB from its own receive-side
//!   estimate, as aiortc does;
//! - one offers no bandwidth feedback at all (NACK, PLI and receiver reports only).
//!
//! Each must end up on a layer that fits (the server's `viewers[]` layer, whose measured
//! bitrate in `layers[]` is under 600 kbit/s), stay there, and keep receiving decodable frames:
//! after settling, no gap over 1 s between decodable frames for 10 s.
//!
//! A server that does not adapt (one stream for everyone, or no `viewers[]`) fails it: the 1.7
//! Mbit/s layer does not fit the link, and the check names what is missing.
//!
//! Control run: with the links opened to unlimited (`LINK_FEEDBACK_CONTROL=unlimited`), the
//! server rightly sends the full layer, and the "fits under 600 kbit/s" check fails.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use sellcast_bench::viewer_layers::{self, LayerView};
use sellcast_bench::{server, Target};
use sellcast_peer::{LinkProfile, PublishOptions, Publisher, SimulcastLayer, Viewer, ViewerOptions};

const ROOM: &str = "links";
const LINK_BPS: u64 = 600_000;
/// A layer is settled once the server has sent the same one for this long.
const SETTLED_FOR: Duration = Duration::from_secs(5);
const SETTLE_LIMIT: Duration = Duration::from_secs(40);
const WATCH: Duration = Duration::from_secs(10);
const LONGEST_GAP: Duration = Duration::from_secs(1);

fn link(feedback: &str) -> Result<LinkProfile> {
    let rate = std::env::var("LINK_FEEDBACK_CONTROL").ok().filter(|v| v == "unlimited").unwrap_or_else(|| "600kbit".to_owned());
    Ok(format!("{rate}/{feedback}").parse()?)
}

/// Join one viewer behind `profile` and find its server peer id (the one new `viewers[]` entry).
async fn join(http: &reqwest::Client, base: &str, profile: LinkProfile) -> Result<(Viewer, u64)> {
    let before: Vec<u64> = viewer_layers::read(http, base).await?.viewers.iter().map(|v| v.peer).collect();
    let viewer = Viewer::connect(base, ROOM, ViewerOptions { link: Some(profile), ..ViewerOptions::default() }).await?;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let view = viewer_layers::read(http, base).await?;
        if let Some(v) = view.viewers.iter().find(|v| v.room == ROOM && !before.contains(&v.peer)) {
            return Ok((viewer, v.peer));
        }
        if Instant::now() > deadline {
            bail!("the viewer behind {profile} never appeared in viewers[]");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// (layer index, its measured bitrate) the server sends `peer`, if it sends one.
fn sent_layer(view: &LayerView, peer: u64) -> Option<(u8, u64)> {
    let v = view.viewer(peer)?;
    if v.paused {
        return None;
    }
    let index = v.layer_index?;
    Some((index, view.layer(ROOM, index).map_or(0, |l| l.bitrate_bps)))
}

/// Poll until every viewer has had the same layer for `SETTLED_FOR`; returns when each settled.
async fn settle(http: &reqwest::Client, base: &str, peers: &[u64], started: Instant) -> Result<Vec<Duration>> {
    let mut since: Vec<Option<(Option<u8>, Instant)>> = vec![None; peers.len()];
    loop {
        let view = viewer_layers::read(http, base).await?;
        let now = Instant::now();
        for (i, peer) in peers.iter().enumerate() {
            let layer = sent_layer(&view, *peer).map(|(index, _)| index);
            match since[i] {
                Some((held, _)) if held == layer => {}
                _ => since[i] = Some((layer, now)),
            }
        }
        let settled = since.iter().all(|s| s.is_some_and(|(layer, at)| layer.is_some() && now.duration_since(at) >= SETTLED_FOR));
        if settled {
            return Ok(since.iter().flatten().map(|(_, at)| at.duration_since(started)).collect());
        }
        if started.elapsed() > SETTLE_LIMIT {
            let labels: Vec<String> = peers.iter().map(|p| format!("{p}: {:?}", view.viewer(*p))).collect();
            bail!("the viewers did not settle on a layer within {SETTLE_LIMIT:?}: {labels:?}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remb_only_and_feedbackless_viewers_behind_600_kbit_settle_on_a_layer_that_fits_and_keep_playing() -> Result<()> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let dir = tempfile::tempdir()?;
    let (mut child, _pid, base) = server::spawn(&Target::new(env!("CARGO_BIN_EXE_sellcast"), port), dir.path()).await?;
    // The server closes a keep-alive connection idle for its 10 s header timeout; the watch
    // below sleeps that long, so a pooled connection could be closed under the next request.
    let http = reqwest::Client::builder().pool_idle_timeout(Duration::from_secs(2)).build()?;
    let outcome = async {
        viewer_layers::read(&http, &base).await.context("before anything else: the server must report per-viewer layers")?;
        let publish = PublishOptions { layers: SimulcastLayer::three(1_700_000), ..PublishOptions::default() };
        let host = Publisher::connect(&base, ROOM, publish).await?;
        let started = Instant::now();
        let (remb, remb_peer) = join(&http, &base, link("remb")?).await?;
        let (none, none_peer) = join(&http, &base, link("none")?).await?;
        let settled = settle(&http, &base, &[remb_peer, none_peer], started).await?;
        let view = viewer_layers::read(&http, &base).await?;
        println!("settled after {settled:?}; layers: {:?}", view.layers.iter().filter(|l| l.room == ROOM).collect::<Vec<_>>());
        for (name, peer) in [("REMB-only", remb_peer), ("no-feedback", none_peer)] {
            println!("{name}: {:?}", view.viewer(peer));
        }
        for v in [&remb, &none] {
            v.reset();
        }
        let watch_from = Instant::now();
        tokio::time::sleep(WATCH).await;
        let view_after = viewer_layers::read(&http, &base).await?;
        for (name, viewer, peer) in [("REMB-only", &remb, remb_peer), ("no-feedback", &none, none_peer)] {
            let (index, bitrate) = sent_layer(&view_after, peer).with_context(|| format!("{name}: paused or without a layer after settling: {:?}", view_after.viewer(peer)))?;
            let (frames, (lost, sent)) = viewer.video_frames();
            let link_drops = viewer.impairment().map_or(0, |i| i.dropped_by_queue());
            println!(
                "{name}: layer {index} at {bitrate} bit/s; {} decodable frames in {:?}, longest gap {:?}, frozen {:?}; lost after rtx {lost}/{sent}; link queue drops {link_drops}; rembs sent {}",
                frames.decodable_frames, watch_from.elapsed(), frames.longest_gap, frames.frozen, viewer.stats().rembs_sent
            );
            if bitrate == 0 || bitrate >= LINK_BPS {
                bail!("{name}: the server sends layer {index} at {bitrate} bit/s, which does not fit a {LINK_BPS} bit/s link");
            }
            if frames.decodable_frames < 150 {
                bail!("{name}: only {} decodable frames in {WATCH:?}", frames.decodable_frames);
            }
            if frames.longest_gap > LONGEST_GAP {
                bail!("{name}: a {:?} gap between decodable frames after settling", frames.longest_gap);
            }
        }
        remb.close().await;
        none.close().await;
        host.close().await;
        Ok(())
    };
    let result = tokio::time::timeout(Duration::from_secs(120), outcome).await.unwrap_or_else(|_| bail!("the test ran over 120 s"));
    let _ = child.start_kill();
    let _ = child.wait().await;
    result
}
