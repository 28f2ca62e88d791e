//! The sellcast server: HTTP signalling (WHIP/WHEP) and pages over warp, the media plane
//! driven by str0m on one thread and one UDP port per shard, and the room status board tying
//! them together.
//!
//! `start(Config)` binds the sockets (port 0 works), spawns one media driver thread per shard
//! and the HTTP server on the caller's runtime, and returns at once: a test starts the real
//! server in one line. It must never block the HTTP runtime on media work or vice versa.
//!
//! Show tasks, media shards and the store writer each run under a supervisor that restarts
//! them after a panic (`supervision` says how); `/healthz` reports what is down.

// warp's filter chain is one nested type per route; at the default limit of 128, type-checking
// it overflowed depending on the order rustc happened to evaluate the crate's items in.
#![recursion_limit = "256"]

pub mod admission;
pub mod auth;
pub mod cluster;
pub mod commerce_db;
pub mod dev_secret;
pub mod drain;
pub mod fuzzing;
pub mod http;
pub mod interaction;
pub mod media;
pub mod relay_token;
pub mod metrics;
pub mod supervision;
pub mod webhook;
#[cfg(feature = "test-hooks")]
pub mod test_hooks;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::sync::{mpsc, oneshot};
use tracing::{info, warn};

pub use crate::admission::AdmissionLimits;
use crate::admission::Admission;
use crate::auth::Auth;
use crate::drain::Draining;
use crate::http::pages::Pages;
pub use crate::http::connections::ConnectionLimits;
use crate::http::connections::ConnectionTable;
pub use crate::http::tls::TlsFiles;
pub use crate::http::forwarded::TrustedProxies;
use crate::http::AppState;
pub use crate::http::rate_limit::{Rate, RateLimits};
use crate::http::rate_limit::RateLimiters;
use crate::interaction::registry::{RoomLimits, ShowRegistry};
use crate::interaction::store_client::StoreClient;
use crate::media::status_board::StatusBoard;
pub use crate::media::offer::CodecPolicy;
pub use crate::media::lifetime::SessionTimeouts;
use crate::media::peer::PeerFactory;
use crate::media::relay;
use crate::media::router::{MediaRouter, MAX_SHARDS};
use crate::metrics::Metrics;
use crate::media::shard::{self, ShardParts};
pub use crate::media::tcp::{TcpLimits, TcpMediaConfig};
use crate::media::tcp::listener::TcpSide;
use crate::supervision::Supervision;

