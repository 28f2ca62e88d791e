//! Which bandwidth feedback a synthetic viewer gives the server, as the three kinds of receiver
//! a real SFU meets: browsers (transport-wide congestion control), aiortc and older stacks (REMB
//! only), and minimal stacks (no bandwidth feedback at all; NACK, PLI and receiver reports only).
//!
//! What webrtc-rs 0.21.1 offers for each (read from its source):
//! - TWCC: `register_default_interceptors` registers the TWCC *receiver* interceptor and offers
//!   the `transport-cc` feedback and the transport-wide sequence number extension; it sends
//!   `TransportLayerCC` feedback for what arrives. Used as it is.
//! - REMB: webrtc-rs has no receive-side estimator and no REMB generator (its GCC port is
//!   send-side and crate-private). It can offer `goog-remb` (`MediaEngine::register_feedback`)
//!   and send any RTCP packet, so the viewer offers `goog-remb` without `transport-cc` and sends
//!   `ReceiverEstimatedMaximumBitrate` from its own estimate (`remb_estimator.rs`).
//! - None: the default chain without `configure_twcc_receiver_only`: NACK (generator and
//!   responder), `nack pli`, the mid/rid extensions and sender/receiver reports, nothing else.

use std::fmt;

use rtc::interceptor::Registry;
use rtc::peer_connection::configuration::interceptor_registry::{
    configure_nack, configure_rtcp_reports, configure_simulcast_extension_headers,
};
use rtc::rtp_transceiver::rtp_sender::{RTCPFeedback, RtpCodecKind, TYPE_RTCP_FB_GOOG_REMB};
use webrtc::peer_connection::MediaEngine;

use crate::signalling::PeerError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FeedbackMode {
    /// Transport-wide congestion control feedback, as browsers send (webrtc-rs's default).
    #[default]
    Twcc,
    /// REMB from the viewer's own receive-side estimate; `transport-cc` not offered.
    Remb,
    /// No bandwidth feedback: neither `transport-cc` nor `goog-remb` offered. NACK, PLI and
    /// receiver reports stay.
    None,
}

impl fmt::Display for FeedbackMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FeedbackMode::Twcc => "twcc",
            FeedbackMode::Remb => "remb",
            FeedbackMode::None => "none",
        })
    }
}

impl std::str::FromStr for FeedbackMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "twcc" => Ok(FeedbackMode::Twcc),
            "remb" => Ok(FeedbackMode::Remb),
            "none" | "nofb" => Ok(FeedbackMode::None),
            other => Err(format!("unknown feedback mode {other:?} (twcc, remb, none)")),
        }
    }
}

impl FeedbackMode {
    /// The interceptor chain (and the feedback the media engine offers) for this mode.
    pub(crate) fn registry(self, media: &mut MediaEngine) -> Result<Registry, PeerError> {
        if self == FeedbackMode::Twcc {
            return Ok(webrtc::peer_connection::register_default_interceptors(Registry::new(), media)?);
        }
        // The default chain minus TWCC (see `register_default_interceptors`).
        let registry = configure_nack(Registry::new(), media);
        configure_simulcast_extension_headers(media)?;
        let registry = configure_rtcp_reports(registry);
        if self == FeedbackMode::Remb {
            let remb = RTCPFeedback { typ: TYPE_RTCP_FB_GOOG_REMB.to_owned(), parameter: String::new() };
            media.register_feedback(remb, RtpCodecKind::Video);
        }
        Ok(registry)
    }
}

#[cfg(test)]
mod tests {
    use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
    use rtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};

    use super::*;
    use crate::peer::{self, PeerSetup};

    /// The offer a receive-only viewer in `mode` makes.
    async fn offer(mode: FeedbackMode) -> Result<String, PeerError> {
        let built = peer::build(PeerSetup { feedback_mode: mode, video_rtx: true, ..PeerSetup::default() }).await?;
        for kind in [RtpCodecKind::Audio, RtpCodecKind::Video] {
            let init = RTCRtpTransceiverInit { direction: RTCRtpTransceiverDirection::Recvonly, ..Default::default() };
            built.pc.add_transceiver_from_kind(kind, Some(init)).await?;
        }
        let sdp = peer::local_offer(built.pc.as_ref()).await?;
        let _ = built.pc.close().await;
        Ok(sdp)
    }

    #[tokio::test]
    async fn each_mode_offers_its_own_bandwidth_feedback_and_keeps_nack_and_pli() -> Result<(), PeerError> {
        const TWCC_EXT: &str = "transport-wide-cc";
        for (mode, twcc, remb) in [(FeedbackMode::Twcc, true, false), (FeedbackMode::Remb, false, true), (FeedbackMode::None, false, false)] {
            let sdp = offer(mode).await?;
            assert_eq!(sdp.contains(" transport-cc"), twcc, "{mode}: transport-cc feedback\n{sdp}");
            assert_eq!(sdp.contains(TWCC_EXT), twcc, "{mode}: transport-wide sequence numbers\n{sdp}");
            assert_eq!(sdp.contains(" goog-remb"), remb, "{mode}: goog-remb\n{sdp}");
            assert!(sdp.contains(" nack\r\n") && sdp.contains(" nack pli"), "{mode}: NACK and PLI stay\n{sdp}");
        }
        Ok(())
    }
}
