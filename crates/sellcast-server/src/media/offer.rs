//! Checks an SDP offer before any WebRTC state is created for it, and picks the codecs.
//!
//! str0m parses the offer for real afterwards; this pass exists to give the client a precise,
//! typed reason (which HTTP status, which missing codec) instead of a generic failure, and to
//! choose one video format for a host so every viewer knows what it will be sent. It reads
//! only what it needs (m-lines, `rtpmap`, `fmtp`, `mid`, direction, `bundle-only`) and caps the
//! number of m-lines; the body size is capped before this is called.

use std::fmt;
use std::str::FromStr;

use sellcast_sfu::Codec;
use thiserror::Error;

use super::video_format::{H264Format, VideoFormat};

/// Most m-lines an offer may carry: a host or viewer needs audio, video and one data channel.
/// The HTTP side refuses more before the offer reaches a shard (`http::offer_check`).
pub const MAX_SECTIONS: usize = 16;

/// Which kind of media session an offer opens. This is the session's direction, not what its
/// user may do in the room (that is `sellcast_room::Role`: a moderator watches too).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionKind {
    /// A host sending the show's media (WHIP).
    Publish,
    /// A viewer receiving it (WHEP).
    Watch,
}

impl SessionKind {
    /// The peer's part in the show as logs and metrics label it: a publisher is the host.
    pub fn role_name(self) -> &'static str {
        match self {
            SessionKind::Publish => "host",
            SessionKind::Watch => "viewer",
        }
    }
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
    /// The offer has a usable codec, but not the one this server or room is set to.
    #[error("{0}")]
    CodecNotAllowed(String),
    #[error("wrong direction: a {0} offer must {1}")]
    WrongDirection(&'static str, &'static str),
}

/// Which video codec a room takes from its host (`--video-codec`, or the host's `?codec=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CodecPolicy {
    /// VP8 when the host offers it, since every WebRTC browser decodes it (offline Firefox
    /// and some Chromium builds have no H264); H264 otherwise (OBS sends only H264).
    #[default]
    Auto,
    Vp8,
    H264,
}

impl FromStr for CodecPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(Self::Auto),
            "vp8" => Ok(Self::Vp8),
            "h264" => Ok(Self::H264),
            other => Err(format!("unknown video codec `{other}`: expected vp8, h264 or auto")),
        }
    }
}

impl fmt::Display for CodecPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Auto => "auto",
            Self::Vp8 => "vp8",
            Self::H264 => "h264",
        })
    }
}

/// The H264 entry of a host's offer that the room will carry: the host's own payload type
/// numbers, so the answer names exactly this entry and the encoder cannot pick another one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OfferedH264 {
    pub pt: u8,
    pub rtx: Option<u8>,
    pub format: H264Format,
}

/// What a host's offer will publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishPlan {
    pub audio: Option<Codec>,
    pub video: Option<VideoFormat>,
    /// Set when the video is H264.
    pub h264: Option<OfferedH264>,
    /// SSRC-only simulcast (`a=ssrc-group:SIM`, how browsers simulcast before rids, and how
    /// SDP-munging stacks still do): the layers' SSRCs, lowest resolution first. Empty for a
    /// rid simulcast or a single stream.
    pub sim_ssrcs: Vec<u32>,
}

impl PublishPlan {
    pub fn codecs(&self) -> Vec<Codec> {
        self.audio.into_iter().chain(self.video.map(|v| v.codec)).collect()
    }
}

#[derive(Debug, Default)]
struct Section {
    kind: String,
    mid: Option<String>,
    /// (payload type, codec name in upper case)
    rtpmap: Vec<(u8, String)>,
    /// (payload type, format parameters)
    fmtp: Vec<(u8, String)>,
    direction: Option<String>,
    port_zero: bool,
    bundle_only: bool,
    /// The first `a=ssrc-group:SIM` of the section, if any.
    sim_group: Option<Vec<u32>>,
}

