//! `sellcast`: the live-selling server binary.

// The HTTP routes' future is instantiated here too: see the same limit in `lib.rs`.
#![recursion_limit = "256"]

use std::io::IsTerminal;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use sellcast_room::Role;
use sellcast_server::{AdmissionLimits, Rate, RateLimits};
use anyhow::Context;
use sellcast_server::auth::{now_secs, Auth, AuthSetupError, Claims};
use tracing_subscriber::EnvFilter;

#[derive(Parser, Debug)]
#[command(name = "sellcast", version, about = "Live selling server: WebRTC SFU, chat and flash sales")]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log lines as plain text (no colour codes unless stdout is a terminal) or as JSON
    /// objects, one per line, for log shippers. RUST_LOG filters either.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// Caps and deadlines of HTTP(S) connections (`http/connections.rs` says why).
#[derive(clap::Args, Debug)]
struct ConnectionArgs {
    /// HTTP(S) connections one client address may hold at once; more are closed on accept.
    #[arg(long, default_value_t = sellcast_server::ConnectionLimits::default().per_ip)]
    http_connections_per_ip: usize,
    /// HTTP(S) connections the server holds at once.
    #[arg(long, default_value_t = sellcast_server::ConnectionLimits::default().total)]
    http_connections: usize,
    /// Seconds a client has to send a request head (and finish a TLS handshake).
    #[arg(long, default_value_t = sellcast_server::ConnectionLimits::default().header_timeout.as_secs())]
    http_header_timeout: u64,
}

impl ConnectionArgs {
    fn limits(&self) -> sellcast_server::ConnectionLimits {
        sellcast_server::ConnectionLimits {
            per_ip: self.http_connections_per_ip,
            total: self.http_connections,
            header_timeout: std::time::Duration::from_secs(self.http_header_timeout.max(1)),
        }
    }
}