/// What `sellcast serve` is configured with.
#[derive(Debug, Clone)]
pub struct Config {
    /// HTTP listen address (pages, WHIP, WHEP, API).
    pub http_addr: SocketAddr,
    /// The first media shard's UDP address; shard `i` binds port + `i` (or its own OS-chosen
    /// port when the port is 0).
    pub udp_addr: SocketAddr,
    /// Media shards (threads, each with its own socket); 0 means one per core but one.
    pub media_threads: usize,
    /// Address announced in ICE candidates; defaults to the UDP bind IP.
    pub announce_ip: Option<IpAddr>,
    /// A directory to serve the pages from instead of the ones built into the binary.
    pub web_dir: Option<PathBuf>,
    /// Serve HTTPS with this certificate and key instead of plain HTTP.
    pub tls: Option<TlsFiles>,
    /// The SQLite file with products, sales and orders (and beside it the dev secret).
    pub db_path: PathBuf,
    /// Keep products, sales and orders in this PostgreSQL database instead (`--postgres`);
    /// `None`: the SQLite file at `db_path`.
    pub postgres: Option<String>,
    /// HS256 secret for tokens (at least 32 bytes); `None` runs in dev mode (guest tokens,
    /// logged loudly), which `start` allows only on a loopback `http_addr` or with `dev`.
    pub jwt_secret: Option<String>,
    /// Allow dev mode (no secret) on a non-loopback `http_addr`: `--dev`, for a trusted network.
    pub dev: bool,
    /// Which video codec rooms take from their hosts; a host may override it per room.
    pub video_codec: CodecPolicy,
    /// Bearer token for `GET /metrics` on the HTTP port; `None` leaves it off there.
    pub metrics_token: Option<String>,
    /// A second listener serving `/metrics` (and `/healthz`) without a token, for a private address.
    pub admin_addr: Option<SocketAddr>,
    /// How long a WHIP/WHEP session may stay unconnected, or silent once connected, before
    /// its peer is freed (`media::lifetime`). Tests shorten it; the server runs the default.
    pub session_timeouts: SessionTimeouts,
    /// Caps on sessions (total, per room, per client address) and on rooms.
    pub admission: AdmissionLimits,
    /// Per-client rate limits on WHIP/WHEP and the API.
    pub rate_limits: RateLimits,
    /// How long a request over its rate limit waits for its `429` (`http::rate_limit::REFUSAL_HOLD`).
    pub refusal_hold: Duration,
    /// A room nobody uses is unloaded after this long (and reloaded from the store on next use).
    pub room_idle: Duration,
    /// Caps and deadlines of HTTP connections (per client address, in total, request heads).
    pub http_limits: ConnectionLimits,
    /// Reverse proxies whose `X-Forwarded-For` names the client for rate limits and session
    /// caps (`--trust-forwarded-for`); none by default: the TCP peer is the client.
    pub trusted_proxies: TrustedProxies,
    /// Where committed orders are POSTed (`None`: no webhook, and no outbox rows written).
    pub webhook: Option<webhook::WebhookConfig>,
    /// Origins allowed to call WHEP, the frames API and the room reads from a browser, and to
    /// frame the embeddable player (`--allow-origin`); none by default.
    pub allow_origins: Vec<String>,
    /// ICE over TCP on this port of the UDP bind IP (`--tcp-port`); `None`: UDP only.
    pub tcp: Option<TcpMediaConfig>,
    /// Estimate each viewer's bandwidth and fit its video layer to it (`--bwe on`): from its
    /// REMB, or from the loss in its receiver reports; with `SELLCAST_TWCC_ESTIMATOR=1` also from
    /// str0m's TWCC estimator (experimental, see docs/bandwidth.md). Off: no estimate, and every
    /// viewer gets the highest layer its own cap allows.
    pub bwe: bool,
    /// Cluster mode (`--cluster`): join through NATS; `None` runs a single node, no NATS.
    pub cluster: Option<cluster::ClusterConfig>,
}

impl Config {
    /// Everything on loopback with OS-chosen ports and no secret (dev mode, which loopback
    /// allows), for tests and local runs. Every client is 127.0.0.1 here, so there is no rate
    /// limit and no per-address cap below the server's; `sellcast serve` has the production limits.
    pub fn local(db_path: impl Into<PathBuf>) -> Self {
        Self {
            http_addr: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
            udp_addr: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
            media_threads: 0,
            announce_ip: None,
            web_dir: None,
            tls: None,
            db_path: db_path.into(),
            postgres: None,
            jwt_secret: None,
            dev: false,
            video_codec: CodecPolicy::Auto,
            metrics_token: None,
            admin_addr: None,
            session_timeouts: SessionTimeouts::default(),
            admission: AdmissionLimits::generous(),
            rate_limits: RateLimits::OFF,
            refusal_hold: http::rate_limit::REFUSAL_HOLD,
            room_idle: RoomLimits::default().idle_after,
            http_limits: ConnectionLimits::default(),
            trusted_proxies: TrustedProxies::default(),
            webhook: None,
            allow_origins: Vec::new(),
            tcp: None,
            bwe: true,
            cluster: None,
        }
    }
}

