//! `sellcast-bench`: start the release server as a child process, publish a synthetic stream,
//! join N synthetic viewers, and measure the server alone: CPU from /proc/<pid>/stat, RSS,
//! forwarded packets, loss, one-way latency and first-frame time. Optionally a sweep until the
//! machine saturates, a purchase storm and chat fan-out. Prints a table, writes JSON and SVGs.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Result};
use clap::{Args as ClapArgs, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use sellcast_bench::{attack, chat, cluster, cluster_kills, links, plot, run_step, server, soak, step, storm, JanusTarget, StepOptions, StepResult, System, Target};
use serde::Serialize;

#[derive(Parser, Debug)]
#[command(name = "sellcast-bench", about = "Load-test sellcast with synthetic viewers")]
struct Args {
    #[command(subcommand)]
    mode: Option<Mode>,
    /// Viewers per step; several values make a sweep (e.g. 50,100,200). 0 skips media.
    #[arg(long, value_delimiter = ',', default_value = "20")]
    viewers: Vec<usize>,
    /// Sweep 50, 100, 200, ... until loss > 0.1 % or p99 > 50 ms (or --max-viewers).
    #[arg(long)]
    sweep: bool,
    #[arg(long, default_value_t = 1600)]
    max_viewers: usize,
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
    /// The server's `--media-threads` (shards); unset leaves the server's default (one per core but one).
    #[arg(long)]
    media_threads: Option<usize>,
    /// Directory for results.json and the SVG plots.
    #[arg(long, default_value = "bench-results")]
    out: PathBuf,
    /// Run every step against Janus too (same host stream, same viewers), and print the ratios.
    /// Needs the veth from `benches/netns.sh` inside `unshare -n`.
    #[arg(long)]
    janus: bool,
    #[arg(long, default_value = "/usr/bin/janus")]
    janus_bin: PathBuf,
    #[arg(long, default_value_t = 18088)]
    janus_http_port: u16,
    /// Janus `event_loops` (0: its default, one thread per viewer).
    #[arg(long, default_value_t = 0)]
    janus_event_loops: u32,
    /// Also run the purchase storm (2,000 buys with 30% retries on 100 units, then 5 s sustained).
    #[arg(long)]
    storm: bool,
    /// Where the storm's server keeps its orders: `sqlite` (the `--db` file) or `postgres`
    /// (`serve --postgres`: the URL in --storm-postgres, else a throwaway PostgreSQL server this
    /// harness starts, fsync on, like the tests').
    #[arg(long, value_parser = ["sqlite", "postgres"], default_value = "sqlite")]
    storm_backend: String,
    /// The PostgreSQL database for `--storm-backend postgres` (`postgres://user@host:port/db`).
    #[arg(long)]
    storm_postgres: Option<String>,
    /// Run the attack instead of the viewer steps: 50 honest viewers (10 chatting and buying)
    /// measured without and then with attackers on every door (issue 11; src/attack.rs).
    #[arg(long)]
    attack: bool,
    /// Measured seconds of each attack condition (without, and with attackers), split over
    /// --attack-rounds alternating segments.
    #[arg(long, default_value_t = 30)]
    attack_seconds: u64,
    /// How many times the attack run alternates between no attackers and attackers.
    #[arg(long, default_value_t = 3)]
    attack_rounds: u32,
    /// Only these attacks, comma-separated, of offers, udp, rooms, frames, sdp, slowloris
    /// (default: all at once, as issue 11 asks): which door costs the honest side what.
    #[arg(long, value_delimiter = ',')]
    attack_only: Vec<String>,
    /// Also measure chat fan-out to this many data-channel viewers.
    #[arg(long, default_value_t = 0)]
    chat_viewers: usize,
    /// Put every viewer behind this emulated downlink (a link run; see --links for the syntax).
    #[arg(long, conflicts_with = "links")]
    link: Option<String>,
    /// Split the viewers over emulated downlinks: `PCT%:PROFILE,...` adding up to 100, e.g.
    /// "60%:unlimited,30%:1mbit/1%,10%:300kbit/3%". A PROFILE is parts joined by `/`, in any
    /// order: a rate (300kbit, 1.2mbit, unlimited), a loss (2%), a delay (40ms), a jitter
    /// (~10ms), a queue before drops (q200ms, the default) and the viewer's bandwidth feedback
    /// (twcc, the default; remb; none). Reports per profile: layer, time to settle, frozen
    /// time, loss after retransmission, one-way p99, pauses.
    #[arg(long)]
    links: Option<String>,
    /// The host publishes three simulcast layers (q 150 kbit/s, h 500 kbit/s, f at --bitrate).
    #[arg(long)]
    simulcast: bool,
    /// Seconds between the last join and a link run's measured window (layers settle).
    #[arg(long, default_value_t = 15)]
    settle: u64,
    /// Run the link run twice, the server with `--bwe off` then `--bwe on`, and compare the
    /// CPU per forwarded packet.
    #[arg(long)]
    bwe_compare: bool,
    /// Run one show across N nodes instead of the viewer steps: a nats-server and N servers in
    /// cluster mode on loopback (node 0 the origin, the others edges, HTTP ports from
    /// --http-port up). Reports origin and edge CPU, viewers per node and the latency a cascade
    /// hop adds; with --storm, durable buys per second on PostgreSQL. Run it inside
    /// `unshare -n sh -c 'ip link set lo up && ...'` (src/cluster.rs).
    #[arg(long)]
    cluster: Option<usize>,
    /// Viewers on each edge, one measured phase per value (after a phase with direct viewers
    /// only). The first, light phase gives the hop's own latency; the heavier ones show the
    /// origin's CPU staying flat while the edges' viewers grow.
    #[arg(long, value_delimiter = ',', default_value = "1,10,50")]
    edge_viewers: Vec<usize>,
    /// Viewers on the cluster's origin itself, in every phase: the latency reference.
    #[arg(long, default_value_t = 2)]
    direct_viewers: usize,
    /// With --cluster N (N >= 3): instead of the viewer phases and the storm, kill -9 an edge
    /// under its viewers and then the origin under the host, --kill-repeats times each, and
    /// report the time to recover from each kill (src/cluster_kills.rs).
    #[arg(long)]
    kills: bool,
    /// Kills of each kind (edge, origin) with --kills: median and max over them.
    #[arg(long, default_value_t = 3)]
    kill_repeats: usize,
    /// Viewers on the killed edge, and on the edge that watches an origin kill.
    #[arg(long, default_value_t = 5)]
    kill_viewers: usize,
}

#[derive(Subcommand, Debug)]
enum Mode {
    /// Many viewers with chat and buys for many minutes: RSS drift after warm-up, and peers,
    /// rooms and tasks after everyone left, read from /metrics (a documented run, not CI).
    Soak(SoakArgs),
}

#[derive(ClapArgs, Debug)]
struct SoakArgs {
    #[arg(long, default_value_t = 200)]
    viewers: usize,
    #[arg(long, default_value_t = 30.0)]
    minutes: f64,
    /// RSS drift is measured from the end of the warm-up; default: 5 minutes, at most half the run.
    #[arg(long)]
    warmup_secs: Option<f64>,
    #[arg(long, default_value_t = 10)]
    sample_secs: u64,
    #[arg(long, default_value_t = 20.0)]
    join_rate: f64,
    #[arg(long, default_value_t = 2.0)]
    chats_per_s: f64,
    #[arg(long, default_value_t = 2.0)]
    buys_per_s: f64,
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<()> {
    let args = Args::parse();
    // Quiet unless RUST_LOG asks (e.g. RUST_LOG=sellcast_peer=debug shows the SDPs).
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "sellcast_bench=warn,sellcast_peer=warn".into()))
        .with_writer(std::io::stderr)
        .init();
    if !args.server_bin.exists() {
        bail!("{} not found: cargo build --release -p sellcast-server", args.server_bin.display());
    }
    let target = Target { media_threads: args.media_threads, ..Target::new(args.server_bin.clone(), args.http_port) };
    if args.attack {
        return run_attack(&target, args.attack_seconds, args.attack_rounds, &args.attack_only, &args.out).await;
    }
    if let Some(nodes) = args.cluster {
        return run_cluster(&target, &args, nodes).await;
    }
    if let Some(Mode::Soak(soak_args)) = &args.mode {
        return run_soak(&target, soak_args, args.bitrate, &args.out).await;
    }
    if let Some(mix) = args.links.clone().or_else(|| args.link.clone()) {
        return run_links(&target, &args, &mix).await;
    }
    if args.simulcast || args.bwe_compare {
        // The plain step measures loss by the host's packet counters, which a viewer on one
        // of several layers cannot use; the link run measures it by the server's sequence numbers.
        bail!("--simulcast and --bwe-compare belong to a link run: add --link unlimited (or --links ...)");
    }
    let janus = JanusTarget { janus_bin: args.janus_bin.clone(), http_port: args.janus_http_port, rtp_port: 15004, event_loops: args.janus_event_loops };
    let mut systems = vec![System::Sellcast(target.clone())];
    if args.janus {
        if !args.janus_bin.exists() {
            bail!("{} not found: apt-get install janus", args.janus_bin.display());
        }
        systems.push(System::Janus(janus));
    }
    let plan: Vec<usize> = if args.sweep {
        std::iter::successors(Some(50usize), |n| Some(n * 2)).take_while(|n| *n <= args.max_viewers).collect()
    } else {
        args.viewers.iter().copied().filter(|n| *n > 0).collect()
    };
    let mut steps: Vec<StepResult> = Vec::new();
    let mut saturated = vec![false; systems.len()];
    for n in plan {
        for (i, system) in systems.iter().enumerate() {
            if saturated[i] {
                continue;
            }
            let opts = StepOptions { viewers: n, seconds: args.seconds, join_rate: args.join_rate, bitrate: args.bitrate };
            match one_step(system, &opts).await {
                Ok(r) => {
                    step::print_row(&r);
                    if args.sweep && (r.loss_pct_worst > 0.1 || r.latency_ms_p99 > 50.0) {
                        println!("{}: saturated at {n} viewers (loss > 0.1 % or p99 > 50 ms)", system.name());
                        saturated[i] = true;
                    }
                    steps.push(r);
                }
                Err(e) if args.sweep => {
                    println!("{} at {n} viewers: could not complete ({e}); the machine is saturated", system.name());
                    saturated[i] = true;
                }
                Err(e) => return Err(e),
            }
        }
        if saturated.iter().all(|s| *s) {
            break;
        }
    }
    let storm = if args.storm { Some(run_storm(&target, &args.storm_backend, args.storm_postgres.as_deref()).await?) } else { None };
    let chat = if args.chat_viewers > 0 { Some(run_chat(&target, args.chat_viewers).await?) } else { None };

    std::fs::create_dir_all(&args.out)?;
    let ratios = ratios(&steps);
    let all = serde_json::json!({ "steps": steps, "janus_ratios": ratios, "purchase_storm": storm, "chat_fanout": chat });
    std::fs::write(args.out.join("results.json"), serde_json::to_string_pretty(&all)?)?;
    if !steps.is_empty() {
        plot::latency_cdf(&args.out.join("latency_cdf.svg"), &steps)?;
        plot::scaling(&args.out.join("scaling.svg"), &steps)?;
    }
    summary(&steps);
    print_ratios(&ratios);
    println!("results in {}", args.out.display());
    Ok(())
}