// Parsed once at startup: the size of the `Serve` variant costs nothing worth boxing for.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
enum Command {
    /// Run the server: HTTP (pages, WHIP, WHEP) and one UDP port per media thread.
    Serve {
        /// HTTP listen address.
        #[arg(long, default_value = "127.0.0.1:8080")]
        http: SocketAddr,
        /// Estimate each viewer's bandwidth (TWCC, REMB, or loss) and send it the simulcast layer
        /// that fits: on or off (off: every viewer gets the highest layer its cap allows).
        #[arg(long, env = "SELLCAST_BWE", default_value = "on", value_parser = ["on", "off"])]
        bwe: String,
        /// IP the UDP media socket binds to.
        #[arg(long, default_value = "127.0.0.1")]
        udp_ip: IpAddr,
        /// The first media thread's UDP port; thread i uses this + i (0 picks free ones).
        #[arg(long, default_value_t = 8443)]
        udp_port: u16,
        /// Media threads, each with its own UDP port (--udp-port + i); 0 = one per core but one.
        #[arg(long, default_value_t = 0)]
        media_threads: usize,
        /// Address announced in ICE candidates (a public IP behind 1:1 NAT); defaults to --udp-ip.
        #[arg(long)]
        announce_ip: Option<IpAddr>,
        /// ICE over TCP (RFC 6544) on this port of --udp-ip, for viewers whose network blocks
        /// UDP: every answer then also offers a passive TCP candidate. Off unless set.
        #[arg(long, env = "SELLCAST_TCP_PORT")]
        tcp_port: Option<u16>,
        /// TCP media connections the server holds at once (with --tcp-port).
        #[arg(long, env = "SELLCAST_TCP_CONNECTIONS", default_value_t = sellcast_server::TcpLimits::default().total)]
        tcp_connections: usize,
        /// TCP media connections one client address may hold (with --tcp-port).
        #[arg(long, env = "SELLCAST_TCP_CONNECTIONS_PER_IP", default_value_t = sellcast_server::TcpLimits::default().per_ip)]
        tcp_connections_per_ip: usize,
        /// Serve the pages from this directory (while developing them) instead of the copy
        /// built into the binary.
        #[arg(long)]
        web_dir: Option<PathBuf>,
        /// PEM certificate chain: serve HTTPS (pages, API, WHIP, WHEP) instead of HTTP.
        #[arg(long, requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// PEM private key of --tls-cert.
        #[arg(long, requires = "tls_cert")]
        tls_key: Option<PathBuf>,
        /// On SIGTERM or Ctrl-C: seconds to finish the buys in flight before exiting.
        #[arg(long, default_value_t = 10)]
        drain_seconds: u64,
        /// SQLite database with products, sales and orders.
        #[arg(long, default_value = "data/sellcast.db")]
        db: PathBuf,
        /// HS256 secret for tokens, at least 32 bytes (`openssl rand -base64 48`). Without it the
        /// server runs in dev mode, which it does only on a loopback --http address or with --dev.
        #[arg(long, env = "SELLCAST_JWT_SECRET", hide_env_values = true)]
        jwt_secret: Option<String>,
        /// Run dev mode (no secret: anyone can get host and guest tokens) on a non-loopback
        /// --http address. Only for a trusted network.
        #[arg(long)]
        dev: bool,
        /// Video codec rooms take from their hosts: vp8, h264, or auto (VP8 when the host
        /// offers it, else H264). A host may choose per room with `?codec=` on its WHIP URL.
        #[arg(long, default_value = "auto")]
        video_codec: sellcast_server::CodecPolicy,
        /// Bearer token for `GET /metrics` on the HTTP port. Without it (and without --admin)
        /// metrics are not served.
        #[arg(long, env = "SELLCAST_METRICS_TOKEN", hide_env_values = true)]
        metrics_token: Option<String>,
        /// A second listener serving `/metrics` and `/healthz` with no token: bind it to a
        /// private address (e.g. 127.0.0.1:9090).
        #[arg(long)]
        admin: Option<SocketAddr>,
        #[command(flatten)]
        limits: LimitArgs,
        #[command(flatten)]
        connections: ConnectionArgs,
        #[command(flatten)]
        merchant: MerchantArgs,
        #[command(flatten)]
        cluster: sellcast_server::cluster::ClusterArgs,
        #[command(flatten)]
        commerce_db: sellcast_server::commerce_db::CommerceDbArgs,
    },
    /// Mint a token (uses the same secret as `serve`).
    Token {
        #[arg(long)]
        room: String,
        #[arg(long, value_parser = ["host", "moderator", "viewer"], default_value = "viewer")]
        role: String,
        /// Stable user id (`sub`).
        #[arg(long)]
        identity: String,
        /// Display name; defaults to the identity.
        #[arg(long)]
        name: Option<String>,
        /// Validity in hours.
        #[arg(long, default_value_t = 12)]
        hours: u64,
        #[arg(long, env = "SELLCAST_JWT_SECRET", hide_env_values = true)]
        jwt_secret: String,
    },
}

/// The merchant's shop: where orders go, and which sites may embed the player.
#[derive(clap::Args, Debug)]
struct MerchantArgs {
    /// POST every committed order to this URL, signed, retried until it answers 2xx
    /// (docs/merchant.md). Off when not set.
    #[arg(long, env = "SELLCAST_WEBHOOK_URL", requires = "webhook_secret")]
    webhook_url: Option<String>,
    /// HMAC-SHA256 key the webhook's deliveries are signed with, at least 16 bytes.
    #[arg(long, env = "SELLCAST_WEBHOOK_SECRET", hide_env_values = true, requires = "webhook_url")]
    webhook_secret: Option<String>,
    /// An origin (https://shop.example.com) whose pages may embed the player: CORS on WHEP,
    /// the frames API and room reads, and framing of /embed/{room}. Repeatable; none by default.
    #[arg(long = "allow-origin", env = "SELLCAST_ALLOW_ORIGINS", value_delimiter = ',')]
    allow_origins: Vec<String>,
}

impl MerchantArgs {
    fn apply(self, config: &mut sellcast_server::Config) {
        config.webhook = self
            .webhook_url
            .zip(self.webhook_secret)
            .map(|(url, secret)| sellcast_server::webhook::WebhookConfig::new(url, secret));
        config.allow_origins = self.allow_origins;
    }
}

