//! `sellcast-bench`: start the release server as a child process, publish a synthetic stream,
//! join N synthetic viewers, and measure the server alone: CPU from /proc/<pid>/stat, RSS,
//! forwarded packets, loss, one-way latency and first-frame time.

mod chat;
mod proc_stats;
mod storm;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use hdrhistogram::Histogram;
use sellcast_peer::{PublishOptions, Publisher, Viewer};
use serde::Serialize;

#[derive(Parser, Debug)]
#[command(name = "sellcast-bench", about = "Load-test sellcast with synthetic viewers")]
struct Args {
    /// Viewers per step; several values make a sweep (e.g. 50,100,200).
    #[arg(long, value_delimiter = ',', default_value = "20")]
    viewers: Vec<usize>,
    /// Seconds measured per step (after every viewer joined and a warm-up).
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Viewers joining per second.
    #[arg(long, default_value_t = 50.0)]
    join_rate: f64,
    /// Publisher bitrate.
    #[arg(long, default_value_t = 2_500_000)]
    bitrate: u64,
    /// The server binary (build it with `cargo build --release -p sellcast-server`).
    #[arg(long, default_value = "target/release/sellcast")]
    server_bin: PathBuf,
    #[arg(long, default_value_t = 18180)]
    http_port: u16,
    /// Write the results as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Also run the purchase storm (2,000 buys with 30% retries on 100 units, then 5 s sustained).
    #[arg(long)]
    storm: bool,
    /// Also measure chat fan-out to this many data-channel viewers.
    #[arg(long, default_value_t = 0)]
    chat_viewers: usize,
}

