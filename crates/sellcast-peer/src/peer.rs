//! Building a webrtc-rs peer connection that stays on loopback, negotiating it over WHIP/WHEP
//! and waiting (bounded) until it is connected.

use std::sync::Arc;
use std::time::Duration;

use rtc::peer_connection::configuration::media_engine::{MIME_TYPE_OPUS, MIME_TYPE_VP8};
use rtc::rtp_transceiver::rtp_sender::{RTCRtpCodec, RTCRtpCodecParameters, RtpCodecKind};
use tokio::sync::watch;
use webrtc::media_stream::track_remote::TrackRemote;
use webrtc::peer_connection::{
    MediaEngine, PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCConfigurationBuilder,
    RTCPeerConnectionState, RTCSessionDescription, Registry, SettingEngineBuilder,
};

use crate::signalling::{exchange, PeerError};

/// Payload types offered by the synthetic peers (the server answers with whatever we offer).
pub const VP8_PT: u8 = 96;
pub const OPUS_PT: u8 = 111;

pub type TrackCallback = Arc<dyn Fn(Arc<dyn TrackRemote>) + Send + Sync>;

pub struct Handler {
    state: watch::Sender<RTCPeerConnectionState>,
    on_track: Option<TrackCallback>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        let _ = self.state.send(state);
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

pub struct Built {
    pub pc: Arc<dyn PeerConnection>,
    pub state: watch::Receiver<RTCPeerConnectionState>,
}

/// A peer with Opus and VP8 registered and ICE limited to loopback.
pub async fn build(on_track: Option<TrackCallback>) -> Result<Built, PeerError> {
    let mut media = MediaEngine::default();
    media.register_codec(RTCRtpCodecParameters { rtp_codec: vp8_codec(), payload_type: VP8_PT }, RtpCodecKind::Video)?;
    media.register_codec(RTCRtpCodecParameters { rtp_codec: opus_codec(), payload_type: OPUS_PT }, RtpCodecKind::Audio)?;
    let registry = webrtc::peer_connection::register_default_interceptors(Registry::new(), &mut media)?;
    let settings = SettingEngineBuilder::new()
        .with_include_loopback_candidate(true)
        // Nominate the loopback pair as soon as it works: there is no better one to wait for.
        .with_host_acceptance_min_wait(Some(Duration::ZERO))
        // webrtc-rs nominates on its next check tick (200 ms by default, twice): on loopback
        // that alone would dominate the first-frame time we measure.
        .with_ice_connection_attempts(Some(Duration::from_millis(20)), Some(50))
        // No mDNS: it needs a multicast-capable interface (absent in a private namespace) and
        // the server never sends .local candidates.
        .with_multicast_dns_mode(rtc::ice::mdns::MulticastDnsMode::Disabled)
        .build();
    let (state_tx, state) = watch::channel(RTCPeerConnectionState::New);
    let pc = PeerConnectionBuilder::new()
        .with_configuration(RTCConfigurationBuilder::new().build())
        .with_media_engine(media)
        .with_setting_engine(settings)
        .with_interceptor_registry(registry)
        .with_handler(Arc::new(Handler { state: state_tx, on_track }))
        .with_udp_addrs(vec!["127.0.0.1:0".to_string()])
        .build()
        .await?;
    Ok(Built { pc: Arc::new(pc), state })
}

/// Offer, exchange over HTTP, answer; returns the session URL.
pub async fn negotiate(
    built: &Built,
    http: &reqwest::Client,
    base: &str,
    endpoint: &str,
    room: &str,
    token: Option<&str>,
) -> Result<Option<String>, PeerError> {
    let offer = built.pc.create_offer(None).await?;
    built.pc.set_local_description(offer.clone()).await?;
    let (answer, location) = exchange(http, base, endpoint, room, token, offer.sdp).await?;
    built.pc.set_remote_description(RTCSessionDescription::answer(answer)?).await?;
    Ok(location)
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