/// Caps and rate limits. The defaults are for a public server; a load test from one address
/// raises the per-address cap and turns the rate limits off (0). Behind a reverse proxy every
/// client has the proxy's address, so the per-address cap and rate limits apply per proxy,
/// unless the proxy is trusted to name its clients (`--trust-forwarded-for`).
#[derive(clap::Args, Debug)]
struct LimitArgs {
    /// Most WHIP and WHEP sessions on the server.
    #[arg(long, env = "SELLCAST_MAX_SESSIONS", default_value_t = AdmissionLimits::default().max_sessions)]
    max_sessions: usize,
    /// Most sessions in one room.
    #[arg(long, env = "SELLCAST_MAX_SESSIONS_PER_ROOM", default_value_t = AdmissionLimits::default().max_sessions_per_room)]
    max_sessions_per_room: usize,
    /// Most sessions from one client address (an IPv6 client: its /64).
    #[arg(long, env = "SELLCAST_MAX_SESSIONS_PER_IP", default_value_t = AdmissionLimits::default().max_sessions_per_ip)]
    max_sessions_per_ip: usize,
    /// Most rooms holding sessions or loaded at once.
    #[arg(long, env = "SELLCAST_MAX_ROOMS", default_value_t = AdmissionLimits::default().max_rooms)]
    max_rooms: usize,
    /// WHIP/WHEP offers per second per client address (0: no limit).
    #[arg(long, env = "SELLCAST_SIGNAL_RATE", default_value_t = RateLimits::default().signalling.per_second)]
    signal_rate: u32,
    /// Burst of WHIP/WHEP offers per client address above the rate.
    #[arg(long, env = "SELLCAST_SIGNAL_BURST", default_value_t = RateLimits::default().signalling.burst)]
    signal_burst: u32,
    /// `/api/` requests and session DELETEs per second per client address (0: no limit).
    #[arg(long, env = "SELLCAST_API_RATE", default_value_t = RateLimits::default().api.per_second)]
    api_rate: u32,
    /// Burst of `/api/` requests and session DELETEs per client address above the rate.
    #[arg(long, env = "SELLCAST_API_BURST", default_value_t = RateLimits::default().api.burst)]
    api_burst: u32,
    /// Seconds an unused room stays loaded (it reloads from the database on next use).
    #[arg(long, default_value_t = 60)]
    room_idle_seconds: u64,
    /// Reverse proxies (CIDRs or addresses, comma-separated: 127.0.0.1,10.0.0.0/8) whose
    /// X-Forwarded-For (else Forwarded: for=) names the client for the per-address rate limits
    /// and session caps. Other peers' headers are ignored. Off unless set.
    #[arg(long, env = "SELLCAST_TRUST_FORWARDED_FOR", value_name = "CIDR[,CIDR...]")]
    trust_forwarded_for: Option<sellcast_server::TrustedProxies>,
}

impl LimitArgs {
    fn apply(self, config: &mut sellcast_server::Config) {
        config.admission = AdmissionLimits {
            max_sessions: self.max_sessions,
            max_sessions_per_room: self.max_sessions_per_room,
            max_sessions_per_ip: self.max_sessions_per_ip,
            max_rooms: self.max_rooms,
        };
        config.rate_limits = RateLimits {
            signalling: Rate { per_second: self.signal_rate, burst: self.signal_burst },
            api: Rate { per_second: self.api_rate, burst: self.api_burst },
        };
        config.room_idle = Duration::from_secs(self.room_idle_seconds);
        config.trusted_proxies = self.trust_forwarded_for.unwrap_or_default();
    }
}

