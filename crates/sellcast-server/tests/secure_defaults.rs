//! Secure by default, against the real server: no dev mode on a public address unless asked
//! for, dev identities that survive a restart, long secrets, tokens for sellcast only and only
//! from the `Authorization` header, a strict CSP on the pages, and product images that are
//! `https:` or same-origin.

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use common::Api;
use reqwest::StatusCode;
use sellcast_room::Role;
use sellcast_server::auth::{now_secs, AuthSetupError, Claims, SecretError, AUDIENCE, ISSUER};
use sellcast_server::{Config, RunningServer};
use serde_json::{json, Value};

const SECRET: &str = "a-secret-for-these-tests-of-32-bytes-or-more";

fn on_any_address(db: &std::path::Path) -> Config {
    Config { http_addr: SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0), media_threads: 1, ..Config::local(db) }
}

fn setup_error(result: Result<RunningServer>) -> Result<AuthSetupError> {
    match result {
        Ok(_) => bail!("the server started"),
        Err(e) => match e.downcast::<AuthSetupError>() {
            Ok(setup) => Ok(setup),
            Err(other) => bail!("refused for another reason: {other:#}"),
        },
    }
}

async fn with_secret(dir: &tempfile::TempDir) -> Result<(RunningServer, Api)> {
    let config = Config { jwt_secret: Some(SECRET.into()), media_threads: 1, ..Config::local(dir.path().join("sellcast.db")) };
    let server = sellcast_server::start(config).await?;
    let api = Api::new(format!("http://{}", server.http_addr));
    Ok((server, api))
}

fn host_token(server: &RunningServer, room: &str) -> Result<String> {
    let claims = Claims { room: room.into(), sub: "hana".into(), name: "Hana".into(), role: Role::Host, exp: now_secs() + 600 };
    Ok(server.auth.mint(&claims)?)
}

fn product(image_url: &str) -> Value {
    json!({ "title": "Mug", "price_minor": 1200, "currency": "EUR", "image_url": image_url, "stock": 3 })
}

#[tokio::test]
async fn without_a_secret_a_non_loopback_address_is_refused_unless_dev_is_asked_for() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("sellcast.db");
    let refused = setup_error(sellcast_server::start(on_any_address(&db)).await)?;
    ensure!(matches!(refused, AuthSetupError::NoSecretOnPublicAddress(_)), "{refused:?}");
    let message = refused.to_string();
    for hint in ["--jwt-secret", "SELLCAST_JWT_SECRET", "--dev"] {
        ensure!(message.contains(hint), "the refusal says how to fix it ({hint}): {message}");
    }
    let specific = Config { http_addr: "192.0.2.7:0".parse()?, ..Config::local(&db) };
    let refused = setup_error(sellcast_server::start(specific).await)?;
    ensure!(matches!(refused, AuthSetupError::NoSecretOnPublicAddress(_)), "a non-loopback IP (checked before binding): {refused:?}");

    let server = sellcast_server::start(Config { dev: true, ..on_any_address(&db) }).await?;
    ensure!(server.http_addr.ip().is_unspecified() && server.auth.dev_mode());
    let config: Value = reqwest::get(format!("http://127.0.0.1:{}/api/config", server.http_addr.port())).await?.json().await?;
    server.shutdown().await;
    ensure!(config["dev_mode"] == true, "--dev runs dev mode there: {config}");
    Ok(())
}

#[tokio::test]
async fn the_binary_refuses_a_public_address_without_a_secret_and_says_how_to_set_one() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("sellcast.db");
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_sellcast"));
    command
        .args(["serve", "--http", "0.0.0.0:0", "--udp-port", "0", "--media-threads", "1", "--db"])
        .arg(&db)
        .env_remove("SELLCAST_JWT_SECRET")
        .kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(30), command.output()).await.context("the refusal is immediate")??;
    let stderr = String::from_utf8_lossy(&output.stderr);
    ensure!(output.status.code() == Some(2), "exit status {:?}; stderr: {stderr}", output.status);
    ensure!(stderr.contains("SELLCAST_JWT_SECRET") && stderr.contains("--dev"), "{stderr}");
    Ok(())
}

