//! The README's run command works from any directory: `sellcast serve` with its defaults (but
//! the ports), started where there is no `web/`, serves the pages built into it and keeps its
//! database in `./data/`; `--web-dir` pointing nowhere stops it at startup with a message that
//! names the flag.

use std::net::TcpListener;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use tokio::process::Command;

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

#[tokio::test]
async fn serve_started_in_a_directory_without_web_serves_the_pages() -> Result<()> {
    let cwd = tempfile::tempdir()?;
    assert!(!cwd.path().join("web").exists());
    let port = free_port()?;
    let _child = Command::new(env!("CARGO_BIN_EXE_sellcast"))
        .args(["serve", "--http", &format!("127.0.0.1:{port}"), "--udp-port", "0", "--media-threads", "1"])
        .current_dir(cwd.path())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("spawning sellcast")?;
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !matches!(http.get(format!("{base}/healthz")).send().await, Ok(r) if r.status().is_success()) {
        if Instant::now() > deadline {
            bail!("server did not come up");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let web = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../web");
    for (url, file, mime) in [
        ("/host/shop", "host.html", "text/html"),
        ("/watch/shop", "watch.html", "text/html"),
        ("/static/room.js", "room.js", "text/javascript"),
        ("/static/style.css", "style.css", "text/css"),
    ] {
        let answer = http.get(format!("{base}{url}")).send().await?;
        assert_eq!(answer.status(), 200, "{url}");
        let content_type = answer.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        assert!(content_type.starts_with(mime), "{url}: content-type {content_type}");
        assert_eq!(answer.bytes().await?.as_ref(), std::fs::read(web.join(file))?.as_slice(), "{url} is web/{file}");
    }
    let missing = http.get(format!("{base}/static/nope.js")).send().await?;
    assert_eq!(missing.status(), 404);
    assert!(cwd.path().join("data/sellcast.db").exists(), "the default --db, relative to where it runs");
    Ok(())
}

#[tokio::test]
async fn a_web_dir_that_does_not_exist_stops_the_server_with_a_clear_error() -> Result<()> {
    let cwd = tempfile::tempdir()?;
    let out = Command::new(env!("CARGO_BIN_EXE_sellcast"))
        .args(["serve", "--http", "127.0.0.1:0", "--udp-port", "0", "--media-threads", "1", "--db", "pages.db", "--web-dir", "no-such-dir"])
        .current_dir(cwd.path())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(20), out).await.context("the server kept running")??;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "exit status {}", out.status);
    assert!(stderr.contains("--web-dir no-such-dir: no such directory"), "stderr: {stderr}");
    Ok(())
}
