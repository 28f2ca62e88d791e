//! A server peer and a client str0m instance wired back to back in memory, on virtual time:
//! the server side built as production builds it (`PeerFactory::accept`, `Peer::new`), its
//! events read through the driver's `translate_event`, and the datagrams shuttled by the test.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use str0m::net::{Protocol, Receive};
use str0m::{Event, Input, Output, Rtc};

use super::driver::{translate_event, DriverStats, PeerEvent};
use super::peer::{Peer, PeerFactory};

pub(crate) fn addr(s: &str) -> SocketAddr {
    s.parse().expect("static address")
}

/// The options production uses, with a fresh certificate and the server at `server`.
pub(crate) fn factory(server: SocketAddr) -> PeerFactory {
    let provider = str0m::crypto::from_feature_flags();
    let cert = provider.dtls_provider.generate_certificate().expect("a DTLS certificate");
    PeerFactory { cert, candidate_addr: server, timeouts: Default::default(), tcp_candidate: None, shard: crate::media::relay::ShardId(0), bwe: true, transport_estimator: false }
}

pub(crate) struct MemoryPair {
    pub now: Instant,
    pub server: Peer,
    pub client: Rtc,
    pub stats: DriverStats,
    /// (server, client) saw their connection come up.
    pub connected: (bool, bool),
}

impl MemoryPair {
    pub fn new(now: Instant, server: Peer, client: Rtc) -> Self {
        Self { now, server, client, stats: DriverStats::default(), connected: (false, false) }
    }

    /// Drain both sides until neither has anything to send. `deliver` says whether a server
    /// datagram reaches the client (false: lost on the wire); `on_server` gets the server's
    /// translated events, `on_client` the client's.
    pub fn exchange(&mut self, mut deliver: impl FnMut(&[u8]) -> bool, mut on_server: impl FnMut(PeerEvent), mut on_client: impl FnMut(Event)) {
        for _ in 0..1000 {
            let mut moved = false;
            while let Ok(out) = self.server.rtc.poll_output() {
                match out {
                    Output::Timeout(_) => break,
                    Output::Transmit(t) => {
                        moved = true;
                        if deliver(&t.contents) {
                            let input = Input::Receive(self.now, Receive::new(Protocol::Udp, t.source, t.destination, &t.contents).expect("datagram"));
                            let _ = self.client.handle_input(input);
                        }
                    }
                    Output::Event(e) => match translate_event(&mut self.server, e, self.now, &mut self.stats) {
                        Some(PeerEvent::Connected) => self.connected.0 = true,
                        Some(event) => on_server(event),
                        None => {}
                    },
                }
            }
            while let Ok(out) = self.client.poll_output() {
                match out {
                    Output::Timeout(_) => break,
                    Output::Transmit(t) => {
                        moved = true;
                        let input = Input::Receive(self.now, Receive::new(Protocol::Udp, t.source, t.destination, &t.contents).expect("datagram"));
                        let _ = self.server.rtc.handle_input(input);
                    }
                    Output::Event(Event::Connected) => self.connected.1 = true,
                    Output::Event(e) => on_client(e),
                }
            }
            if !moved {
                return;
            }
        }
    }

    /// Move virtual time on by `by` on both sides, then exchange (as `exchange`).
    pub fn advance(&mut self, by: Duration, deliver: impl FnMut(&[u8]) -> bool, on_server: impl FnMut(PeerEvent), on_client: impl FnMut(Event)) {
        self.now += by;
        let _ = self.server.rtc.handle_input(Input::Timeout(self.now));
        let _ = self.client.handle_input(Input::Timeout(self.now));
        self.exchange(deliver, on_server, on_client);
    }

    /// Run 5 ms steps until both sides are connected and `ready` holds.
    pub fn connect(&mut self, ready: impl Fn(&Peer) -> bool) {
        for _ in 0..2000 {
            self.advance(Duration::from_millis(5), |_| true, |_| {}, |_| {});
            if self.connected == (true, true) && ready(&self.server) {
                return;
            }
        }
        panic!("the in-memory pair never connected");
    }
}