/// A server started by [`start`]; stop it with [`RunningServer::shutdown`].
pub struct RunningServer {
    pub http_addr: SocketAddr,
    /// Shard 0's UDP address.
    pub udp_addr: SocketAddr,
    /// Every shard's UDP address, in shard order.
    pub udp_addrs: Vec<SocketAddr>,
    /// The ICE-TCP listener's address, when `config.tcp` is set.
    pub tcp_addr: Option<SocketAddr>,
    /// Room status as the server sees it (the same data `GET /api/rooms/{room}` serves).
    pub status_board: Arc<StatusBoard>,
    /// Mints and checks tokens with the server's secret (tests mint with it).
    pub auth: Arc<Auth>,
    /// Whether HTTP is served over TLS (`https://`).
    pub tls: bool,
    draining: Arc<Draining>,
    shows: Arc<ShowRegistry>,
    /// What `/metrics` serves; a supervisor counts its restarts here.
    pub metrics: Arc<Metrics>,
    /// The `--admin` listener's address, when one was asked for.
    pub admin_addr: Option<SocketAddr>,
    admin: Option<(oneshot::Sender<()>, tokio::task::JoinHandle<()>)>,
    /// Restart counts and what is down right now (what `/healthz` reports).
    pub supervision: Arc<Supervision>,
    /// Sessions held under the caps.
    pub admission: Arc<Admission>,
    /// The merchant webhook's delivery worker, when a webhook is configured.
    pub webhook: Option<webhook::Webhook>,
    /// This node's cluster membership, in cluster mode.
    pub cluster: Option<Arc<cluster::Cluster>>,
    #[cfg(feature = "test-hooks")]
    hooks: test_hooks::TestHooks,
    http_stop: oneshot::Sender<()>,
    media_stops: Vec<oneshot::Sender<()>>,
    http_task: tokio::task::JoinHandle<()>,
    tcp_task: Option<tokio::task::JoinHandle<()>>,
    media_threads: Vec<thread::JoinHandle<()>>,
}

/// Queue depth into the media driver: offers from HTTP and frames from show tasks. Offers wait
/// here; a show task finding it full drops a delivery and the client resumes by seq.
const COMMAND_QUEUE: usize = 16 * 1024;

