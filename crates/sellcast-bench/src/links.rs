//! The mixed-link run: one synthetic host (optionally simulcast), viewers split over link
//! profiles (`60%:unlimited,30%:1mbit/1%,10%:300kbit/3%`), each viewer's downlink emulated in
//! its own receive path. Per profile it reports the layer the server ended up sending, how long
//! each viewer took to settle, frozen time, loss after retransmission, one-way p99 and pauses;
//! for the whole run the server's CPU per forwarded packet.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use hdrhistogram::Histogram;
use sellcast_peer::{LinkProfile, PublishOptions, Publisher, SimulcastLayer, Viewer, ViewerOptions};
use serde::Serialize;

use crate::proc_stats;
use crate::server::{spawn, Target};
use crate::viewer_layers::{self, Tie};

/// The layer must not change for this long to count as settled.
pub const SETTLED_FOR: Duration = Duration::from_secs(5);

/// Viewers split over link profiles by percentage.
#[derive(Debug, Clone, PartialEq)]
pub struct LinkMix {
    pub parts: Vec<(u32, LinkProfile)>,
}

impl FromStr for LinkMix {
    type Err = anyhow::Error;

    /// `PCT%:PROFILE,PCT%:PROFILE,...` with percentages adding up to 100; a lone `PROFILE` is 100 %.
    fn from_str(s: &str) -> Result<Self> {
        let mut parts = Vec::new();
        for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let (pct, profile) = match item.split_once(':') {
                Some((pct, profile)) => {
                    let pct = pct.trim().strip_suffix('%').unwrap_or(pct.trim());
                    (pct.parse::<u32>().with_context(|| format!("share {pct:?} in {item:?}"))?, profile)
                }
                None => (100, item),
            };
            parts.push((pct, profile.parse::<LinkProfile>().with_context(|| format!("link profile {profile:?}"))?));
        }
        let total: u32 = parts.iter().map(|(p, _)| p).sum();
        if parts.is_empty() || total != 100 {
            bail!("link shares must add up to 100 % (got {total} %)");
        }
        Ok(LinkMix { parts })
    }
}

impl LinkMix {
    /// How many of `n` viewers each profile gets (largest remainder: they add up to `n`).
    pub fn counts(&self, n: usize) -> Vec<usize> {
        let exact: Vec<f64> = self.parts.iter().map(|(p, _)| n as f64 * f64::from(*p) / 100.0).collect();
        let mut counts: Vec<usize> = exact.iter().map(|e| e.floor() as usize).collect();
        let mut order: Vec<usize> = (0..exact.len()).collect();
        order.sort_by(|a, b| (exact[*b] - exact[*b].floor()).total_cmp(&(exact[*a] - exact[*a].floor())));
        let short = n - counts.iter().sum::<usize>();
        for i in order.into_iter().take(short) {
            counts[i] += 1;
        }
        counts
    }
}

#[derive(Debug, Clone)]
pub struct LinkOptions {
    pub viewers: usize,
    pub mix: LinkMix,
    /// Seconds measured (frozen time, loss, latency, CPU), after `settle`.
    pub seconds: u64,
    /// Seconds between the last join and the measured window.
    pub settle: u64,
    pub join_rate: f64,
    /// The host's bitrate (its top layer's when simulcast).
    pub bitrate: u64,
    pub simulcast: bool,
}

/// One link profile's figures.
#[derive(Debug, Serialize)]
pub struct ProfileResult {
    pub profile: String,
    pub viewers: usize,
    /// The layer the server sends each viewer at the end (rid, index, "paused"), from its
    /// `viewers[]`; empty when the server does not report layers.
    pub server_layers: BTreeMap<String, usize>,
    /// The layer each viewer last received, as the host marked it in the payload.
    pub received_layers: BTreeMap<String, usize>,
    /// Join to the first time the received layer then stays the same for 5 s (settled viewers).
    pub settle_s_p50: Option<f64>,
    pub settle_s_max: Option<f64>,
    pub unsettled: usize,
    /// Gaps over 200 ms between decodable frames, seconds per minute of the window.
    pub frozen_s_per_min_mean: f64,
    pub frozen_s_per_min_worst: f64,
    /// Video packets the server sent that never arrived, after retransmission.
    pub loss_after_rtx_pct_mean: f64,
    pub loss_after_rtx_pct_worst: f64,
    pub one_way_ms_p50: f64,
    pub one_way_ms_p99: f64,
    /// Video pauses and layer switches the server counted for these viewers (whole run).
    pub pauses: Option<u64>,
    pub switches: Option<u64>,
    pub estimate_kbps_median: Option<f64>,
    pub estimate_sources: BTreeMap<String, usize>,
}

