//! One pull: this node as a WHEP client of a room's origin, feeding what it receives to every
//! shard as a host on the cascade hub would.
//!
//! A pull owns a str0m instance (the offerer and ICE-controlling side; the origin is ICE-lite)
//! and its own UDP socket, connected to the origin's media address, so its datagrams never mix
//! with the shards' peers. Its loop: read datagrams, the hub's keyframe requests, the stop
//! signal and the instance's timeout; hand received RTP to the shards as [`Relay::Media`]
//! (payloads shared, never copied); after a failure try again with backoff
//! (`pull_rule::retry_delay`) until stopped, asking the cluster before each new try where the
//! room's origin is now (another node takes a room over once its origin's lease lapsed). Each successful session starts the room on the
//! shards (`Relay::HostStart` naming [`ShardId::CASCADE`] as home) and ends it
//! (`Relay::HostEnd`) when it ends, so the mirrors' viewers stay connected across an origin
//! that went away, and get video again (their sequence numbers continuing) from the next
//! session.
//!
//! The pull offers a video m-line per layer (`relay_layers`): the origin sends each layer of
//! the room's video on its own m-line, still one subscriber there. What arrives on m-line `k`
//! goes to the shards as layer `k`, and a keyframe request for layer `k` goes back on it.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sellcast_sfu::{Codec, TrackKind, MAX_LAYERS};
use str0m::change::SdpAnswer;
use str0m::media::{Direction, KeyframeRequestKind, MediaKind, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc};
use thiserror::Error;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{debug, info, warn};

use super::pull_rule::retry_delay;
use crate::media::peer::{negotiated_formats, Negotiated};
use crate::media::relay::{Relay, RelayStats, ShardId, ShardSenders};
use crate::media::video_format::{RoomFormat, VideoFormat};
use crate::relay_token::RELAY_QUERY;

/// Longest the origin may take to answer the pull's offer.
const SIGNAL_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest a pull's ICE and DTLS may take before the try counts as failed.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// A pull whose media stopped this long has lost its origin (or the origin its host): it
/// connects again, and the room is started on the shards again when media flows.
const SILENCE: Duration = Duration::from_secs(4);
/// Audio that arrives with no video this long after connecting starts an audio-only room.
const AUDIO_ONLY_AFTER: Duration = Duration::from_millis(1500);
/// Largest answer read from an origin.
const MAX_ANSWER_BYTES: usize = 64 * 1024;
/// Largest datagram read.
const DATAGRAM: usize = 2048;

