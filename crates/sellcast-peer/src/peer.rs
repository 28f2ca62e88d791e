//! Building a webrtc-rs peer connection that stays on loopback, negotiating it and waiting
//! (bounded) until it is connected.
//!
//! Loopback in webrtc-rs 0.21.1: host candidates are the local addresses of the UDP sockets
//! the driver binds. A wildcard bind (`0.0.0.0:0`) is expanded to every interface *except*
//! loopback, so it would announce only the machine's real address (and inside `unshare -n`
//! none at all). Binding `127.0.0.1:0` explicitly yields exactly one host candidate,
//! 127.0.0.1, on any machine. `SettingEngine::with_include_loopback_candidate` is read by
//! nothing in 0.21.1, so it is not what makes this work. mDNS is disabled: its default
//! (`QueryOnly`) binds a multicast socket on 0.0.0.0:5353 per connection, which fails with
//! ENODEV where only `lo` exists and would reach beyond loopback elsewhere.

use std::sync::Arc;
use std::time::Duration;

use rtc::ice::mdns::MulticastDnsMode;
use rtc::interceptor::Slot;
use rtc::peer_connection::certificate::{CertificateParams, RTCCertificate};
use rtc::peer_connection::transport::RTCIceCandidateInit;
use rtc::peer_connection::configuration::media_engine::{MIME_TYPE_OPUS, MIME_TYPE_RTX, MIME_TYPE_VP8};
use rtc::rtp_transceiver::rtp_sender::{RTCRtpCodec, RTCRtpCodecParameters, RtpCodecKind};
use tokio::sync::watch;
use webrtc::media_stream::track_remote::TrackRemote;
use webrtc::peer_connection::{
    MediaEngine, PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCConfigurationBuilder,
    RTCIceGatheringState, RTCPeerConnectionState, RTCSessionDescription, SettingEngineBuilder,
};

use crate::feedback_counter::{FeedbackCounter, FeedbackCounts};
use crate::feedback_mode::FeedbackMode;
use crate::rtx_tagger::{RtxTagger, RtxTags};
use crate::impairment::Impairment;
use crate::signalling::PeerError;
use crate::socket_runtime::SocketRuntime;

/// Payload types offered by the synthetic peers. The answer decides what is sent: the
/// publisher reads the negotiated payload type back from its senders.
const VP8_PT: u8 = 96;
const OPUS_PT: u8 = 111;
const RTX_PT: u8 = 97;

pub type TrackCallback = Arc<dyn Fn(Arc<dyn TrackRemote>) + Send + Sync>;

struct Handler {
    state: watch::Sender<RTCPeerConnectionState>,
    gathering: watch::Sender<RTCIceGatheringState>,
    on_track: Option<TrackCallback>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        let _ = self.state.send(state);
    }

    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        let _ = self.gathering.send(state);
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        if let Some(cb) = &self.on_track {
            cb(track);
        }
    }
}

pub fn vp8_codec() -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: MIME_TYPE_VP8.to_owned(),
        clock_rate: 90_000,
        channels: 0,
        sdp_fmtp_line: String::new(),
        rtcp_feedback: vec![],
    }
}

pub fn opus_codec() -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: MIME_TYPE_OPUS.to_owned(),
        clock_rate: 48_000,
        channels: 2,
        sdp_fmtp_line: "minptime=10;useinbandfec=1".to_owned(),
        rtcp_feedback: vec![],
    }
}

fn rtx_codec(apt: u8) -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: MIME_TYPE_RTX.to_owned(),
        clock_rate: 90_000,
        channels: 0,
        sdp_fmtp_line: format!("apt={apt}"),
        rtcp_feedback: vec![],
    }
}

