//! A WHIP publisher of synthetic VP8 + Opus RTP.

use rtc::peer_connection::certificate::RTCCertificate;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::media_engine::MIME_TYPE_RTX;
use rtc::rtp::header::Header;
use rtc::rtp::packet::Packet;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodingParameters, RTCRtpEncodingParameters, RTCRtpRtxParameters, RtpCodecKind,
};
use rtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::peer_connection::PeerConnection;
use webrtc::rtp_transceiver::{RtpSender, RtpTransceiver};

use crate::feedback_counter::FeedbackCounts;
use crate::peer::{self, opus_codec, vp8_codec, PeerSetup};
use crate::rtx_tagger::RtxTags;
use crate::simulcast::{self, SimulcastLayer};
use crate::signalling::{end, exchange, http_client, PeerError};
use crate::synthetic::{send_audio, send_video, RtpSink};
use crate::trailer::now_us;

#[derive(Debug, Clone)]
pub struct PublishOptions {
    pub bitrate_bps: u64,
    pub fps: u32,
    pub keyframe_interval: Duration,
    pub max_payload: usize,
    /// Audio packets per second (20 ms Opus frames: 50).
    pub audio_pps: u32,
    pub audio_payload: usize,
    /// Bearer token for the WHIP POST and DELETE.
    pub token: Option<String>,
    /// Bound on ICE + DTLS after the answer.
    pub connect_timeout: Duration,
    /// The DTLS certificate to present; `None` is webrtc-rs's own (ECDSA). See
    /// `peer::rsa_certificate` for one like GStreamer's.
    pub certificate: Option<RTCCertificate>,
    /// Simulcast layers, lowest first (`SimulcastLayer::three`); empty (the default) sends one
    /// layer at `bitrate_bps`, with no rid.
    pub layers: Vec<SimulcastLayer>,
}

impl Default for PublishOptions {
    fn default() -> Self {
        Self {
            bitrate_bps: 2_500_000,
            fps: 30,
            keyframe_interval: Duration::from_secs(2),
            max_payload: 1100,
            audio_pps: 50,
            audio_payload: 100,
            token: None,
            connect_timeout: Duration::from_secs(15),
            certificate: None,
            layers: Vec::new(),
        }
    }
}

/// Counters of what was sent (and asked for).
#[derive(Debug, Default)]
pub struct PublisherStats {
    pub video_packets: AtomicU64,
    pub audio_packets: AtomicU64,
    pub video_frames: AtomicU64,
    /// PLI/FIR and NACK packets received from the server.
    pub feedback: Arc<FeedbackCounts>,
}

pub struct Publisher {
    pc: Arc<dyn PeerConnection>,
    http: reqwest::Client,
    location: String,
    token: Option<String>,
    pub stats: Arc<PublisherStats>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// The SSRC of each simulcast layer, lowest first (empty for one layer).
    layer_ssrcs: Vec<u32>,
}

/// A local track sending on `ssrc`, repaired over RTX on `rtx_ssrc` when that is given.
pub(crate) fn track(kind: RtpCodecKind, ssrc: u32, rtx_ssrc: Option<u32>) -> Arc<TrackLocalStaticRTP> {
    let codec = if kind == RtpCodecKind::Video { vp8_codec() } else { opus_codec() };
    Arc::new(TrackLocalStaticRTP::new(MediaStreamTrack::new(
        "sellcast-synthetic".to_string(),
        format!("synthetic-{kind}"),
        format!("synthetic-{kind}"),
        kind,
        vec![RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters {
                ssrc: Some(ssrc),
                rtx: rtx_ssrc.map(|ssrc| RTCRtpRtxParameters { ssrc }),
                ..Default::default()
            },
            codec,
            ..Default::default()
        }],
    )))
}

/// A send-only transceiver for `track` (`add_track` would offer sendrecv), and its sender.
pub(crate) async fn add_sendonly(pc: &dyn PeerConnection, track: Arc<TrackLocalStaticRTP>) -> Result<(Arc<dyn RtpSender>, Arc<dyn RtpTransceiver>), PeerError> {
    let init = RTCRtpTransceiverInit { direction: RTCRtpTransceiverDirection::Sendonly, ..Default::default() };
    let transceiver = pc.add_transceiver_from_track(track as Arc<dyn TrackLocal>, Some(init)).await?;
    let sender = transceiver.sender().await?.ok_or_else(|| PeerError::WebRtc("a send-only transceiver without a sender".into()))?;
    Ok((sender, transceiver))
}

/// The payload type the answer settled on for `sender` (its first negotiated media codec).
pub(crate) async fn negotiated_pt(sender: &dyn RtpSender) -> Result<u8, PeerError> {
    let params = sender.get_parameters().await?;
    params
        .rtp_parameters
        .codecs
        .iter()
        .find(|c| !c.rtp_codec.mime_type.eq_ignore_ascii_case(MIME_TYPE_RTX))
        .map(|c| c.payload_type)
        .ok_or_else(|| PeerError::WebRtc("the answer accepted no codec for a track".into()))
}