async fn one_step(system: &System, opts: &StepOptions) -> Result<StepResult> {
    let bar = ProgressBar::new(opts.viewers as u64);
    bar.set_style(ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} viewers joined").unwrap_or_else(|_| ProgressStyle::default_bar()));
    bar.set_prefix(format!("{:<8} {:>4}", system.name(), opts.viewers));
    let progress = |joined: usize, _total: usize| bar.set_position(joined as u64);
    let result = run_step(system, opts, &progress).await;
    bar.finish_and_clear();
    result
}

/// Janus's figure divided by sellcast's at the same number of viewers (> 1: sellcast does better).
#[derive(Debug, Serialize)]
struct Ratio {
    viewers: usize,
    cpu_us_per_packet: f64,
    latency_p99: f64,
    first_frame_p50: f64,
    first_frame_p99: f64,
    rss_per_viewer: f64,
}

fn ratios(steps: &[StepResult]) -> Vec<Ratio> {
    let of = |server: &str, n: usize| steps.iter().find(|s| s.server == server && s.viewers == n);
    steps
        .iter()
        .filter(|s| s.server == "sellcast")
        .filter_map(|ours| {
            let janus = of("janus", ours.viewers)?;
            Some(Ratio {
                viewers: ours.viewers,
                cpu_us_per_packet: janus.cpu_us_per_forwarded_packet / ours.cpu_us_per_forwarded_packet,
                latency_p99: janus.latency_ms_p99 / ours.latency_ms_p99,
                first_frame_p50: janus.first_frame_ms_p50 / ours.first_frame_ms_p50,
                first_frame_p99: janus.first_frame_ms_p99 / ours.first_frame_ms_p99,
                rss_per_viewer: janus.rss_per_viewer_kb / ours.rss_per_viewer_kb,
            })
        })
        .collect()
}

