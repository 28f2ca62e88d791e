//! The HTTP(S) accept loop, for plain HTTP and for TLS alike: every connection has an owner
//! (its client address), a deadline and a cap.
//!
//! warp's own server sets no timer on hyper, so a client that sends a request head one byte at
//! a time (slowloris) holds its connection, a task and a file descriptor for ever, and nothing
//! limits how many such connections one address opens. Here:
//! - a client address may hold at most `per_ip` connections and the server `total`; a
//!   connection past either cap is closed at once, before a byte is read, and counted;
//! - a request head must arrive within `header_timeout` (hyper's HTTP/1 header read timeout,
//!   which also bounds a kept-alive connection waiting for its next request);
//! - a TLS handshake must finish within `header_timeout` too.
//!
//! Each request carries its client's [`ClientAddr`] as an extension, read by the
//! [`client_addr`] filter (warp's `addr::remote()` only works under warp's own server): the
//! TCP peer, or behind a trusted proxy the client it names (`forwarded`). The connection caps
//! above count TCP peers: a proxy's connections are its own, whoever it speaks for.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tracing::debug;
use warp::reply::Response;
use warp::Filter;

use super::forwarded::TrustedProxies;

/// The caps and deadlines of HTTP connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Connections one client address may hold at once. A browser opens up to 6 per origin,
    /// and a mobile carrier's NAT puts many phones behind one address: generous, but a bound.
    pub per_ip: usize,
    /// Connections the server holds at once: kept well under the usual 65,536 file
    /// descriptors a service gets, so the media socket and SQLite always have theirs.
    pub total: usize,
    /// Time allowed for a request head (and a TLS handshake) to arrive.
    pub header_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self { per_ip: 256, total: 16_384, header_timeout: Duration::from_secs(10) }
    }
}

/// The address a request came from: its TCP peer, or the client a trusted proxy names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub SocketAddr);

/// The request's client address, when it came through [`serve`].
pub fn client_addr() -> impl Filter<Extract = (Option<SocketAddr>,), Error = Infallible> + Clone {
    warp::ext::optional::<ClientAddr>().map(|addr: Option<ClientAddr>| addr.map(|a| a.0))
}

/// Why a connection was closed before it was served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    PerIp,
    Total,
}

impl Refusal {
    pub const ALL: [Refusal; 2] = [Refusal::PerIp, Refusal::Total];

    pub fn name(self) -> &'static str {
        match self {
            Refusal::PerIp => "per_ip",
            Refusal::Total => "total",
        }
    }
}

/// Who holds how many connections. Pure bookkeeping: no sockets, testable alone.
#[derive(Debug)]
pub struct ConnectionTable {
    limits: ConnectionLimits,
    held: Mutex<Held>,
}

#[derive(Debug, Default)]
struct Held {
    total: usize,
    by_ip: HashMap<IpAddr, usize>,
}

impl ConnectionTable {
    pub fn new(limits: ConnectionLimits) -> Arc<Self> {
        Arc::new(Self { limits, held: Mutex::new(Held::default()) })
    }

    pub fn limits(&self) -> ConnectionLimits {
        self.limits
    }

    /// Connections held now.
    pub fn held(&self) -> usize {
        self.lock().total
    }

    /// A slot for one connection from `ip`, released when the slot is dropped.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<ConnectionSlot, Refusal> {
        let mut held = self.lock();
        if held.total >= self.limits.total {
            return Err(Refusal::Total);
        }
        let mine = held.by_ip.entry(ip).or_insert(0);
        if *mine >= self.limits.per_ip {
            return Err(Refusal::PerIp);
        }
        *mine += 1;
        held.total += 1;
        Ok(ConnectionSlot { table: self.clone(), ip })
    }

    fn release(&self, ip: IpAddr) {
        let mut held = self.lock();
        held.total = held.total.saturating_sub(1);
        if let Some(n) = held.by_ip.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                // An address with no connection keeps no entry: the map is bounded by `total`.
                held.by_ip.remove(&ip);
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Held> {
        // The counts stay consistent even if a holder panicked: every change is one statement.
        self.held.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// One admitted connection's place in the table.
#[derive(Debug)]
pub struct ConnectionSlot {
    table: Arc<ConnectionTable>,
    ip: IpAddr,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.table.release(self.ip);
    }
}

/// Counts what [`serve`] refused, for `/metrics`.
pub trait RefusalCounter: Send + Sync + 'static {
    fn refused(&self, why: Refusal);
}