#[tokio::test]
async fn the_dev_secret_is_kept_in_the_data_directory_and_tokens_survive_a_restart() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let config = Config { media_threads: 1, ..Config::local(dir.path().join("sellcast.db")) };
    let first = sellcast_server::start(config.clone()).await?;
    let token = Api::new(format!("http://{}", first.http_addr)).dev_token("shop", "host", "hana").await?;
    first.shutdown().await;
    let secret = dir.path().join(sellcast_server::dev_secret::FILE_NAME);
    let mode = std::fs::metadata(&secret).with_context(|| format!("{}", secret.display()))?.permissions().mode();
    ensure!(mode & 0o777 == 0o600, "the dev secret is private: {mode:o}");

    let second = sellcast_server::start(config).await?;
    let api = Api::new(format!("http://{}", second.http_addr));
    let created = api.http.post(format!("{}/api/rooms/shop/products", api.base)).bearer_auth(&token).json(&product("")).send().await?;
    let status = created.status();
    second.shutdown().await;
    ensure!(status == StatusCode::CREATED, "a host token from before the restart still works: {status}");
    Ok(())
}

#[tokio::test]
async fn a_secret_under_32_bytes_is_refused_at_startup() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let config = Config { jwt_secret: Some("test-secret".into()), ..Config::local(dir.path().join("sellcast.db")) };
    let refused = setup_error(sellcast_server::start(config).await)?;
    ensure!(matches!(refused, AuthSetupError::Secret(SecretError::TooShort { len: 11 })), "{refused:?}");
    ensure!(refused.to_string().contains("at least 32"), "{refused}");
    Ok(())
}

#[tokio::test]
async fn a_token_signed_with_the_secret_for_another_audience_or_issuer_is_refused() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (server, api) = with_secret(&dir).await?;
    let sign = |iss: &str, aud: &str| {
        let claims = json!({ "room": "shop", "sub": "hana", "name": "Hana", "role": "host", "exp": now_secs() + 600, "iss": iss, "aud": aud });
        let key = jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes());
        jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &key)
    };
    let mut answers = Vec::new();
    for (iss, aud) in [(ISSUER, AUDIENCE), (ISSUER, "billing"), ("someone-else", AUDIENCE)] {
        let token = sign(iss, aud)?;
        let url = format!("{}/api/rooms/shop/products", api.base);
        let answer = api.http.post(url).bearer_auth(&token).json(&product("")).send().await?;
        answers.push((iss, aud, answer.status()));
    }
    server.shutdown().await;
    ensure!(answers[0].2 == StatusCode::CREATED, "the same token for sellcast passes: {answers:?}");
    ensure!(answers[1..].iter().all(|(.., status)| *status == StatusCode::UNAUTHORIZED), "{answers:?}");
    Ok(())
}

#[tokio::test]
async fn a_token_in_the_query_string_is_not_accepted() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (server, api) = with_secret(&dir).await?;
    let token = host_token(&server, "shop")?;
    let mut refused = Vec::new();
    for name in ["token", "access_token", "authorization"] {
        let products = format!("{}/api/rooms/shop/products?{name}={token}", api.base);
        refused.push((name, "products", api.http.post(products).json(&product("")).send().await?.status()));
        let whip = format!("{}/whip/shop?{name}={token}", api.base);
        let offer = api.http.post(whip).header("content-type", "application/sdp").body("v=0\r\n").send().await?;
        refused.push((name, "whip", offer.status()));
    }
    let in_header = api.http.post(format!("{}/api/rooms/shop/products", api.base)).bearer_auth(&token).json(&product("")).send().await?;
    server.shutdown().await;
    ensure!(refused.iter().all(|(.., status)| *status == StatusCode::UNAUTHORIZED), "{refused:?}");
    ensure!(in_header.status() == StatusCode::CREATED, "the same token in the header works: {}", in_header.status());
    Ok(())
}

