//! The client address of a request that came through a trusted reverse proxy
//! (`--trust-forwarded-for CIDR[,CIDR...]`).
//!
//! Behind a proxy every request's TCP peer is the proxy, so per-address rate limits and
//! session caps would apply per proxy. When the TCP peer is inside a trusted network, the
//! client is read from `X-Forwarded-For` (or, when a request has none, from RFC 7239
//! `Forwarded: for=`): the rightmost address that is not itself a trusted proxy, since each
//! proxy appends the address it got the request from and only what our own proxies appended
//! can be believed. From any other peer, or with no trusted network, the headers are ignored:
//! anyone can send them. A header that cannot be read (garbage, `unknown`, an obfuscated
//! name) gives the TCP peer, never an error: the request is then counted against its proxy.
//!
//! Pure: headers and addresses in, an address out; no sockets, testable alone.

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use ipnet::IpNet;
use warp::http::HeaderMap;

/// At most this many hops are read from the right of a chain; a longer one is not believed.
const MAX_HOPS: usize = 32;

/// The networks whose requests may name their client; empty trusts nobody.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    nets: Vec<IpNet>,
}

/// A `--trust-forwarded-for` entry that is neither a CIDR nor an address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a CIDR or an IP address: {0:?} (expected e.g. 10.0.0.0/8, 127.0.0.1 or fd00::/8)")]
pub struct BadProxyNet(pub String);

impl FromStr for TrustedProxies {
    type Err = BadProxyNet;

    /// A comma-separated list of CIDRs (`10.0.0.0/8`) or single addresses (`127.0.0.1`).
    fn from_str(list: &str) -> Result<Self, Self::Err> {
        let nets = list
            .split(',')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
            .map(|entry| {
                let net = IpNet::from_str(entry).or_else(|_| IpAddr::from_str(entry).map(IpNet::from));
                net.map(|n| n.trunc()).map_err(|_| BadProxyNet(entry.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { nets })
    }
}

impl TrustedProxies {
    pub fn is_empty(&self) -> bool {
        self.nets.is_empty()
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        // A dual-stack listener sees an IPv4 peer as ::ffff:a.b.c.d.
        let ip = ip.to_canonical();
        self.nets.iter().any(|net| net.contains(&ip))
    }

    /// The address to count a request against: the client its trusted proxies name, else `peer`.
    /// A forwarded address carries no port unless the header gave one (then 0).
    pub fn client(&self, peer: SocketAddr, headers: &HeaderMap) -> SocketAddr {
        if self.nets.is_empty() || !self.trusts(peer.ip()) {
            return peer;
        }
        let chain = match forwarded_chain(headers) {
            Ok(Some(chain)) => chain,
            Ok(None) => return peer,
            Err(why) => {
                tracing::debug!(%peer, why, "forwarded-for header not used");
                return peer;
            }
        };
        match self.rightmost_untrusted(&chain) {
            Ok(client) => client,
            Err(why) => {
                tracing::debug!(%peer, why, "forwarded-for header not used");
                peer
            }
        }
    }

    /// Walks the hops from the right; every hop up to the client must be readable.
    fn rightmost_untrusted(&self, chain: &[&str]) -> Result<SocketAddr, &'static str> {
        let mut leftmost = None;
        for hop in chain.iter().rev().take(MAX_HOPS) {
            let addr = parse_hop(hop).ok_or("an unreadable hop")?;
            if !self.trusts(addr.ip()) {
                return Ok(addr);
            }
            leftmost = Some(addr);
        }
        if chain.len() > MAX_HOPS {
            return Err("more trusted hops than are read");
        }
        // Every hop is one of our proxies: the request started inside the trusted network.
        leftmost.ok_or("an empty chain")
    }
}

/// The hops of `X-Forwarded-For` (all its header lines, in order), or when there is none, the
/// `for=` values of `Forwarded`. `Ok(None)`: neither header.
fn forwarded_chain(headers: &HeaderMap) -> Result<Option<Vec<&str>>, &'static str> {
    let mut xff = headers.get_all("x-forwarded-for").iter().peekable();
    if xff.peek().is_some() {
        let mut hops = Vec::new();
        for line in xff {
            let line = line.to_str().map_err(|_| "X-Forwarded-For is not text")?;
            hops.extend(line.split(',').map(str::trim));
        }
        return Ok(Some(hops));
    }
    let mut forwarded = headers.get_all("forwarded").iter().peekable();
    if forwarded.peek().is_none() {
        return Ok(None);
    }
    let mut hops = Vec::new();
    for line in forwarded {
        let line = line.to_str().map_err(|_| "Forwarded is not text")?;
        for element in line.split(',') {
            hops.push(for_of(element).ok_or("a Forwarded element without for=")?);
        }
    }
    Ok(Some(hops))
}

/// The `for=` value of one `Forwarded` element (`for=192.0.2.60;proto=http`), unquoted.
/// Quoted values holding `,` or `;` are not split correctly: such a value is not an address
/// anyway, so it fails to parse and the peer is used.
fn for_of(element: &str) -> Option<&str> {
    element.split(';').find_map(|pair| {
        let (key, value) = pair.trim().split_once('=')?;
        key.trim().eq_ignore_ascii_case("for").then(|| value.trim().trim_matches('"'))
    })
}

/// One hop: `192.0.2.1`, `192.0.2.1:4711`, `2001:db8::1`, `[2001:db8::1]` or
/// `[2001:db8::1]:4711`. `unknown`, obfuscated names and anything else: `None`.
fn parse_hop(hop: &str) -> Option<SocketAddr> {
    let hop = hop.trim();
    if let Ok(ip) = hop.parse::<IpAddr>() {
        return Some(SocketAddr::new(ip, 0));
    }
    if let Ok(addr) = hop.parse::<SocketAddr>() {
        return Some(addr);
    }
    let ip = hop.strip_prefix('[')?.strip_suffix(']')?.parse::<IpAddr>().ok()?;
    Some(SocketAddr::new(ip, 0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use warp::http::HeaderValue;

    fn trusted(list: &str) -> TrustedProxies {
        list.parse().expect("a valid list")
    }

    fn peer(addr: &str) -> SocketAddr {
        addr.parse().expect("a socket address")
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).expect("a header value"));
        }
        map
    }