/// Serve `service` on `listener` (over TLS when `tls` is set) until `shutdown` resolves, then
/// wait for the requests in progress.
pub async fn serve<S>(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    table: Arc<ConnectionTable>,
    counter: Arc<dyn RefusalCounter>,
    proxies: Arc<TrustedProxies>,
    service: S,
    shutdown: impl Future<Output = ()>,
) where
    S: tower_service::Service<warp::http::Request<hyper::body::Incoming>, Response = Response, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    let header_timeout = table.limits().header_timeout;
    loop {
        let (tcp, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    debug!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let slot = match table.admit(remote.ip()) {
            Ok(slot) => slot,
            Err(why) => {
                counter.refused(why);
                debug!(%remote, cause = why.name(), "connection refused: over the cap");
                drop(tcp);
                continue;
            }
        };
        let (tls, service, watcher, proxies) = (tls.clone(), service.clone(), graceful.watcher(), proxies.clone());
        tokio::spawn(async move {
            let _slot = slot;
            let service = TowerToHyperService::new(WithClientAddr { inner: service, peer: remote, proxies });
            let mut builder = auto::Builder::new(TokioExecutor::new());
            builder.http1().timer(TokioTimer::new()).header_read_timeout(header_timeout);
            builder.http2().timer(TokioTimer::new());
            let result = match tls {
                None => watcher.watch(builder.serve_connection_with_upgrades(TokioIo::new(tcp), service).into_owned()).await,
                Some(acceptor) => match handshake(acceptor, tcp, header_timeout).await {
                    Some(stream) => {
                        watcher.watch(builder.serve_connection_with_upgrades(TokioIo::new(stream), service).into_owned()).await
                    }
                    None => return,
                },
            };
            if let Err(e) = result {
                debug!(%remote, error = %e, "HTTP connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

async fn handshake(
    acceptor: TlsAcceptor,
    tcp: TcpStream,
    limit: Duration,
) -> Option<tokio_rustls::server::TlsStream<TcpStream>> {
    match tokio::time::timeout(limit, acceptor.accept(tcp)).await {
        Ok(Ok(stream)) => Some(stream),
        Ok(Err(e)) => {
            debug!(error = %e, "TLS handshake failed");
            None
        }
        Err(_) => {
            debug!("TLS handshake timed out");
            None
        }
    }
}

/// Puts the client address on every request: the connection's peer, unless it is a trusted
/// proxy naming another.
#[derive(Clone)]
struct WithClientAddr<S> {
    inner: S,
    peer: SocketAddr,
    proxies: Arc<TrustedProxies>,
}

impl<S, B> tower_service::Service<warp::http::Request<B>> for WithClientAddr<S>
where
    S: tower_service::Service<warp::http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: warp::http::Request<B>) -> Self::Future {
        let client = self.proxies.client(self.peer, request.headers());
        request.extensions_mut().insert(ClientAddr(client));
        self.inner.call(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, last])
    }

    #[test]
    fn one_address_gets_at_most_its_share_and_others_still_get_in() {
        let table = ConnectionTable::new(ConnectionLimits { per_ip: 2, total: 10, header_timeout: Duration::from_secs(1) });
        let a1 = table.admit(ip(1)).expect("first");
        let _a2 = table.admit(ip(1)).expect("second");
        assert_eq!(table.admit(ip(1)).err(), Some(Refusal::PerIp));
        assert!(table.admit(ip(2)).is_ok(), "another address is not affected");
        drop(a1);
        assert!(table.admit(ip(1)).is_ok(), "a closed connection frees its place");
    }

    #[test]
    fn the_total_cap_holds_across_addresses_and_slots_free_on_drop() {
        let table = ConnectionTable::new(ConnectionLimits { per_ip: 5, total: 3, header_timeout: Duration::from_secs(1) });
        let slots: Vec<_> = (1..=3).map(|i| table.admit(ip(i)).expect("under the cap")).collect();
        assert_eq!(table.admit(ip(9)).err(), Some(Refusal::Total));
        assert_eq!(table.held(), 3);
        drop(slots);
        assert_eq!(table.held(), 0);
        assert!(table.lock().by_ip.is_empty(), "no entry is kept for an address without connections");
    }
}
