//! What the TCP side sends the driver: connections the listener handed over, frames they
//! read, and their ends. A frame is handed to its peer's str0m instance as a received
//! datagram with `Protocol::Tcp`, from the connection's client address to our passive
//! candidate; str0m's ICE agent takes it as it takes UDP.

use std::time::Instant;

use str0m::net::{Protocol, Receive};
use str0m::Input;
use tracing::debug;

use super::{Driver, RECV_BURST};
use crate::media::stun_route::binding_request_ufrag;
use crate::media::tcp::{ConnId, TcpInput};

impl Driver {
    /// Apply up to `RECV_BURST` inputs, then forward what they carried, as a UDP burst does.
    pub(super) fn receive_tcp(&mut self, first: TcpInput) {
        let now = Instant::now();
        self.handle_tcp(first, now);
        for _ in 1..RECV_BURST {
            let Some(next) = self.tcp.as_mut().and_then(|t| t.inbox.try_recv().ok()) else {
                break;
            };
            self.handle_tcp(next, now);
        }
        self.process(now);
    }

    fn handle_tcp(&mut self, input: TcpInput, now: Instant) {
        let Some(tcp) = self.tcp.as_mut() else {
            return;
        };
        match input {
            TcpInput::Opened(handoff) => {
                if let Some((conn, _, first)) = tcp.open(*handoff) {
                    self.handle_tcp_frame(conn, &first, now);
                }
            }
            TcpInput::Frame { conn, data } => self.handle_tcp_frame(conn, &data, now),
            TcpInput::Closed { conn } => tcp.close(conn),
        }
    }

    /// One frame from a connection. The first one a peer accepts binds the connection to it
    /// (the listener made sure it is a binding request); until then nothing else is taken.
    fn handle_tcp_frame(&mut self, conn: ConnId, data: &[u8], now: Instant) {
        let Some(tcp) = self.tcp.as_mut() else {
            return;
        };
        let Some((bound, remote)) = tcp.peer_of(conn) else {
            return;
        };
        let candidate = tcp.candidate;
        let id = match bound {
            Some(id) => id,
            None => match binding_request_ufrag(data).and_then(|ufrag| self.by_ufrag.get(ufrag)) {
                Some(id) => *id,
                None => {
                    tcp.refuse(conn);
                    return;
                }
            },
        };
        let Ok(receive) = Receive::new(Protocol::Tcp, remote, candidate, data) else {
            self.stats.input_errors += 1;
            return;
        };
        let input = Input::Receive(now, receive);
        let Some(peer) = self.peers.get_mut(&id) else {
            tcp.close(conn);
            return;
        };
        if bound.is_none() {
            // The named peer checks the request's integrity before the connection is its.
            if !peer.rtc.accepts(&input) || tcp.bind(conn, id).is_err() {
                tcp.refuse(conn);
                return;
            }
            debug!(peer = id.0, %remote, "peer reached over tcp");
        }
        tcp.counters.frames_in += 1;
        self.stats.datagrams_in += 1;
        peer.last_input = now;
        if let Err(e) = peer.rtc.handle_input(input) {
            self.stats.input_errors += 1;
            debug!(parent: &peer.span, error = %e, "tcp input rejected");
        }
        self.poll_peer(id, now);
    }
}
