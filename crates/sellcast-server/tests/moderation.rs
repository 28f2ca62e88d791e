//! Bans are durable and enforced when a session starts; host-only actions need a host token.

mod common;

use std::time::{Duration, Instant};

use anyhow::Result;
use common::Api;
use serde_json::json;

#[tokio::test]
async fn a_ban_is_enforced_on_reconnect_and_survives_a_restart() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("sellcast.db");
    let mut config = sellcast_server::Config::local(&db);
    config.jwt_secret = Some("test-secret-that-is-at-least-32-bytes".into());
    let server = sellcast_server::start(config.clone()).await?;
    let api = Api::new(format!("http://{}", server.http_addr));
    // The host created the room (a viewer's frame to a room nobody created is a 404).
    server.open_room("mod")?;
    let mint = |role: sellcast_room::Role, who: &str| {
        server.auth.mint(&sellcast_server::auth::Claims {
            room: "mod".into(),
            sub: who.into(),
            name: who.into(),
            role,
            exp: sellcast_server::auth::now_secs() + 600,
        })
    };
    let host = mint(sellcast_room::Role::Host, "hana")?;
    let eve = mint(sellcast_room::Role::Viewer, "eve")?;

    // Without a secret-less dev mode, a missing token is refused outright.
    let anon = api.http.post(format!("{}/whep/mod", api.base)).header("content-type", "application/sdp").body("v=0").send().await?;
    assert_eq!(anon.status().as_u16(), 401);
    // A viewer token cannot run the show.
    let refused = api.frame("mod", &eve, &json!({"type": "ban", "identity": "hana"})).await?;
    assert_eq!(refused[0]["code"], "forbidden");

    api.frame("mod", &host, &json!({"type": "ban", "identity": "eve"})).await?;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = api.http.post(format!("{}/whep/mod", api.base)).bearer_auth(&eve).header("content-type", "application/sdp").body("v=0").send().await?;
        if r.status().as_u16() == 403 {
            assert!(r.text().await?.contains("banned"));
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "the ban never took effect");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let chat = api.http.post(format!("{}/api/rooms/mod/frames", api.base)).bearer_auth(&eve).json(&json!({"type": "chat", "text": "hi"})).send().await?;
    assert_eq!(chat.status().as_u16(), 403, "banned from the HTTP frames API too");
    server.shutdown().await;

    // The ban is in the database: a restarted server still refuses her.
    let server = sellcast_server::start(config).await?;
    let api = Api::new(format!("http://{}", server.http_addr));
    let eve = server.auth.mint(&sellcast_server::auth::Claims {
        room: "mod".into(),
        sub: "eve".into(),
        name: "eve".into(),
        role: sellcast_room::Role::Viewer,
        exp: sellcast_server::auth::now_secs() + 600,
    })?;
    let r = api.http.post(format!("{}/whep/mod", api.base)).bearer_auth(&eve).header("content-type", "application/sdp").body("v=0").send().await?;
    assert_eq!(r.status().as_u16(), 403);
    server.shutdown().await;
    Ok(())
}