/// Start the server. Refuses, before binding anything, to run without a secret on a
/// non-loopback address unless `config.dev` is set (the error is an [`auth::AuthSetupError`]).
pub async fn start(config: Config) -> anyhow::Result<RunningServer> {
    let data_dir = match config.db_path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let auth = Arc::new(Auth::for_server(config.jwt_secret.as_deref(), config.dev, config.http_addr, &data_dir)?);
    if auth.dev_mode() {
        warn!(
            dev_secret = %data_dir.join(dev_secret::FILE_NAME).display(),
            "DEV MODE: no --jwt-secret configured; anyone who reaches {} can get host and guest tokens from /api/dev/token",
            config.http_addr
        );
    }
    // Checked before anything is bound, so a wrong path fails at once with its own message.
    let pages = Pages::new(config.web_dir.as_deref())?;
    let tls = config.tls.as_ref().map(http::tls::acceptor).transpose()?;

    // The crypto provider is process-wide; a second install (a second server in one test
    // process) is harmless.
    let provider = str0m::crypto::from_feature_flags();
    let cert = provider
        .dtls_provider
        .generate_certificate()
        .context("generating the DTLS certificate")?;

    let shard_count = media_threads(config.media_threads);
    let sockets = (0..shard_count)
        .map(|i| bind_media_socket(shard_addr(config.udp_addr, i)?))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let udp_addrs = sockets
        .iter()
        .map(std::net::UdpSocket::local_addr)
        .collect::<std::io::Result<Vec<_>>>()?;
    let udp_addr = udp_addrs[0];
    let announce_ip = match (config.announce_ip, udp_addr.ip()) {
        (Some(ip), _) => ip,
        (None, ip) if !ip.is_unspecified() => ip,
        (None, _) => {
            warn!("UDP bound to an unspecified address and no --announce-ip: announcing 127.0.0.1");
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        }
    };

    if let Some(hook) = &config.webhook {
        hook.check().map_err(anyhow::Error::msg)?;
    }
    let allowed_origins = http::cors::AllowedOrigins::parse(&config.allow_origins).map_err(anyhow::Error::msg)?;
    let order_committed = Arc::new(tokio::sync::Notify::new());
    let store_options = sellcast_store::StoreOptions { webhook_outbox: config.webhook.is_some() };
    let commerce_db = match &config.postgres {
        Some(url) => commerce_db::CommerceDb::Postgres(url),
        None => commerce_db::CommerceDb::Sqlite(&config.db_path),
    };
    let store = StoreClient::open_on(&commerce_db, store_options, Some(order_committed.clone()))
        .with_context(|| format!("opening {}", commerce_db.describe()))?;
    info!(store = %commerce_db.describe(), "commerce state");
    let webhook = config
        .webhook
        .clone()
        .map(|hook| webhook::Webhook::spawn(store.inner().clone(), hook, order_committed.clone()));
    let status_board = Arc::new(StatusBoard::with_shards(shard_count));
    // Joined before anything is served: a node that cannot reach NATS does not start.
    let cluster = match config.cluster.clone() {
        Some(cluster) => Some(cluster::Cluster::join(cluster, status_board.clone()).await?),
        None => None,
    };
    let supervision = Arc::new(Supervision::new(store.inner().clone()));
    let (senders, command_rxs): (Vec<_>, Vec<_>) = (0..shard_count).map(|_| mpsc::channel(COMMAND_QUEUE)).unzip();
    let media = MediaRouter::new(senders);
    #[cfg(feature = "test-hooks")]
    let store_handle = store.inner().clone();
    let rooms = RoomLimits { max_rooms: config.admission.max_rooms, idle_after: config.room_idle };
    let shows = ShowRegistry::new(store, media.clone(), tokio::runtime::Handle::current(), supervision.clone(), rooms);
    if let Some(cluster) = &cluster {
        let links = interaction::across_nodes::RoomLinks::open(cluster.client().clone(), cluster.node_id().clone(), cluster.leases()).await?;
        shows.join_cluster(links);
    }
    let admission = Admission::new(config.admission);
    let rate_limits = RateLimiters::holding_refusals(config.rate_limits, config.refusal_hold);
    RateLimiters::sweep_on_a_timer(&rate_limits);
    #[cfg(feature = "test-hooks")]
    let hooks = test_hooks::TestHooks::new(store_handle, media.clone(), shows.clone());
    let mut tcp = match config.tcp {
        Some(tcp) => Some(TcpSide::bind(tcp, udp_addr.ip(), announce_ip, shard_count, &status_board).await?),
        None => None,
    };
    let mut media_stops = Vec::with_capacity(shard_count);
    let mut media_threads = Vec::with_capacity(shard_count);
    let (mesh, hub_links) = relay::mesh_with_hub(shard_count);
    // The cascade hub runs only in cluster mode: a single node never pulls a room.
    let cascade = cluster.as_ref().map(|c| {
        let cluster = c.clone();
        let lookup: media::cascade::upstream::OriginLookup = Arc::new(move |room: Arc<str>| {
            let cluster = cluster.clone();
            Box::pin(async move { cluster.origin_elsewhere(&room).await.ok().flatten().map(|(_, url)| url) })
        });
        let identity = media::cascade::hub::PullIdentity { node_id: c.node_id().to_string(), auth: auth.clone(), lookup };
        media::cascade::CascadeHub::spawn(hub_links, status_board.clone(), identity)
    });
    let shards = sockets.into_iter().zip(command_rxs).zip(mesh);
    for (i, ((udp, command_rx), (links, relays))) in shards.enumerate() {
        let factory = PeerFactory {
            cert: cert.clone(),
            candidate_addr: SocketAddr::new(announce_ip, udp_addrs[i].port()),
            tcp_candidate: tcp.as_ref().map(|t| t.candidate),
            shard: relay::ShardId(i),
            timeouts: config.session_timeouts,
            bwe: config.bwe,
            transport_estimator: config.bwe && std::env::var_os("SELLCAST_TWCC_ESTIMATOR").is_some_and(|v| v == "1"),
        };
        let (stop, stop_rx) = oneshot::channel();
        let parts = ShardParts {
            udp,
            factory,
            status_board: status_board.clone(),
            shows: shows.clone(),
            links,
            commands: command_rx,
            relays,
            stop: stop_rx,
            supervision: supervision.clone(),
            tcp: tcp.as_mut().and_then(|t| t.shards.next()),
        };
        let thread = thread::Builder::new().name(format!("sellcast-media-{i}")).spawn(move || shard::run(parts))?;
        media_stops.push(stop);
        media_threads.push(thread);
    }

    let tcp_addr = tcp.as_ref().map(|t| t.addr);
    let tcp_task = tcp.map(TcpSide::spawn);

    let listener = tokio::net::TcpListener::bind(config.http_addr)
        .await
        .with_context(|| format!("binding HTTP {}", config.http_addr))?;
    let http_addr = listener.local_addr()?;
    let draining = Arc::new(Draining::default());
    let metrics = Arc::new(Metrics::new(status_board.clone(), shows.clone(), supervision.clone(), tokio::runtime::Handle::current())?);
    metrics.watch_limits(admission.clone(), rate_limits.clone());
    if let Some(hook) = &webhook {
        metrics.watch_webhook(hook.stats.clone());
    }
    let admin = match config.admin_addr {
        Some(addr) => Some(serve_admin(addr, metrics.clone(), cluster.clone()).await?),
        None => None,
    };
    let state = AppState {
        media,
        status_board: status_board.clone(),
        pages: pages.clone(),
        auth: auth.clone(),
        shows: shows.clone(),
        video_codec: config.video_codec,
        draining: draining.clone(),
        metrics: metrics.clone(),
        metrics_token: config.metrics_token.as_deref().map(Arc::from),
        supervision: supervision.clone(),
        admission: admission.clone(),
        rate_limits,
        // In a cluster, pages served by any live node may watch from this one.
        cors: Arc::new(match &cluster {
            Some(c) => allowed_origins.with_nodes(c.view().clone()),
            None => allowed_origins,
        }),
        cluster: cluster.clone(),
        cascade,
    };
    let (http_stop, http_stop_rx) = oneshot::channel::<()>();
    let stopped = async move {
        let _ = http_stop_rx.await;
    };
    let routes = http::routes(state);
    let connections = ConnectionTable::new(config.http_limits);
    metrics.watch_connections(connections.clone());
    let http_task = tokio::spawn(http::connections::serve(
        listener,
        tls.clone(),
        connections,
        metrics.clone(),
        Arc::new(config.trusted_proxies.clone()),
        warp::service(routes),
        stopped,
    ));
    let scheme = if tls.is_some() { "https" } else { "http" };
    info!(%http_addr, scheme, pages = %pages.describe(), udp = ?udp_addrs, tcp = ?tcp_addr, %announce_ip, shards = shard_count, "sellcast listening");

    Ok(RunningServer {
        http_addr,
        udp_addr,
        udp_addrs,
        tcp_addr,
        status_board,
        auth,
        tls: tls.is_some(),
        draining,
        shows,
        metrics,
        admin_addr: admin.as_ref().map(|(addr, _)| *addr),
        admin: admin.map(|(_, running)| running),
        supervision,
        admission,
        webhook,
        cluster,
        #[cfg(feature = "test-hooks")]
        hooks,
        http_stop,
        media_stops,
        http_task,
        tcp_task,
        media_threads,
    })
}