impl Publisher {
    /// WHIP-publish to `{base}/whip/{room}` and start sending once connected.
    pub async fn connect(base: &str, room: &str, opts: PublishOptions) -> Result<Publisher, PeerError> {
        let stats = Arc::new(PublisherStats::default());
        let layered = !opts.layers.is_empty();
        let rtx_tags = layered.then(|| Arc::new(RtxTags::default()));
        let setup = PeerSetup {
            feedback: Some(stats.feedback.clone()),
            video_rtx: true,
            certificate: opts.certificate.clone(),
            simulcast_ssrc_lines: layered,
            rtx_tags: rtx_tags.clone(),
            ..PeerSetup::default()
        };
        let mut built = peer::build(setup).await?;
        let seed = (now_us() & 0xffff_ffff) as u32;
        let (video_ssrc, audio_ssrc) = (seed | 1, seed.rotate_left(16) | 2);
        let video = match layered {
            true => simulcast::layered_track(&opts.layers, seed),
            false => track(RtpCodecKind::Video, video_ssrc, Some(video_ssrc ^ 0x5a5a_0000)),
        };
        let audio = track(RtpCodecKind::Audio, audio_ssrc, None);
        let (video_sender, video_transceiver) = add_sendonly(built.pc.as_ref(), video.clone()).await?;
        let (audio_sender, _) = add_sendonly(built.pc.as_ref(), audio.clone()).await?;
        let http = http_client();
        let offer = peer::local_offer(built.pc.as_ref()).await?;
        let (answer, location) = exchange(&http, base, "whip", room, opts.token.as_deref(), offer).await?;
        let connected = async {
            peer::apply_answer(built.pc.as_ref(), answer).await?;
            let pts = (negotiated_pt(video_sender.as_ref()).await?, negotiated_pt(audio_sender.as_ref()).await?);
            let sinks = match layered {
                true => {
                    let mid = video_transceiver.mid().await?.ok_or_else(|| PeerError::Protocol("the video transceiver has no mid".into()))?;
                    simulcast::layer_sinks(&video, video_sender.as_ref(), (&mid, rtx_tags.as_deref()), &opts.layers, (seed, pts.0)).await?
                }
                false => Vec::new(),
            };
            peer::connected(&mut built.state, opts.connect_timeout).await?;
            Ok::<_, PeerError>((pts, sinks))
        };
        let ((video_pt, audio_pt), sinks) = match connected.await {
            Ok(pts) => pts,
            Err(e) => {
                // The server holds a session for us now: end it rather than leave it to time out.
                end(&http, &location, opts.token.as_deref()).await;
                let _ = built.pc.close().await;
                return Err(e);
            }
        };
        let audio = Outgoing { track: audio, ssrc: audio_ssrc, pt: audio_pt };
        let video_task = match layered {
            true => tokio::spawn(simulcast::send_layers(sinks, opts.layers.clone(), opts.clone(), stats.clone())),
            false => tokio::spawn(send_video(Outgoing { track: video, ssrc: video_ssrc, pt: video_pt }, opts.clone(), stats.clone())),
        };
        let tasks = vec![video_task, tokio::spawn(send_audio(audio, opts.clone(), stats.clone()))];
        let layer_ssrcs = (0..opts.layers.len()).map(|i| simulcast::layer_ssrcs(seed, i).0).collect();
        Ok(Publisher { pc: built.pc, http, location, token: opts.token, stats, tasks, layer_ssrcs })
    }

    pub fn video_sent(&self) -> u64 {
        self.stats.video_packets.load(Ordering::Relaxed)
    }

    pub fn audio_sent(&self) -> u64 {
        self.stats.audio_packets.load(Ordering::Relaxed)
    }

    /// PLI/FIR packets the server has sent this publisher.
    pub fn keyframe_requests(&self) -> u64 {
        self.stats.feedback.keyframe_requests.load(Ordering::Relaxed)
    }

    /// PLI/FIR packets the server has sent for each simulcast layer, lowest first (empty for
    /// a one-layer host): which layer a keyframe was asked for.
    pub fn layer_keyframe_requests(&self) -> Vec<u64> {
        self.layer_ssrcs.iter().map(|ssrc| self.stats.feedback.keyframe_requests_for(*ssrc)).collect()
    }

    /// NACK packets the server has sent this publisher (it lost something on the way in).
    pub fn nacks(&self) -> u64 {
        self.stats.feedback.nacks.load(Ordering::Relaxed)
    }

    /// Stop sending, end the WHIP session, close the connection.
    pub async fn close(self) {
        for t in &self.tasks {
            t.abort();
        }
        end(&self.http, &self.location, self.token.as_deref()).await;
        let _ = self.pc.close().await;
    }
}

/// One sending track and the header fields it stamps on its packets.
struct Outgoing {
    track: Arc<TrackLocalStaticRTP>,
    ssrc: u32,
    pt: u8,
}

#[async_trait::async_trait]
impl RtpSink for Outgoing {
    fn ssrc(&self) -> u32 {
        self.ssrc
    }

    async fn send(&self, seq: u16, ts: u32, marker: bool, payload: Vec<u8>) -> bool {
        let header = Header {
            version: 2,
            marker,
            payload_type: self.pt,
            sequence_number: seq,
            timestamp: ts,
            ssrc: self.ssrc,
            ..Default::default()
        };
        self.track.write_rtp(Packet { header, payload: Bytes::from(payload) }).await.is_ok()
    }
}
