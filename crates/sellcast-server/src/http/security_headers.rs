//! Headers every HTTP answer carries so that the pages run only their own code: a strict
//! Content-Security-Policy, `nosniff`, and no `Referer` leaving the pages.
//!
//! The pages (`web/`) load only their own modules and stylesheet, with no inline script or
//! style attribute, so `'self'` is all they need. Product images are `https:` or same-origin
//! (the catalog refuses anything else); media arrives over WebRTC as a `MediaStream`.

use warp::http::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_SECURITY_POLICY, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS};
use warp::reply::Response;

use super::cors::AllowedOrigins;

/// The policy of every page (and, harmlessly, every other answer).
pub const CONTENT_SECURITY_POLICY_VALUE: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self' https:; media-src 'self' blob:; connect-src 'self'; font-src 'self'; object-src 'none'; \
     base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The headers to add to every answer.
pub fn all() -> HeaderMap {
    let pairs: [(HeaderName, &'static str); 3] = [
        (CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY_VALUE),
        (X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (REFERRER_POLICY, "no-referrer"),
    ];
    pairs.into_iter().map(|(name, value)| (name, HeaderValue::from_static(value))).collect()
}

/// The embed page (`/embed/{room}`) may be framed by the origins allowed with
/// `--allow-origin`, and by nobody else. The viewer preview (`/preview/{room}`, the watch page)
/// may be framed by this origin only: the host console shows it. Every other answer keeps
/// `frame-ancestors 'none'`.
pub fn frame_policy(path: &str, allowed: &AllowedOrigins, mut response: Response) -> Response {
    let ancestors = if path.starts_with("/preview/") {
        "'self'".to_string()
    } else if path.starts_with("/embed/") && !allowed.is_empty() {
        allowed.source_list()
    } else {
        return response;
    };
    let policy = CONTENT_SECURITY_POLICY_VALUE.replace("frame-ancestors 'none'", &format!("frame-ancestors {ancestors}"));
    if let Ok(value) = HeaderValue::from_str(&policy) {
        response.headers_mut().insert(CONTENT_SECURITY_POLICY, value);
    }
    response
}

/// In a cluster, a page may watch from any live node (`http::room_nodes`): its policy lets it
/// connect to their origins as well as its own. Only pages served now see nodes known now; a
/// page that lists a node started later skips it and tries the next.
pub fn connect_to_nodes(node_origins: &[String], mut response: Response) -> Response {
    if node_origins.is_empty() {
        return response;
    }
    let Some(policy) = response.headers().get(CONTENT_SECURITY_POLICY).and_then(|v| v.to_str().ok()) else {
        return response;
    };
    let policy = policy.replace("connect-src 'self'", &format!("connect-src 'self' {}", node_origins.join(" ")));
    if let Ok(value) = HeaderValue::from_str(&policy) {
        response.headers_mut().insert(CONTENT_SECURITY_POLICY, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_in_a_cluster_may_connect_to_the_live_nodes() {
        let mut response = Response::new(Vec::<u8>::new().into());
        response.headers_mut().extend(all());
        let nodes = ["http://127.0.0.1:18602".to_string(), "http://127.0.0.1:18603".to_string()];
        let response = connect_to_nodes(&nodes, response);
        let csp = response.headers().get(CONTENT_SECURITY_POLICY).and_then(|v| v.to_str().ok()).unwrap_or_default();
        assert!(csp.contains("connect-src 'self' http://127.0.0.1:18602 http://127.0.0.1:18603;"), "{csp}");
        let single = connect_to_nodes(&[], Response::new(Vec::<u8>::new().into()));
        assert!(single.headers().get(CONTENT_SECURITY_POLICY).is_none());
    }

    #[test]
    fn only_the_embed_page_may_be_framed_and_only_by_allowed_origins() {
        let allowed = AllowedOrigins::parse(&["https://shop.example.com".into()]).expect("valid");
        let csp_of = |path: &str, allowed: &AllowedOrigins| {
            let mut response = Response::new(Vec::<u8>::new().into());
            response.headers_mut().extend(all());
            let response = frame_policy(path, allowed, response);
            response.headers().get(CONTENT_SECURITY_POLICY).and_then(|v| v.to_str().ok()).map(String::from).unwrap_or_default()
        };
        assert!(csp_of("/embed/demo", &allowed).ends_with("frame-ancestors https://shop.example.com"));
        assert!(csp_of("/watch/demo", &allowed).ends_with("frame-ancestors 'none'"));
        assert!(csp_of("/embed/demo", &AllowedOrigins::default()).ends_with("frame-ancestors 'none'"));
    }

    #[test]
    fn the_viewer_preview_may_be_framed_by_its_own_origin_only() {
        let response = || {
            let mut response = Response::new(Vec::<u8>::new().into());
            response.headers_mut().extend(all());
            response
        };
        let allowed = AllowedOrigins::parse(&["https://shop.example.com".into()]).expect("valid");
        for allowed in [&allowed, &AllowedOrigins::default()] {
            let preview = frame_policy("/preview/demo", allowed, response());
            let csp = preview.headers().get(CONTENT_SECURITY_POLICY).and_then(|v| v.to_str().ok()).unwrap_or_default();
            assert!(csp.ends_with("frame-ancestors 'self'") && csp.starts_with("default-src 'self'"), "{csp}");
        }
    }

    #[test]
    fn the_policy_allows_no_inline_script_and_no_framing() {
        let headers = all();
        let csp = headers.get(CONTENT_SECURITY_POLICY).and_then(|v| v.to_str().ok()).expect("a CSP");
        assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"), "{csp}");
        assert!(csp.contains("frame-ancestors 'none'") && csp.starts_with("default-src 'self'"), "{csp}");
        assert_eq!(headers.get(X_CONTENT_TYPE_OPTIONS).map(HeaderValue::as_bytes), Some(&b"nosniff"[..]));
        assert_eq!(headers.get(REFERRER_POLICY).map(HeaderValue::as_bytes), Some(&b"no-referrer"[..]));
    }
}
