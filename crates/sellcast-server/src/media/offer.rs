//! Checks an SDP offer before any WebRTC state is created for it, and picks the codecs.
//!
//! str0m parses the offer for real afterwards; this pass exists to give the client a precise,
//! typed reason (which HTTP status, which missing codec) instead of a generic failure, and to
//! choose one video codec for a host so every viewer knows what it will be sent.

use sellcast_sfu::Codec;
use thiserror::Error;

/// Which side of the room an offer comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Host,
    Viewer,
}

/// Why an offer was refused.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum OfferError {
    #[error("malformed SDP: {0}")]
    Malformed(String),
    #[error("the offer has no audio or video m-line")]
    NoMedia,
    #[error("no usable codec: video needs VP8 or H264, audio needs Opus")]
    NoUsableCodec,
    #[error("wrong direction: a {0} offer must {1}")]
    WrongDirection(&'static str, &'static str),
}

/// What a host's offer will publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishPlan {
    pub audio: Option<Codec>,
    pub video: Option<Codec>,
}

impl PublishPlan {
    pub fn codecs(&self) -> Vec<Codec> {
        self.audio.into_iter().chain(self.video).collect()
    }
}

#[derive(Debug, Default)]
struct Section {
    kind: String,
    codecs: Vec<String>,
    direction: Option<String>,
    port_zero: bool,
}

/// Scan the offer's media sections. Bounded by the body limit enforced before this is called.
fn sections(sdp: &str) -> Result<Vec<Section>, OfferError> {
    if !sdp.trim_start().starts_with("v=0") {
        return Err(OfferError::Malformed("does not start with v=0".into()));
    }
    let mut out: Vec<Section> = Vec::new();
    for line in sdp.lines() {
        let line = line.trim_end_matches('\r');
        if let Some(m) = line.strip_prefix("m=") {
            // m=<media> <port> <proto> <fmt> ...
            let parts: Vec<&str> = m.split_whitespace().collect();
            if parts.len() < 4 || parts[1].parse::<u16>().is_err() {
                return Err(OfferError::Malformed(format!("bad m-line: m={m}")));
            }
            let kind = parts[0].to_string();
            let port_zero = parts[1] == "0";
            out.push(Section {
                kind,
                port_zero,
                ..Section::default()
            });
        } else if let Some(section) = out.last_mut() {
            if let Some(map) = line.strip_prefix("a=rtpmap:") {
                if let Some(name) = map.split_whitespace().nth(1) {
                    let codec = name.split('/').next().unwrap_or_default();
                    section.codecs.push(codec.to_ascii_uppercase());
                }
            } else if let Some(dir) = line.strip_prefix("a=") {
                if matches!(dir, "sendonly" | "recvonly" | "sendrecv" | "inactive") {
                    section.direction = Some(dir.to_string());
                }
            }
        }
    }
    Ok(out)
}

/// The offer's active audio and video sections, none of them in `forbidden` direction.
fn media_sections(
    sdp: &str,
    forbidden: &str,
    wrong: (&'static str, &'static str),
) -> Result<Vec<Section>, OfferError> {
    let media: Vec<Section> = sections(sdp)?
        .into_iter()
        .filter(|s| (s.kind == "audio" || s.kind == "video") && !s.port_zero)
        .collect();
    if media.is_empty() {
        return Err(OfferError::NoMedia);
    }
    if media.iter().any(|s| s.direction.as_deref() == Some(forbidden)) {
        return Err(OfferError::WrongDirection(wrong.0, wrong.1));
    }
    Ok(media)
}

/// Check a host's (WHIP) offer and choose what it publishes: Opus, and VP8 before H264.
pub fn plan_publish(sdp: &str) -> Result<PublishPlan, OfferError> {
    let media = media_sections(sdp, "recvonly", ("WHIP", "send media (sendonly)"))?;
    let has = |kind: &str, codec: &str| {
        media
            .iter()
            .any(|s| s.kind == kind && s.codecs.iter().any(|c| c == codec))
    };
    let audio = has("audio", "OPUS").then_some(Codec::Opus);
    let video = if has("video", "VP8") {
        Some(Codec::Vp8)
    } else if has("video", "H264") {
        Some(Codec::H264)
    } else {
        None
    };
    let wants_video = media.iter().any(|s| s.kind == "video");
    let wants_audio = media.iter().any(|s| s.kind == "audio");
    if (wants_video && video.is_none()) || (wants_audio && audio.is_none()) {
        return Err(OfferError::NoUsableCodec);
    }
    Ok(PublishPlan { audio, video })
}

/// Check a viewer's (WHEP) offer: it must be able to receive at least one of our codecs.
pub fn check_watch(sdp: &str) -> Result<(), OfferError> {
    let media = media_sections(sdp, "sendonly", ("WHEP", "receive media (recvonly)"))?;
    let usable = media.iter().any(|s| {
        s.codecs
            .iter()
            .any(|c| c == "OPUS" || c == "VP8" || c == "H264")
    });
    if !usable {
        return Err(OfferError::NoUsableCodec);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
        m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=rtpmap:111 opus/48000/2\r\na=sendonly\r\n\
        m=video 9 UDP/TLS/RTP/SAVPF 96 102\r\na=rtpmap:96 VP8/90000\r\na=rtpmap:102 H264/90000\r\na=sendonly\r\n";

    #[test]
    fn host_prefers_vp8_and_opus() {
        let plan = plan_publish(HOST).expect("valid");
        assert_eq!(plan.audio, Some(Codec::Opus));
        assert_eq!(plan.video, Some(Codec::Vp8));
    }

    #[test]
    fn h264_only_host_is_accepted() {
        let sdp = HOST.replace("a=rtpmap:96 VP8/90000\r\n", "");
        assert_eq!(plan_publish(&sdp).expect("valid").video, Some(Codec::H264));
    }

    #[test]
    fn unusable_codecs_and_garbage_are_refused() {
        let vp9 = HOST
            .replace("VP8/90000", "VP9/90000")
            .replace("H264/90000", "AV1/90000");
        assert_eq!(plan_publish(&vp9), Err(OfferError::NoUsableCodec));
        assert!(matches!(plan_publish("hello"), Err(OfferError::Malformed(_))));
        assert_eq!(
            plan_publish("v=0\r\ns=-\r\n"),
            Err(OfferError::NoMedia)
        );
        let recv = HOST.replace("sendonly", "recvonly");
        assert!(matches!(plan_publish(&recv), Err(OfferError::WrongDirection(..))));
        assert!(matches!(check_watch(HOST), Err(OfferError::WrongDirection(..))));
        assert_eq!(check_watch(&recv), Ok(()));
    }
}