#[derive(Debug, Serialize)]
struct StepResult {
    viewers: usize,
    seconds: f64,
    server_cpu_core_pct: f64,
    forwarded_pps: f64,
    cpu_us_per_forwarded_packet: f64,
    server_rss_mb: f64,
    rss_per_viewer_kb: f64,
    loss_pct_mean: f64,
    loss_pct_worst: f64,
    latency_ms_p50: f64,
    latency_ms_p99: f64,
    latency_ms_p999: f64,
    first_frame_ms_p50: f64,
    first_frame_ms_p99: f64,
    first_packet_keyframe_pct: f64,
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<()> {
    let args = Args::parse();
    if !args.server_bin.exists() {
        bail!("{} not found: cargo build --release -p sellcast-server", args.server_bin.display());
    }
    let mut results = Vec::new();
    let viewers = if args.viewers == [0] { Vec::new() } else { args.viewers.clone() };
    for &n in &viewers {
        let r = run_step(&args, n).await?;
        print_row(&r);
        results.push(r);
    }
    let storm = if args.storm { Some(run_storm(&args).await?) } else { None };
    let chat = if args.chat_viewers > 0 { Some(run_chat(&args).await?) } else { None };
    if let Some(path) = &args.json {
        let all = serde_json::json!({ "steps": results, "purchase_storm": storm, "chat_fanout": chat });
        std::fs::write(path, serde_json::to_string_pretty(&all)?)?;
        println!("results written to {}", path.display());
    }
    Ok(())
}

async fn run_storm(args: &Args) -> Result<storm::StormResult> {
    let dir = tempfile::tempdir()?;
    let (mut server, _pid, base) = spawn_server(args, dir.path()).await?;
    let r = storm::run(&base).await?;
    println!(
        "purchase_storm buys={} retries={} stock={} sold={} oversold={} retry_mismatches={} taps/s={:.0} ack_ms p50={:.1} p99={:.1} sustained_durable_buys/s={:.0}",
        r.buys, r.retries, r.stock, r.sold, r.oversold, r.retry_mismatches, r.taps_per_s, r.ack_ms_p50, r.ack_ms_p99, r.sustained_durable_buys_per_s
    );
    let _ = server.start_kill();
    let _ = server.wait().await;
    Ok(r)
}

async fn run_chat(args: &Args) -> Result<chat::ChatResult> {
    let dir = tempfile::tempdir()?;
    let (mut server, _pid, base) = spawn_server(args, dir.path()).await?;
    let r = chat::run(&base, args.chat_viewers).await?;
    println!(
        "chat_fanout viewers={} messages={} deliveries={} missing={} delivery_ms p50={:.2} p99={:.2} all_viewers_ms p50={:.2} p99={:.2}",
        r.viewers, r.messages, r.deliveries, r.missing, r.delivery_ms_p50, r.delivery_ms_p99, r.all_viewers_ms_p50, r.all_viewers_ms_p99
    );
    let _ = server.start_kill();
    let _ = server.wait().await;
    Ok(r)
}

async fn spawn_server(args: &Args, dir: &std::path::Path) -> Result<(tokio::process::Child, u32, String)> {
    let server = tokio::process::Command::new(&args.server_bin)
        .args(["serve", "--http", &format!("127.0.0.1:{}", args.http_port), "--udp-port", "0", "--db"])
        .arg(dir.join("bench.db"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("starting the server")?;
    let pid = server.id().context("server pid")?;
    let base = format!("http://127.0.0.1:{}", args.http_port);
    let http = reqwest::Client::new();
    let up = Instant::now();
    while http.get(format!("{base}/healthz")).send().await.is_err() {
        if up.elapsed() > Duration::from_secs(10) {
            bail!("server did not start");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok((server, pid, base))
}

async fn run_step(args: &Args, viewers: usize) -> Result<StepResult> {
    let dir = tempfile::tempdir()?;
    let (mut server, pid, base) = spawn_server(args, dir.path()).await?;
    let rss_idle = proc_stats::rss(pid)?;
    let opts = PublishOptions { bitrate_bps: args.bitrate, ..PublishOptions::default() };
    let publisher = Publisher::connect(&base, "bench", opts).await?;
    let mut peers = Vec::with_capacity(viewers);
    let gap = Duration::from_secs_f64(1.0 / args.join_rate.max(0.1));
    for _ in 0..viewers {
        let started = Instant::now();
        peers.push(Viewer::connect(&base, "bench", None).await?);
        if let Some(rest) = gap.checked_sub(started.elapsed()) {
            tokio::time::sleep(rest).await;
        }
    }
    tokio::time::sleep(Duration::from_secs(2)).await; // warm-up: every viewer is streaming
    for v in &peers {
        v.reset();
    }
    let sent0 = (publisher.video_sent(), publisher.audio_sent());
    let cpu0 = proc_stats::cpu(pid)?;
    tokio::time::sleep(Duration::from_secs(args.seconds)).await;
    let cpu1 = proc_stats::cpu(pid)?;
    let sent1 = (publisher.video_sent(), publisher.audio_sent());
    let rss = proc_stats::rss(pid)?;
    tokio::time::sleep(Duration::from_millis(500)).await; // in-flight packets land

    let window = cpu1.at.duration_since(cpu0.at).as_secs_f64();
    let mut latency = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let mut first_frame = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let (mut forwarded, mut losses, mut keyframe_first) = (0u64, Vec::new(), 0usize);
    let expected = ((sent1.0 - sent0.0) + (sent1.1 - sent0.1)) as f64;
    for v in &peers {
        let s = v.stats();
        forwarded += s.video.packets + s.audio.packets;
        let got = s.video.counters.range(sent0.0..sent1.0).count() + s.audio.counters.range(sent0.1..sent1.1).count();
        losses.push(100.0 * (1.0 - got as f64 / expected.max(1.0)));
        for us in s.video.latency_us.iter().chain(&s.audio.latency_us) {
            latency.record((*us).max(1))?;
        }
        if let Some(d) = s.first_video_after {
            first_frame.record((d.as_micros() as u64).max(1))?;
        }
        keyframe_first += usize::from(s.first_video_is_keyframe == Some(true));
    }
    let cpu_share = proc_stats::core_share(cpu0, cpu1);
    let pps = forwarded as f64 / window;
    let result = StepResult {
        viewers,
        seconds: window,
        server_cpu_core_pct: 100.0 * cpu_share,
        forwarded_pps: pps,
        cpu_us_per_forwarded_packet: if pps > 0.0 { cpu_share * 1e6 / pps } else { f64::NAN },
        server_rss_mb: rss as f64 / 1e6,
        rss_per_viewer_kb: rss.saturating_sub(rss_idle) as f64 / 1e3 / viewers.max(1) as f64,
        loss_pct_mean: losses.iter().sum::<f64>() / losses.len().max(1) as f64,
        loss_pct_worst: losses.iter().cloned().fold(0.0, f64::max),
        latency_ms_p50: latency.value_at_quantile(0.5) as f64 / 1e3,
        latency_ms_p99: latency.value_at_quantile(0.99) as f64 / 1e3,
        latency_ms_p999: latency.value_at_quantile(0.999) as f64 / 1e3,
        first_frame_ms_p50: first_frame.value_at_quantile(0.5) as f64 / 1e3,
        first_frame_ms_p99: first_frame.value_at_quantile(0.99) as f64 / 1e3,
        first_packet_keyframe_pct: 100.0 * keyframe_first as f64 / viewers.max(1) as f64,
    };
    for v in peers {
        v.close().await;
    }
    publisher.close().await;
    let _ = server.start_kill();
    let _ = server.wait().await;
    Ok(result)
}

fn print_row(r: &StepResult) {
    println!(
        "viewers={:>4} cpu={:>5.1}% fwd_pps={:>8.0} us/pkt={:>5.2} rss={:>6.1}MB rss/viewer={:>6.1}KB loss={:.3}%/{:.3}% lat_ms p50={:.2} p99={:.2} p99.9={:.2} first_frame_ms p50={:.1} p99={:.1} keyframe_first={:.0}%",
        r.viewers, r.server_cpu_core_pct, r.forwarded_pps, r.cpu_us_per_forwarded_packet, r.server_rss_mb, r.rss_per_viewer_kb,
        r.loss_pct_mean, r.loss_pct_worst, r.latency_ms_p50, r.latency_ms_p99, r.latency_ms_p999, r.first_frame_ms_p50, r.first_frame_ms_p99, r.first_packet_keyframe_pct
    );
}