impl Section {
    fn has(&self, codec: &str) -> bool {
        self.rtpmap.iter().any(|(_, c)| c == codec)
    }

    fn fmtp_of(&self, pt: u8) -> Option<&str> {
        self.fmtp.iter().find(|(p, _)| *p == pt).map(|(_, f)| f.as_str())
    }

    /// The offer's H264 entries in its order of preference.
    fn h264_entries(&self) -> Vec<OfferedH264> {
        self.rtpmap
            .iter()
            .filter(|(_, c)| c == "H264")
            .map(|(pt, _)| OfferedH264 {
                pt: *pt,
                rtx: self.rtx_for(*pt),
                format: H264Format::from_fmtp(self.fmtp_of(*pt).unwrap_or_default()),
            })
            .collect()
    }

    fn rtx_for(&self, pt: u8) -> Option<u8> {
        self.rtpmap.iter().filter(|(_, c)| c == "RTX").map(|(r, _)| *r).find(|r| {
            self.fmtp_of(*r)
                .and_then(|f| param(f, "apt"))
                .and_then(|apt| apt.parse::<u8>().ok())
                == Some(pt)
        })
    }

    /// Port 0 rejects a section, except one marked `bundle-only` (RFC 8843 max-bundle):
    /// it rides on the bundle's transport and is as live as the others.
    fn active(&self) -> bool {
        !self.port_zero || self.bundle_only
    }
}

/// `name=value` out of an `a=fmtp` parameter list.
fn param<'a>(fmtp: &'a str, name: &str) -> Option<&'a str> {
    fmtp.split(';').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// Scan the offer's media sections.
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
                return Err(OfferError::Malformed(format!("bad m-line: m={}", truncate(m, 80))));
            }
            if out.len() == MAX_SECTIONS {
                return Err(OfferError::Malformed(format!("more than {MAX_SECTIONS} m-lines")));
            }
            out.push(Section {
                kind: parts[0].to_string(),
                port_zero: parts[1] == "0",
                ..Section::default()
            });
        } else if let Some(section) = out.last_mut() {
            let Some(attr) = line.strip_prefix("a=") else {
                continue;
            };
            if let Some(map) = attr.strip_prefix("rtpmap:") {
                let mut it = map.split_whitespace();
                if let (Some(Ok(pt)), Some(name)) = (it.next().map(str::parse::<u8>), it.next()) {
                    let codec = name.split('/').next().unwrap_or_default();
                    section.rtpmap.push((pt, codec.to_ascii_uppercase()));
                }
            } else if let Some(f) = attr.strip_prefix("fmtp:") {
                if let Some((pt, params)) = f.split_once(' ') {
                    if let Ok(pt) = pt.parse::<u8>() {
                        section.fmtp.push((pt, params.trim().to_string()));
                    }
                }
            } else if let Some(mid) = attr.strip_prefix("mid:") {
                section.mid = Some(mid.trim().to_string());
            } else if let Some(group) = attr.strip_prefix("ssrc-group:SIM") {
                if section.sim_group.is_none() {
                    let ssrcs: Result<Vec<u32>, _> = group.split_whitespace().map(str::parse::<u32>).collect();
                    let ssrcs = ssrcs.map_err(|_| OfferError::Malformed(format!("bad ssrc-group: {}", truncate(attr, 80))))?;
                    section.sim_group = Some(ssrcs);
                }
            } else if attr == "bundle-only" {
                section.bundle_only = true;
            } else if matches!(attr, "sendonly" | "recvonly" | "sendrecv" | "inactive") {
                section.direction = Some(attr.to_string());
            }
        }
    }
    Ok(out)
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((at, _)) => &s[..at],
        None => s,
    }
}