/// Bind the `--admin` listener and serve `/metrics` and `/healthz` on it until told to stop.
async fn serve_admin(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    cluster: Option<Arc<cluster::Cluster>>,
) -> anyhow::Result<(SocketAddr, (oneshot::Sender<()>, tokio::task::JoinHandle<()>))> {
    let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("binding --admin {addr}"))?;
    let bound = listener.local_addr()?;
    let (stop, stopped) = oneshot::channel::<()>();
    let server = warp::serve(http::metrics::admin(metrics, cluster)).incoming(listener).graceful(async move {
        let _ = stopped.await;
    });
    info!(admin = %bound, "metrics on the admin listener: /metrics");
    Ok((bound, (stop, tokio::spawn(server.run()))))
}

/// Kernel buffer we ask for on the media socket: every viewer's packets pass through one
/// socket, and the default (about 200 KB) overflows in a burst of a few hundred packets.
const MEDIA_SOCKET_BUFFER: usize = 8 * 1024 * 1024;

fn bind_media_socket(addr: SocketAddr) -> anyhow::Result<std::net::UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    // The kernel caps these at net.core.{r,w}mem_max; log what we got so operators can raise it.
    let _ = socket.set_recv_buffer_size(MEDIA_SOCKET_BUFFER);
    let _ = socket.set_send_buffer_size(MEDIA_SOCKET_BUFFER);
    socket.bind(&addr.into()).with_context(|| format!("binding UDP {addr}"))?;
    socket.set_nonblocking(true)?;
    let (rcv, snd) = (socket.recv_buffer_size().unwrap_or(0), socket.send_buffer_size().unwrap_or(0));
    if rcv < MEDIA_SOCKET_BUFFER || snd < MEDIA_SOCKET_BUFFER {
        warn!(rcv, snd, wanted = MEDIA_SOCKET_BUFFER, "UDP buffers capped by net.core.rmem_max/wmem_max");
    }
    Ok(socket.into())
}