/// How a peer differs by role, and what it reports back to its owner besides media.
#[derive(Default)]
pub struct PeerSetup {
    pub on_track: Option<TrackCallback>,
    /// Offer RTX for video (RFC 4588), as browsers and OBS do: str0m NACKs a sender only
    /// when it can repair over RTX, so without it a packet lost on the way in stays lost.
    pub video_rtx: bool,
    /// Counts the PLI/FIR and NACK packets that arrive (a publisher's view of the server).
    pub feedback: Option<Arc<FeedbackCounts>>,
    /// The address the peer's socket binds (and its one host candidate): 127.0.0.1 when
    /// `None`. Janus needs 127.0.0.2, see `Viewer::watch_janus`.
    pub bind_ip: Option<std::net::Ipv4Addr>,
    /// What the peer receives passes through this first (tests of a bad link).
    pub impairment: Option<Arc<Impairment>>,
    /// The DTLS certificate to present; webrtc-rs makes an ECDSA one when `None`.
    pub certificate: Option<RTCCertificate>,
    /// The bandwidth feedback offered and sent (a viewer's); TWCC by default.
    pub feedback_mode: FeedbackMode,
    /// Declare a simulcast track's SSRCs and RTX pairs in the offer (see `simulcast.rs`).
    pub simulcast_ssrc_lines: bool,
    /// Stamp mid and repaired-rid on outgoing RTX (a simulcast host; see `rtx_tagger.rs`).
    pub rtx_tags: Option<Arc<RtxTags>>,
}

/// A self-signed DTLS certificate around an RSA private key (PKCS#8 DER), signing with
/// RSA PKCS#1 v1.5 SHA-256 as GStreamer's and other OpenSSL-based stacks do.
pub fn rsa_certificate(pkcs8_der: &[u8]) -> Result<RTCCertificate, PeerError> {
    let provider = rtc::crypto::default_provider().map_err(|e| PeerError::WebRtc(e.to_string()))?;
    let key = provider
        .crypto()
        .import_signing_key(rtc::crypto::SignatureScheme::RsaPkcs1Sha256, pkcs8_der)
        .map_err(|e| PeerError::WebRtc(e.to_string()))?;
    let params = CertificateParams::new(vec!["sellcast-test".to_owned()]).map_err(|e| PeerError::WebRtc(e.to_string()))?;
    RTCCertificate::generate_from_signing_key(params, rtc::crypto::SignatureScheme::RsaPkcs1Sha256, key)
        .map_err(|e| PeerError::WebRtc(e.to_string()))
}

pub struct Built {
    pub pc: Arc<dyn PeerConnection>,
    pub state: watch::Receiver<RTCPeerConnectionState>,
    pub gathering: watch::Receiver<RTCIceGatheringState>,
}

/// A peer with Opus and VP8 registered, no ICE servers and ICE limited to loopback.
pub async fn build(setup: PeerSetup) -> Result<Built, PeerError> {
    let mut media = MediaEngine::default();
    media.register_codec(RTCRtpCodecParameters { rtp_codec: vp8_codec(), payload_type: VP8_PT }, RtpCodecKind::Video)?;
    media.register_codec(RTCRtpCodecParameters { rtp_codec: opus_codec(), payload_type: OPUS_PT }, RtpCodecKind::Audio)?;
    if setup.video_rtx {
        media.register_codec(RTCRtpCodecParameters { rtp_codec: rtx_codec(VP8_PT), payload_type: RTX_PT }, RtpCodecKind::Video)?;
    }
    let mut registry = setup.feedback_mode.registry(&mut media)?;
    if let Some(count) = setup.feedback {
        // Application-most, so the default chain has acted on every RTCP packet first.
        registry = registry.with(Slot::from(14_000), FeedbackCounter::new(count));
    }
    if let Some(tags) = setup.rtx_tags {
        registry = registry.with(RtxTagger::slot(), RtxTagger::new(tags));
    }
    let settings = SettingEngineBuilder::new()
        .with_multicast_dns_mode(MulticastDnsMode::Disabled)
        // Nominate the loopback pair as soon as it works: there is no better one to wait for.
        .with_host_acceptance_min_wait(Some(Duration::ZERO))
        // webrtc-rs nominates on its next check tick (200 ms by default, twice): on loopback
        // that alone would dominate the first-frame time we measure. Checking every 5 ms (200
        // checks, the same 1 s budget) brings it near a browser, which checks at once and
        // nominates on the first success.
        .with_ice_connection_attempts(Some(Duration::from_millis(5)), Some(200))
        .with_write_ssrc_attributes_for_simulcast(setup.simulcast_ssrc_lines)
        .build();
    let (state_tx, state) = watch::channel(RTCPeerConnectionState::New);
    let (gathering_tx, gathering) = watch::channel(RTCIceGatheringState::New);
    let pc = PeerConnectionBuilder::new()
        .with_configuration(
            RTCConfigurationBuilder::new()
                .with_ice_servers(vec![])
                .with_certificates(setup.certificate.into_iter().collect())
                .build(),
        )
        .with_media_engine(media)
        .with_setting_engine(settings)
        .with_interceptor_registry(registry)
        .with_handler(Arc::new(Handler { state: state_tx, gathering: gathering_tx, on_track: setup.on_track }))
        .with_runtime(setup.impairment.map_or_else(SocketRuntime::shared, SocketRuntime::impaired))
        .with_udp_addrs(vec![format!("{}:0", setup.bind_ip.unwrap_or(std::net::Ipv4Addr::LOCALHOST))])
        .build()
        .await?;
    Ok(Built { pc: Arc::new(pc), state, gathering })
}

