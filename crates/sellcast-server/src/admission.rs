//! Session admission: caps on WHIP/WHEP sessions in total, per room and per client address,
//! and on the rooms holding sessions.
//!
//! A session is admitted before its offer goes to a media shard, and gets a [`SessionTicket`]
//! that travels with the offer and is kept by the peer. Dropping the ticket gives its place
//! back, so whatever ends a peer (a `DELETE`, ICE failure, a timeout, a kick, a shard
//! restart) frees its place without any other bookkeeping; an offer the shard refuses drops
//! its ticket with the command.
//!
//! Pure: no socket, no clock. One short lock per admission and per release (never per
//! packet). Behind a reverse proxy every client has the proxy's address, so the per-address
//! cap is then a cap per proxy (docs/deploy.md), unless the proxy is trusted to name its
//! clients (`--trust-forwarded-for`, `http/forwarded.rs`).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex, MutexGuard};

use thiserror::Error;

use crate::media::offer::SessionKind;

/// The caps. [`Default`] is for a public server; [`AdmissionLimits::generous`] for tests and
/// local runs, where every client is 127.0.0.1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdmissionLimits {
    /// Sessions (hosts and viewers) on the whole server.
    pub max_sessions: usize,
    /// Sessions in one room.
    pub max_sessions_per_room: usize,
    /// Sessions from one client address (an IPv6 client: its /64).
    pub max_sessions_per_ip: usize,
    /// Rooms holding at least one session, and rooms loaded (show tasks).
    pub max_rooms: usize,
}

impl Default for AdmissionLimits {
    fn default() -> Self {
        Self { max_sessions: 10_000, max_sessions_per_room: 5_000, max_sessions_per_ip: 20, max_rooms: 1_000 }
    }
}

impl AdmissionLimits {
    /// The production caps, except that one address may hold as many sessions as the server:
    /// load tests and local runs open every session from 127.0.0.1.
    pub fn generous() -> Self {
        let production = Self::default();
        Self { max_sessions_per_ip: production.max_sessions, ..production }
    }
}

/// Which cap refused a session.
#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
pub enum CapHit {
    #[error("the server is full: too many sessions")]
    Sessions,
    #[error("this room is full")]
    Room,
    #[error("too many sessions from your address")]
    Address,
    #[error("the server is full: too many rooms")]
    Rooms,
}

impl CapHit {
    pub const ALL: [CapHit; 4] = [CapHit::Sessions, CapHit::Room, CapHit::Address, CapHit::Rooms];

    /// A short, stable name for metrics and logs.
    pub fn cause(self) -> &'static str {
        match self {
            CapHit::Sessions => "server_full",
            CapHit::Room => "room_full",
            CapHit::Address => "address_full",
            CapHit::Rooms => "too_many_rooms",
        }
    }
}

/// Sessions held now, as `/metrics` shows them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AdmissionCounts {
    pub hosts: usize,
    pub viewers: usize,
    /// Rooms holding at least one session.
    pub rooms: usize,
    /// Client addresses holding at least one session.
    pub addresses: usize,
}

impl AdmissionCounts {
    pub fn sessions(&self) -> usize {
        self.hosts + self.viewers
    }
}

#[derive(Debug, Default)]
struct Held {
    hosts: usize,
    viewers: usize,
    by_room: HashMap<Arc<str>, usize>,
    by_address: HashMap<IpAddr, usize>,
}

/// The server's session counts and caps; share it as `Arc<Admission>`.
#[derive(Debug)]
pub struct Admission {
    limits: AdmissionLimits,
    held: Mutex<Held>,
}

/// One admitted session's place. Dropping it gives the place back.
#[derive(Debug)]
pub struct SessionTicket {
    admission: Arc<Admission>,
    room: Arc<str>,
    address: IpAddr,
    kind: SessionKind,
}

/// The key a client is counted and rate-limited under: its IPv4 address, or its IPv6 /64
/// (one subscriber's prefix; a client can pick any address inside it).
pub fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

impl Admission {
    pub fn new(limits: AdmissionLimits) -> Arc<Self> {
        Arc::new(Self { limits, held: Mutex::new(Held::default()) })
    }

    pub fn limits(&self) -> AdmissionLimits {
        self.limits
    }