/// Why one try of a pull ended.
#[derive(Debug, Error)]
pub enum PullError {
    #[error("the origin could not be reached: {0}")]
    Unreachable(String),
    #[error("the origin refused the pull: {0}")]
    Refused(String),
    #[error("the origin's answer was unusable: {0}")]
    BadAnswer(String),
    #[error("WebRTC: {0}")]
    Rtc(String),
    #[error("socket: {0}")]
    Socket(#[from] std::io::Error),
    #[error("the connection to the origin was lost")]
    Lost,
}

/// What a pull needs to reach its origin.
pub(crate) struct PullSetup {
    pub room: Arc<str>,
    /// The origin's `--public-url`; a later viewer's lookup may move it (a new origin).
    pub origin: watch::Receiver<String>,
    /// A fresh relay token for each try.
    pub token: Box<dyn Fn() -> Option<String> + Send + Sync>,
    /// After a failed try: the room's origin now, if another node holds it (a new origin
    /// took the room over from one that went away).
    pub lookup: OriginLookup,
    pub shards: ShardSenders,
    pub http: reqwest::Client,
}

/// Where a room's origin is now (`None`: unknown, or not another node); the cluster's claim
/// read in cluster mode.
pub type OriginLookup = Arc<dyn Fn(Arc<str>) -> futures_util::future::BoxFuture<'static, Option<String>> + Send + Sync>;

/// What a pull receives per layer, for the stats API (counted with relaxed atomics: no lock
/// per packet).
#[derive(Debug, Default)]
pub struct PulledLayers {
    /// Video m-lines the origin answered active in the current session.
    pub active: AtomicU8,
    /// Video packets received per layer, over every session.
    pub packets: [AtomicU64; MAX_LAYERS],
}

/// What the hub holds of a running pull.
pub(crate) struct PullHandle {
    pub layers: Arc<PulledLayers>,
    pub keyframes: mpsc::UnboundedSender<u8>,
    /// The format of the room as last announced to the shards (`None`: not started).
    pub format: watch::Receiver<Option<RoomFormat>>,
    pub stop: Option<oneshot::Sender<()>>,
    pub task: tokio::task::JoinHandle<()>,
}

/// Start pulling `setup.room`; it runs until the handle's `stop` fires or is dropped.
pub(crate) fn spawn(setup: PullSetup) -> PullHandle {
    let (keyframes, keyframe_rx) = mpsc::unbounded_channel();
    let (format_tx, format) = watch::channel(None);
    let (stop, stop_rx) = oneshot::channel();
    let layers = Arc::new(PulledLayers::default());
    let task = tokio::spawn(run(setup, keyframe_rx, format_tx, stop_rx, layers.clone()));
    PullHandle { layers, keyframes, format, stop: Some(stop), task }
}

/// Try, run, back off, until stopped.
async fn run(
    setup: PullSetup,
    mut keyframes: mpsc::UnboundedReceiver<u8>,
    format: watch::Sender<Option<RoomFormat>>,
    mut stop: oneshot::Receiver<()>,
    layers: Arc<PulledLayers>,
) {
    let mut failures = 0u32;
    let mut stats = RelayStats::default();
    let mut looked_up: Option<String> = None;
    loop {
        let origin = looked_up.take().unwrap_or_else(|| setup.origin.borrow().clone());
        let mut session = Session { setup: &setup, format: &format, stats: &mut stats, started: None, connected: false, layers: &layers };
        let ended = session.run(&origin, &mut keyframes, &mut stop).await;
        session.end_room();
        match ended {
            Ok(Ended::Stopped(location)) => {
                info!(room = %setup.room, %origin, "pull stopped: no viewer left here");
                if let Some(url) = location {
                    delete_session(&setup.http, &url).await;
                }
                return;
            }
            Ok(Ended::Lost) | Err(_) => {
                if session.connected {
                    failures = 0;
                }
                let delay = retry_delay(failures);
                failures = failures.saturating_add(1);
                match ended {
                    Err(e) => warn!(room = %setup.room, %origin, error = %e, retry_in = ?delay, "pull failed"),
                    _ => warn!(room = %setup.room, %origin, retry_in = ?delay, "pull lost its origin"),
                }
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = &mut stop => return,
                }
                looked_up = tokio::select! {
                    found = (setup.lookup)(setup.room.clone()) => found.filter(|url| *url != origin),
                    _ = &mut stop => return,
                };
                if let Some(url) = &looked_up {
                    info!(room = %setup.room, from = %origin, to = %url, "the room has a new origin");
                }
            }
        }
    }
}

/// How a session ended without an error of its own.
enum Ended {
    /// Told to stop; the origin's session URL, to be deleted.
    Stopped(Option<String>),
    Lost,
}

/// One connection to the origin.
struct Session<'a> {
    setup: &'a PullSetup,
    format: &'a watch::Sender<Option<RoomFormat>>,
    stats: &'a mut RelayStats,
    /// The format announced to the shards for this session.
    started: Option<RoomFormat>,
    connected: bool,
    layers: &'a PulledLayers,
}