#[tokio::test]
async fn pages_and_answers_carry_a_strict_content_security_policy() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let server = sellcast_server::start(Config { media_threads: 1, ..Config::local(dir.path().join("sellcast.db")) }).await?;
    let base = format!("http://{}", server.http_addr);
    let mut seen = Vec::new();
    for path in ["/host/shop", "/watch/shop", "/static/host.js", "/static/style.css", "/api/config", "/no-such-page"] {
        let answer = reqwest::get(format!("{base}{path}")).await?;
        let header = |name: &str| answer.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
        seen.push((path, header("content-security-policy"), header("x-content-type-options"), header("referrer-policy")));
    }
    server.shutdown().await;
    for (path, csp, nosniff, referrer) in &seen {
        let directives: Vec<&str> = csp.split(';').map(str::trim).collect();
        for wanted in ["default-src 'self'", "script-src 'self'", "img-src 'self' https:", "connect-src 'self'", "media-src 'self' blob:", "frame-ancestors 'none'", "object-src 'none'"] {
            ensure!(directives.contains(&wanted), "{path}: {wanted} missing from {csp:?}");
        }
        ensure!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"), "{path}: {csp}");
        ensure!(nosniff == "nosniff" && referrer == "no-referrer", "{path}: {nosniff:?} {referrer:?}");
    }
    Ok(())
}

#[tokio::test]
async fn image_urls_other_than_https_or_same_origin_are_refused_with_400_and_nothing_is_stored() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (server, api) = with_secret(&dir).await?;
    let token = host_token(&server, "shop")?;
    let products = format!("{}/api/rooms/shop/products", api.base);
    let kept = api.http.post(&products).bearer_auth(&token).json(&product("https://cdn.example/mug.jpg")).send().await?;
    ensure!(kept.status() == StatusCode::CREATED, "an https image is taken: {}", kept.status());
    let id = kept.json::<Value>().await?["id"].as_i64().context("the product's id")?;
    let same_origin = api.http.put(format!("{products}/{id}")).bearer_auth(&token).json(&product("/static/mug.png")).send().await?;
    ensure!(same_origin.status() == StatusCode::OK, "a same-origin path is taken: {}", same_origin.status());
    let mut refused = Vec::new();
    let bad = ["http://cdn.example/mug.jpg", "//cdn.example/mug.jpg", "javascript:alert(1)", "data:image/png;base64,AAAA", "/\\cdn.example/mug.jpg"];
    for url in bad {
        let created = api.http.post(&products).bearer_auth(&token).json(&product(url)).send().await?;
        refused.push((url, "create", created.status(), created.json::<Value>().await.unwrap_or_default()));
        let updated = api.http.put(format!("{products}/{id}")).bearer_auth(&token).json(&product(url)).send().await?;
        refused.push((url, "update", updated.status(), updated.json::<Value>().await.unwrap_or_default()));
    }
    let listed: Value = api.http.get(&products).send().await?.json().await?;
    server.shutdown().await;

    for (url, what, status, body) in &refused {
        ensure!(*status == StatusCode::BAD_REQUEST, "{what} with {url}: {status} {body}");
        ensure!(body["code"] == "invalid", "{what} with {url}: a typed error: {body}");
        ensure!(body["message"].as_str().is_some_and(|m| m.contains("image_url")), "{what} with {url}: says what is wrong: {body}");
    }
    let stored: Vec<&str> = listed["products"].as_array().context("the product list")?.iter().filter_map(|p| p["image_url"].as_str()).collect();
    ensure!(stored == ["/static/mug.png"], "nothing refused was stored: {listed}");
    Ok(())
}