    /// The counts stay consistent even if a holder panicked: every update is one step.
    fn held(&self) -> MutexGuard<'_, Held> {
        self.held.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Take a place for a `kind` session in `room` from `client`, or say which cap is hit.
    pub fn admit(self: &Arc<Self>, room: &str, client: IpAddr, kind: SessionKind) -> Result<SessionTicket, CapHit> {
        let address = client_key(client);
        let limits = self.limits;
        let mut held = self.held();
        if held.hosts + held.viewers >= limits.max_sessions {
            return Err(CapHit::Sessions);
        }
        let in_room = held.by_room.get_key_value(room).map(|(name, n)| (name.clone(), *n));
        if in_room.is_none() && held.by_room.len() >= limits.max_rooms {
            return Err(CapHit::Rooms);
        }
        if in_room.as_ref().is_some_and(|(_, n)| *n >= limits.max_sessions_per_room) {
            return Err(CapHit::Room);
        }
        if held.by_address.get(&address).is_some_and(|n| *n >= limits.max_sessions_per_ip) {
            return Err(CapHit::Address);
        }
        let room: Arc<str> = in_room.map_or_else(|| Arc::from(room), |(name, _)| name);
        *held.by_room.entry(room.clone()).or_insert(0) += 1;
        *held.by_address.entry(address).or_insert(0) += 1;
        match kind {
            SessionKind::Publish => held.hosts += 1,
            SessionKind::Watch => held.viewers += 1,
        }
        Ok(SessionTicket { admission: self.clone(), room, address, kind })
    }

    pub fn counts(&self) -> AdmissionCounts {
        let held = self.held();
        AdmissionCounts { hosts: held.hosts, viewers: held.viewers, rooms: held.by_room.len(), addresses: held.by_address.len() }
    }

    fn release(&self, ticket: &SessionTicket) {
        let mut held = self.held();
        match ticket.kind {
            SessionKind::Publish => held.hosts = held.hosts.saturating_sub(1),
            SessionKind::Watch => held.viewers = held.viewers.saturating_sub(1),
        }
        decrement(&mut held.by_room, &ticket.room);
        decrement(&mut held.by_address, &ticket.address);
    }
}

/// One less for `key`; a key at zero leaves the map, so the maps hold only what is in use.
fn decrement<K: std::hash::Hash + Eq + std::borrow::Borrow<Q>, Q: std::hash::Hash + Eq + ?Sized>(map: &mut HashMap<K, usize>, key: &Q) {
    if let Some(n) = map.get_mut(key) {
        *n = n.saturating_sub(1);
        if *n == 0 {
            map.remove(key);
        }
    }
}

impl SessionTicket {
    pub fn room(&self) -> &str {
        &self.room
    }
}

impl Drop for SessionTicket {
    fn drop(&mut self) {
        self.admission.release(self);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    const A: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
    const B: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2));

    fn limits(total: usize, per_room: usize, per_ip: usize, rooms: usize) -> Arc<Admission> {
        Admission::new(AdmissionLimits { max_sessions: total, max_sessions_per_room: per_room, max_sessions_per_ip: per_ip, max_rooms: rooms })
    }

    #[test]
    fn per_address_cap_refuses_then_frees_on_drop() {
        let admission = limits(100, 100, 2, 10);
        let first = admission.admit("shop", A, SessionKind::Watch).expect("1st");
        let _second = admission.admit("shop", A, SessionKind::Watch).expect("2nd");
        assert_eq!(admission.admit("shop", A, SessionKind::Watch).err(), Some(CapHit::Address));
        assert!(admission.admit("shop", B, SessionKind::Watch).is_ok(), "another address is not affected");
        drop(first);
        assert!(admission.admit("shop", A, SessionKind::Watch).is_ok(), "a dropped ticket frees its place");
    }

    #[test]
    fn total_room_and_rooms_caps() {
        let admission = limits(3, 2, 10, 2);
        let _a = admission.admit("one", A, SessionKind::Publish).expect("host");
        let _b = admission.admit("one", A, SessionKind::Watch).expect("viewer");
        assert_eq!(admission.admit("one", B, SessionKind::Watch).err(), Some(CapHit::Room));
        let _c = admission.admit("two", B, SessionKind::Watch).expect("second room");
        assert_eq!(admission.admit("three", B, SessionKind::Watch).err(), Some(CapHit::Sessions));
        drop(_c);
        let _c = admission.admit("two", B, SessionKind::Watch).expect("second room again");
        drop(_b);
        assert_eq!(admission.admit("three", B, SessionKind::Watch).err(), Some(CapHit::Rooms));
    }

    #[test]
    fn counts_follow_tickets_and_empty_keys_leave() {
        let admission = limits(10, 10, 10, 10);
        let host = admission.admit("shop", A, SessionKind::Publish).expect("host");
        let viewer = admission.admit("shop", B, SessionKind::Watch).expect("viewer");
        assert_eq!(admission.counts(), AdmissionCounts { hosts: 1, viewers: 1, rooms: 1, addresses: 2 });
        drop(host);
        drop(viewer);
        assert_eq!(admission.counts(), AdmissionCounts::default());
    }

    #[test]
    fn ipv6_clients_are_counted_by_their_slash_64() {
        let one: IpAddr = "2001:db8:1:2::1".parse().expect("ip");
        let other_in_prefix: IpAddr = "2001:db8:1:2:ffff::9".parse().expect("ip");
        assert_eq!(client_key(one), client_key(other_in_prefix));
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().expect("ip");
        assert_eq!(client_key(mapped), A);
    }
}
