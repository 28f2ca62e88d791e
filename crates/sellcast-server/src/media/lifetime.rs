//! How long a session may hold a peer without using it. Every peer costs a str0m instance,
//! DTLS state and a place in its room from the moment its offer is answered, and a client
//! can walk away at any point; these deadlines give each peer an end the client cannot
//! postpone by doing nothing.
//!
//! - Not connected (ICE and DTLS both done) within `connect` of the answer: freed. A real
//!   client connects in well under a second on a working path; WHIP/WHEP clients that never
//!   start ICE (or a flood of bare offers) would otherwise be held forever, since str0m's
//!   ICE-lite agent keeps waiting while it has no candidate pair to time out.
//! - Connected, then nothing received for `idle`: freed. str0m's ICE-lite agent drops a pair
//!   15 s after its last binding request and reports `Disconnected`, which the driver already
//!   turns into a removal; this deadline is the backstop that holds whatever str0m does, and
//!   counts it under its own reason. Browsers send consent checks every few seconds and a
//!   viewer's RTCP every second, so 30 s of silence is a client that is gone.

use std::time::{Duration, Instant};

/// The deadlines of a session; `Default` is what the server runs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionTimeouts {
    /// From the SDP answer to `Connected` (ICE and DTLS).
    pub connect: Duration,
    /// From the last datagram received from a connected peer.
    pub idle: Duration,
}

impl Default for SessionTimeouts {
    fn default() -> Self {
        Self { connect: Duration::from_secs(10), idle: Duration::from_secs(30) }
    }
}

/// Why the driver freed a peer on its own, counted in `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// Not connected within `SessionTimeouts::connect`.
    Unconnected,
    /// Connected, then silent for `SessionTimeouts::idle`.
    Idle,
}

impl Expiry {
    pub fn name(self) -> &'static str {
        match self {
            Expiry::Unconnected => "timeout_unconnected",
            Expiry::Idle => "idle",
        }
    }
}

/// Whether a peer created at `created`, connected or not, last heard from at `last_input`,
/// is past one of its deadlines at `now`.
pub fn expiry(timeouts: &SessionTimeouts, now: Instant, created: Instant, connected: bool, last_input: Instant) -> Option<Expiry> {
    if !connected {
        return (now.saturating_duration_since(created) >= timeouts.connect).then_some(Expiry::Unconnected);
    }
    (now.saturating_duration_since(last_input) >= timeouts.idle).then_some(Expiry::Idle)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: SessionTimeouts = SessionTimeouts { connect: Duration::from_secs(10), idle: Duration::from_secs(30) };

    #[test]
    fn the_server_runs_with_ten_seconds_to_connect_and_thirty_of_silence() {
        assert_eq!(SessionTimeouts::default(), T);
    }

    #[test]
    fn an_unconnected_peer_expires_at_the_connect_deadline_whatever_it_sends() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        assert_eq!(expiry(&T, at(9), t0, false, at(9)), None);
        assert_eq!(expiry(&T, at(10), t0, false, at(10)), Some(Expiry::Unconnected), "STUN alone does not keep it");
        assert_eq!(expiry(&T, at(500), t0, false, t0), Some(Expiry::Unconnected));
    }

    #[test]
    fn a_connected_peer_expires_only_after_its_silence() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        assert_eq!(expiry(&T, at(100), t0, true, at(71)), None, "heard from 29 s ago");
        assert_eq!(expiry(&T, at(100), t0, true, at(70)), Some(Expiry::Idle));
        assert_eq!(expiry(&T, at(5), t0, true, at(6)), None, "a clock read before the last input is not silence");
    }
}