fn print_ratios(ratios: &[Ratio]) {
    if ratios.is_empty() {
        return;
    }
    println!("\nJanus / sellcast (same run; > 1 means sellcast is better)");
    println!("| viewers | CPU per packet | latency p99 | first frame p50 | first frame p99 | RSS per viewer |");
    println!("|---|---|---|---|---|---|");
    for r in ratios {
        println!(
            "| {} | {:.2}x | {:.2}x | {:.2}x | {:.2}x | {:.2}x |",
            r.viewers, r.cpu_us_per_packet, r.latency_p99, r.first_frame_p50, r.first_frame_p99, r.rss_per_viewer
        );
    }
}

fn summary(steps: &[StepResult]) {
    if steps.is_empty() {
        return;
    }
    println!("\n| server | viewers | server CPU % | fwd pkt/s | us/pkt | RSS MB | KB/viewer | loss % (worst) | p50 ms | p99 ms | p99.9 ms | first frame p50/p99 ms | host PLIs | in-server p50/p99 us |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for r in steps {
        println!(
            "| {} | {} | {:.1} | {:.0} | {:.2} | {:.1} | {:.0} | {:.3} | {:.2} | {:.2} | {:.2} | {:.0}/{:.0} | {} | {}/{} |",
            r.server, r.viewers, r.server_cpu_core_pct, r.forwarded_pps, r.cpu_us_per_forwarded_packet, r.server_rss_mb, r.rss_per_viewer_kb,
            r.loss_pct_worst, r.latency_ms_p50, r.latency_ms_p99, r.latency_ms_p999, r.first_frame_ms_p50, r.first_frame_ms_p99, r.host_keyframe_requests,
            step::opt(r.sfu_latency_us_p50), step::opt(r.sfu_latency_us_p99)
        );
    }
}