/// The str0m side of a session once the origin answered.
struct Link {
    rtc: Rtc,
    socket: UdpSocket,
    local: SocketAddr,
    remote: SocketAddr,
    /// The video m-lines, lowest layer first (`relay_layers`).
    video_mids: [Mid; MAX_LAYERS],
    /// The SSRC each layer arrives on, learnt from its first packet.
    layer_ssrcs: [Option<u32>; MAX_LAYERS],
    negotiated: Vec<Negotiated>,
    location: Option<String>,
}

impl Session<'_> {
    async fn run(
        &mut self,
        origin: &str,
        keyframes: &mut mpsc::UnboundedReceiver<u8>,
        stop: &mut oneshot::Receiver<()>,
    ) -> Result<Ended, PullError> {
        let mut link = tokio::select! {
            link = self.connect(origin) => link?,
            _ = &mut *stop => return Ok(Ended::Stopped(None)),
        };
        let begun = Instant::now();
        let mut heard = begun;
        let mut media_seen = false;
        let mut buf = vec![0u8; DATAGRAM];
        loop {
            let timeout = self.drain(&mut link, begun)?;
            if !self.connected && begun.elapsed() > CONNECT_TIMEOUT {
                return Err(PullError::Unreachable("ICE/DTLS did not complete".into()));
            }
            media_seen |= self.started.is_some();
            if media_seen && heard.elapsed() > SILENCE {
                return Ok(Ended::Lost);
            }
            let wake = timeout.min(Instant::now() + Duration::from_millis(250));
            tokio::select! {
                biased;
                _ = &mut *stop => return Ok(Ended::Stopped(link.location.take())),
                received = link.socket.recv(&mut buf) => {
                    let n = received?;
                    heard = Instant::now();
                    let Ok(receive) = Receive::new(Protocol::Udp, link.remote, link.local, &buf[..n]) else {
                        continue;
                    };
                    if let Err(e) = link.rtc.handle_input(Input::Receive(Instant::now(), receive)) {
                        debug!(room = %self.setup.room, error = %e, "pull input rejected");
                    }
                }
                layer = keyframes.recv() => {
                    if let Some(mid) = layer.and_then(|l| link.video_mids.get(usize::from(l)).copied()) {
                        debug!(room = %self.setup.room, ?layer, "keyframe requested from the origin");
                        if let Some(rx) = link.rtc.direct_api().stream_rx_by_mid(mid, None) {
                            rx.request_keyframe(KeyframeRequestKind::Pli);
                        }
                    }
                }
                _ = tokio::time::sleep_until(wake.into()) => {
                    if let Err(e) = link.rtc.handle_input(Input::Timeout(Instant::now())) {
                        debug!(room = %self.setup.room, error = %e, "pull timeout input failed");
                    }
                }
            }
        }
    }

    /// Offer, POST it to the origin, take its answer and point a socket at its media address.
    async fn connect(&mut self, origin: &str) -> Result<Link, PullError> {
        let now = Instant::now();
        let mut rtc = Rtc::builder().set_rtp_mode(true).build(now);
        let mut change = rtc.sdp_api();
        let audio = change.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
        let video_mids: [Mid; MAX_LAYERS] =
            std::array::from_fn(|_| change.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None));
        let (offer, pending) = change.apply().ok_or_else(|| PullError::Rtc("no offer".into()))?;
        let url = format!("{}/whep/{}?{RELAY_QUERY}", origin.trim_end_matches('/'), self.setup.room);
        let mut request = self
            .setup
            .http
            .post(&url)
            .header("content-type", "application/sdp")
            .timeout(SIGNAL_TIMEOUT)
            .body(offer.to_sdp_string());
        if let Some(token) = (self.setup.token)() {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.map_err(|e| PullError::Unreachable(e.to_string()))?;
        let status = response.status();
        let location = response
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(|l| format!("{}{l}", origin.trim_end_matches('/')));
        let body = response.bytes().await.map_err(|e| PullError::Unreachable(e.to_string()))?;
        let text = String::from_utf8_lossy(&body[..body.len().min(MAX_ANSWER_BYTES)]).into_owned();
        if status.as_u16() != 201 {
            return Err(PullError::Refused(format!("{status}: {}", text.trim().chars().take(200).collect::<String>())));
        }
        let remote = udp_candidate(&text).ok_or_else(|| PullError::BadAnswer("no UDP candidate".into()))?;
        let answer = SdpAnswer::from_sdp_string(&text).map_err(|e| PullError::BadAnswer(e.to_string()))?;
        rtc.sdp_api().accept_answer(pending, answer).map_err(|e| PullError::BadAnswer(e.to_string()))?;
        let bind: SocketAddr = if remote.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { (std::net::Ipv6Addr::UNSPECIFIED, 0).into() };
        let socket = UdpSocket::bind(bind).await?;
        socket.connect(remote).await?;
        let local = socket.local_addr()?;
        let candidate = Candidate::host(local, "udp").map_err(|e| PullError::Rtc(e.to_string()))?;
        rtc.add_local_candidate(candidate);
        let mids: Vec<String> = std::iter::once(audio).chain(video_mids).map(|m| m.to_string()).collect();
        let negotiated = negotiated_formats(&rtc, &mids);
        let active = video_mids.iter().filter(|m| rtc.media(**m).is_some_and(|m| m.direction() != Direction::Inactive)).count();
        self.layers.active.store(active as u8, Ordering::Relaxed);
        debug!(room = %self.setup.room, %origin, %remote, layers = active, "pull answered");
        Ok(Link { rtc, socket, local, remote, video_mids, layer_ssrcs: [None; MAX_LAYERS], negotiated, location })
    }

    /// Poll the instance until it waits: datagrams out, media to the shards. Returns when it
    /// next wants a timeout.
    fn drain(&mut self, link: &mut Link, begun: Instant) -> Result<Instant, PullError> {
        loop {
            if !link.rtc.is_alive() {
                return Err(PullError::Lost);
            }
            match link.rtc.poll_output() {
                Ok(Output::Timeout(t)) => return Ok(t),
                Ok(Output::Transmit(t)) => {
                    // A full socket buffer loses this datagram, as the wire would.
                    let _ = link.socket.try_send(&t.contents);
                }
                Ok(Output::Event(event)) => match event {
                    Event::Connected => {
                        self.connected = true;
                        info!(room = %self.setup.room, "pulling the room from its origin");
                    }
                    Event::IceConnectionStateChange(IceConnectionState::Disconnected) => return Err(PullError::Lost),
                    Event::RtpPacket(p) => self.handle_packet(link, p, begun),
                    _ => {}
                },
                Err(e) => return Err(PullError::Rtc(e.to_string())),
            }
        }
    }

    /// One received packet: start the room on the shards when its format is known, then relay.
    fn handle_packet(&mut self, link: &mut Link, p: str0m::rtp::RtpPacket, begun: Instant) {
        let negotiated = &link.negotiated;
        let Some(entry) = negotiated.iter().find(|n| n.pt == p.header.payload_type).copied() else {
            return;
        };
        let kind = entry.codec.kind();
        let layer = match kind {
            TrackKind::Video => match layer_of(link, *p.header.ssrc) {
                Some(layer) => layer,
                // Video on no layer's m-line: not ours to relay.
                None => return,
            },
            TrackKind::Audio => 0,
        };
        let negotiated = &link.negotiated;
        let wanted = match kind {
            TrackKind::Video => Some(RoomFormat {
                audio: negotiated.iter().any(|n| n.codec == Codec::Opus).then_some(Codec::Opus),
                video: Some(VideoFormat { codec: entry.codec, h264: entry.h264 }),
            }),
            TrackKind::Audio if self.started.is_none() && begun.elapsed() >= AUDIO_ONLY_AFTER => {
                Some(RoomFormat { audio: Some(entry.codec), video: None })
            }
            TrackKind::Audio => None,
        };
        match (self.started, wanted) {
            (Some(now), Some(w)) if now.video != w.video && kind == TrackKind::Video => {
                self.end_room();
                self.start_room(w);
            }
            (None, Some(w)) => self.start_room(w),
            (None, None) => return,
            _ => {}
        }
        if kind == TrackKind::Video {
            if let Some(count) = self.layers.packets.get(usize::from(layer)) {
                count.fetch_add(1, Ordering::Relaxed);
            }
        }
        let packet = crate::media::rtp_in::media_packet(p, kind, layer);
        let room = &self.setup.room;
        self.setup.shards.broadcast(self.stats, || Relay::Media { room: room.clone(), packet: packet.clone() });
    }

    fn start_room(&mut self, format: RoomFormat) {
        let room = &self.setup.room;
        let layers = self.layers.active.load(Ordering::Relaxed);
        self.setup.shards.broadcast(self.stats, || Relay::HostStart { room: room.clone(), home: ShardId::CASCADE, format, layers });
        self.started = Some(format);
        let _ = self.format.send(Some(format));
    }

    /// The session is over: the shards' mirrors lose their host (their viewers stay).
    fn end_room(&mut self) {
        if self.started.take().is_some() {
            let room = &self.setup.room;
            self.setup.shards.broadcast(self.stats, || Relay::HostEnd { room: room.clone() });
            let _ = self.format.send(None);
        }
    }
}