/// Create the offer and apply it locally; returns its SDP. No trickle: the host candidate is
/// known as soon as the socket is bound, so there is nothing to wait for.
pub async fn local_offer(pc: &dyn PeerConnection) -> Result<String, PeerError> {
    let offer = pc.create_offer(None).await?;
    let sdp = offer.sdp.clone();
    pc.set_local_description(offer).await?;
    Ok(sdp)
}

/// Apply a remote offer and answer it; returns the answer's SDP with its candidates, for a
/// full-ICE offerer (Janus) that does not learn them from our checks alone. The host
/// candidate is gathered when the local description is set, so the wait is short.
pub async fn answer_offer(built: &mut Built, offer: String) -> Result<String, PeerError> {
    let pc = built.pc.as_ref();
    let offer_sdp = offer.clone();
    pc.set_remote_description(RTCSessionDescription::offer(offer)?).await?;
    let answer = pc.create_answer(None).await?;
    pc.set_local_description(answer).await?;
    // webrtc-rs 0.21.1 reads the offer's candidates before its ICE agent starts, and starting
    // the agent forgets them (the agent then has no pair to check): hand them over again.
    let mut mid = None;
    for line in offer_sdp.lines() {
        if let Some(m) = line.strip_prefix("a=mid:") {
            mid = Some(m.trim().to_owned());
        }
        if let Some(candidate) = line.strip_prefix("a=") {
            if candidate.starts_with("candidate:") {
                let init = RTCIceCandidateInit { candidate: candidate.trim().to_owned(), sdp_mid: mid.clone(), ..Default::default() };
                pc.add_ice_candidate(init).await?;
            }
        }
    }
    let gathered = async {
        while *built.gathering.borrow_and_update() != RTCIceGatheringState::Complete {
            if built.gathering.changed().await.is_err() {
                break;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(5), gathered).await.map_err(|_| PeerError::Timeout("ICE gathering"))?;
    pc.local_description().await.map(|d| d.sdp).ok_or_else(|| PeerError::WebRtc("no local description after answering".into()))
}

pub async fn apply_answer(pc: &dyn PeerConnection, sdp: String) -> Result<(), PeerError> {
    pc.set_remote_description(RTCSessionDescription::answer(sdp)?).await?;
    Ok(())
}

/// Wait until connected, or fail after `limit`.
pub async fn connected(state: &mut watch::Receiver<RTCPeerConnectionState>, limit: Duration) -> Result<(), PeerError> {
    let wait = async {
        loop {
            match *state.borrow_and_update() {
                RTCPeerConnectionState::Connected => return Ok(()),
                RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed => {
                    return Err(PeerError::WebRtc("connection failed".into()))
                }
                _ => {}
            }
            if state.changed().await.is_err() {
                return Err(PeerError::WebRtc("peer connection dropped".into()));
            }
        }
    };
    tokio::time::timeout(limit, wait).await.map_err(|_| PeerError::Timeout("ICE/DTLS connection"))?
}
