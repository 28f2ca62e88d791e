//! Janus 1.1 as the reference SFU for side-by-side runs: its config written to a temporary
//! folder, the server run as a child process, a Streaming mountpoint fed plain RTP.
//!
//! Janus (libnice) skips every interface flagged loopback, so it needs an interface that
//! carries a loopback-range address: run the bench inside a private network namespace with
//! a veth `v0` holding 127.0.0.2 (`benches/netns.sh` sets that up). Its candidates then say
//! 127.0.0.2, which the kernel delivers locally like any 127/8 address.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// How Janus is run in a side-by-side step.
#[derive(Debug, Clone)]
pub struct JanusTarget {
    pub janus_bin: PathBuf,
    pub http_port: u16,
    /// First of the two plain-RTP ports of the mountpoint (video; audio is the next one up).
    pub rtp_port: u16,
    /// Janus's static event loops (`event_loops`); 0 keeps its default of a thread per handle.
    pub event_loops: u32,
}

/// The Streaming mountpoint every side-by-side step watches.
pub const MOUNTPOINT: u64 = 1;
pub const VIDEO_PT: u8 = 100;
pub const AUDIO_PT: u8 = 111;

impl JanusTarget {
    pub fn video_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.rtp_port))
    }

    pub fn audio_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.rtp_port + 1))
    }
}

/// Write the loopback configuration: HTTP API only, the Streaming plugin with one RTP
/// mountpoint (VP8 + Opus, keyframe kept for joiners), ICE on `v0` only.
fn write_config(t: &JanusTarget, dir: &Path) -> Result<()> {
    let loops = if t.event_loops > 0 { format!("\tevent_loops = {}\n", t.event_loops) } else { String::new() };
    let main = format!(
        r#"general: {{
	configs_folder = "{dir}"
	plugins_folder = "/usr/lib/x86_64-linux-gnu/janus/plugins"
	transports_folder = "/usr/lib/x86_64-linux-gnu/janus/transports"
	events_folder = "/usr/lib/x86_64-linux-gnu/janus/events"
	loggers_folder = "/usr/lib/x86_64-linux-gnu/janus/loggers"
	debug_level = 3
	server_name = "janus-bench"
	session_timeout = 60
}}
certificates: {{
}}
media: {{
	rtp_port_range = "20000-40000"
}}
nat: {{
	ice_enforce_list = "v0"
	ignore_mdns = true
{loops}}}
plugins: {{
	disable = "libjanus_audiobridge.so,libjanus_duktape.so,libjanus_lua.so,libjanus_nosip.so,libjanus_recordplay.so,libjanus_sip.so,libjanus_voicemail.so,libjanus_videocall.so,libjanus_videoroom.so,libjanus_textroom.so,libjanus_echotest.so"
}}
transports: {{
	disable = "libjanus_mqtt.so,libjanus_rabbitmq.so,libjanus_nanomsg.so,libjanus_pfunix.so,libjanus_websockets.so"
}}
loggers: {{
	disable = "libjanus_jsonlog.so"
}}
events: {{
	broadcast = false
}}
"#,
        dir = dir.display()
    );
    let streaming = format!(
        r#"general: {{
}}
bench: {{
	type = "rtp"
	id = {MOUNTPOINT}
	description = "sellcast-bench synthetic host"
	audio = true
	video = true
	audioport = {audio}
	audiopt = {AUDIO_PT}
	audiocodec = "opus"
	audioiface = "127.0.0.1"
	videoport = {video}
	videopt = {VIDEO_PT}
	videocodec = "vp8"
	videoiface = "127.0.0.1"
	videobufferkf = true
}}
"#,
        video = t.rtp_port,
        audio = t.rtp_port + 1
    );
    let http = format!(
        r#"general: {{
	json = "plain"
	base_path = "/janus"
	http = true
	port = {}
	ip = "127.0.0.1"
	https = false
}}
admin: {{
	admin_http = false
}}
"#,
        t.http_port
    );
    std::fs::write(dir.join("janus.jcfg"), main)?;
    std::fs::write(dir.join("janus.plugin.streaming.jcfg"), streaming)?;
    std::fs::write(dir.join("janus.transport.http.jcfg"), http)?;
    Ok(())
}

/// Start Janus; returns the child, its pid and the API base (`http://127.0.0.1:PORT/janus`).
pub async fn spawn(t: &JanusTarget, dir: &Path) -> Result<(tokio::process::Child, u32, String)> {
    // /proc/net/dev lists this network namespace's interfaces (/sys/class/net may not).
    let interfaces = std::fs::read_to_string("/proc/net/dev").unwrap_or_default();
    if !interfaces.lines().any(|l| l.trim_start().starts_with("v0:")) {
        bail!("Janus needs the veth v0 with 127.0.0.2 (libnice skips loopback): run the bench as `unshare -n sh -c '. benches/netns.sh && ...'`");
    }
    write_config(t, dir)?;
    let log = std::fs::File::create(dir.join("janus.log"))?;
    let child = tokio::process::Command::new(&t.janus_bin)
        .arg("-F")
        .arg(dir)
        .arg("-C")
        .arg(dir.join("janus.jcfg"))
        .arg("-o")
        .stdout(Stdio::from(log.try_clone()?))
        .stderr(Stdio::from(log))
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", t.janus_bin.display()))?;
    let pid = child.id().context("janus pid")?;
    let base = format!("http://127.0.0.1:{}/janus", t.http_port);
    let http = reqwest::Client::new();
    let up = Instant::now();
    loop {
        match http.get(format!("{base}/info")).send().await {
            Ok(r) if r.status().is_success() => break,
            _ if up.elapsed() > Duration::from_secs(15) => {
                bail!("Janus did not start; its log: {}", dir.join("janus.log").display())
            }
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    Ok((child, pid, base))
}
