//! CORS for the origins an operator allows (`--allow-origin`), so a player embedded on a
//! merchant's page can reach the server from that page's origin.
//!
//! Only what a player needs is open to other origins: WHEP (offer and session end), the frames
//! API, the room and product reads, the config and dev-token reads, and the player's own
//! modules (`/embed.js`, `/static/*.js`, which a module script fetches in CORS mode). A
//! request from an allowed origin to one of those gets `Access-Control-Allow-Origin` naming
//! that origin (never `*`), and a preflight (`OPTIONS`) is answered 204 with the methods the
//! path takes and `Authorization`, `Content-Type` allowed. An origin not on the list gets no
//! CORS header at all (its preflight: 403), so its browser keeps the answer from its page.
//! Credentials (cookies) are never allowed: the API takes bearer tokens.
//!
//! In cluster mode the live nodes' own origins are allowed too (their public URLs, from the
//! registry as of the last heartbeat): a watch page served by one node watches from whichever
//! node its node list says (`http::room_nodes`), and calls WHEP, the frames API and the reads
//! there.
//!
//! The cluster's node origins (and only they, never an `--allow-origin` merchant site) may also
//! call the host page's endpoints (`node_methods_for`): WHIP and its session, the product
//! writes, the orders and bans. When the room's origin dies, the host page served by it
//! publishes again to another node and its console follows there (`web/host.js`); its
//! requests then come from the dead node's origin, so a node origin stays allowed once this
//! node has seen it live (`NodeView::has_seen_origin`).

use std::sync::Arc;

use warp::http::header::{HeaderMap, HeaderValue};
use warp::http::{header, Method, StatusCode};
use warp::reply::Response;
use warp::Reply;

use crate::cluster::node_view::NodeView;

/// How long a browser may cache a preflight's answer.
const PREFLIGHT_MAX_AGE_SECS: &str = "600";

/// The origins allowed to call the player's endpoints, as `scheme://host[:port]`.
#[derive(Debug, Clone, Default)]
pub struct AllowedOrigins(Vec<String>, Option<Arc<NodeView>>);

impl PartialEq for AllowedOrigins {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0 && self.1.is_some() == other.1.is_some()
    }
}

impl AllowedOrigins {
    /// Check each `--allow-origin`: an `http(s)` origin and nothing more (no path, no `*`).
    pub fn parse(origins: &[String]) -> Result<AllowedOrigins, String> {
        let mut out = Vec::with_capacity(origins.len());
        for o in origins {
            let url = reqwest::Url::parse(o).map_err(|e| format!("--allow-origin {o:?}: {e}"))?;
            let origin = url.origin().ascii_serialization();
            if !matches!(url.scheme(), "http" | "https") || origin != o.trim_end_matches('/') {
                return Err(format!("--allow-origin {o:?}: give an origin only, like https://shop.example.com"));
            }
            out.push(origin);
        }
        Ok(AllowedOrigins(out, None))
    }

    /// Also allow the origins of the cluster's live nodes, as `view` knows them.
    pub fn with_nodes(self, view: Arc<NodeView>) -> AllowedOrigins {
        AllowedOrigins(self.0, Some(view))
    }

    /// No `--allow-origin` given (the cluster's nodes are not counted: they never frame the embed page).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn allows(&self, origin: &str) -> bool {
        self.0.iter().any(|o| o == origin) || self.allows_node(origin)
    }

    /// `origin` is a cluster node's (live now, or seen live since this node started).
    pub fn allows_node(&self, origin: &str) -> bool {
        self.1.as_ref().is_some_and(|view| view.has_seen_origin(origin))
    }

    /// Whether `path` takes CORS from anyone here: the player's paths, and in a cluster the host
    /// page's too (a single node keeps them closed to every origin, as before).
    pub fn open_methods(&self, path: &str) -> Option<&'static str> {
        if self.1.is_some() {
            any_methods_for(path)
        } else {
            methods_for(path)
        }
    }

    /// The methods `origin` may use cross-origin on `path`: the player's for every allowed
    /// origin, and for a cluster node's origin also the host page's.
    pub fn methods(&self, path: &str, origin: &str) -> Option<&'static str> {
        if self.allows_node(origin) {
            node_methods_for(path).or_else(|| methods_for(path))
        } else if self.0.iter().any(|o| o == origin) {
            methods_for(path)
        } else {
            None
        }
    }

    /// The cluster's live node origins (empty on a single node), for the pages' `connect-src`.
    pub fn node_origins(&self) -> Vec<String> {
        self.1.as_ref().map(|view| view.snapshot().origins.clone()).unwrap_or_default()
    }

    /// The origins, space-separated, as a CSP source list (`frame-ancestors`).
    pub fn source_list(&self) -> String {
        self.0.join(" ")
    }
}

