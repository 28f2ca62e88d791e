//! Resume over a real data channel: a viewer that drops and comes back on the same server
//! says `hello` with the last `(epoch, seq)` it applied and gets exactly the events after it;
//! from another epoch (the server restarted) or from further back than the replay buffer
//! holds it gets a `snapshot` instead.

mod support;

use std::time::Duration;

use anyhow::{Context, Result};
use sellcast_peer::{Viewer, ViewerOptions};
use serde_json::{json, Value};
use support::{bounded, of_type, room_events, seqs, server, until, welcomed, Api};

fn with_channel(hello: Option<String>) -> ViewerOptions {
    ViewerOptions { data_channel: true, hello, ..ViewerOptions::default() }
}

fn resume_hello(epoch: &Value, seq: u64) -> String {
    json!({ "type": "hello", "resume": { "epoch": epoch, "seq": seq } }).to_string()
}

/// Chat `n` short lines from one moderator.
async fn chat(api: &Api, token: &str, tag: &str, n: usize) -> Result<()> {
    for i in 0..n {
        api.frame_ok(token, &json!({ "type": "chat", "text": format!("{tag} {i}") })).await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_resuming_on_the_same_server_gets_exactly_the_events_it_missed() -> Result<()> {
    bounded(Duration::from_secs(60), async {
        let (server, _dir) = server(1).await?;
        let base = format!("http://{}", server.http_addr);
        let api = Api::new(&base, "again");
        let host = api.token("host", "the-host").await?;
        let product = api.product(&host, "Lamp", "").await?;
        let watcher = Viewer::connect(&base, "again", with_channel(None)).await?;
        let leaver = Viewer::connect(&base, "again", with_channel(None)).await?;
        welcomed(&watcher).await?;
        welcomed(&leaver).await?;
        chat(&api, &host, "before", 3).await?;
        until(Duration::from_secs(10), "the first events", || room_events(&leaver).len() >= 3).await?;
        let applied = room_events(&leaver).last().cloned().context("an event")?;
        let (epoch, seq) = (applied["epoch"].clone(), applied["seq"].as_u64().context("seq")?);
        leaver.close().await;
        until(Duration::from_secs(10), "the viewer left", || server.status_board.status("again").viewers == 1).await?;

        // While it is away: chat, a pin and a deleted message.
        chat(&api, &host, "away", 3).await?;
        api.frame_ok(&host, &json!({ "type": "pin", "product_ids": [product] })).await?;
        api.frame_ok(&host, &json!({ "type": "delete_message", "seq": seq })).await?;
        until(Duration::from_secs(10), "the watcher sees the pin and the deletion", || {
            !of_type(&watcher, "chat_deleted").is_empty() && !of_type(&watcher, "pinned").is_empty()
        })
        .await?;
        let missed: Vec<Value> = room_events(&watcher).into_iter().filter(|e| e["seq"].as_u64() > Some(seq)).collect();
        assert_eq!(missed.len(), 5, "five events while it was away: {missed:?}");

        let back = Viewer::connect(&base, "again", with_channel(Some(resume_hello(&epoch, seq)))).await?;
        let welcome = welcomed(&back).await?;
        until(Duration::from_secs(10), "the replay", || room_events(&back).len() >= missed.len()).await?;
        tokio::time::sleep(Duration::from_millis(500)).await; // a duplicate would arrive right behind
        assert_eq!(welcome["resumed"], true, "{welcome}");
        assert_eq!(room_events(&back), missed, "exactly the missed events, each once, in order");
        assert!(of_type(&back, "snapshot").is_empty(), "a resume gets no snapshot");

        // And it is live again: the next event follows.
        chat(&api, &host, "live", 1).await?;
        until(Duration::from_secs(10), "the next live event", || room_events(&back).len() > missed.len()).await?;
        let all = seqs(&room_events(&back));
        assert_eq!(all, (seq + 1..=seq + all.len() as u64).collect::<Vec<_>>(), "no gap from the resume point on");
        back.close().await;
        watcher.close().await;
        server.shutdown().await;
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_from_before_a_server_restart_gets_a_snapshot() -> Result<()> {
    bounded(Duration::from_secs(60), async {
        let dir = tempfile::tempdir()?;
        let config = || sellcast_server::Config { media_threads: 1, ..sellcast_server::Config::local(dir.path().join("sellcast.db")) };
        let first = sellcast_server::start(config()).await?;
        let base = format!("http://{}", first.http_addr);
        let api = Api::new(&base, "reboot");
        let host = api.token("host", "the-host").await?;
        let product = api.product(&host, "Kettle", "").await?;
        let viewer = Viewer::connect(&base, "reboot", with_channel(None)).await?;
        welcomed(&viewer).await?;
        api.frame_ok(&host, &json!({ "type": "pin", "product_ids": [product] })).await?;
        until(Duration::from_secs(10), "the pin", || !room_events(&viewer).is_empty()).await?;
        let applied = room_events(&viewer).last().cloned().context("an event")?;
        let (epoch, seq) = (applied["epoch"].clone(), applied["seq"].as_u64().context("seq")?);
        viewer.close().await;
        first.shutdown().await;

        // The same database, a new process life: a new epoch.
        let second = sellcast_server::start(config()).await?;
        let base = format!("http://{}", second.http_addr);
        let back = Viewer::connect(&base, "reboot", with_channel(Some(resume_hello(&epoch, seq)))).await?;
        let welcome = welcomed(&back).await?;
        until(Duration::from_secs(10), "a snapshot", || !of_type(&back, "snapshot").is_empty()).await?;
        let snapshot = &of_type(&back, "snapshot")[0];
        assert_eq!(welcome["resumed"], false, "{welcome}");
        assert_ne!(welcome["epoch"], epoch, "the restarted server has a new epoch");
        assert_eq!(snapshot["epoch"], welcome["epoch"]);
        let products = snapshot["products"].as_array().context("products")?;
        assert!(products.iter().any(|p| p["id"] == product), "the snapshot has the room's products: {products:?}");
        back.close().await;
        second.shutdown().await;
        Ok(())
    })
    .await
}

/// The replay buffer holds the last 2,048 events. (Those events are also more than 64 KiB,
/// the most a resume replays: with the server's defaults both limits are passed here.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_from_more_events_back_than_the_replay_buffer_holds_gets_a_snapshot() -> Result<()> {
    bounded(Duration::from_secs(60), async {
        let (server, _dir) = server(1).await?;
        let base = format!("http://{}", server.http_addr);
        let api = Api::new(&base, "far");
        server.open_room("far")?;
        let first_mod = api.token("moderator", "mod-0").await?;
        let viewer = Viewer::connect(&base, "far", with_channel(None)).await?;
        welcomed(&viewer).await?;
        api.frame_ok(&first_mod, &json!({ "type": "mute", "identity": "someone", "seconds": 1 })).await?;
        until(Duration::from_secs(10), "the first event", || !room_events(&viewer).is_empty()).await?;
        let applied = room_events(&viewer).last().cloned().context("an event")?;
        let (epoch, seq) = (applied["epoch"].clone(), applied["seq"].as_u64().context("seq")?);
        viewer.close().await;

        // 2,100 more events (mutes: moderators' frames, each an event), from 42 moderators.
        for m in 0..42 {
            let token = api.token("moderator", &format!("mod-{m}")).await?;
            for _ in 0..50 {
                api.frame_ok(&token, &json!({ "type": "mute", "identity": "someone", "seconds": 1 })).await?;
            }
        }
        let back = Viewer::connect(&base, "far", with_channel(Some(resume_hello(&epoch, seq)))).await?;
        let welcome = welcomed(&back).await?;
        until(Duration::from_secs(10), "a snapshot", || !of_type(&back, "snapshot").is_empty()).await?;
        assert_eq!(welcome["resumed"], false, "{welcome}");
        assert_eq!(welcome["seq"].as_u64(), Some(seq + 2100), "the room moved on by the 2,100 events");
        assert_eq!(of_type(&back, "snapshot")[0]["seq"].as_u64(), Some(seq + 2100));
        assert!(room_events(&back).is_empty(), "nothing is replayed");
        back.close().await;
        server.shutdown().await;
        Ok(())
    })
    .await
}