/// SIGTERM (systemd, containers) and SIGINT (Ctrl-C) both start a drain.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> std::io::Result<Self> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Self { term: signal(SignalKind::terminate())?, int: signal(SignalKind::interrupt())? })
    }

    async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_logs(cli.log_format);
    match cli.command {
        Command::Serve {
            http,
            bwe,
            udp_ip,
            udp_port,
            media_threads,
            announce_ip,
            tcp_port,
            tcp_connections,
            tcp_connections_per_ip,
            web_dir,
            tls_cert,
            tls_key,
            drain_seconds,
            db,
            jwt_secret,
            dev,
            video_codec,
            metrics_token,
            admin,
            limits,
            connections,
            merchant,
            cluster,
            commerce_db,
        } => {
            let cluster = match cluster.config(sellcast_server::cluster::flags::host_name().as_deref()) {
                Ok(cluster) => cluster,
                Err(e) => {
                    eprintln!("sellcast: refusing to start: {e}");
                    std::process::exit(2);
                }
            };
            let mut config = sellcast_server::Config {
                http_addr: http,
                udp_addr: SocketAddr::new(udp_ip, udp_port),
                media_threads,
                announce_ip,
                web_dir,
                tls: tls_cert.zip(tls_key).map(|(cert, key)| sellcast_server::TlsFiles { cert, key }),
                db_path: db,
                postgres: commerce_db.postgres,
                jwt_secret,
                dev,
                video_codec,
                metrics_token,
                admin_addr: admin,
                session_timeouts: Default::default(),
                admission: AdmissionLimits::default(),
                rate_limits: RateLimits::default(),
                refusal_hold: sellcast_server::http::rate_limit::REFUSAL_HOLD,
                room_idle: Duration::from_secs(60),
                http_limits: connections.limits(),
                trusted_proxies: Default::default(),
                webhook: None,
                allow_origins: Vec::new(),
                tcp: tcp_port.map(|port| sellcast_server::TcpMediaConfig {
                    port,
                    limits: sellcast_server::TcpLimits {
                        total: tcp_connections,
                        per_ip: tcp_connections_per_ip,
                        ..Default::default()
                    },
                }),
                bwe: bwe == "on",
                cluster,
            };
            limits.apply(&mut config);
            merchant.apply(&mut config);
            let server = match sellcast_server::start(config).await {
                Ok(server) => server,
                Err(e) => match e.downcast_ref::<AuthSetupError>() {
                    // A configuration the operator must change: the message says how, alone.
                    Some(setup) => {
                        eprintln!("sellcast: refusing to start: {setup}");
                        std::process::exit(2);
                    }
                    None => return Err(e),
                },
            };
            let base = format!("{}://{}", if server.tls { "https" } else { "http" }, server.http_addr);
            println!("sellcast is live");
            println!("  host page:  {base}/host/demo");
            println!("  watch page: {base}/watch/demo");
            println!("  WHIP:       {base}/whip/<room>   WHEP: {base}/whep/<room>");
            let ports: Vec<String> = server.udp_addrs.iter().map(|a| a.port().to_string()).collect();
            println!("  media:      udp {} ports {}", server.udp_addr.ip(), ports.join(", "));
            if let Some(addr) = server.tcp_addr {
                println!("  media:      tcp {addr} (ICE over TCP)");
            }
            if let Some(cluster) = &server.cluster {
                let node = cluster.stats();
                println!("  cluster:    node {} at {}", node.node_id, node.public_url);
            }
            if let Some(addr) = server.admin_addr {
                println!("  metrics:    http://{addr}/metrics");
            }
            let mut signals = Signals::new()?;
            let signal = signals.next().await;
            tracing::info!(signal, drain_seconds, "draining before exit (a second signal exits at once)");
            let report = tokio::select! {
                report = server.drain(Duration::from_secs(drain_seconds)) => report,
                signal = signals.next() => {
                    tracing::warn!(signal, "exiting without finishing the drain");
                    std::process::exit(1);
                }
            };
            if !report.finished() {
                std::process::exit(1);
            }
        }
        Command::Token { room, role, identity, name, hours, jwt_secret } => {
            let role = match role.as_str() {
                "host" => Role::Host,
                "moderator" => Role::Moderator,
                _ => Role::Viewer,
            };
            let claims = Claims {
                room,
                name: name.unwrap_or_else(|| identity.clone()),
                sub: identity,
                role,
                exp: now_secs() + hours * 3600,
            };
            let auth = Auth::new(jwt_secret.as_bytes()).context("--jwt-secret / SELLCAST_JWT_SECRET")?;
            println!("{}", auth.mint(&claims)?);
        }
    }
    Ok(())
}

/// Logs go to stdout. Per-session spans (room, peer, role) come with every line about a
/// session: as a `session{...}:` prefix in text, as `span` and `spans` fields in JSON.
fn init_logs(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,str0m=warn,dimpl=warn,is=warn,async_nats=warn"));
    let logs = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        LogFormat::Text => logs.with_ansi(std::io::stdout().is_terminal()).init(),
        LogFormat::Json => logs.json().with_current_span(true).with_span_list(true).init(),
    }
}