/// The offer's active audio and video sections, none of them in `forbidden` direction.
fn media_sections(
    sdp: &str,
    forbidden: &str,
    wrong: (&'static str, &'static str),
) -> Result<Vec<Section>, OfferError> {
    let media: Vec<Section> = sections(sdp)?
        .into_iter()
        .filter(|s| (s.kind == "audio" || s.kind == "video") && s.active())
        .collect();
    if media.is_empty() {
        return Err(OfferError::NoMedia);
    }
    if media.iter().any(|s| s.direction.as_deref() == Some(forbidden)) {
        return Err(OfferError::WrongDirection(wrong.0, wrong.1));
    }
    Ok(media)
}

/// Check a host's (WHIP) offer and choose what it publishes under `policy`: Opus, and one
/// video format.
pub fn plan_publish(sdp: &str, policy: CodecPolicy) -> Result<PublishPlan, OfferError> {
    let media = media_sections(sdp, "recvonly", ("WHIP", "send media (sendonly)"))?;
    let audio_sections: Vec<&Section> = media.iter().filter(|s| s.kind == "audio").collect();
    let video = media.iter().find(|s| s.kind == "video");
    let audio = audio_sections.iter().any(|s| s.has("OPUS")).then_some(Codec::Opus);
    if !audio_sections.is_empty() && audio.is_none() {
        return Err(OfferError::NoUsableCodec);
    }
    let Some(video) = video else {
        return Ok(PublishPlan { audio, video: None, h264: None, sim_ssrcs: Vec::new() });
    };
    let vp8 = video.has("VP8");
    let h264 = best_h264(&video.h264_entries());
    let use_vp8 = match (policy, vp8, h264.is_some()) {
        (_, false, false) => return Err(OfferError::NoUsableCodec),
        (CodecPolicy::Auto, true, _) | (CodecPolicy::Vp8, true, _) => true,
        (CodecPolicy::Auto, false, true) | (CodecPolicy::H264, _, true) => false,
        (CodecPolicy::Vp8, false, true) => {
            return Err(OfferError::CodecNotAllowed(
                "this room takes VP8 video, and the offer has only H264 (publish with VP8, or as the host add ?codec=h264 to the WHIP URL)".into(),
            ))
        }
        (CodecPolicy::H264, true, false) => {
            return Err(OfferError::CodecNotAllowed(
                "this room takes H264 video (packetization-mode 0 or 1), and the offer has none".into(),
            ))
        }
    };
    let sim_ssrcs = sim_layers(video)?;
    if use_vp8 {
        return Ok(PublishPlan { audio, video: Some(VideoFormat::vp8()), h264: None, sim_ssrcs });
    }
    Ok(PublishPlan { audio, video: h264.map(|h| VideoFormat::h264(h.format)), h264, sim_ssrcs })
}

/// The layers of an SSRC-only simulcast video section: 2 to `MAX_LAYERS` distinct SSRCs.
/// A group of one is a single stream; more layers than the forwarder carries is refused rather
/// than cut, since the encoder would go on sending the extra layer.
fn sim_layers(video: &Section) -> Result<Vec<u32>, OfferError> {
    let Some(group) = &video.sim_group else {
        return Ok(Vec::new());
    };
    let distinct = group.iter().enumerate().all(|(i, s)| !group[..i].contains(s));
    if !distinct {
        return Err(OfferError::Malformed("ssrc-group:SIM names an SSRC twice".into()));
    }
    if group.len() > sellcast_sfu::MAX_LAYERS {
        return Err(OfferError::Malformed(format!("ssrc-group:SIM has {} layers; at most {} are carried", group.len(), sellcast_sfu::MAX_LAYERS)));
    }
    Ok(if group.len() > 1 { group.clone() } else { Vec::new() })
}

/// The H264 entry a room should carry: one that every H264 viewer can decode (constrained
/// baseline first, then baseline, main, high), packetization-mode 1 before 0, then the host's
/// own order.
fn best_h264(entries: &[OfferedH264]) -> Option<OfferedH264> {
    entries
        .iter()
        .enumerate()
        .filter(|(_, e)| e.format.packetization_mode <= 1)
        .min_by_key(|(i, e)| (e.format.profile().reach(), 1 - e.format.packetization_mode, *i))
        .map(|(_, e)| *e)
}

