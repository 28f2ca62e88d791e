//! The gate every WHIP/WHEP offer passes on the HTTP side, before the media thread sees it.
//!
//! An offer is untrusted text that str0m parses on a media shard's thread, where a slow parse
//! stalls every viewer of the shard. So its shape is capped here first (size, UTF-8, lines,
//! line length, m-lines, attributes), then str0m parses it once as a check, and the session
//! must carry what ICE and DTLS need (`ice-ufrag`, `ice-pwd`, `fingerprint`). What passes is a
//! [`CheckedOffer`], which only [`check_offer`] can build: the media commands take that type,
//! so an unchecked offer cannot reach a shard.
//!
//! Pure: no socket, no clock, no state; the fuzz target calls [`check_offer`] directly.

use str0m::change::SdpOffer;
use thiserror::Error;

use crate::media::offer::{normalize_offer, MAX_SECTIONS};

/// Largest offer body, in bytes (real offers are 3-10 KiB).
pub const MAX_OFFER_BYTES: usize = super::MAX_SDP_BYTES as usize;
/// Most lines an offer may have (a browser's offer with audio, video and data is about 120).
pub const MAX_LINES: usize = 2_000;
/// Most `a=` lines in the whole offer.
pub const MAX_ATTRIBUTES: usize = 1_000;
/// Longest line, in bytes, line ending excluded.
pub const MAX_LINE_BYTES: usize = 4 * 1024;
/// Most m-lines (media sections): audio, video and one data channel need three.
pub const MAX_M_LINES: usize = MAX_SECTIONS;

/// An offer that passed [`check_offer`]. It cannot be built any other way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedOffer {
    sdp: String,
}

impl CheckedOffer {
    /// The offer's text as the client sent it.
    pub fn as_str(&self) -> &str {
        &self.sdp
    }
}

/// Why an offer was refused before reaching the media plane. Each is a `400` with this text.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum OfferRejection {
    #[error("malformed SDP: the offer is over {MAX_OFFER_BYTES} bytes")]
    TooLarge,
    #[error("malformed SDP: the offer is not UTF-8")]
    NotUtf8,
    #[error("malformed SDP: does not start with v=0")]
    NoVersion,
    #[error("malformed SDP: more than {MAX_LINES} lines")]
    TooManyLines,
    #[error("malformed SDP: line {0} is longer than {MAX_LINE_BYTES} bytes")]
    LineTooLong(usize),
    #[error("malformed SDP: more than {MAX_M_LINES} m-lines")]
    TooManyMLines,
    #[error("malformed SDP: more than {MAX_ATTRIBUTES} a= lines")]
    TooManyAttributes,
    #[error("malformed SDP: {0}")]
    Unparsable(String),
    #[error("malformed SDP: no a=ice-ufrag and a=ice-pwd")]
    NoIceCredentials,
    #[error("malformed SDP: no a=fingerprint (DTLS needs one)")]
    NoFingerprint,
}

impl OfferRejection {
    /// A short, stable name for metrics and logs.
    pub fn cause(&self) -> &'static str {
        match self {
            OfferRejection::TooLarge => "offer_too_large",
            OfferRejection::NotUtf8 => "offer_not_utf8",
            OfferRejection::NoVersion | OfferRejection::Unparsable(_) => "malformed_offer",
            OfferRejection::TooManyLines | OfferRejection::LineTooLong(_) => "offer_too_many_lines",
            OfferRejection::TooManyMLines | OfferRejection::TooManyAttributes => "offer_too_many_sections",
            OfferRejection::NoIceCredentials | OfferRejection::NoFingerprint => "offer_missing_credentials",
        }
    }
}

/// What one pass over the lines found.
#[derive(Default)]
struct Shape {
    m_lines: usize,
    attributes: usize,
    ufrag: bool,
    pwd: bool,
    fingerprint: bool,
}

