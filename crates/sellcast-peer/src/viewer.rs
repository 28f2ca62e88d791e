//! A WHEP viewer that records what it receives: counts, first-packet timing, keyframe start,
//! publisher counters (for loss), one-way latency from the trailer, order and seq continuity.
//!
//! Per viewer: one peer connection (driven on webrtc-rs's shared reactor pool, not a thread of
//! its own) and one small task per received track; recording takes an uncontended lock.

use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::payload_feedbacks::receiver_estimated_maximum_bitrate::ReceiverEstimatedMaximumBitrate;
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use rtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::PeerConnection;

use crate::feedback_mode::FeedbackMode;
use crate::frame_tracker::{FrameStats, FrameTracker, VideoPacket};
use crate::impairment::Impairment;
use crate::link_profile::LinkProfile;
use crate::remb_estimator::RembEstimator;
use crate::janus::JanusSession;
use crate::kind_stats::KindStats;
use crate::peer::{self, PeerSetup, TrackCallback};
use crate::room_channel::RoomChannel;
use crate::signalling::{end, exchange, http_client, PeerError};
use crate::trailer::{now_us, Trailer};
use crate::vp8::{is_frame_start, is_keyframe_start, read_layer_mark};

/// How often a REMB-only viewer reports its estimate (libwebrtc sends REMB about once a
/// second, and at once on a drop; four times a second keeps a drop from waiting long).
const REMB_EVERY: Duration = Duration::from_millis(250);

#[derive(Debug, Clone)]
pub struct ViewerOptions {
    /// Bearer token for the WHEP POST and DELETE.
    pub token: Option<String>,
    /// Bound on ICE + DTLS after the answer.
    pub connect_timeout: Duration,
    /// Also open the room's data channel (chat, likes, sales), as the watch page does.
    pub data_channel: bool,
    /// The first frame on the data channel (default `{"type":"hello"}`); a resuming client
    /// sends `{"type":"hello","resume":{"epoch":..,"seq":..}}`.
    pub hello: Option<String>,
    /// What the viewer receives passes through this first (a stalled, slow or lossy link).
    pub impairment: Option<Arc<Impairment>>,
    /// The emulated downlink and the bandwidth feedback the viewer sends (set on
    /// `impairment`, or on a fresh one when that is `None`). `None`: loopback as it is, TWCC.
    pub link: Option<LinkProfile>,
}

impl Default for ViewerOptions {
    fn default() -> Self {
        Self { token: None, connect_timeout: Duration::from_secs(15), data_channel: false, hello: None, impairment: None, link: None }
    }
}

/// A token alone: `Viewer::connect(base, room, None)`.
impl From<Option<String>> for ViewerOptions {
    fn from(token: Option<String>) -> Self {
        Self { token, ..Self::default() }
    }
}

#[derive(Debug, Default, Clone)]
pub struct ViewerStats {
    pub audio: KindStats,
    pub video: KindStats,
    /// Time from the WHEP POST to the first video packet.
    pub first_video_after: Option<Duration>,
    /// Did the first video packet begin a keyframe?
    pub first_video_is_keyframe: Option<bool>,
    /// Time from the subscribe request to the first packet that begins a keyframe: when the
    /// picture can first be shown (the same as `first_video_after` on a server that starts
    /// every viewer at a keyframe).
    pub first_keyframe_after: Option<Duration>,
    /// The first few video packets: (seq, first two payload bytes), for diagnosing starts.
    pub first_video: Vec<(u16, [u8; 2])>,
    /// Decodable frames, freezes and the simulcast layer received, as the viewer put them together.
    pub frames: FrameStats,
    /// Video packets the server sent that never arrived, even after retransmission: (lost, sent).
    pub video_seq_loss: (u64, u64),
    /// The last estimate a REMB-only viewer sent, bits per second.
    pub remb_sent_bps: Option<u64>,
    /// REMB packets sent.
    pub rembs_sent: u64,
}

/// Shared between the track tasks and the `Viewer`.
#[derive(Default)]
struct Recorder {
    posted_at: Option<Instant>,
    stats: ViewerStats,
    /// The received video track, to send keyframe requests (PLI) on.
    video_track: Option<Arc<dyn TrackRemote>>,
    frames: FrameTracker,
    /// Present for a REMB-only viewer.
    remb: Option<RembEstimator>,
}