/// What a viewer's (WHEP) offer can receive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchOffer {
    /// The offer has an active video section (a viewer may ask for audio only).
    pub wants_video: bool,
}

/// Check a viewer's (WHEP) offer: it must be able to receive at least one of our codecs.
pub fn check_watch(sdp: &str) -> Result<WatchOffer, OfferError> {
    let media = media_sections(sdp, "sendonly", ("WHEP", "receive media (recvonly)"))?;
    let usable = media
        .iter()
        .any(|s| s.has("OPUS") || s.has("VP8") || s.has("H264"));
    if !usable {
        return Err(OfferError::NoUsableCodec);
    }
    Ok(WatchOffer { wants_video: media.iter().any(|s| s.kind == "video") })
}

/// The `a=mid` of each active section, for reading what str0m negotiated per m-line.
pub fn media_mids(sdp: &str) -> Vec<String> {
    sections(sdp)
        .unwrap_or_default()
        .into_iter()
        .filter(|s| (s.kind == "audio" || s.kind == "video") && s.active())
        .filter_map(|s| s.mid)
        .collect()
}

/// What third-party stacks write that str0m would misread, rewritten to what they mean:
/// - RFC 8843 lets an offerer mark a section `bundle-only` with port 0: it shares the bundle's
///   transport. str0m reads any port-0 section as rejected (and does not know the attribute),
///   so such a section is handed to it with the discard port 9 that every other bundled
///   section carries, and without the `a=bundle-only` line.
/// - Opus is always `opus/48000/2` (RFC 7587 6.1); GStreamer writes `OPUS/48000`, which str0m
///   reads as one channel and matches to nothing.
pub fn normalize_offer(sdp: &str) -> String {
    let mut out = String::with_capacity(sdp.len());
    let lines: Vec<&str> = sdp.split_inclusive('\n').collect();
    for (i, line) in lines.iter().enumerate() {
        let bare = line.trim_end_matches(['\r', '\n']);
        if bare == "a=bundle-only" {
            continue;
        }
        if let Some(map) = bare.strip_prefix("a=rtpmap:") {
            if let Some((pt, encoding)) = map.split_once(' ') {
                if encoding.eq_ignore_ascii_case("opus/48000") {
                    out.push_str(&format!("a=rtpmap:{pt} opus/48000/2"));
                    out.push_str(&line[bare.len()..]);
                    continue;
                }
            }
        }
        if let Some(rest) = bare.strip_prefix("m=") {
            let mut parts = rest.splitn(3, ' ');
            let (kind, port, tail) = (parts.next(), parts.next(), parts.next());
            let bundle_only = lines[i + 1..]
                .iter()
                .map(|l| l.trim_end_matches(['\r', '\n']))
                .take_while(|l| !l.starts_with("m="))
                .any(|l| l == "a=bundle-only");
            if let (Some(kind), Some("0"), Some(tail), true) = (kind, port, tail, bundle_only) {
                out.push_str(&format!("m={kind} 9 {tail}"));
                out.push_str(&line[bare.len()..]);
                continue;
            }
        }
        out.push_str(line);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
        m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na=rtpmap:111 opus/48000/2\r\na=sendonly\r\n\
        m=video 9 UDP/TLS/RTP/SAVPF 96 102\r\na=mid:1\r\na=rtpmap:96 VP8/90000\r\na=rtpmap:102 H264/90000\r\n\
        a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\na=sendonly\r\n";

    /// What OBS's WHIP output (libdatachannel) offers: H264 on 96, Opus on 111.
    const OBS: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1\r\n\
        m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na=sendonly\r\na=rtpmap:111 opus/48000/2\r\n\
        m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:1\r\na=sendonly\r\na=rtpmap:96 H264/90000\r\n\
        a=fmtp:96 profile-level-id=42e01f;packetization-mode=1;level-asymmetry-allowed=1\r\n";

    #[test]
    fn host_prefers_vp8_and_opus() {
        let plan = plan_publish(HOST, CodecPolicy::Auto).expect("valid");
        assert_eq!(plan.audio, Some(Codec::Opus));
        assert_eq!(plan.video, Some(VideoFormat::vp8()));
        assert_eq!(plan.h264, None);
    }

    #[test]
    fn a_sim_group_gives_the_layers_ssrcs_in_order_and_a_bad_one_is_refused() {
        let with = |group: &str| format!("{HOST}a=ssrc-group:SIM {group}\r\n");
        assert_eq!(plan_publish(&with("30 10 20"), CodecPolicy::Auto).expect("valid").sim_ssrcs, vec![30, 10, 20]);
        assert_eq!(plan_publish(&with("30"), CodecPolicy::Auto).expect("valid").sim_ssrcs, Vec::<u32>::new(), "one SSRC: a single stream");
        assert!(plan_publish(HOST, CodecPolicy::Auto).expect("valid").sim_ssrcs.is_empty());
        for bad in ["1 2 3 4", "1 2 1", "1 x 3"] {
            assert!(matches!(plan_publish(&with(bad), CodecPolicy::Auto), Err(OfferError::Malformed(_))), "SIM {bad}");
        }
    }

    #[test]
    fn obs_style_h264_host_keeps_its_own_payload_type_and_profile() {
        let plan = plan_publish(OBS, CodecPolicy::Auto).expect("valid");
        let h264 = plan.h264.expect("h264 entry");
        assert_eq!((h264.pt, h264.rtx), (96, None));
        assert_eq!(h264.format, H264Format { profile_level_id: 0x42e01f, packetization_mode: 1 });
        assert_eq!(plan.video, Some(VideoFormat::h264(h264.format)));
    }

    #[test]
    fn policy_h264_picks_h264_from_a_host_that_offers_both() {
        let plan = plan_publish(HOST, CodecPolicy::H264).expect("valid");
        assert_eq!(plan.h264.map(|h| h.pt), Some(102));
        assert_eq!(plan.video.map(|v| v.codec), Some(Codec::H264));
    }

    #[test]
    fn policy_refusals_say_why() {
        let Err(OfferError::CodecNotAllowed(why)) = plan_publish(OBS, CodecPolicy::Vp8) else {
            panic!("an H264-only host in a VP8 room is refused");
        };
        assert!(why.contains("VP8"), "{why}");
        let vp8_only = HOST.replace("a=rtpmap:102 H264/90000\r\n", "");
        assert!(matches!(plan_publish(&vp8_only, CodecPolicy::H264), Err(OfferError::CodecNotAllowed(_))));
    }

    #[test]
    fn h264_choice_prefers_constrained_baseline_and_mode_1() {
        let sdp = "v=0\r\ns=-\r\nm=video 9 UDP/TLS/RTP/SAVPF 100 101 102 103 104 105\r\na=sendonly\r\n\
            a=rtpmap:100 H264/90000\r\na=fmtp:100 profile-level-id=640c1f;packetization-mode=1\r\n\
            a=rtpmap:101 rtx/90000\r\na=fmtp:101 apt=100\r\n\
            a=rtpmap:102 H264/90000\r\na=fmtp:102 profile-level-id=42e01f;packetization-mode=0\r\n\
            a=rtpmap:103 H264/90000\r\na=fmtp:103 profile-level-id=42e01f;packetization-mode=1\r\n\
            a=rtpmap:104 rtx/90000\r\na=fmtp:104 apt=103\r\n\
            a=rtpmap:105 H264/90000\r\na=fmtp:105 profile-level-id=4d001f;packetization-mode=1\r\n";
        let plan = plan_publish(sdp, CodecPolicy::Auto).expect("valid");
        assert_eq!(plan.h264.map(|h| (h.pt, h.rtx)), Some((103, Some(104))));
        let high_only = "v=0\r\ns=-\r\nm=video 9 UDP/TLS/RTP/SAVPF 100 101\r\na=sendonly\r\n\
            a=rtpmap:100 H264/90000\r\na=fmtp:100 profile-level-id=640c1f;packetization-mode=1\r\n\
            a=rtpmap:101 rtx/90000\r\na=fmtp:101 apt=100\r\n";
        let plan = plan_publish(high_only, CodecPolicy::Auto).expect("valid");
        assert_eq!(plan.h264.map(|h| (h.pt, h.rtx, h.format.profile_level_id)), Some((100, Some(101), 0x640c1f)));
    }

    #[test]
    fn bundle_only_sections_are_live() {
        // GStreamer's max-bundle offer: the second section rides on the first's transport.
        let sdp = "v=0\r\ns=-\r\na=group:BUNDLE video0 audio1\r\n\
            m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:video0\r\na=sendonly\r\na=rtpmap:96 VP8/90000\r\n\
            m=audio 0 UDP/TLS/RTP/SAVPF 97\r\na=mid:audio1\r\na=bundle-only\r\na=sendonly\r\na=rtpmap:97 OPUS/48000/2\r\n";
        let plan = plan_publish(sdp, CodecPolicy::Auto).expect("valid");
        assert_eq!(plan.audio, Some(Codec::Opus));
        assert_eq!(media_mids(sdp), vec!["video0".to_string(), "audio1".to_string()]);
        let opened = normalize_offer(sdp);
        assert!(opened.contains("m=audio 9 UDP/TLS/RTP/SAVPF 97\r\n"), "{opened}");
        assert!(opened.contains("m=video 9 UDP/TLS/RTP/SAVPF 96\r\n"));
        assert!(!opened.contains("bundle-only"));
        // A rejected section (port 0 without bundle-only) stays rejected.
        let rejected = sdp.replace("a=bundle-only\r\n", "");
        assert_eq!(normalize_offer(&rejected), rejected);
        assert_eq!(plan_publish(&rejected, CodecPolicy::Auto).expect("valid").audio, None);
    }

    #[test]
    fn opus_without_a_channel_count_is_read_as_opus_stereo() {
        let gst = "m=audio 9 UDP/TLS/RTP/SAVPF 97\r\na=rtpmap:97 OPUS/48000\r\na=rtpmap:98 opus/48000/2\r\n";
        assert_eq!(
            normalize_offer(gst),
            "m=audio 9 UDP/TLS/RTP/SAVPF 97\r\na=rtpmap:97 opus/48000/2\r\na=rtpmap:98 opus/48000/2\r\n"
        );
    }

    #[test]
    fn unusable_codecs_and_garbage_are_refused() {
        let vp9 = HOST
            .replace("VP8/90000", "VP9/90000")
            .replace("H264/90000", "AV1/90000");
        assert_eq!(plan_publish(&vp9, CodecPolicy::Auto), Err(OfferError::NoUsableCodec));
        assert!(matches!(plan_publish("hello", CodecPolicy::Auto), Err(OfferError::Malformed(_))));
        assert_eq!(plan_publish("v=0\r\ns=-\r\n", CodecPolicy::Auto), Err(OfferError::NoMedia));
        let recv = HOST.replace("sendonly", "recvonly");
        assert!(matches!(plan_publish(&recv, CodecPolicy::Auto), Err(OfferError::WrongDirection(..))));
        assert!(matches!(check_watch(HOST), Err(OfferError::WrongDirection(..))));
        assert_eq!(check_watch(&recv), Ok(WatchOffer { wants_video: true }));
        let many = format!("v=0\r\n{}", "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\n".repeat(MAX_SECTIONS + 1));
        assert!(matches!(check_watch(&many), Err(OfferError::Malformed(_))));
    }
}