/// Check an offer body: caps first (each pass over the text is bounded by them), then str0m's
/// parser, then the ICE and DTLS attributes every session needs.
pub fn check_offer(body: &[u8]) -> Result<CheckedOffer, OfferRejection> {
    if body.len() > MAX_OFFER_BYTES {
        return Err(OfferRejection::TooLarge);
    }
    let sdp = std::str::from_utf8(body).map_err(|_| OfferRejection::NotUtf8)?;
    if !sdp.trim_start().starts_with("v=0") {
        return Err(OfferRejection::NoVersion);
    }
    let shape = shape(sdp)?;
    if !(shape.ufrag && shape.pwd) {
        return Err(OfferRejection::NoIceCredentials);
    }
    if !shape.fingerprint {
        return Err(OfferRejection::NoFingerprint);
    }
    // The media thread hands str0m the normalized text; that is what must parse.
    SdpOffer::from_sdp_string(&normalize_offer(sdp)).map_err(|e| OfferRejection::Unparsable(parser_says(&e.to_string())))?;
    Ok(CheckedOffer { sdp: sdp.to_string() })
}

/// What str0m's parser said, for the client: its first line (which names a memory address)
/// left out, the rest on one line and bounded.
fn parser_says(error: &str) -> String {
    let detail: Vec<&str> = error.lines().skip(1).map(str::trim).filter(|l| !l.is_empty()).collect();
    let detail = if detail.is_empty() { "the offer does not parse".to_string() } else { detail.join("; ") };
    detail.chars().take(200).collect()
}

/// `m=<media> <port> <proto> <fmt> ...` with a numeric port (str0m skips lines it cannot read).
fn m_line_ok(m: &str) -> bool {
    let mut parts = m.split_whitespace();
    let (media, port) = (parts.next(), parts.next());
    media.is_some() && port.is_some_and(|p| p.split('/').next().is_some_and(|p| p.parse::<u16>().is_ok())) && parts.count() >= 2
}

fn shape(sdp: &str) -> Result<Shape, OfferRejection> {
    let mut shape = Shape::default();
    for (i, line) in sdp.lines().enumerate() {
        if i == MAX_LINES {
            return Err(OfferRejection::TooManyLines);
        }
        if line.len() > MAX_LINE_BYTES {
            return Err(OfferRejection::LineTooLong(i + 1));
        }
        let line = line.trim_end_matches('\r');
        if let Some(m) = line.strip_prefix("m=") {
            if !m_line_ok(m) {
                return Err(OfferRejection::Unparsable(format!("bad m-line on line {}", i + 1)));
            }
            shape.m_lines += 1;
            if shape.m_lines > MAX_M_LINES {
                return Err(OfferRejection::TooManyMLines);
            }
        } else if let Some(attr) = line.strip_prefix("a=") {
            shape.attributes += 1;
            if shape.attributes > MAX_ATTRIBUTES {
                return Err(OfferRejection::TooManyAttributes);
            }
            let value = |name: &str| attr.strip_prefix(name).is_some_and(|v| !v.trim().is_empty());
            shape.ufrag |= value("ice-ufrag:");
            shape.pwd |= value("ice-pwd:");
            shape.fingerprint |= value("fingerprint:");
        }
    }
    Ok(shape)
}