#[derive(Debug, Serialize)]
pub struct LinkResult {
    pub viewers: usize,
    pub simulcast: bool,
    pub server_args: Vec<String>,
    pub seconds: f64,
    pub server_cpu_core_pct: f64,
    /// Media packets the viewers received per second in the window (after their links).
    pub forwarded_pps: f64,
    pub cpu_us_per_forwarded_packet: f64,
    /// Datagrams the server sent per second in the window (its own count, before the links).
    pub server_datagrams_out_pps: Option<f64>,
    pub cpu_us_per_datagram_out: Option<f64>,
    pub profiles: Vec<ProfileResult>,
}

/// One joined viewer and what the bench knows about it.
struct Joined {
    viewer: Viewer,
    group: usize,
    joined_at: Instant,
}

/// The mean, 0 for none (a float sum of nothing is -0.0).
fn mean(values: &[f64]) -> f64 {
    values.iter().fold(0.0, |a, v| a + v) / values.len().max(1) as f64
}

fn quantile(values: &[f64], q: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    Some(v[((v.len() - 1) as f64 * q).round() as usize])
}

/// Join to the first layer change after which the layer held for `SETTLED_FOR`, or `None`.
pub fn settle_time(joined_at: Instant, changes: &[(Instant, Option<u8>)], now: Instant) -> Option<Duration> {
    changes.iter().enumerate().find_map(|(i, (at, _))| {
        let until = changes.get(i + 1).map_or(now, |(next, _)| *next);
        (until.saturating_duration_since(*at) >= SETTLED_FOR).then(|| at.saturating_duration_since(joined_at))
    })
}

fn layer_name(layer: Option<u8>) -> String {
    match layer {
        Some(0) => "q".into(),
        Some(1) => "h".into(),
        Some(2) => "f".into(),
        Some(i) => i.to_string(),
        None => "single".into(),
    }
}

async fn datagrams_out(http: &reqwest::Client, base: &str) -> Option<u64> {
    let v: serde_json::Value = http.get(format!("{base}/api/stats/media")).send().await.ok()?.json().await.ok()?;
    v["datagrams_out"].as_u64()
}

