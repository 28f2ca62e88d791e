//! One load step: a synthetic host, N synthetic viewers, a measured window.

use std::time::{Duration, Instant};

use anyhow::Result;
use sellcast_peer::{PublishOptions, Publisher, RtpSource, RtpTargets, Viewer};
use serde::Serialize;

use crate::janus::{self, JanusTarget};
use crate::viewer_window::ViewerWindow;
use crate::{media_stats, proc_stats};
use crate::server::{spawn, Target};

/// The server under test: sellcast (WHIP host, WHEP viewers) or Janus (plain-RTP host into a
/// Streaming mountpoint, viewers through its HTTP API). Same stream, same viewer code.
#[derive(Debug, Clone)]
pub enum System {
    Sellcast(Target),
    Janus(JanusTarget),
}

impl System {
    pub fn name(&self) -> &'static str {
        match self {
            System::Sellcast(_) => "sellcast",
            System::Janus(_) => "janus",
        }
    }
}

/// The synthetic host, as each server ingests it.
enum Host {
    Whip(Publisher),
    Rtp(RtpSource),
}

impl Host {
    fn sent(&self) -> (u64, u64) {
        match self {
            Host::Whip(p) => (p.video_sent(), p.audio_sent()),
            Host::Rtp(r) => (r.video_sent(), r.audio_sent()),
        }
    }

    /// PLI/FIR the host was sent (a plain-RTP host has no feedback path: always 0).
    fn keyframe_requests(&self) -> u64 {
        match self {
            Host::Whip(p) => p.keyframe_requests(),
            Host::Rtp(_) => 0,
        }
    }

    async fn close(self) {
        match self {
            Host::Whip(p) => p.close().await,
            Host::Rtp(r) => drop(r),
        }
    }
}

/// What a step does.
#[derive(Debug, Clone)]
pub struct StepOptions {
    pub viewers: usize,
    pub seconds: u64,
    pub join_rate: f64,
    pub bitrate: u64,
}

#[derive(Debug, Serialize)]
pub struct StepResult {
    /// "sellcast" or "janus".
    pub server: String,
    pub viewers: usize,
    pub seconds: f64,
    pub server_cpu_core_pct: f64,
    pub forwarded_pps: f64,
    pub cpu_us_per_forwarded_packet: f64,
    pub server_rss_mb: f64,
    pub rss_per_viewer_kb: f64,
    pub loss_pct_mean: f64,
    pub loss_pct_worst: f64,
    pub latency_ms_p50: f64,
    pub latency_ms_p99: f64,
    pub latency_ms_p999: f64,
    /// Subscribe request (WHEP POST, Janus `watch`) to the first packet beginning a keyframe.
    pub first_frame_ms_p50: f64,
    pub first_frame_ms_p99: f64,
    pub first_packet_keyframe_pct: f64,
    /// Time live packets spent inside the server (arrival to send), from its own stats API:
    /// the SFU-added latency. sellcast only.
    pub sfu_latency_us_p50: Option<f64>,
    pub sfu_latency_us_p99: Option<f64>,
    pub sfu_latency_us_p999: Option<f64>,
    /// Datagrams per send syscall (sendmmsg batching), sellcast only.
    pub datagrams_per_syscall: Option<f64>,
    /// Keyframe requests (PLI/FIR) the host received during the whole step, joins included.
    pub host_keyframe_requests: u64,
    /// (quantile, latency ms) points of the one-way latency distribution, for CDF plots.
    pub latency_cdf_ms: Vec<(f64, f64)>,
}


/// Progress reports while a step runs: (viewers joined so far, total).
pub type Progress<'a> = &'a (dyn Fn(usize, usize) + Sync);

