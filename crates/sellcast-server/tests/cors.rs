//! CORS over real HTTP: the origins given with `--allow-origin` get their preflights answered
//! and `Access-Control-Allow-Origin` on WHEP, the frames API and the room and product reads; any
//! other origin gets none of it; host endpoints stay closed to other origins; the embed page may
//! be framed by the allowed origins only.

use anyhow::Result;
use reqwest::{Method, StatusCode};

const SHOP: &str = "https://shop.example.com";
const EVIL: &str = "https://evil.example";

async fn start_with(allow: &[&str]) -> Result<(sellcast_server::RunningServer, reqwest::Client, String, tempfile::TempDir)> {
    let dir = tempfile::tempdir()?;
    let config = sellcast_server::Config {
        allow_origins: allow.iter().map(|o| o.to_string()).collect(),
        ..sellcast_server::Config::local(dir.path().join("sellcast.db"))
    };
    let server = sellcast_server::start(config).await?;
    server.open_room("demo").map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let base = format!("http://{}", server.http_addr);
    Ok((server, reqwest::Client::new(), base, dir))
}

fn header<'a>(r: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    r.headers().get(name).and_then(|v| v.to_str().ok())
}

async fn preflight(http: &reqwest::Client, url: &str, origin: &str, method: &str) -> Result<reqwest::Response> {
    Ok(http
        .request(Method::OPTIONS, url)
        .header("origin", origin)
        .header("access-control-request-method", method)
        .header("access-control-request-headers", "authorization, content-type")
        .send()
        .await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_allowed_origin_gets_its_preflights_answered_on_the_player_endpoints() -> Result<()> {
    let (server, http, base, _dir) = start_with(&[SHOP]).await?;
    for (path, method) in [
        ("/whep/demo", "POST"),
        ("/whep/demo/some-session", "DELETE"),
        ("/api/rooms/demo/frames", "POST"),
        ("/api/rooms/demo/products", "GET"),
        ("/api/rooms/demo", "GET"),
    ] {
        let r = preflight(&http, &format!("{base}{path}"), SHOP, method).await?;
        assert_eq!(r.status(), StatusCode::NO_CONTENT, "{path}");
        assert_eq!(header(&r, "access-control-allow-origin"), Some(SHOP), "{path}");
        assert!(header(&r, "access-control-allow-methods").is_some_and(|m| m.contains(method)), "{path}");
        let headers = header(&r, "access-control-allow-headers").unwrap_or_default().to_ascii_lowercase();
        assert!(headers.contains("authorization") && headers.contains("content-type"), "{path}: {headers}");
        assert_eq!(header(&r, "access-control-allow-credentials"), None, "bearer tokens only, never cookies");
    }
    server.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_origin_gets_no_cors_headers_and_its_preflight_is_refused() -> Result<()> {
    let (server, http, base, _dir) = start_with(&[SHOP]).await?;
    let r = preflight(&http, &format!("{base}/whep/demo"), EVIL, "POST").await?;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(header(&r, "access-control-allow-origin"), None);
    let read = http.get(format!("{base}/api/rooms/demo")).header("origin", EVIL).send().await?;
    assert_eq!(read.status(), StatusCode::OK, "the answer itself is the same; only its browser keeps it from the page");
    assert_eq!(header(&read, "access-control-allow-origin"), None);
    assert!(header(&read, "vary").is_some_and(|v| v.contains("Origin")), "caches keep answers per origin");
    server.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_to_an_allowed_origin_name_it_and_expose_the_whep_location() -> Result<()> {
    let (server, http, base, _dir) = start_with(&[SHOP]).await?;
    for path in ["/api/rooms/demo", "/api/rooms/demo/products", "/embed.js", "/static/session.js"] {
        let r = http.get(format!("{base}{path}")).header("origin", SHOP).send().await?;
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        assert_eq!(header(&r, "access-control-allow-origin"), Some(SHOP), "{path}");
    }
    // A refused offer still carries the headers, so the page can read why.
    let offer = http
        .post(format!("{base}/whep/demo"))
        .header("origin", SHOP)
        .header("content-type", "application/sdp")
        .body("not sdp")
        .send()
        .await?;
    assert!(offer.status().is_client_error(), "{}", offer.status());
    assert_eq!(header(&offer, "access-control-allow-origin"), Some(SHOP));
    assert!(header(&offer, "access-control-expose-headers").is_some_and(|h| h.contains("Location")));
    let frames = http.post(format!("{base}/api/rooms/demo/frames")).header("origin", SHOP).body("{}").send().await?;
    assert_eq!(header(&frames, "access-control-allow-origin"), Some(SHOP), "frames answer {}", frames.status());
    server.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_endpoints_stay_closed_to_other_origins_and_none_are_open_by_default() -> Result<()> {
    let (server, http, base, _dir) = start_with(&[SHOP]).await?;
    let whip = preflight(&http, &format!("{base}/whip/demo"), SHOP, "POST").await?;
    assert_eq!(whip.status(), StatusCode::METHOD_NOT_ALLOWED, "no preflight for WHIP");
    assert_eq!(header(&whip, "access-control-allow-origin"), None);
    let write = http.post(format!("{base}/api/rooms/demo/products")).header("origin", SHOP).body("{}").send().await?;
    assert_eq!(header(&write, "access-control-allow-origin"), None, "product writes are the host console's");
    server.shutdown().await;

    let (server, http, base, _dir) = start_with(&[]).await?;
    let r = preflight(&http, &format!("{base}/whep/demo"), SHOP, "POST").await?;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let read = http.get(format!("{base}/api/rooms/demo")).header("origin", SHOP).send().await?;
    assert_eq!(header(&read, "access-control-allow-origin"), None);
    server.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_embed_page_may_be_framed_and_only_by_the_allowed_origins() -> Result<()> {
    let (server, http, base, _dir) = start_with(&[SHOP]).await?;
    let embed = http.get(format!("{base}/embed/demo")).send().await?;
    assert_eq!(embed.status(), StatusCode::OK);
    assert!(header(&embed, "content-security-policy").is_some_and(|c| c.ends_with(&format!("frame-ancestors {SHOP}"))));
    let watch = http.get(format!("{base}/watch/demo")).send().await?;
    assert!(header(&watch, "content-security-policy").is_some_and(|c| c.ends_with("frame-ancestors 'none'")));
    server.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_allowed_origin_is_refused_at_start() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let config = sellcast_server::Config {
        allow_origins: vec!["https://shop.example.com/products".into()],
        ..sellcast_server::Config::local(dir.path().join("sellcast.db"))
    };
    let refused = sellcast_server::start(config).await.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(refused.contains("--allow-origin"), "{refused}");
    Ok(())
}