pub async fn run(target: &Target, opts: &LinkOptions) -> Result<LinkResult> {
    let dir = tempfile::tempdir()?;
    let (mut server, pid, base) = spawn(target, dir.path()).await?;
    let room = "bench";
    let layers = if opts.simulcast { SimulcastLayer::three(opts.bitrate) } else { Vec::new() };
    let publisher = Publisher::connect(&base, room, PublishOptions { bitrate_bps: opts.bitrate, layers, ..PublishOptions::default() }).await?;
    let http = reqwest::Client::new();
    // A server without viewers[] still runs; its per-viewer columns stay empty.
    let mut tie = match Tie::start(&http, &base).await {
        Ok(t) => Some(t),
        Err(e) => {
            eprintln!("note: {e:#}");
            None
        }
    };
    let counts = opts.mix.counts(opts.viewers);
    let gap = Duration::from_secs_f64(1.0 / opts.join_rate.max(0.1));
    let mut joined: Vec<Joined> = Vec::with_capacity(opts.viewers);
    for (group, ((_, profile), count)) in opts.mix.parts.iter().zip(&counts).enumerate() {
        for _ in 0..*count {
            let started = Instant::now();
            let viewer = Viewer::connect(&base, room, ViewerOptions { link: Some(*profile), ..ViewerOptions::default() }).await?;
            joined.push(Joined { viewer, group, joined_at: started });
            if let Some(rest) = gap.checked_sub(started.elapsed()) {
                tokio::time::sleep(rest).await;
            }
        }
        if let Some(t) = tie.as_mut() {
            if let Err(e) = t.take(&http, &base, room, group, *count).await {
                eprintln!("note: cannot tie viewers[] to profiles: {e:#}");
                tie = None;
            }
        }
    }
    tokio::time::sleep(Duration::from_secs(opts.settle)).await;
    for j in &joined {
        j.viewer.reset();
    }
    let out0 = datagrams_out(&http, &base).await;
    let cpu0 = proc_stats::cpu(pid)?;
    tokio::time::sleep(Duration::from_secs(opts.seconds)).await;
    let cpu1 = proc_stats::cpu(pid)?;
    let out1 = datagrams_out(&http, &base).await;
    let now = Instant::now();
    let groups = tie.map(|t| t.groups);
    let view = match &groups {
        Some(_) => viewer_layers::read(&http, &base).await.ok(),
        None => None,
    };
    let window = cpu1.at.duration_since(cpu0.at).as_secs_f64();
    let minutes = window / 60.0;
    let mut forwarded = 0u64;
    let mut profiles = Vec::new();
    for (group, ((_, profile), count)) in opts.mix.parts.iter().zip(&counts).enumerate() {
        let mut received_layers = BTreeMap::new();
        let (mut settles, mut unsettled, mut frozen, mut losses) = (Vec::new(), 0usize, Vec::new(), Vec::new());
        let mut latency = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
        for j in joined.iter().filter(|j| j.group == group) {
            let s = j.viewer.stats();
            forwarded += s.video.packets + s.audio.packets;
            *received_layers.entry(if s.frames.layer_changes.is_empty() { "none".into() } else { layer_name(s.frames.layer) }).or_insert(0) += 1;
            match settle_time(j.joined_at, &s.frames.layer_changes, now) {
                Some(d) => settles.push(d.as_secs_f64()),
                None => unsettled += 1,
            }
            frozen.push(s.frames.frozen.as_secs_f64() / minutes.max(1e-9));
            let (lost, sent) = s.video_seq_loss;
            losses.push(100.0 * lost as f64 / sent.max(1) as f64);
            for us in &s.video.latency_us {
                latency.record((*us).max(1))?;
            }
        }
        let peers: &[u64] = groups.as_ref().and_then(|g| g.get(&group)).map_or(&[], Vec::as_slice);
        let mut server_layers = BTreeMap::new();
        let (mut pauses, mut switches, mut estimates, mut sources) = (0u64, 0u64, Vec::new(), BTreeMap::new());
        if let Some(view) = &view {
            for peer in peers {
                *server_layers.entry(view.label(*peer)).or_insert(0) += 1;
                if let Some(v) = view.viewer(*peer) {
                    pauses += v.pauses;
                    switches += v.switches;
                    estimates.extend(v.estimate_bps.map(|e| e as f64 / 1000.0));
                    *sources.entry(v.estimate_source.clone().unwrap_or_else(|| "none".into())).or_insert(0) += 1;
                }
            }
        }
        let has_server = view.is_some();
        profiles.push(ProfileResult {
            profile: profile.to_string(),
            viewers: *count,
            server_layers,
            received_layers,
            settle_s_p50: quantile(&settles, 0.5),
            settle_s_max: quantile(&settles, 1.0),
            unsettled,
            frozen_s_per_min_mean: mean(&frozen),
            frozen_s_per_min_worst: frozen.iter().cloned().fold(0.0, f64::max),
            loss_after_rtx_pct_mean: mean(&losses),
            loss_after_rtx_pct_worst: losses.iter().cloned().fold(0.0, f64::max),
            one_way_ms_p50: latency.value_at_quantile(0.5) as f64 / 1e3,
            one_way_ms_p99: latency.value_at_quantile(0.99) as f64 / 1e3,
            pauses: has_server.then_some(pauses),
            switches: has_server.then_some(switches),
            estimate_kbps_median: quantile(&estimates, 0.5),
            estimate_sources: sources,
        });
    }
    let cpu_share = proc_stats::core_share(cpu0, cpu1);
    let pps = forwarded as f64 / window;
    let out_pps = out0.zip(out1).map(|(a, b)| b.saturating_sub(a) as f64 / window);
    let result = LinkResult {
        viewers: opts.viewers,
        simulcast: opts.simulcast,
        server_args: target.extra_args.clone(),
        seconds: window,
        server_cpu_core_pct: 100.0 * cpu_share,
        forwarded_pps: pps,
        cpu_us_per_forwarded_packet: if pps > 0.0 { cpu_share * 1e6 / pps } else { f64::NAN },
        server_datagrams_out_pps: out_pps,
        cpu_us_per_datagram_out: out_pps.filter(|p| *p > 0.0).map(|p| cpu_share * 1e6 / p),
        profiles,
    };
    for j in joined {
        j.viewer.close().await;
    }
    publisher.close().await;
    let _ = server.start_kill();
    let _ = server.wait().await;
    Ok(result)
}