    fn ip(addr: SocketAddr) -> String {
        addr.ip().to_string()
    }

    #[test]
    fn a_trusted_peer_names_its_client_and_an_untrusted_one_does_not() {
        let proxies = trusted("10.0.0.0/8");
        let h = headers(&[("x-forwarded-for", "203.0.113.7")]);
        assert_eq!(ip(proxies.client(peer("10.1.2.3:5000"), &h)), "203.0.113.7");
        assert_eq!(proxies.client(peer("198.51.100.1:5000"), &h), peer("198.51.100.1:5000"), "an untrusted peer's header is ignored");
        assert_eq!(TrustedProxies::default().client(peer("10.1.2.3:5000"), &h), peer("10.1.2.3:5000"), "no flag: ignored");
        assert_eq!(proxies.client(peer("10.1.2.3:5000"), &HeaderMap::new()), peer("10.1.2.3:5000"), "no header: the peer");
    }

    #[test]
    fn the_rightmost_hop_that_is_not_a_trusted_proxy_is_the_client() {
        let proxies = trusted("10.0.0.0/8, 192.168.0.1");
        // The client wrote the first hop itself: only what our proxies appended is believed.
        let h = headers(&[("x-forwarded-for", "1.1.1.1, 203.0.113.7, 192.168.0.1")]);
        assert_eq!(ip(proxies.client(peer("10.0.0.2:1"), &h)), "203.0.113.7");
        // Two header lines are one list, in order.
        let h = headers(&[("x-forwarded-for", "1.1.1.1"), ("x-forwarded-for", "203.0.113.9, 10.9.9.9")]);
        assert_eq!(ip(proxies.client(peer("10.0.0.2:1"), &h)), "203.0.113.9");
        // Every hop is ours: the request came from inside; its leftmost hop is the client.
        let h = headers(&[("x-forwarded-for", "10.5.5.5, 192.168.0.1")]);
        assert_eq!(ip(proxies.client(peer("10.0.0.2:1"), &h)), "10.5.5.5");
    }

