//! The README's congestion promise, over real data channels: for a congested viewer chat is
//! dropped first, the 300 ms `likes`/`counters` tick is skipped, and commerce and control
//! events are never dropped; a viewer that cannot take one is disconnected and comes back
//! (from a snapshot: what it missed is more than a replay may carry).
//!
//! A viewer is congested by stalling its receive path (its socket drops what arrives, see
//! `sellcast_peer::Impairment`): the server's SCTP gets no acknowledgements, so what it writes
//! for that viewer stays buffered and `buffered_amount` passes the server's 64 KiB mark. An
//! uncongested viewer in the same room sees everything.

mod support;

use std::time::Duration;

use anyhow::{Context, Result};
use sellcast_peer::{Impairment, Viewer, ViewerOptions};
use serde_json::{json, Value};
use support::{bounded, of_type, room_events, seqs, server, until, welcomed, Api};

/// Chat lines at the 500-character cap: 125 of them are about 70 KiB, past the 64 KiB mark.
const LONG_LINES: usize = 125;

fn viewer_opts(impairment: Option<std::sync::Arc<Impairment>>, hello: Option<String>) -> ViewerOptions {
    ViewerOptions { data_channel: true, impairment, hello, ..ViewerOptions::default() }
}

/// `LONG_LINES` chat lines from five moderators (staff may send 25 at once); their texts.
async fn chat_flood(api: &Api, tag: &str) -> Result<Vec<String>> {
    let mut texts = Vec::new();
    for m in 0..5 {
        let token = api.token("moderator", &format!("mod-{tag}-{m}")).await?;
        for i in 0..LONG_LINES / 5 {
            let text = format!("{tag} {m}-{i:02} {}", "x".repeat(480));
            api.frame_ok(&token, &json!({ "type": "chat", "text": text })).await?;
            texts.push(text);
        }
    }
    Ok(texts)
}

fn chat_texts(v: &Viewer) -> Vec<String> {
    of_type(v, "chat").iter().filter_map(|f| f["text"].as_str().map(String::from)).collect()
}

