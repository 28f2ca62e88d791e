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
    server.open_room("mod")?; // the host is back (viewers cannot create rooms)
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

#[tokio::test]
async fn roles_bound_moderation_and_an_unban_over_http_or_a_frame_lets_the_identity_back() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let mut config = sellcast_server::Config::local(dir.path().join("sellcast.db"));
    config.jwt_secret = Some("test-secret-that-is-at-least-32-bytes".into());
    let server = sellcast_server::start(config.clone()).await?;
    let api = Api::new(format!("http://{}", server.http_addr));
    let mint = |role: sellcast_room::Role, who: &str| {
        let exp = sellcast_server::auth::now_secs() + 600;
        server.auth.mint(&sellcast_server::auth::Claims { room: "mod".into(), sub: who.into(), name: who.into(), role, exp })
    };
    let host = mint(sellcast_room::Role::Host, "hana")?;
    let mo = mint(sellcast_room::Role::Moderator, "mo")?;
    let eve = mint(sellcast_room::Role::Viewer, "eve")?;
    let bans_url = format!("{}/api/rooms/mod/bans", api.base);
    let chat = |token: String| {
        let (http, url) = (api.http.clone(), format!("{}/api/rooms/mod/frames", api.base));
        async move { http.post(url).bearer_auth(token).json(&json!({"type": "chat", "text": "hi"})).send().await }
    };

    // The host says something first, so the room knows her role even when she is offline.
    assert_eq!(api.frame("mod", &host, &json!({"type": "chat", "text": "welcome"})).await?, Vec::<serde_json::Value>::new());
    let refused = api.frame("mod", &mo, &json!({"type": "ban", "identity": "hana"})).await?;
    assert_eq!(refused[0]["code"], "not_permitted", "a moderator cannot ban the host: {refused:?}");
    let refused = api.frame("mod", &mo, &json!({"type": "ban", "identity": "mo"})).await?;
    assert_eq!(refused[0]["code"], "not_permitted", "nor themselves");

    // The host bans eve; the ban list (staff only) shows it once committed.
    assert_eq!(api.frame("mod", &host, &json!({"type": "ban", "identity": "eve"})).await?, Vec::<serde_json::Value>::new());
    let listed = api.http.get(&bans_url).bearer_auth(&mo).send().await?.json::<serde_json::Value>().await?;
    assert_eq!(listed["bans"], json!([{"identity": "eve", "until_ms": null, "by": "host"}]), "{listed}");
    assert_eq!(api.http.get(&bans_url).bearer_auth(&eve).send().await?.status().as_u16(), 403, "viewers do not see the list");
    assert_eq!(chat(eve.clone()).await?.status().as_u16(), 403, "banned");

    // Lifting it: a viewer may not, a moderator may not lift the host's ban, the host may.
    let unban_eve = format!("{bans_url}/eve");
    assert_eq!(api.http.delete(&unban_eve).bearer_auth(&eve).send().await?.status().as_u16(), 403);
    let r = api.http.delete(&unban_eve).bearer_auth(&mo).send().await?;
    assert_eq!(r.status().as_u16(), 403);
    assert_eq!(r.json::<serde_json::Value>().await?["code"], "not_permitted");
    assert_eq!(api.http.delete(&unban_eve).bearer_auth(&host).send().await?.status().as_u16(), 204);
    let back = chat(eve.clone()).await?;
    assert_eq!((back.status().as_u16(), back.text().await?), (200, "[]".to_string()), "eve chats again");
    assert_eq!(api.http.delete(&unban_eve).bearer_auth(&host).send().await?.status().as_u16(), 404, "no ban left");

    // The same over the data-channel frame: a moderator's ban, lifted by that moderator.
    api.frame("mod", &mo, &json!({"type": "ban", "identity": "eve"})).await?;
    assert_eq!(chat(eve.clone()).await?.status().as_u16(), 403);
    assert_eq!(api.frame("mod", &mo, &json!({"type": "unban", "identity": "eve"})).await?, Vec::<serde_json::Value>::new());
    assert_eq!(chat(eve.clone()).await?.status().as_u16(), 200);
    server.shutdown().await;

    // Unbans are durable: after a restart eve is still welcome.
    let server = sellcast_server::start(config).await?;
    server.open_room("mod")?; // the host is back (viewers cannot create rooms)
    let api = Api::new(format!("http://{}", server.http_addr));
    let eve = server.auth.mint(&sellcast_server::auth::Claims {
        room: "mod".into(),
        sub: "eve".into(),
        name: "eve".into(),
        role: sellcast_room::Role::Viewer,
        exp: sellcast_server::auth::now_secs() + 600,
    })?;
    assert_eq!(api.frame("mod", &eve, &json!({"type": "chat", "text": "still here"})).await?, Vec::<serde_json::Value>::new());
    server.shutdown().await;
    Ok(())
}
