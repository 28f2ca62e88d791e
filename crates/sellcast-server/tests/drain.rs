//! Graceful drain on SIGTERM, against the real binary: a live room (a WHIP publisher), buyers
//! on data channels and buyers over HTTP in a storm, commits slowed by the store's test-only
//! fault (`commit_delay_ms`) so buys are with the store when the signal lands. Then:
//! - new WHIP and WHEP offers are refused with 503, `Retry-After` and a JSON reason;
//! - every data-channel participant is told to move (`draining`);
//! - every buy sent before the signal got an answer (confirmed, rejected, not placed, or a 503);
//! - every confirmed order is in the SQLite file;
//! - the process exits 0 within `--drain-seconds`.
//!
//! Control run: the same storm with `--drain-seconds 0` (the server stops without waiting for
//! the buys it took) leaves buys sent before the signal without an answer, and the checks see it.

mod common;

use std::net::TcpListener;
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use common::Api;
use rusqlite::{Connection, OpenFlags};
use sellcast_peer::{PublishOptions, Publisher, Viewer};
use serde_json::{json, Value};
use tokio::process::{Child, Command};

const ROOM: &str = "drain";
const CHANNEL_BUYERS: usize = 8;
const HTTP_BUYERS: usize = 8;
/// Between a channel buyer's buys: under the room's 30 frames per second per participant.
const CHANNEL_PACE: Duration = Duration::from_millis(40);
/// Confirmations seen before the signal is sent: the storm is in full swing.
const CONFIRMED_BEFORE_SIGNAL: usize = 150;
const DRAIN_SECONDS: u64 = 5;