/// The layer a video SSRC arrives on: its m-line's place among the video m-lines, learnt once
/// per SSRC from the instance (after that, a scan of three entries).
fn layer_of(link: &mut Link, ssrc: u32) -> Option<u8> {
    if let Some(layer) = link.layer_ssrcs.iter().position(|s| *s == Some(ssrc)) {
        return Some(layer as u8);
    }
    let mid = link.rtc.direct_api().stream_rx(&str0m::rtp::Ssrc::from(ssrc))?.mid();
    let layer = link.video_mids.iter().position(|m| *m == mid)?;
    link.layer_ssrcs[layer] = Some(ssrc);
    Some(layer as u8)
}

/// The first UDP host candidate of an SDP answer (sellcast's origin answers with one per
/// shard port, UDP first).
pub fn udp_candidate(sdp: &str) -> Option<SocketAddr> {
    sdp.lines().find_map(|line| {
        let fields: Vec<&str> = line.trim().strip_prefix("a=candidate:")?.split_whitespace().collect();
        match fields.as_slice() {
            [_, _, proto, _, ip, port, ..] if proto.eq_ignore_ascii_case("udp") => {
                Some(SocketAddr::new(ip.parse().ok()?, port.parse().ok()?))
            }
            _ => None,
        }
    })
}

/// End the origin's session at once, so it stops counting this node (else its idle deadline
/// would).
async fn delete_session(http: &reqwest::Client, url: &str) {
    match http.delete(url).timeout(SIGNAL_TIMEOUT).send().await {
        Ok(r) if r.status().is_success() => {}
        Ok(r) => debug!(%url, status = %r.status(), "the origin did not end the pull's session"),
        Err(e) => debug!(%url, error = %e, "could not end the pull's session"),
    }
}

#[cfg(test)]
mod tests {
    use super::udp_candidate;

    #[test]
    fn the_udp_candidate_is_read_from_an_answer() {
        let sdp = "v=0\r\na=candidate:1 1 tcp 1 127.0.0.1 9000 typ host tcptype passive\r\na=candidate:2 1 udp 2130706175 127.0.0.2 40123 typ host\r\n";
        assert_eq!(udp_candidate(sdp), Some("127.0.0.2:40123".parse().expect("an address")));
        assert_eq!(udp_candidate("v=0\r\na=candidate:x 1 udp 1 not-an-ip 5 typ host\r\n"), None);
        assert_eq!(udp_candidate("v=0\r\n"), None);
    }
}