/// Room events other than chat, by seq: what must never be dropped.
fn control_seqs(v: &Viewer) -> Vec<u64> {
    seqs(&room_events(v).into_iter().filter(|e| e["type"] != "chat").collect::<Vec<_>>())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn congested_viewer_loses_chat_and_ticks_but_gets_every_commerce_event() -> Result<()> {
    bounded(Duration::from_secs(60), async {
        let (server, _dir) = server(1).await?;
        let base = format!("http://{}", server.http_addr);
        let api = Api::new(&base, "busy");
        server.open_room("busy")?;
        let stall = Impairment::new();
        let congested = Viewer::connect(&base, "busy", viewer_opts(Some(stall.clone()), None)).await?;
        let steady = Viewer::connect(&base, "busy", viewer_opts(None, None)).await?;
        welcomed(&congested).await?;
        welcomed(&steady).await?;
        let host = api.token("host", "the-host").await?;
        let buyer = api.token("viewer", "a-buyer").await?;
        let product = api.product(&host, "Teapot", "").await?;

        stall.set_stalled(true);
        // Chat first: it fills the congested viewer's buffer past the mark.
        let flood = chat_flood(&api, "before").await?;
        until(Duration::from_secs(15), "the steady viewer gets the whole flood", || chat_texts(&steady).len() >= flood.len()).await?;
        // Then commerce, likes and counters while it is congested.
        let now = support::now_ms();
        api.frame_ok(&host, &json!({ "type": "pin", "product_ids": [product] })).await?;
        let sale = json!({ "type": "start_sale", "product_id": product, "price_minor": 999, "stock": 10,
                           "per_user_limit": 2, "starts_at_ms": now - 1000, "ends_at_ms": now + 600_000 });
        api.frame_ok(&host, &sale).await?;
        until(Duration::from_secs(10), "the sale starts", || !of_type(&steady, "sale_started").is_empty()).await?;
        let sale_id = of_type(&steady, "sale_started")[0]["sale"]["id"].as_i64().context("sale id")?;
        let bought = api.frame_ok(&buyer, &json!({ "type": "buy", "sale_id": sale_id, "qty": 1, "idempotency_key": "k-1" })).await?;
        assert!(bought.iter().any(|f| f["type"] == "order_confirmed"), "the buy was confirmed: {bought:?}");
        api.frame_ok(&buyer, &json!({ "type": "like", "count": 7 })).await?;
        let sold = |f: &Value| f["sales"].as_array().is_some_and(|s| s.iter().any(|s| s["sold"] == 1));
        until(Duration::from_secs(10), "the steady viewer's tick shows the likes and the sold unit", || {
            of_type(&steady, "likes").iter().any(|f| f["total"] == 7) && of_type(&steady, "counters").iter().any(sold)
        })
        .await
        .with_context(|| format!("the steady viewer's frames: {:?}", support::kinds(&steady, 0)))?;
        api.frame_ok(&host, &json!({ "type": "end_sale", "sale_id": sale_id })).await?;
        let late = api.token("moderator", "late-mod").await?;
        api.frame_ok(&late, &json!({ "type": "chat", "text": "said while congested" })).await?;
        until(Duration::from_secs(10), "the steady viewer sees the sale end and the late chat", || {
            !of_type(&steady, "sale_ended").is_empty() && chat_texts(&steady).iter().any(|t| t == "said while congested")
        })
        .await?;
        let steady_control = control_seqs(&steady);
        println!("while stalled the congested viewer's socket dropped {} datagrams", stall.dropped());

        // The link comes back: what was buffered arrives (SCTP retransmits it), then the tick
        // runs a few more times so anything merely delayed would show up too.
        stall.set_stalled(false);
        until(Duration::from_secs(30), "the congested viewer gets the sale's end", || !of_type(&congested, "sale_ended").is_empty()).await?;
        tokio::time::sleep(Duration::from_secs(1)).await;

        let (got, all) = (chat_texts(&congested), chat_texts(&steady));
        println!("chat lines: congested viewer {} of the steady viewer's {}", got.len(), all.len());
        assert_eq!(all.len(), flood.len() + 1, "the steady viewer got every chat line");
        assert_eq!(control_seqs(&congested), steady_control, "the congested viewer got every commerce and control event");
        for kind in ["pinned", "sale_started", "sale_ended"] {
            assert_eq!(of_type(&congested, kind).len(), 1, "the congested viewer got `{kind}` once");
        }
        assert!(got.len() < flood.len(), "chat was dropped for the congested viewer: it got {} of {}", got.len(), flood.len());
        assert!(got.iter().all(|t| all.contains(t)), "what chat it got is the room's");
        assert!(!got.iter().any(|t| t == "said while congested"), "chat sent while it was congested never reached it");
        assert!(!of_type(&congested, "likes").iter().any(|f| f["total"] == 7), "the likes tick was skipped while congested");
        assert!(!of_type(&congested, "counters").iter().any(sold), "the counters tick was skipped while congested");
        assert_eq!(of_type(&congested, "welcome").len(), 1, "it was not disconnected and did not rejoin");

        // Once drained it is an ordinary viewer again: chat reaches it.
        api.frame_ok(&late, &json!({ "type": "chat", "text": "after the jam" })).await?;
        until(Duration::from_secs(10), "chat reaches the recovered viewer", || chat_texts(&congested).iter().any(|t| t == "after the jam")).await?;
        congested.close().await;
        steady.close().await;
        server.shutdown().await;
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewer_that_cannot_take_a_control_event_is_disconnected_and_comes_back_from_a_snapshot() -> Result<()> {
    bounded(Duration::from_secs(60), async {
        let (server, _dir) = server(1).await?;
        let base = format!("http://{}", server.http_addr);
        let api = Api::new(&base, "jam");
        server.open_room("jam")?;
        let stall = Impairment::new();
        let stuck = Viewer::connect(&base, "jam", viewer_opts(Some(stall.clone()), None)).await?;
        let steady = Viewer::connect(&base, "jam", viewer_opts(None, None)).await?;
        let welcome = welcomed(&stuck).await?;
        welcomed(&steady).await?;
        until(Duration::from_secs(5), "two viewers in the room", || server.status_board.status("jam").viewers == 2).await?;
        let host = api.token("host", "the-host").await?;
        // Three products with long image URLs: each `pinned` event carries all three, ~7 KB.
        let url = format!("https://img.example/{}", "p".repeat(2000));
        let mut products = Vec::new();
        for i in 0..3 {
            products.push(api.product(&host, &format!("Product {i} {}", "t".repeat(150)), &url).await?);
        }
        // One event the stuck viewer applies before its link stalls: where it will resume from.
        api.frame_ok(&host, &json!({ "type": "chat", "text": "before the stall" })).await?;
        until(Duration::from_secs(10), "the first event", || !room_events(&stuck).is_empty()).await?;
        let applied = room_events(&stuck).last().cloned().context("an event")?;
        let (epoch, seq) = (applied["epoch"].clone(), applied["seq"].as_u64().context("seq")?);
        assert_eq!(epoch, welcome["epoch"]);

        stall.set_stalled(true);
        chat_flood(&api, "jam").await?;
        // Control events past what the server may buffer for one viewer (128 KiB): it cannot
        // skip them, so it must let the viewer go.
        let mut pins = 0;
        while server.status_board.status("jam").viewers == 2 && pins < 40 {
            let order: Vec<i64> = if pins % 2 == 0 { products.clone() } else { products.iter().rev().copied().collect() };
            api.frame_ok(&host, &json!({ "type": "pin", "product_ids": order })).await?;
            pins += 1;
            tokio::time::sleep(Duration::from_millis(30)).await; // within the host's frame rate
        }
        until(Duration::from_secs(10), "the server disconnects the stuck viewer", || server.status_board.status("jam").viewers == 1).await?;
        println!("the stuck viewer was disconnected after {pins} pins of ~7 KB (plus {LONG_LINES} long chat lines)");
        stall.set_stalled(false);

        // It comes back on a new connection and resumes from the last event it applied. What
        // it missed is more than a channel takes at once (that is why it was let go), so a
        // replay would overflow the new channel too: it gets a snapshot at the room's position.
        let hello = json!({ "type": "hello", "resume": { "epoch": epoch, "seq": seq } }).to_string();
        let back = Viewer::connect(&base, "jam", viewer_opts(None, Some(hello))).await?;
        let welcome = welcomed(&back).await?;
        let last = seqs(&room_events(&steady)).last().copied().context("the steady viewer's events")?;
        until(Duration::from_secs(10), "a snapshot", || !of_type(&back, "snapshot").is_empty()).await?;
        let snapshot = &of_type(&back, "snapshot")[0];
        assert_eq!(welcome["resumed"], false, "too much to replay: {welcome}");
        assert_eq!((welcome["seq"].as_u64(), snapshot["seq"].as_u64()), (Some(last), Some(last)), "the snapshot is the room at its last event");
        assert_eq!(snapshot["pinned"].as_array().map(Vec::len), Some(3), "the snapshot has the pins: {}", snapshot["pinned"]);
        // It stays connected, and the next event follows the snapshot without a gap.
        api.frame_ok(&host, &json!({ "type": "chat", "text": "welcome back" })).await?;
        until(Duration::from_secs(10), "the next event", || !room_events(&back).is_empty()).await?;
        assert_eq!(seqs(&room_events(&back)), vec![last + 1], "the first live event follows the snapshot");
        assert_eq!(server.status_board.status("jam").viewers, 2, "the returning viewer is in the room");
        stuck.close().await;
        back.close().await;
        steady.close().await;
        server.shutdown().await;
        Ok(())
    })
    .await
}