impl Recorder {
    fn record(&mut self, video: bool, (seq, ts, marker): (u16, u32, bool), payload: &[u8]) {
        let now = Instant::now();
        if video {
            let frame_start = is_frame_start(payload);
            let keyframe = is_keyframe_start(payload);
            let packet = VideoPacket { seq, ts, marker, frame_start, keyframe, layer: read_layer_mark(payload) };
            self.frames.handle_packet(now, packet);
            if let Some(remb) = self.remb.as_mut() {
                let one_way = Trailer::read(payload).map(|t| now_us().saturating_sub(t.sent_us));
                remb.handle_packet(now, payload.len() + 12, one_way);
            }
        }
        let since_post = self.posted_at.map(|t| t.elapsed());
        let s = &mut self.stats;
        if video && s.first_video_after.is_none() {
            s.first_video_after = since_post;
            s.first_video_is_keyframe = Some(is_keyframe_start(payload));
        }
        if video && s.first_keyframe_after.is_none() && is_keyframe_start(payload) {
            s.first_keyframe_after = since_post;
        }
        if video && s.first_video.len() < 4 {
            s.first_video.push((seq, [payload.first().copied().unwrap_or(0), payload.get(1).copied().unwrap_or(0)]));
        }
        let k = if video { &mut s.video } else { &mut s.audio };
        k.packets += 1;
        if k.first_after.is_none() {
            k.first_after = since_post;
        }
        k.record_seq(seq);
        if let Some(t) = Trailer::read(payload) {
            k.clock_rate = if video { 90_000 } else { 48_000 };
            k.record_ts(ts, &t);
            k.record_trailer(t, now_us());
        }
    }
}

/// How the viewer's session is ended: it was opened over WHEP or through Janus's API.
enum Session {
    Whep { http: reqwest::Client, location: String, token: Option<String> },
    Janus(JanusSession),
}

impl Session {
    async fn end(self) {
        match self {
            Session::Whep { http, location, token } => end(&http, &location, token.as_deref()).await,
            Session::Janus(janus) => janus.destroy().await,
        }
    }
}

pub struct Viewer {
    pc: Arc<dyn PeerConnection>,
    session: Session,
    recorder: Arc<Mutex<Recorder>>,
    channel: Option<RoomChannel>,
    /// The link this viewer's receive path emulates, if any.
    impairment: Option<Arc<Impairment>>,
}

/// Send the REMB estimate every `REMB_EVERY` on the received video track, until the viewer is gone.
async fn send_remb(recorder: Weak<Mutex<Recorder>>) {
    let mut tick = tokio::time::interval(REMB_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tick.tick().await;
        let Some(recorder) = recorder.upgrade() else { return };
        let due = match recorder.lock() {
            Ok(mut r) => {
                let estimate = r.remb.as_mut().and_then(|e| e.poll_estimate(Instant::now()));
                estimate.zip(r.video_track.clone())
            }
            Err(_) => return,
        };
        let Some((bps, track)) = due else { continue };
        let Some(media_ssrc) = track.ssrcs().await.first().copied() else { continue };
        let remb = ReceiverEstimatedMaximumBitrate { sender_ssrc: 0, bitrate: bps as f32, ssrcs: vec![media_ssrc] };
        if track.write_rtcp(vec![Box::new(remb)]).await.is_ok() {
            if let Ok(mut r) = recorder.lock() {
                r.stats.remb_sent_bps = Some(bps);
                r.stats.rembs_sent += 1;
            }
        }
    }
}

/// Read one remote track until it ends, recording every packet.
fn reader(recorder: Arc<Mutex<Recorder>>) -> TrackCallback {
    Arc::new(move |track: Arc<dyn TrackRemote>| {
        let recorder = recorder.clone();
        tokio::spawn(async move {
            let video = track.kind().await == RtpCodecKind::Video;
            if video {
                if let Ok(mut r) = recorder.lock() {
                    r.video_track = Some(track.clone());
                }
            }
            while let Some(event) = track.poll().await {
                match event {
                    TrackRemoteEvent::OnRtpPacket(p) => {
                        if let Ok(mut r) = recorder.lock() {
                            r.record(video, (p.header.sequence_number, p.header.timestamp, p.header.marker), &p.payload);
                        }
                    }
                    TrackRemoteEvent::OnEnded => break,
                    _ => {}
                }
            }
        });
    })
}