pub async fn run_step(system: &System, opts: &StepOptions, progress: Progress<'_>) -> Result<StepResult> {
    let viewers = opts.viewers;
    let dir = tempfile::tempdir()?;
    let (mut server, pid, base) = match system {
        System::Sellcast(t) => spawn(t, dir.path()).await?,
        System::Janus(j) => janus::spawn(j, dir.path()).await?,
    };
    let rss_idle = proc_stats::rss(pid)?;
    let publish = PublishOptions { bitrate_bps: opts.bitrate, ..PublishOptions::default() };
    let publisher = match system {
        System::Sellcast(_) => Host::Whip(Publisher::connect(&base, "bench", publish).await?),
        System::Janus(j) => {
            let targets = RtpTargets { video: j.video_addr(), video_pt: janus::VIDEO_PT, audio: j.audio_addr(), audio_pt: janus::AUDIO_PT };
            Host::Rtp(RtpSource::start(targets, publish).await?)
        }
    };
    let mut peers = Vec::with_capacity(viewers);
    let gap = Duration::from_secs_f64(1.0 / opts.join_rate.max(0.1));
    for _ in 0..viewers {
        let started = Instant::now();
        let viewer = match system {
            System::Sellcast(_) => Viewer::connect(&base, "bench", None).await?,
            System::Janus(_) => Viewer::watch_janus(&base, janus::MOUNTPOINT, Duration::from_secs(15)).await?,
        };
        peers.push(viewer);
        progress(peers.len(), viewers);
        if let Some(rest) = gap.checked_sub(started.elapsed()) {
            tokio::time::sleep(rest).await;
        }
    }
    tokio::time::sleep(Duration::from_secs(2)).await; // warm-up: every viewer is streaming
    for v in &peers {
        v.reset();
    }
    let http = reqwest::Client::new();
    // A server without the stats API (an older build, measured for a before/after) gives None.
    let stats0 = match system {
        System::Sellcast(_) => media_stats::read(&http, &base).await.ok(),
        System::Janus(_) => None,
    };
    let sent0 = publisher.sent();
    let cpu0 = proc_stats::cpu(pid)?;
    tokio::time::sleep(Duration::from_secs(opts.seconds)).await;
    let cpu1 = proc_stats::cpu(pid)?;
    // The packet window must be the CPU window: read the host's counters at once.
    let sent1 = publisher.sent();
    // The server copies its stats out every 500 ms: wait for a copy that covers the window.
    let server_window = match &stats0 {
        Some(start) => {
            tokio::time::sleep(Duration::from_millis(600)).await;
            let end = media_stats::read(&http, &base).await?;
            Some(media_stats::window(start, &end)?)
        }
        None => None,
    };
    let rss = proc_stats::rss(pid)?;
    tokio::time::sleep(Duration::from_millis(500)).await; // in-flight packets land

    let window = cpu1.at.duration_since(cpu0.at).as_secs_f64();
    // Packets the host sent inside the window that reached each viewer: what the server
    // forwarded to it while its CPU was measured (packets read later don't count).
    let seen = ViewerWindow::collect(&peers, sent0, sent1)?;
    let cpu_share = proc_stats::core_share(cpu0, cpu1);
    let pps = seen.received as f64 / window;
    let result = StepResult {
        server: system.name().to_owned(),
        viewers,
        seconds: window,
        server_cpu_core_pct: 100.0 * cpu_share,
        forwarded_pps: pps,
        cpu_us_per_forwarded_packet: if pps > 0.0 { cpu_share * 1e6 / pps } else { f64::NAN },
        server_rss_mb: rss as f64 / 1e6,
        rss_per_viewer_kb: rss.saturating_sub(rss_idle) as f64 / 1e3 / viewers.max(1) as f64,
        loss_pct_mean: seen.loss_pct_mean(),
        loss_pct_worst: seen.loss_pct_worst(),
        latency_ms_p50: seen.latency_ms(0.5),
        latency_ms_p99: seen.latency_ms(0.99),
        latency_ms_p999: seen.latency_ms(0.999),
        first_frame_ms_p50: seen.first_frame_us.value_at_quantile(0.5) as f64 / 1e3,
        first_frame_ms_p99: seen.first_frame_us.value_at_quantile(0.99) as f64 / 1e3,
        first_packet_keyframe_pct: 100.0 * seen.keyframe_first as f64 / viewers.max(1) as f64,
        host_keyframe_requests: publisher.keyframe_requests(),
        sfu_latency_us_p50: server_window.map(|w| w.latency_us_p50),
        sfu_latency_us_p99: server_window.map(|w| w.latency_us_p99),
        sfu_latency_us_p999: server_window.map(|w| w.latency_us_p999),
        datagrams_per_syscall: server_window.map(|w| w.datagrams_per_syscall),
        latency_cdf_ms: [0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 0.995, 0.999, 1.0]
            .iter()
            .map(|q| (*q, seen.latency_ms(*q)))
            .collect(),
    };
    for v in peers {
        v.close().await;
    }
    publisher.close().await;
    let _ = server.start_kill();
    let _ = server.wait().await;
    Ok(result)
}

pub fn print_row(r: &StepResult) {
    println!(
        "{:<8} viewers={:>4} cpu={:>5.1}% fwd_pps={:>8.0} us/pkt={:>5.2} rss={:>6.1}MB rss/viewer={:>6.1}KB loss={:.3}%/{:.3}% lat_ms p50={:.2} p99={:.2} p99.9={:.2} first_frame_ms p50={:.1} p99={:.1} keyframe_first={:.0}% host_plis={} sfu_us p50={} p99={} p99.9={} dgrams/syscall={}",
        r.server, r.viewers, r.server_cpu_core_pct, r.forwarded_pps, r.cpu_us_per_forwarded_packet, r.server_rss_mb, r.rss_per_viewer_kb,
        r.loss_pct_mean, r.loss_pct_worst, r.latency_ms_p50, r.latency_ms_p99, r.latency_ms_p999, r.first_frame_ms_p50, r.first_frame_ms_p99, r.first_packet_keyframe_pct, r.host_keyframe_requests,
        opt(r.sfu_latency_us_p50), opt(r.sfu_latency_us_p99), opt(r.sfu_latency_us_p999), opt(r.datagrams_per_syscall)
    );
}

/// A figure only one server reports: "-" for the other.
pub fn opt(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| format!("{v:.1}"))
}
