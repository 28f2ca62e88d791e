//! The sellcast server: HTTP signalling (WHIP/WHEP) and pages over warp, the media plane on one
//! UDP port driven by str0m, and the room registry tying them together.
//!
//! API contract (kept stable for tests and the bench):
//! `start(Config) -> RunningServer` binds both sockets (port 0 works) and returns at once.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

/// What `sellcast serve` is configured with.
#[derive(Debug, Clone)]
pub struct Config {
    /// HTTP listen address (pages, WHIP, WHEP, API).
    pub http_addr: SocketAddr,
    /// The one UDP address all WebRTC media flows through.
    pub udp_addr: SocketAddr,
    /// Address announced in ICE candidates; defaults to the UDP bind IP.
    pub announce_ip: Option<IpAddr>,
    /// Directory holding the pages (`web/`).
    pub web_dir: PathBuf,
}

/// A server started by [`start`]; dropping it does not stop it, call [`RunningServer::shutdown`].
pub struct RunningServer {
    pub http_addr: SocketAddr,
    pub udp_addr: SocketAddr,
}

pub async fn start(_config: Config) -> anyhow::Result<RunningServer> {
    anyhow::bail!("not yet")
}

impl RunningServer {
    pub async fn shutdown(self) {}
}