/// A table of a run, one row per link profile.
pub fn print_summary(r: &LinkResult) {
    let dist = |m: &BTreeMap<String, usize>| {
        if m.is_empty() {
            return "-".to_owned();
        }
        m.iter().map(|(k, v)| format!("{k}:{v}")).collect::<Vec<_>>().join(" ")
    };
    let opt = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.1}"));
    println!(
        "\n{} viewers, {} host, server {}: server CPU {:.1} % of a core, {:.0} media packets/s received by the viewers, {:.2} us per packet{}",
        r.viewers,
        if r.simulcast { "simulcast (q, h, f)" } else { "single-layer" },
        if r.server_args.is_empty() { "defaults".to_owned() } else { r.server_args.join(" ") },
        r.server_cpu_core_pct,
        r.forwarded_pps,
        r.cpu_us_per_forwarded_packet,
        r.cpu_us_per_datagram_out.map_or_else(String::new, |us| format!(" ({us:.2} us per datagram the server sent)"))
    );
    println!("| link | viewers | layer (server, end) | layer received | settle s p50/max (unsettled) | frozen s/min mean/worst | loss after rtx % mean/worst | one-way ms p50/p99 | pauses | switches | estimate kbit/s median (source) |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for p in &r.profiles {
        println!(
            "| {} | {} | {} | {} | {}/{} ({}) | {:.2}/{:.2} | {:.2}/{:.2} | {:.1}/{:.1} | {} | {} | {} ({}) |",
            p.profile, p.viewers, dist(&p.server_layers), dist(&p.received_layers), opt(p.settle_s_p50), opt(p.settle_s_max), p.unsettled,
            p.frozen_s_per_min_mean, p.frozen_s_per_min_worst, p.loss_after_rtx_pct_mean, p.loss_after_rtx_pct_worst,
            p.one_way_ms_p50, p.one_way_ms_p99, p.pauses.map_or("-".into(), |v| v.to_string()), p.switches.map_or("-".into(), |v| v.to_string()),
            opt(p.estimate_kbps_median), dist(&p.estimate_sources)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mix_splits_viewers_by_share_and_adds_up() {
        let mix: LinkMix = "60%:unlimited,30%:1mbit/1%,10%:300kbit/3%".parse().expect("test setup");
        assert_eq!(mix.parts.len(), 3);
        assert_eq!(mix.parts[2].1.rate_bps, Some(300_000));
        assert_eq!(mix.counts(200), [120, 60, 20]);
        assert_eq!(mix.counts(7).iter().sum::<usize>(), 7);
        assert_eq!("600kbit/remb".parse::<LinkMix>().expect("test setup").counts(2), [2]);
        assert!("50%:unlimited,40%:1mbit".parse::<LinkMix>().is_err(), "shares must add up to 100");
        assert!("100%:1mbit/fast".parse::<LinkMix>().is_err());
    }

    #[test]
    fn settling_is_the_first_change_that_then_holds_for_five_seconds() {
        let t0 = Instant::now();
        let s = |ms: u64| t0 + Duration::from_millis(ms);
        let changes = [(s(500), Some(2)), (s(2_000), Some(1)), (s(4_000), Some(0)), (s(9_500), Some(1))];
        assert_eq!(settle_time(t0, &changes, s(20_000)), Some(Duration::from_millis(4_000)));
        assert_eq!(settle_time(t0, &changes[..3], s(8_000)), None, "held only 4 s so far");
        assert_eq!(settle_time(t0, &[], s(8_000)), None);
    }
}
