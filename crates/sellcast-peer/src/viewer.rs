//! A WHEP viewer that records what it receives: counts, first-packet timing, keyframe start,
//! publisher counters (for loss), one-way latency from the trailer, seq continuity.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use rtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::PeerConnection;

use crate::peer::{self, TrackCallback};
use crate::signalling::{end, PeerError};
use crate::trailer::{now_us, Trailer};
use crate::vp8::is_keyframe_start;

/// What one viewer saw of one kind of media.
#[derive(Debug, Default, Clone)]
pub struct KindStats {
    pub packets: u64,
    /// Publisher counters seen (distinct): with the publisher's own count gives loss.
    pub counters: BTreeSet<u64>,
    pub duplicates: u64,
    /// Outgoing seq numbers that did not follow the previous one.
    pub seq_jumps: u64,
    pub last_seq: Option<u16>,
    /// One-way latency samples (publisher send -> viewer receive), microseconds.
    pub latency_us: Vec<u64>,
}

#[derive(Debug, Default, Clone)]
pub struct ViewerStats {
    pub audio: KindStats,
    pub video: KindStats,
    /// Time from the WHEP POST to the first video packet.
    pub first_video_after: Option<Duration>,
    /// Did the first video packet begin a keyframe?
    pub first_video_is_keyframe: Option<bool>,
    /// The first few video packets: (seq, first two payload bytes), for diagnosing starts.
    pub first_video: Vec<(u16, [u8; 2])>,
}

pub struct Viewer {
    pc: Arc<dyn PeerConnection>,
    http: reqwest::Client,
    location: Option<String>,
    token: Option<String>,
    stats: Arc<Mutex<ViewerStats>>,
}

fn record(stats: &Mutex<ViewerStats>, video: bool, seq: u16, payload: &[u8], started: Instant) {
    let Ok(mut s) = stats.lock() else {
        return;
    };
    if video && s.first_video_after.is_none() {
        s.first_video_after = Some(started.elapsed());
        s.first_video_is_keyframe = Some(is_keyframe_start(payload));
    }
    if video && s.first_video.len() < 4 {
        s.first_video.push((seq, [payload.first().copied().unwrap_or(0), payload.get(1).copied().unwrap_or(0)]));
    }
    let k = if video { &mut s.video } else { &mut s.audio };
    k.packets += 1;
    if let Some(last) = k.last_seq {
        if seq != last.wrapping_add(1) {
            k.seq_jumps += 1;
        }
    }
    k.last_seq = Some(seq);
    if let Some(t) = Trailer::read(payload) {
        if !k.counters.insert(t.counter) {
            k.duplicates += 1;
        }
        k.latency_us.push(now_us().saturating_sub(t.sent_us));
    }
}

impl Viewer {
    pub async fn connect(base: &str, room: &str, token: Option<String>) -> Result<Viewer, PeerError> {
        let stats = Arc::new(Mutex::new(ViewerStats::default()));
        let started = Instant::now();
        let sink = stats.clone();
        let on_track: TrackCallback = Arc::new(move |track: Arc<dyn TrackRemote>| {
            let sink = sink.clone();
            tokio::spawn(async move {
                let video = track.kind().await == RtpCodecKind::Video;
                while let Some(event) = track.poll().await {
                    match event {
                        TrackRemoteEvent::OnRtpPacket(p) => {
                            record(&sink, video, p.header.sequence_number, &p.payload, started)
                        }
                        TrackRemoteEvent::OnEnded => break,
                        _ => {}
                    }
                }
            });
        });
        let mut built = peer::build(Some(on_track)).await?;
        for kind in [RtpCodecKind::Audio, RtpCodecKind::Video] {
            let init = RTCRtpTransceiverInit { direction: RTCRtpTransceiverDirection::Recvonly, ..Default::default() };
            built.pc.add_transceiver_from_kind(kind, Some(init)).await?;
        }
        let http = reqwest::Client::new();
        let location = peer::negotiate(&built, &http, base, "whep", room, token.as_deref()).await?;
        let negotiated = started.elapsed();
        peer::connected(&mut built.state, Duration::from_secs(15)).await?;
        tracing::debug!(?negotiated, connected = ?started.elapsed(), "viewer connected");
        Ok(Viewer { pc: built.pc, http, location, token, stats })
    }

    pub fn stats(&self) -> ViewerStats {
        self.stats.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Forget what was recorded so far (to measure a window).
    pub fn reset(&self) {
        if let Ok(mut s) = self.stats.lock() {
            s.audio = KindStats::default();
            s.video = KindStats::default();
        }
    }

    pub async fn close(self) {
        end(&self.http, self.location.as_deref(), self.token.as_deref()).await;
        let _ = self.pc.close().await;
    }
}