/// The methods a cross-origin caller may use on `path`; `None`: no CORS on this path.
pub fn methods_for(path: &str) -> Option<&'static str> {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match segments.as_slice() {
        ["whep", _room] => Some("POST, OPTIONS"),
        ["whep", _room, _session] => Some("DELETE, OPTIONS"),
        ["api", "rooms", _room] | ["api", "rooms", _room, "products"] | ["api", "rooms", _room, "show"] => Some("GET, OPTIONS"),
        ["api", "rooms", _room, "frames"] => Some("POST, OPTIONS"),
        ["api", "rooms", _room, "nodes"] | ["api", "rooms", _room, "orders", "mine"] => Some("GET, OPTIONS"),
        ["api", "config"] | ["api", "dev", "token"] => Some("GET, OPTIONS"),
        ["embed.js"] => Some("GET, OPTIONS"),
        ["static", file] if file.ends_with(".js") || file.ends_with(".css") => Some("GET, OPTIONS"),
        _ => None,
    }
}

/// The methods a cluster node's origin may use on `path` beyond the player's: the host page's
/// (it publishes again on another node when its own dies). `None`: only `methods_for`.
pub fn node_methods_for(path: &str) -> Option<&'static str> {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match segments.as_slice() {
        ["whip", _room] => Some("POST, OPTIONS"),
        ["whip", _room, _session] => Some("DELETE, OPTIONS"),
        ["api", "rooms", _room, "products"] => Some("GET, POST, OPTIONS"),
        ["api", "rooms", _room, "orders"] | ["api", "rooms", _room, "bans"] => Some("GET, OPTIONS"),
        ["api", "rooms", _room, "bans", _identity] => Some("DELETE, OPTIONS"),
        _ => None,
    }
}

/// Whether `path` takes CORS from anyone (a player's or a node's origin).
pub fn any_methods_for(path: &str) -> Option<&'static str> {
    node_methods_for(path).or_else(|| methods_for(path))
}

/// The answer to a preflight for `path` from `origin`.
pub fn preflight(allowed: &AllowedOrigins, path: &str, origin: Option<&str>) -> Response {
    let Some(methods) = allowed.open_methods(path) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    match origin.and_then(|o| allowed.methods(path, o).map(|m| (o, m))) {
        Some((origin, methods)) => {
            let mut response = StatusCode::NO_CONTENT.into_response();
            let headers = response.headers_mut();
            allow(headers, origin);
            headers.insert(header::VARY, HeaderValue::from_static("Origin"));
            headers.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static(methods));
            headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, HeaderValue::from_static("Authorization, Content-Type"));
            headers.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static(PREFLIGHT_MAX_AGE_SECS));
            response
        }
        None if origin.is_some() => {
            let mut response = warp::reply::with_status("origin not allowed\n", StatusCode::FORBIDDEN).into_response();
            response.headers_mut().insert(header::VARY, HeaderValue::from_static("Origin"));
            response
        }
        // Not a CORS preflight: say what the path takes.
        None => {
            let mut response = StatusCode::NO_CONTENT.into_response();
            response.headers_mut().insert(header::ALLOW, HeaderValue::from_static(methods));
            response
        }
    }
}

/// Add CORS headers to an answer for `path` when `origin` is allowed there.
pub fn decorate(allowed: &AllowedOrigins, method: &Method, path: &str, origin: Option<&str>, mut response: Response) -> Response {
    let open = any_methods_for(path).is_some_and(|methods| methods.split(", ").any(|m| m == method.as_str()));
    if (allowed.is_empty() && allowed.1.is_none()) || *method == Method::OPTIONS || !open {
        return response;
    }
    let headers = response.headers_mut();
    // The answer depends on the Origin: caches must not hand one origin's answer to another.
    headers.append(header::VARY, HeaderValue::from_static("Origin"));
    let opens = |o: &&str| allowed.methods(path, o).is_some_and(|methods| methods.split(", ").any(|m| m == method.as_str()));
    if let Some(origin) = origin.filter(opens) {
        allow(headers, origin);
        headers.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, HeaderValue::from_static("Location, Retry-After"));
    }
    response
}