    #[test]
    fn ipv6_peers_hops_with_ports_and_forwarded_for() {
        let proxies = trusted("fd00::/8,127.0.0.1");
        let h = headers(&[("x-forwarded-for", "[2001:db8::1]:4711")]);
        assert_eq!(proxies.client(peer("[fd00::5]:443"), &h), peer("[2001:db8::1]:4711"));
        let h = headers(&[("x-forwarded-for", "2001:db8::2, 198.51.100.4:80")]);
        assert_eq!(proxies.client(peer("[fd00::5]:443"), &h), peer("198.51.100.4:80"));
        // A dual-stack listener's view of an IPv4 proxy.
        let h = headers(&[("x-forwarded-for", "203.0.113.7")]);
        assert_eq!(ip(proxies.client(peer("[::ffff:127.0.0.1]:9"), &h)), "203.0.113.7");
        // RFC 7239, when there is no X-Forwarded-For.
        let h = headers(&[("forwarded", r#"for=198.51.100.17;proto=https, For="[2001:db8:cafe::17]:4711";by=fd00::5"#)]);
        assert_eq!(proxies.client(peer("127.0.0.1:9"), &h), peer("[2001:db8:cafe::17]:4711"));
        let h = headers(&[("forwarded", "for=203.0.113.60"), ("x-forwarded-for", "198.51.100.1")]);
        assert_eq!(ip(proxies.client(peer("127.0.0.1:9"), &h)), "198.51.100.1", "X-Forwarded-For first");
    }

    #[test]
    fn garbage_falls_back_to_the_peer() {
        let proxies = trusted("10.0.0.0/8");
        let p = peer("10.0.0.2:7");
        for value in ["", " , ", "unknown", "not an ip", "203.0.113.7:notaport", "[203.0.113.7", "999.1.1.1", "_hidden, 10.0.0.9"] {
            assert_eq!(proxies.client(p, &headers(&[("x-forwarded-for", value)])), p, "{value:?}");
        }
        for value in ["for=unknown", "proto=http", "for=_hidden", "for=\"[::1\""] {
            assert_eq!(proxies.client(p, &headers(&[("forwarded", value)])), p, "{value:?}");
        }
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_bytes(b"\xff\xfe").expect("opaque bytes are a valid value"));
        assert_eq!(proxies.client(p, &h), p, "not text");
        // A hop to the left of the client may be anything: it is not read.
        assert_eq!(ip(proxies.client(p, &headers(&[("x-forwarded-for", "garbage, 203.0.113.7")]))), "203.0.113.7");
    }

    #[test]
    fn a_chain_of_more_trusted_hops_than_are_read_is_not_believed() {
        let proxies = trusted("10.0.0.0/8");
        let long = vec!["10.0.0.1"; MAX_HOPS + 1].join(", ");
        let p = peer("10.0.0.2:7");
        assert_eq!(proxies.client(p, &headers(&[("x-forwarded-for", &format!("203.0.113.7, {long}"))])), p);
    }

    #[test]
    fn the_list_takes_cidrs_and_addresses_and_refuses_anything_else() {
        assert_eq!(trusted("").nets.len(), 0);
        assert_eq!(trusted("10.0.0.0/8, 127.0.0.1,::1 , fd00::/8").nets.len(), 4);
        assert!(trusted("10.1.2.3/8").trusts("10.200.0.1".parse().expect("ip")), "host bits are dropped");
        assert_eq!("10.0.0.0/33".parse::<TrustedProxies>(), Err(BadProxyNet("10.0.0.0/33".into())));
        assert!("localhost".parse::<TrustedProxies>().is_err());
    }
}