/// One storm at a time: two servers and their peers at once starve each other on 2 cores.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// One buy as its buyer saw it.
#[derive(Debug, Clone)]
struct Buy {
    identity: String,
    key: String,
    sent_at: Instant,
    /// The answer's `type` (`order_confirmed`, `buy_rejected`, `buy_not_placed`, `refused_503`)
    /// and when it arrived; `None` if none came.
    answer: Option<(String, Instant)>,
    order_id: Option<i64>,
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

async fn spawn_server(db: &Path, port: u16, drain_seconds: u64) -> Result<(Child, Api)> {
    let log = std::fs::File::create(db.with_extension("log"))?;
    let child = Command::new(env!("CARGO_BIN_EXE_sellcast"))
        .args(["serve", "--http", &format!("127.0.0.1:{port}"), "--udp-port", "0", "--media-threads", "1"])
        .args(["--drain-seconds", &drain_seconds.to_string(), "--db"])
        .arg(db)
        .env("RUST_LOG", "info")
        // Every client here is 127.0.0.1: no per-address cap below the server's, no rate limits.
        .env("SELLCAST_MAX_SESSIONS_PER_IP", "10000")
        .env("SELLCAST_SIGNAL_RATE", "0")
        .env("SELLCAST_API_RATE", "0")
        .env("SELLCAST_FAULT", "commit_delay_ms=40")
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .context("spawning sellcast")?;
    let api = Api::new(format!("http://127.0.0.1:{port}"));
    let deadline = Instant::now() + Duration::from_secs(20);
    while !matches!(api.http.get(format!("{}/healthz", api.base)).send().await, Ok(r) if r.status().is_success()) {
        if Instant::now() > deadline {
            bail!("server did not come up");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok((child, api))
}

/// A refused offer: status, `Retry-After`, body.
type Refusal = (u16, Option<String>, Value);

/// POST an offer until the server answers 503 (it starts refusing once it has handled the
/// signal); `None` if it never did within 2 s (or was gone first).
async fn refused_offer(api: &Api, endpoint: &str, token: &str) -> Option<Refusal> {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let sent = api
            .http
            .post(format!("{}/{endpoint}/{ROOM}", api.base))
            .bearer_auth(token)
            .header("content-type", "application/sdp")
            .body("v=0\r\n")
            .send()
            .await;
        if let Ok(r) = sent {
            let status = r.status().as_u16();
            let retry_after = r.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(String::from);
            if status == 503 {
                let body = r.json().await.unwrap_or(Value::Null);
                return Some((status, retry_after, body));
            }
        }
        if Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// What one run saw.
struct Run {
    exit_code: Option<i32>,
    exited_after: Duration,
    whep: Option<Refusal>,
    whip: Option<Refusal>,
    /// Channel buyers that received a `draining` frame, of `CHANNEL_BUYERS`.
    told_to_move: usize,
    /// Buys sent before the signal.
    before_signal: usize,
    /// Of those, the ones that never got an answer.
    unanswered: Vec<Buy>,
    /// Of those, the ones answered after the signal (they were in flight when it landed).
    answered_during_drain: usize,
    confirmed: Vec<Buy>,
    confirmed_missing_on_disk: usize,
}

/// The frames of one `type` a channel buyer received for `key`.
fn answer_for(frames: &[(Instant, Value)], key: &str) -> Option<(String, Instant, Option<i64>)> {
    frames.iter().find_map(|(at, f)| {
        let kind = f["type"].as_str()?;
        let answer = matches!(kind, "order_confirmed" | "buy_rejected" | "buy_not_placed");
        (answer && f["idempotency_key"] == key).then(|| (kind.to_string(), *at, f["order_id"].as_i64()))
    })
}

async fn storm_then_sigterm(drain_seconds: u64) -> Result<Run> {
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("sellcast.db");
    let (mut child, api) = spawn_server(&db, free_port()?, drain_seconds).await?;
    let api = Arc::new(api);
    let host = api.dev_token(ROOM, "host", "host").await?;
    let product = api.create_product(ROOM, &host, "Sneakers", 1_000_000).await?;
    let sale = api.start_sale(ROOM, &host, product, 1_000_000, 100_000).await?;
    let publisher = Publisher::connect(&api.base, ROOM, PublishOptions { token: Some(host.clone()), ..PublishOptions::default() }).await?;

    let mut viewers = Vec::with_capacity(CHANNEL_BUYERS);
    for b in 0..CHANNEL_BUYERS {
        let token = api.dev_token(ROOM, "viewer", &format!("dc{b}")).await?;
        let viewer = Viewer::connect_with(&api.base, ROOM, Some(token), true).await?;
        viewer.channel_ready(Duration::from_secs(10)).await?;
        viewers.push(Arc::new(viewer));
    }

    let stop = Arc::new(AtomicBool::new(false));
    let sent: Arc<Mutex<Vec<Buy>>> = Arc::default();
    let http_buys: Arc<Mutex<Vec<Buy>>> = Arc::default();
    let mut tasks = Vec::new();
    for (b, viewer) in viewers.iter().enumerate() {
        let (viewer, stop, sent) = (viewer.clone(), stop.clone(), sent.clone());
        tasks.push(tokio::spawn(async move {
            for n in 0.. {
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                let key = format!("dc{b}-{n}");
                let frame = json!({"type": "buy", "sale_id": sale, "qty": 1, "idempotency_key": key}).to_string();
                let sent_at = Instant::now();
                if viewer.send(&frame).await.is_err() {
                    return;
                }
                if let Ok(mut s) = sent.lock() {
                    s.push(Buy { identity: format!("dc{b}"), key, sent_at, answer: None, order_id: None });
                }
                tokio::time::sleep(CHANNEL_PACE).await;
            }
        }));
    }
    for b in 0..HTTP_BUYERS {
        let identity = format!("http{b}");
        let token = api.dev_token(ROOM, "viewer", &identity).await?;
        let (api, stop, http_buys) = (api.clone(), stop.clone(), http_buys.clone());
        tasks.push(tokio::spawn(async move {
            for n in 0.. {
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                let key = format!("{identity}-{n}");
                let frame = json!({"type": "buy", "sale_id": sale, "qty": 1, "idempotency_key": key});
                let sent_at = Instant::now();
                let reply = api.http.post(format!("{}/api/rooms/{ROOM}/frames", api.base)).bearer_auth(&token).json(&frame).send().await;
                let mut buy = Buy { identity: identity.clone(), key: key.clone(), sent_at, answer: None, order_id: None };
                let gone = match reply {
                    Ok(r) if r.status().as_u16() == 503 => {
                        // The door is closed: this buyer is done.
                        buy.answer = Some(("refused_503".into(), Instant::now()));
                        true
                    }
                    Ok(r) => {
                        let frames: Vec<Value> = r.json().await.unwrap_or_default();
                        if let Some(f) = frames.iter().find(|f| f["idempotency_key"] == key.as_str()) {
                            buy.answer = f["type"].as_str().map(|t| (t.to_string(), Instant::now()));
                            buy.order_id = f["order_id"].as_i64();
                        }
                        false
                    }
                    Err(_) => true,
                };
                if let Ok(mut s) = http_buys.lock() {
                    s.push(buy);
                }
                if gone {
                    return;
                }
            }
        }));
    }

    // The storm is in full swing: confirmations are arriving on both paths.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let http_confirmed = http_buys.lock().map(|b| b.iter().filter(|b| b.order_id.is_some()).count()).unwrap_or(0);
        let channel_confirmed: usize = viewers.iter().map(|v| v.frames().iter().filter(|(_, f)| f.contains("\"order_confirmed\"")).count()).sum();
        if http_confirmed + channel_confirmed >= CONFIRMED_BEFORE_SIGNAL && http_confirmed > 0 && channel_confirmed > 0 {
            break;
        }
        if Instant::now() > deadline {
            bail!("the storm never got going ({http_confirmed} + {channel_confirmed} confirmed)");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let pid = child.id().context("child pid")?;
    let signal_at = Instant::now();
    let signalled = std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status()?;
    anyhow::ensure!(signalled.success(), "SIGTERM delivered");
    let exit = tokio::spawn(async move {
        let status = child.wait().await;
        (status, signal_at.elapsed())
    });
    let whep = refused_offer(&api, "whep", &host).await;
    let whip = refused_offer(&api, "whip", &host).await;
    let (status, exited_after) = tokio::time::timeout(Duration::from_secs(drain_seconds + 10), exit).await.context("the server never exited")??;
    let status = status?;
    stop.store(true, Ordering::SeqCst);
    for t in tasks {
        let _ = t.await;
    }
    publisher.close().await;

    // Channel buys: their answers are in each buyer's received frames.
    let mut buys = sent.lock().map(|s| s.clone()).unwrap_or_default();
    let received: Vec<Vec<(Instant, Value)>> = viewers
        .iter()
        .map(|v| v.frames().into_iter().filter_map(|(at, f)| serde_json::from_str(&f).ok().map(|f| (at, f))).collect())
        .collect();
    for buy in &mut buys {
        let b: usize = buy.identity.trim_start_matches("dc").parse()?;
        if let Some((kind, at, order_id)) = answer_for(&received[b], &buy.key) {
            buy.answer = Some((kind, at));
            buy.order_id = order_id;
        }
    }
    buys.extend(http_buys.lock().map(|s| s.clone()).unwrap_or_default());
    let told_to_move = received.iter().filter(|frames| frames.iter().any(|(_, f)| f["type"] == "draining")).count();

    let before: Vec<&Buy> = buys.iter().filter(|b| b.sent_at < signal_at).collect();
    let unanswered: Vec<Buy> = before.iter().filter(|b| b.answer.is_none()).map(|b| (*b).clone()).collect();
    let answered_during_drain = before.iter().filter(|b| b.answer.as_ref().is_some_and(|(_, at)| *at > signal_at)).count();
    let confirmed: Vec<Buy> = buys.iter().filter(|b| b.order_id.is_some()).cloned().collect();
    let conn = Connection::open_with_flags(&db, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let mut confirmed_missing_on_disk = 0;
    for buy in &confirmed {
        let found: i64 = conn.query_row(
            "SELECT COUNT(*) FROM orders WHERE id = ?1 AND identity = ?2 AND idempotency_key = ?3",
            rusqlite::params![buy.order_id, buy.identity, buy.key],
            |r| r.get(0),
        )?;
        if found != 1 {
            confirmed_missing_on_disk += 1;
        }
    }
    Ok(Run {
        exit_code: status.code(),
        exited_after,
        whep,
        whip,
        told_to_move,
        before_signal: before.len(),
        unanswered,
        answered_during_drain,
        confirmed,
        confirmed_missing_on_disk,
    })
}

fn summary(run: &Run) -> String {
    format!(
        "exit={:?} after {:?}; sent before the signal {}, unanswered {}, answered during the drain {}; confirmed {} (missing on disk {}); told to move {}/{CHANNEL_BUYERS}",
        run.exit_code,
        run.exited_after,
        run.before_signal,
        run.unanswered.len(),
        run.answered_during_drain,
        run.confirmed.len(),
        run.confirmed_missing_on_disk,
        run.told_to_move
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_storm_answers_every_buy_refuses_new_sessions_and_exits_zero() -> Result<()> {
    let _turn = ONE_AT_A_TIME.lock().await;
    let run = storm_then_sigterm(DRAIN_SECONDS).await?;
    println!("drain {}", summary(&run));
    for (name, refusal) in [("WHEP", &run.whep), ("WHIP", &run.whip)] {
        let (status, retry_after, body) = refusal.as_ref().with_context(|| format!("{name}: no 503 while draining"))?;
        assert_eq!(*status, 503, "{name} while draining");
        assert!(retry_after.as_deref().and_then(|s| s.parse::<u64>().ok()).is_some_and(|s| s >= 1), "{name} Retry-After: {retry_after:?}");
        assert_eq!(body["code"], "draining", "{name} body: {body}");
        assert!(body["retry_after_ms"].as_u64().is_some_and(|ms| ms > 0), "{name} body: {body}");
    }
    assert_eq!(run.told_to_move, CHANNEL_BUYERS, "every channel participant got the draining frame");
    assert!(run.unanswered.is_empty(), "buys sent before the signal without an answer: {:?}", &run.unanswered[..run.unanswered.len().min(5)]);
    assert!(run.answered_during_drain > 0, "some buys were in flight when the signal landed (else this proves nothing)");
    assert!(!run.confirmed.is_empty());
    assert_eq!(run.confirmed_missing_on_disk, 0, "confirmed orders missing from SQLite");
    assert_eq!(run.exit_code, Some(0), "exit status after the drain");
    assert!(run.exited_after < Duration::from_secs(DRAIN_SECONDS), "exited {:?} after the signal", run.exited_after);
    Ok(())
}

/// Control run: a server that stops without waiting for the buys it took (`--drain-seconds 0`)
/// leaves buys sent before the signal unanswered, and the same checks see it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_a_drain_cut_to_zero_seconds_leaves_buys_unanswered() -> Result<()> {
    let _turn = ONE_AT_A_TIME.lock().await;
    let run = storm_then_sigterm(0).await?;
    println!("control_drain {}", summary(&run));
    assert!(!run.unanswered.is_empty(), "the cut drain went unnoticed");
    assert_ne!(run.exit_code, Some(0), "a drain cut short exits non-zero");
    assert_eq!(run.confirmed_missing_on_disk, 0, "even then, nothing acknowledged is lost");
    Ok(())
}