fn allow(headers: &mut HeaderMap, origin: &str) {
    if let Ok(value) = HeaderValue::from_str(origin) {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed() -> AllowedOrigins {
        AllowedOrigins::parse(&["https://shop.example.com".into(), "http://127.0.0.1:18500".into()]).expect("valid")
    }

    #[test]
    fn only_bare_http_origins_are_accepted() {
        assert!(AllowedOrigins::parse(&["https://shop.example.com/".into()]).is_ok(), "a trailing slash is the same origin");
        for bad in ["*", "shop.example.com", "https://shop.example.com/page", "ftp://x.example", "null"] {
            assert!(AllowedOrigins::parse(&[bad.into()]).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_player_endpoints_take_cors_and_host_endpoints_do_not() {
        assert_eq!(methods_for("/whep/demo"), Some("POST, OPTIONS"));
        assert_eq!(methods_for("/whep/demo/abc"), Some("DELETE, OPTIONS"));
        assert_eq!(methods_for("/api/rooms/demo/frames"), Some("POST, OPTIONS"));
        assert_eq!(methods_for("/api/rooms/demo/products"), Some("GET, OPTIONS"));
        assert_eq!(methods_for("/api/rooms/demo/show"), Some("GET, OPTIONS"));
        assert_eq!(methods_for("/api/rooms/demo"), Some("GET, OPTIONS"));
        assert_eq!(methods_for("/api/rooms/demo/nodes"), Some("GET, OPTIONS"));
        assert_eq!(methods_for("/api/rooms/demo/orders/mine"), Some("GET, OPTIONS"));
        for host_only in ["/whip/demo", "/api/rooms/demo/products/3", "/api/rooms/demo/bans", "/metrics", "/host/demo"] {
            assert_eq!(methods_for(host_only), None, "{host_only}");
        }
    }

    #[test]
    fn a_preflight_from_an_allowed_origin_is_answered_and_another_is_refused() {
        let ok = preflight(&allowed(), "/whep/demo", Some("https://shop.example.com"));
        assert_eq!(ok.status(), StatusCode::NO_CONTENT);
        let h = ok.headers();
        assert_eq!(h.get(header::ACCESS_CONTROL_ALLOW_ORIGIN).map(HeaderValue::as_bytes), Some(&b"https://shop.example.com"[..]));
        let allowed_headers = h.get(header::ACCESS_CONTROL_ALLOW_HEADERS).and_then(|v| v.to_str().ok()).unwrap_or("");
        assert!(allowed_headers.contains("Authorization") && allowed_headers.contains("Content-Type"), "{allowed_headers}");
        let refused = preflight(&allowed(), "/whep/demo", Some("https://evil.example"));
        assert_eq!(refused.status(), StatusCode::FORBIDDEN);
        assert!(refused.headers().get(header::ACCESS_CONTROL_ALLOW_ORIGIN).is_none());
    }

    #[test]
    fn answers_name_only_an_allowed_origin() {
        let answer = |origin| {
            decorate(&allowed(), &Method::POST, "/whep/demo", origin, StatusCode::CREATED.into_response())
                .headers()
                .get(header::ACCESS_CONTROL_ALLOW_ORIGIN)
                .cloned()
        };
        assert_eq!(answer(Some("http://127.0.0.1:18500")), Some(HeaderValue::from_static("http://127.0.0.1:18500")));
        assert_eq!(answer(Some("https://evil.example")), None);
        assert_eq!(answer(None), None);
        let write = decorate(&allowed(), &Method::POST, "/api/rooms/demo/products", Some("https://shop.example.com"), StatusCode::OK.into_response());
        assert!(write.headers().get(header::ACCESS_CONTROL_ALLOW_ORIGIN).is_none(), "only the methods the path opens");
        let none_configured =
            decorate(&AllowedOrigins::default(), &Method::GET, "/api/rooms/demo", Some("https://shop.example.com"), StatusCode::OK.into_response());
        assert!(none_configured.headers().get(header::ACCESS_CONTROL_ALLOW_ORIGIN).is_none());
    }

    #[test]
    fn in_a_cluster_the_live_nodes_origins_are_allowed_and_no_other() {
        use crate::cluster::node_id::NodeId;
        use crate::cluster::node_record::{NodeLoad, NodeRecord};
        use crate::cluster::unix_millis::UnixMillis;
        let view = Arc::new(NodeView::default());
        let allowed = AllowedOrigins::default().with_nodes(view.clone());
        let b = "http://127.0.0.1:18602";
        assert!(!allowed.allows(b), "not before the registry lists it");
        view.replace(vec![NodeRecord {
            node_id: NodeId::parse("b").expect("valid"),
            public_url: b.to_string(),
            load: NodeLoad::default(),
            rooms: vec![],
            started_at: UnixMillis(0),
            heartbeat_at: UnixMillis(0),
        }]);
        assert!(allowed.allows(b));
        assert!(!allowed.allows("https://evil.example"));
        assert_eq!(preflight(&allowed, "/api/rooms/demo/frames", Some(b)).status(), StatusCode::NO_CONTENT);
        let answer = decorate(&allowed, &Method::POST, "/whep/demo", Some(b), StatusCode::CREATED.into_response());
        assert_eq!(answer.headers().get(header::ACCESS_CONTROL_ALLOW_ORIGIN).map(HeaderValue::as_bytes), Some(b.as_bytes()));
        assert!(allowed.is_empty(), "node origins never frame the embed page");
    }

    fn node(url: &str) -> crate::cluster::node_record::NodeRecord {
        use crate::cluster::node_id::NodeId;
        use crate::cluster::node_record::{NodeLoad, NodeRecord};
        use crate::cluster::unix_millis::UnixMillis;
        NodeRecord {
            node_id: NodeId::parse("a").expect("valid"),
            public_url: url.to_string(),
            load: NodeLoad::default(),
            rooms: vec![],
            started_at: UnixMillis(0),
            heartbeat_at: UnixMillis(0),
        }
    }

    #[test]
    fn whip_is_open_to_cluster_nodes_and_refused_to_a_merchant_origin() {
        let view = Arc::new(NodeView::default());
        let allowed = allowed().with_nodes(view.clone());
        let a = "http://127.0.0.1:18601";
        view.replace(vec![node(a)]);
        let merchant = "https://shop.example.com";
        for path in ["/whip/demo", "/whip/demo/abc"] {
            assert_eq!(preflight(&allowed, path, Some(a)).status(), StatusCode::NO_CONTENT, "{path}");
            assert_eq!(preflight(&allowed, path, Some(merchant)).status(), StatusCode::FORBIDDEN, "{path}");
        }
        let offer = |origin| {
            decorate(&allowed, &Method::POST, "/whip/demo", Some(origin), StatusCode::CREATED.into_response())
                .headers()
                .get(header::ACCESS_CONTROL_ALLOW_ORIGIN)
                .cloned()
        };
        assert_eq!(offer(a), Some(HeaderValue::from_static("http://127.0.0.1:18601")));
        assert_eq!(offer(merchant), None, "a merchant site never publishes");
        let product_write = |origin| {
            decorate(&allowed, &Method::POST, "/api/rooms/demo/products", Some(origin), StatusCode::CREATED.into_response())
                .headers()
                .get(header::ACCESS_CONTROL_ALLOW_ORIGIN)
                .cloned()
        };
        assert!(product_write(a).is_some());
        assert_eq!(product_write(merchant), None);
    }

    #[test]
    fn a_dead_nodes_origin_stays_allowed_for_the_pages_it_served() {
        let view = Arc::new(NodeView::default());
        let allowed = AllowedOrigins::default().with_nodes(view.clone());
        let a = "http://127.0.0.1:18601";
        view.replace(vec![node(a)]);
        view.replace(vec![]);
        assert_eq!(preflight(&allowed, "/whip/demo", Some(a)).status(), StatusCode::NO_CONTENT, "A died: its host page publishes here");
        assert!(allowed.node_origins().is_empty(), "connect-src lists live nodes only");
        assert_eq!(preflight(&allowed, "/whip/demo", Some("http://127.0.0.1:18609")).status(), StatusCode::FORBIDDEN);
    }
}