/// A valid viewer offer, checked: for tests that need a command to carry one.
#[cfg(test)]
pub(crate) fn sample() -> CheckedOffer {
    check_offer(tests::offer().as_bytes()).expect("the sample offer is valid")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A browser-shaped viewer offer: audio and video, credentials per section.
    pub(super) fn offer() -> String {
        let mut sdp = String::from("v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1\r\n");
        let section = |kind: &str, mid: usize, fmt: &str, codec: &str| {
            format!(
                "m={kind} 9 UDP/TLS/RTP/SAVPF {fmt}\r\nc=IN IP4 0.0.0.0\r\na=ice-ufrag:abcd\r\na=ice-pwd:aaaaaaaaaaaaaaaaaaaaaaaa\r\n\
                 a=fingerprint:sha-256 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF\r\n\
                 a=setup:actpass\r\na=mid:{mid}\r\na=recvonly\r\na=rtcp-mux\r\na=rtpmap:{fmt} {codec}\r\n"
            )
        };
        sdp.push_str(&section("audio", 0, "111", "opus/48000/2"));
        sdp.push_str(&section("video", 1, "96", "VP8/90000"));
        sdp
    }

    #[test]
    fn a_browser_shaped_offer_passes_unchanged() {
        let sdp = offer();
        let checked = check_offer(sdp.as_bytes()).expect("a valid offer passes");
        assert_eq!(checked.as_str(), sdp);
    }

    #[test]
    fn seventeen_m_lines_are_refused() {
        let mut sdp = offer();
        let extra = "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=rtpmap:111 opus/48000/2\r\n";
        sdp.push_str(&extra.repeat(MAX_M_LINES + 1 - 2));
        assert_eq!(check_offer(sdp.as_bytes()), Err(OfferRejection::TooManyMLines));
        // Sixteen is the cap, not a refusal of its own kind.
        let mut sixteen = offer();
        sixteen.push_str(&extra.repeat(MAX_M_LINES - 2));
        assert_ne!(check_offer(sixteen.as_bytes()), Err(OfferRejection::TooManyMLines));
    }

    #[test]
    fn three_thousand_lines_are_refused() {
        let mut sdp = offer();
        sdp.push_str(&"b=AS:1\r\n".repeat(3_000));
        assert_eq!(check_offer(sdp.as_bytes()), Err(OfferRejection::TooManyLines));
    }

    #[test]
    fn too_many_attributes_are_refused() {
        let mut sdp = offer();
        sdp.push_str(&"a=x\r\n".repeat(MAX_ATTRIBUTES));
        assert_eq!(check_offer(sdp.as_bytes()), Err(OfferRejection::TooManyAttributes));
    }

    #[test]
    fn a_line_over_four_kib_is_refused() {
        let mut sdp = offer();
        sdp.push_str(&format!("a=x-long:{}\r\n", "y".repeat(MAX_LINE_BYTES)));
        assert!(matches!(check_offer(sdp.as_bytes()), Err(OfferRejection::LineTooLong(_))));
    }

    #[test]
    fn invalid_utf8_is_refused() {
        let mut body = offer().into_bytes();
        body.extend_from_slice(&[0xff, 0xfe, b'\r', b'\n']);
        assert_eq!(check_offer(&body), Err(OfferRejection::NotUtf8));
    }

    #[test]
    fn an_offer_without_a_fingerprint_is_refused() {
        let sdp: String = offer().split_inclusive('\n').filter(|l| !l.starts_with("a=fingerprint")).collect();
        assert_eq!(check_offer(sdp.as_bytes()), Err(OfferRejection::NoFingerprint));
    }

    #[test]
    fn an_offer_without_ice_credentials_is_refused() {
        let sdp: String = offer().split_inclusive('\n').filter(|l| !l.starts_with("a=ice-pwd")).collect();
        assert_eq!(check_offer(sdp.as_bytes()), Err(OfferRejection::NoIceCredentials));
    }

    #[test]
    fn oversize_and_garbage_bodies_are_refused() {
        assert_eq!(check_offer(&vec![b'v'; MAX_OFFER_BYTES + 1]), Err(OfferRejection::TooLarge));
        assert_eq!(check_offer(b"hello, not sdp"), Err(OfferRejection::NoVersion));
        assert_eq!(check_offer(b""), Err(OfferRejection::NoVersion));
        let broken = offer().replace("m=video 9 UDP/TLS/RTP/SAVPF 96", "m=video nine");
        assert!(matches!(check_offer(broken.as_bytes()), Err(OfferRejection::Unparsable(_))), "{:?}", check_offer(broken.as_bytes()));
        // str0m's own parser refuses this one; its answer names no memory address.
        let unparsable = offer().replace("t=0 0", "t=zero");
        let Err(OfferRejection::Unparsable(why)) = check_offer(unparsable.as_bytes()) else {
            panic!("str0m refuses t=zero");
        };
        assert!(!why.contains("0x") && why.len() <= 200, "{why}");
    }

    #[test]
    fn every_rejection_reads_as_malformed_sdp() {
        for e in [OfferRejection::TooLarge, OfferRejection::NotUtf8, OfferRejection::TooManyMLines, OfferRejection::NoFingerprint] {
            assert!(e.to_string().starts_with("malformed SDP: "), "{e}");
        }
    }
}
