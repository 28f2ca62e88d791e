//! webrtc-rs's tokio runtime, with larger UDP socket buffers for the sockets it binds.
//!
//! Why: a joining viewer is sent the server's whole cached keyframe group at once (hundreds of
//! packets), and on a busy machine a peer's task can be off-CPU for a while. The default
//! receive buffer (~208 KiB, about 90 such datagrams) overflows, and what the kernel drops has
//! to be NACKed back. A few MiB absorb that; the memory is only used while packets wait.

use std::future::Future;
use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use socket2::SockRef;

use crate::impaired_socket::ImpairedSocket;
use crate::impairment::Impairment;
use webrtc::runtime::{
    AsyncInterval, AsyncTcpListener, AsyncTcpStream, AsyncUdpSocket, JoinHandle, RecvMeta, Runtime, TokioRuntime,
    Transmit,
};

/// Requested size of each peer socket's receive and send buffer (the kernel caps it at
/// `net.core.rmem_max` / `wmem_max`).
const SOCKET_BUFFER: usize = 4 * 1024 * 1024;

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Ends the driver's receive burst after each DTLS handshake datagram.
///
/// Why: webrtc-rs 0.21 installs a connection's SRTP keys when it handles its events, and it
/// handles them only after a receive burst (up to 64 datagrams). A client that was off-CPU
/// while the server finished DTLS and started media reads the server's last DTLS flight and
/// the first media in one burst, and drops that media ("remote_srtp_context is not set yet"):
/// a joining viewer loses the keyframe replayed to it. That is this client's quirk, not the
/// server's behaviour under test: breaking the burst lets the keys land before the media is read.
#[derive(Debug)]
struct HandshakeBreak {
    inner: Arc<dyn AsyncUdpSocket>,
    pause: AtomicBool,
}

impl AsyncUdpSocket for HandshakeBreak {
    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    fn poll_send(&self, cx: &mut Context<'_>, transmit: &Transmit<'_>) -> Poll<io::Result<usize>> {
        self.inner.poll_send(cx, transmit)
    }

    fn poll_recv(&self, cx: &mut Context<'_>, bufs: &mut [IoSliceMut<'_>], meta: &mut [RecvMeta]) -> Poll<io::Result<usize>> {
        if self.pause.swap(false, Ordering::Relaxed) {
            // "Nothing ready": the burst ends, events (and keys) are handled, then we are polled again.
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        let polled = self.inner.poll_recv(cx, bufs, meta);
        if let Poll::Ready(Ok(n)) = &polled {
            // RFC 7983: DTLS change_cipher_spec, alert and handshake records begin with 20-22.
            let handshake = (0..*n).any(|i| matches!(bufs[i].first(), Some(20..=22)) && meta[i].len > 0);
            if handshake {
                self.pause.store(true, Ordering::Relaxed);
            }
        }
        polled
    }

    fn max_gso_segments(&self) -> usize {
        self.inner.max_gso_segments()
    }

    fn max_gro_segments(&self) -> usize {
        self.inner.max_gro_segments()
    }
}

#[derive(Debug)]
pub struct SocketRuntime {
    inner: TokioRuntime,
    /// What the peer's sockets receive passes through this (tests of a bad link).
    impairment: Option<Arc<Impairment>>,
}

impl SocketRuntime {
    pub fn shared() -> Arc<dyn Runtime> {
        Arc::new(SocketRuntime { inner: TokioRuntime, impairment: None })
    }

    /// A runtime whose sockets hand what they receive through `impairment` first.
    pub fn impaired(impairment: Arc<Impairment>) -> Arc<dyn Runtime> {
        Arc::new(SocketRuntime { inner: TokioRuntime, impairment: Some(impairment) })
    }
}

impl Runtime for SocketRuntime {
    fn spawn(&self, future: Pin<Box<dyn Future<Output = ()> + Send>>) -> Box<dyn JoinHandle> {
        self.inner.spawn(future)
    }

    fn spawn_reactor(&self, pool_size: usize, future: Pin<Box<dyn Future<Output = ()> + Send>>) -> Box<dyn JoinHandle> {
        self.inner.spawn_reactor(pool_size, future)
    }

    fn wrap_udp_socket(&self, socket: std::net::UdpSocket) -> io::Result<Arc<dyn AsyncUdpSocket>> {
        let sock = SockRef::from(&socket);
        // Best effort: a smaller buffer still works, it only drops sooner under a burst.
        if let Err(e) = sock.set_recv_buffer_size(SOCKET_BUFFER).and_then(|()| sock.set_send_buffer_size(SOCKET_BUFFER)) {
            tracing::debug!(error = %e, "could not enlarge the peer's UDP buffers");
        }
        let socket = self.inner.wrap_udp_socket(socket)?;
        let socket: Arc<dyn AsyncUdpSocket> = match &self.impairment {
            Some(impairment) => Arc::new(ImpairedSocket { inner: socket, impairment: impairment.clone(), line: Default::default() }),
            None => socket,
        };
        Ok(Arc::new(HandshakeBreak { inner: socket, pause: AtomicBool::new(false) }))
    }

    fn wrap_tcp_listener(&self, listener: std::net::TcpListener) -> io::Result<Arc<dyn AsyncTcpListener>> {
        self.inner.wrap_tcp_listener(listener)
    }

    fn connect_tcp<'a>(&'a self, remote_addr: SocketAddr) -> BoxFuture<'a, io::Result<Arc<dyn AsyncTcpStream>>> {
        self.inner.connect_tcp(remote_addr)
    }

    fn resolve_host<'a>(&'a self, host: &'a str) -> BoxFuture<'a, io::Result<Vec<SocketAddr>>> {
        self.inner.resolve_host(host)
    }

    fn now(&self) -> Instant {
        self.inner.now()
    }

    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        self.inner.sleep(duration)
    }

    fn interval(&self, period: Duration) -> Box<dyn AsyncInterval> {
        self.inner.interval(period)
    }

    fn block_on(&self, future: Pin<Box<dyn Future<Output = ()> + '_>>) {
        self.inner.block_on(future)
    }

    fn yield_now(&self) -> BoxFuture<'static, ()> {
        self.inner.yield_now()
    }

    fn name(&self) -> &'static str {
        "sellcast-tokio"
    }
}