/// How many media shards to run: as asked, else one per core but one, within `MAX_SHARDS`.
///
/// The core left over runs HTTP, the show tasks and the SQLite writer: a shard on it would
/// compete with them for the same core, which costs CPU per packet and does not lower the
/// in-server latency (`docs/performance.md`, "Why these constants").
fn media_threads(asked: usize) -> usize {
    let wanted = match asked {
        0 => thread::available_parallelism().map_or(1, |n| n.get().saturating_sub(1)),
        n => n,
    };
    wanted.clamp(1, MAX_SHARDS)
}

/// Shard `i`'s address: the configured port + `i`, or port 0 (the OS picks) for every shard.
fn shard_addr(first: SocketAddr, i: usize) -> anyhow::Result<SocketAddr> {
    if first.port() == 0 {
        return Ok(first);
    }
    let port = u16::try_from(usize::from(first.port()) + i)
        .with_context(|| format!("UDP port {} + shard {i} is past 65535", first.port()))?;
    Ok(SocketAddr::new(first.ip(), port))
}

impl RunningServer {
    /// Test-only ways to make each supervised part panic.
    #[cfg(feature = "test-hooks")]
    pub fn test_hooks(&self) -> &test_hooks::TestHooks {
        &self.hooks
    }

    /// Create `room` as its host would (by publishing or writing a product), without a
    /// session: viewers may then join before the host is live. Unused, it is unloaded after
    /// `room_idle` like any room.
    pub fn open_room(&self, room: &str) -> Result<(), admission::CapHit> {
        self.shows.open(room).map(drop)
    }

    /// Rooms loaded now (show tasks); a room nobody uses is unloaded after `room_idle`.
    pub fn rooms_loaded(&self) -> usize {
        self.shows.task_count()
    }

    /// Stop accepting HTTP, close every peer (DTLS close), and wait for both sides to finish.
    pub async fn shutdown(self) {
        self.stop(Instant::now() + Duration::from_secs(10)).await;
    }

    /// Stop HTTP (requests in progress may finish until `deadline`), then the media shards;
    /// true when HTTP had to be cut at the deadline.
    async fn stop(mut self, deadline: Instant) -> bool {
        let _ = self.http_stop.send(());
        let http_cut = tokio::time::timeout_at(deadline.into(), &mut self.http_task).await.is_err();
        if http_cut {
            self.http_task.abort();
        }
        if let Some((stop, task)) = self.admin {
            let _ = stop.send(());
            let _ = task.await;
        }
        if let Some(hook) = self.webhook.take() {
            hook.stop().await;
        }
        // Before the media stops: the rooms are released while their hosts are still here to
        // publish again elsewhere.
        if let Some(cluster) = self.cluster.take() {
            cluster.leave().await;
        }
        if let Some(task) = self.tcp_task.take() {
            task.abort();
        }
        for stop in self.media_stops {
            let _ = stop.send(());
        }
        let threads = self.media_threads;
        let _ = tokio::task::spawn_blocking(move || {
            for thread in threads {
                let _ = thread.join();
            }
        })
        .await;
        info!("sellcast stopped");
        http_cut
    }
}
