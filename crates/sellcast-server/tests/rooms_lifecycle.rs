//! Rooms are created by hosts only and unloaded when unused: reading an unknown room is a
//! `404` that loads nothing; a room nobody uses is unloaded after its idle time and comes
//! back from the store, products and all, on next use; a room with a session stays loaded.

mod common;

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use reqwest::StatusCode;
use sellcast_server::{Config, RunningServer};
use common::sdp_offer as offer;
use str0m::media::Direction;

const IDLE: Duration = Duration::from_secs(1);

async fn start() -> Result<(RunningServer, tempfile::TempDir, common::Api)> {
    let dir = tempfile::tempdir()?;
    let config = Config { media_threads: 1, room_idle: IDLE, ..Config::local(dir.path().join("sellcast.db")) };
    let server = sellcast_server::start(config).await?;
    let api = common::Api::new(format!("http://{}", server.http_addr));
    Ok((server, dir, api))
}

/// `sellcast_show_tasks` as `/metrics` shows it.
fn show_tasks(server: &RunningServer) -> Result<u64> {
    let text = server.metrics.render();
    let line = text.lines().find(|l| l.starts_with("sellcast_show_tasks ")).context("sellcast_show_tasks in /metrics")?;
    Ok(line.split_whitespace().nth(1).context("a value")?.parse()?)
}

async fn wait_for_rooms(server: &RunningServer, rooms: usize, within: Duration) -> Result<()> {
    let deadline = Instant::now() + within;
    while server.rooms_loaded() != rooms {
        if Instant::now() > deadline {
            bail!("{} rooms loaded after {within:?}, expected {rooms}", server.rooms_loaded());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reading_an_unknown_room_is_404_and_loads_nothing() -> Result<()> {
    let (server, _dir, api) = start().await?;
    for i in 0..20 {
        let resp = api.http.get(format!("{}/api/rooms/nobody-{i}/products", api.base)).send().await?;
        assert_eq!(resp.status(), StatusCode::NOT_FOUND, "{}", resp.text().await?);
    }
    let viewer = api.dev_token("nobody", "viewer", "v").await?;
    let frame = api.http.post(format!("{}/api/rooms/nobody/frames", api.base)).bearer_auth(&viewer).body(r#"{"type":"like"}"#).send().await?;
    assert_eq!(frame.status(), StatusCode::NOT_FOUND);
    let whep = api
        .http
        .post(format!("{}/whep/nobody", api.base))
        .header("content-type", "application/sdp")
        .bearer_auth(&viewer)
        .body(offer(Direction::RecvOnly))
        .send()
        .await?;
    assert_eq!(whep.status(), StatusCode::NOT_FOUND, "WHEP to a room no host created");
    assert_eq!(server.rooms_loaded(), 0);
    assert_eq!(show_tasks(&server)?, 0, "no show task was started");
    assert_eq!(server.admission.counts().sessions(), 0);
    server.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unused_room_is_unloaded_and_reloads_with_its_products() -> Result<()> {
    let (server, _dir, api) = start().await?;
    let host = api.dev_token("shop", "host", "host").await?;
    let id = api.create_product("shop", &host, "Teapot", 5).await?;
    assert_eq!(server.rooms_loaded(), 1, "a host's product write created the room");
    wait_for_rooms(&server, 0, IDLE * 10).await?;
    assert_eq!(show_tasks(&server)?, 0);

    let products = api.products("shop").await?;
    assert_eq!(products["products"][0]["id"], id, "the room came back from the store: {products}");
    assert_eq!(server.rooms_loaded(), 1);
    // A viewer may join a room the store knows before its host is live.
    let viewer = api.dev_token("shop", "viewer", "v").await?;
    let whep = api
        .http
        .post(format!("{}/whep/shop", api.base))
        .header("content-type", "application/sdp")
        .bearer_auth(&viewer)
        .body(offer(Direction::RecvOnly))
        .send()
        .await?;
    assert_eq!(whep.status(), StatusCode::CREATED, "{}", whep.text().await?);
    server.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_with_a_session_stays_loaded_until_the_session_ends() -> Result<()> {
    let (server, _dir, api) = start().await?;
    let host = api.dev_token("live", "host", "host").await?;
    let whip = api
        .http
        .post(format!("{}/whip/live", api.base))
        .header("content-type", "application/sdp")
        .bearer_auth(&host)
        .body(offer(Direction::SendOnly))
        .send()
        .await?;
    assert_eq!(whip.status(), StatusCode::CREATED);
    let location = whip.headers().get("location").context("Location")?.to_str()?.to_string();
    tokio::time::sleep(IDLE * 3).await;
    assert_eq!(server.rooms_loaded(), 1, "a room whose host holds a session is in use");
    let ended = api.http.delete(format!("{}{location}", api.base)).send().await?;
    assert_eq!(ended.status(), StatusCode::OK);
    wait_for_rooms(&server, 0, IDLE * 10).await?;
    server.shutdown().await;
    Ok(())
}