impl Viewer {
    /// WHEP-subscribe to `{base}/whep/{room}` (audio and video, receive only) and wait until
    /// connected. `opts` may be a bare `Option<String>` token.
    pub async fn connect(base: &str, room: &str, opts: impl Into<ViewerOptions>) -> Result<Viewer, PeerError> {
        let opts = opts.into();
        let feedback = opts.link.map_or(FeedbackMode::Twcc, |l| l.feedback);
        let recorder = Arc::new(Mutex::new(Recorder {
            remb: (feedback == FeedbackMode::Remb).then(RembEstimator::default),
            ..Recorder::default()
        }));
        let impairment = match (opts.impairment.clone(), opts.link) {
            (Some(imp), link) => {
                if let Some(link) = link {
                    imp.set_link(link);
                }
                Some(imp)
            }
            (None, Some(link)) if link.shapes() => {
                let imp = Impairment::new();
                imp.set_link(link);
                Some(imp)
            }
            (None, _) => None,
        };
        let setup = PeerSetup {
            on_track: Some(reader(recorder.clone())),
            video_rtx: true,
            impairment: impairment.clone(),
            feedback_mode: feedback,
            ..PeerSetup::default()
        };
        let mut built = peer::build(setup).await?;
        for kind in [RtpCodecKind::Audio, RtpCodecKind::Video] {
            let init = RTCRtpTransceiverInit { direction: RTCRtpTransceiverDirection::Recvonly, ..Default::default() };
            built.pc.add_transceiver_from_kind(kind, Some(init)).await?;
        }
        let channel = match opts.data_channel {
            true => Some(RoomChannel::create(built.pc.as_ref(), opts.hello.clone()).await?),
            false => None,
        };
        let http = http_client();
        let offer = peer::local_offer(built.pc.as_ref()).await?;
        let posted_at = Instant::now();
        if let Ok(mut r) = recorder.lock() {
            r.posted_at = Some(posted_at);
        }
        let (answer, location) = exchange(&http, base, "whep", room, opts.token.as_deref(), offer).await?;
        let answered = posted_at.elapsed();
        let connected = async {
            peer::apply_answer(built.pc.as_ref(), answer).await?;
            peer::connected(&mut built.state, opts.connect_timeout).await
        };
        if let Err(e) = connected.await {
            // The server holds a session for us now: end it rather than leave it to time out.
            end(&http, &location, opts.token.as_deref()).await;
            let _ = built.pc.close().await;
            return Err(e);
        }
        tracing::debug!(?answered, connected = ?posted_at.elapsed(), "viewer connected");
        if feedback == FeedbackMode::Remb {
            // Ends by itself once the viewer (and its recorder) is gone.
            tokio::spawn(send_remb(Arc::downgrade(&recorder)));
        }
        let session = Session::Whep { http, location, token: opts.token };
        Ok(Viewer { pc: built.pc, session, recorder, channel, impairment })
    }

    /// Watch mountpoint `mountpoint` of Janus's Streaming plugin at `janus_base` (e.g.
    /// `http://127.0.0.1:8088/janus`): the same recording viewer, but Janus offers and the
    /// viewer answers. First-packet times count from the `watch` request. No data channel.
    ///
    /// Janus (libnice) ignores loopback interfaces, so it runs on a veth `v0` carrying
    /// 127.0.0.2 and pins its sockets to that interface (IP_UNICAST_IF): the only peer it can
    /// reach is one on an address local to `v0`. This viewer therefore binds 127.0.0.2.
    pub async fn watch_janus(janus_base: &str, mountpoint: u64, connect_timeout: Duration) -> Result<Viewer, PeerError> {
        let recorder = Arc::new(Mutex::new(Recorder::default()));
        let setup = PeerSetup {
            on_track: Some(reader(recorder.clone())),
            feedback: None,
            video_rtx: true,
            bind_ip: Some(std::net::Ipv4Addr::new(127, 0, 0, 2)),
            ..PeerSetup::default()
        };
        let mut built = peer::build(setup).await?;
        let janus = JanusSession::attach_streaming(http_client(), janus_base).await?;
        let connected = async {
            if let Ok(mut r) = recorder.lock() {
                r.posted_at = Some(Instant::now());
            }
            let offer = janus.watch(mountpoint).await?;
            tracing::debug!(%offer, "Janus offer");
            let answer = peer::answer_offer(&mut built, offer).await?;
            tracing::debug!(%answer, "answer to Janus");
            janus.start(answer).await?;
            peer::connected(&mut built.state, connect_timeout).await
        };
        if let Err(e) = connected.await {
            janus.destroy().await;
            let _ = built.pc.close().await;
            return Err(e);
        }
        Ok(Viewer { pc: built.pc, session: Session::Janus(janus), recorder, channel: None, impairment: None })
    }