async fn run_attack(target: &Target, seconds: u64, rounds: u32, only: &[String], out: &std::path::Path) -> Result<()> {
    let mut opts = attack::AttackOptions { phase: Duration::from_secs(seconds.max(5)), rounds: rounds.max(1), ..attack::AttackOptions::full() };
    if !only.is_empty() {
        opts = opts.only(only)?;
    }
    let target = attack::target_for(target, &opts)?;
    println!(
        "attack: {} honest viewers ({} chatting and buying), {} s without attackers and {} s with, alternating in {} rounds",
        opts.viewers, opts.chatters, seconds, seconds, opts.rounds
    );
    let result = attack::run(&target, &opts).await?;
    attack::print_summary(&result);
    std::fs::create_dir_all(out)?;
    std::fs::write(out.join("attack.json"), serde_json::to_string_pretty(&result)?)?;
    println!("figures in {}", out.join("attack.json").display());
    Ok(())
}

async fn run_cluster(target: &Target, args: &Args, nodes: usize) -> Result<()> {
    let opts = cluster::ClusterOptions {
        nodes,
        direct_viewers: args.direct_viewers,
        viewers_per_edge: args.edge_viewers.clone(),
        seconds: args.seconds,
        join_rate: args.join_rate,
        bitrate: args.bitrate,
        storm: args.storm,
        postgres: args.storm_postgres.clone(),
        kills: args.kills.then(|| cluster_kills::KillOptions { repeats: args.kill_repeats.max(1), viewers: args.kill_viewers.max(1) }),
    };
    let result = cluster::run(target, &opts).await?;
    cluster::print_summary(&result);
    std::fs::create_dir_all(&args.out)?;
    std::fs::write(args.out.join("cluster.json"), serde_json::to_string_pretty(&result)?)?;
    println!("figures in {}", args.out.join("cluster.json").display());
    Ok(())
}