    /// `connect` with a token and, if `data_channel`, the room's data channel.
    pub async fn connect_with(base: &str, room: &str, token: Option<String>, data_channel: bool) -> Result<Viewer, PeerError> {
        Self::connect(base, room, ViewerOptions { token, data_channel, ..ViewerOptions::default() }).await
    }

    fn channel(&self) -> Result<&RoomChannel, PeerError> {
        self.channel.as_ref().ok_or(PeerError::NoChannel)
    }

    /// Wait (bounded) until the room's data channel is open.
    pub async fn channel_ready(&self, limit: Duration) -> Result<(), PeerError> {
        self.channel()?.ready(limit).await
    }

    /// Send one text frame on the room's data channel.
    pub async fn send(&self, text: &str) -> Result<(), PeerError> {
        self.channel()?.send(text).await
    }

    /// The text frames received on the room's data channel, with arrival times (empty without one).
    pub fn frames(&self) -> Vec<(Instant, String)> {
        self.channel.as_ref().map(RoomChannel::frames).unwrap_or_default()
    }

    /// Frames received but not kept, past the per-viewer cap.
    pub fn frames_dropped(&self) -> u64 {
        self.channel.as_ref().map_or(0, RoomChannel::overflow)
    }

    /// A copy of everything recorded so far.
    pub fn stats(&self) -> ViewerStats {
        self.inspect(ViewerStats::clone)
    }

    /// When the first video packet arrived (its WHEP POST plus `first_video_after`): a
    /// recovery measured from an instant before this viewer existed (a node's kill) needs the
    /// arrival itself, not a duration from its own request.
    pub fn first_video_at(&self) -> Option<Instant> {
        let r = self.recorder.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        Some(r.posted_at? + r.stats.first_video_after?)
    }

    /// Look at the stats without copying them (cheap enough to poll).
    pub fn inspect<R>(&self, f: impl FnOnce(&ViewerStats) -> R) -> R {
        let mut r = self.recorder.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        r.stats.frames = r.frames.stats_at(Instant::now());
        r.stats.video_seq_loss = r.frames.loss();
        f(&r.stats)
    }

    /// The frames this viewer could show so far (cheaper than `stats`: no packet history copied).
    pub fn video_frames(&self) -> (FrameStats, (u64, u64)) {
        let r = self.recorder.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        (r.frames.stats_at(Instant::now()), r.frames.loss())
    }

    /// The emulated link on this viewer's receive path (to read its drops, or change it live).
    pub fn impairment(&self) -> Option<&Arc<Impairment>> {
        self.impairment.as_ref()
    }

    /// Forget the per-kind records so far (to measure a window); first-packet facts stay.
    pub fn reset(&self) {
        if let Ok(mut r) = self.recorder.lock() {
            let s = &mut r.stats;
            for k in [&mut s.audio, &mut s.video] {
                *k = k.restarted();
            }
            r.frames.reset_window(Instant::now());
        }
    }

    /// Ask the server for a keyframe, as a browser does when its decoder lost the picture:
    /// an RTCP PLI for the video stream this viewer receives.
    pub async fn request_keyframe(&self) -> Result<(), PeerError> {
        let track = self.recorder.lock().ok().and_then(|r| r.video_track.clone());
        let track = track.ok_or(PeerError::Protocol("no video track received yet".into()))?;
        let media_ssrc = track.ssrcs().await.first().copied().ok_or(PeerError::Protocol("the video track has no SSRC".into()))?;
        let pli = PictureLossIndication { sender_ssrc: 0, media_ssrc };
        track.write_rtcp(vec![Box::new(pli)]).await?;
        Ok(())
    }

    /// The WHEP session's URL (its `Location`); `None` for a Janus session.
    pub fn session_url(&self) -> Option<&str> {
        match &self.session {
            Session::Whep { location, .. } => Some(location),
            Session::Janus(_) => None,
        }
    }

    /// End the session (WHEP: DELETE on its URL; Janus: destroy) and close the connection.
    pub async fn close(self) {
        self.session.end().await;
        let _ = self.pc.close().await;
    }
}