async fn run_soak(target: &Target, a: &SoakArgs, bitrate: u64, out: &std::path::Path) -> Result<()> {
    let duration = Duration::from_secs_f64(a.minutes * 60.0);
    let warmup = a.warmup_secs.map_or_else(|| Duration::from_secs(300).min(duration / 2), Duration::from_secs_f64);
    let opts = soak::SoakOptions {
        viewers: a.viewers,
        duration,
        warmup,
        sample_every: Duration::from_secs(a.sample_secs.max(1)),
        join_rate: a.join_rate,
        bitrate,
        chats_per_s: a.chats_per_s,
        buys_per_s: a.buys_per_s,
    };
    let result = soak::run(target, &opts).await?;
    soak::print_summary(&result);
    std::fs::create_dir_all(out)?;
    std::fs::write(out.join("soak.json"), serde_json::to_string_pretty(&result)?)?;
    println!("samples in {}", out.join("soak.json").display());
    Ok(())
}

async fn run_links(target: &Target, args: &Args, mix: &str) -> Result<()> {
    let mix: links::LinkMix = mix.parse()?;
    let viewers = args.viewers.iter().copied().max().unwrap_or(0).max(1);
    let opts = links::LinkOptions { viewers, mix, seconds: args.seconds, settle: args.settle, join_rate: args.join_rate, bitrate: args.bitrate, simulcast: args.simulcast };
    let variants: Vec<Vec<String>> = match args.bwe_compare {
        true => vec![vec!["--bwe".into(), "off".into()], vec!["--bwe".into(), "on".into()]],
        false => vec![Vec::new()],
    };
    let mut results = Vec::new();
    for extra in variants {
        let mut t = target.clone();
        t.extra_args.extend(extra);
        let r = links::run(&t, &opts).await?;
        links::print_summary(&r);
        results.push(r);
    }
    if let [off, on] = results.as_slice() {
        println!(
            "\nestimation off: {:.2} us per forwarded packet; on: {:.2} us ({:+.2} us)",
            off.cpu_us_per_forwarded_packet,
            on.cpu_us_per_forwarded_packet,
            on.cpu_us_per_forwarded_packet - off.cpu_us_per_forwarded_packet
        );
    }
    std::fs::create_dir_all(&args.out)?;
    std::fs::write(args.out.join("links.json"), serde_json::to_string_pretty(&results)?)?;
    println!("figures in {}", args.out.join("links.json").display());
    Ok(())
}

async fn run_storm(target: &Target, backend: &str, postgres: Option<&str>) -> Result<storm::StormResult> {
    let dir = tempfile::tempdir()?;
    let mut target = target.clone();
    // Every buyer is 127.0.0.1 and the burst opens hundreds of connections at once.
    target.extra_args.extend(["--http-connections-per-ip".to_string(), "100000".to_string()]);
    // Held for the run: a throwaway PostgreSQL server stops when dropped.
    let mut _throwaway = None;
    if backend == "postgres" {
        let url = match postgres {
            Some(url) => url.to_string(),
            None => {
                let pg = tokio::task::spawn_blocking(sellcast_store::testing::TestPostgres::start).await??;
                let url = pg.fresh_database()?;
                _throwaway = Some(pg);
                url
            }
        };
        target.extra_args.extend(["--postgres".to_string(), url]);
    }
    let (mut child, _pid, base) = server::spawn(&target, dir.path()).await?;
    let r = storm::run(&base).await?;
    println!(
        "purchase_storm backend={backend} buys={} retries={} stock={} sold={} oversold={} retry_mismatches={} taps/s={:.0} ack_ms p50={:.1} p99={:.1} sustained_durable_buys/s={:.0}",
        r.buys, r.retries, r.stock, r.sold, r.oversold, r.retry_mismatches, r.taps_per_s, r.ack_ms_p50, r.ack_ms_p99, r.sustained_durable_buys_per_s
    );
    let _ = child.start_kill();
    let _ = child.wait().await;
    Ok(r)
}

async fn run_chat(target: &Target, viewers: usize) -> Result<chat::ChatResult> {
    let dir = tempfile::tempdir()?;
    let (mut child, _pid, base) = server::spawn(target, dir.path()).await?;
    let r = chat::run(&base, viewers).await?;
    println!(
        "chat_fanout viewers={} messages={} deliveries={} missing={} delivery_ms p50={:.2} p99={:.2} all_viewers_ms p50={:.2} p99={:.2}",
        r.viewers, r.messages, r.deliveries, r.missing, r.delivery_ms_p50, r.delivery_ms_p99, r.all_viewers_ms_p50, r.all_viewers_ms_p99
    );
    tokio::time::sleep(Duration::from_millis(10)).await;
    let _ = child.start_kill();
    let _ = child.wait().await;
    Ok(r)
}
