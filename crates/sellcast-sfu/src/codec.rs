//! Codecs the SFU forwards untouched, and the one thing it must read inside a payload:
//! whether a packet starts a keyframe (so a joining viewer can start cleanly).

/// Audio or video: the two tracks a host publishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TrackKind {
    Audio,
    Video,
}

impl TrackKind {
    pub fn index(self) -> usize {
        match self {
            TrackKind::Audio => 0,
            TrackKind::Video => 1,
        }
    }
}

/// Codecs accepted from a host. Anything else is refused at signalling time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    Opus,
    Vp8,
    H264,
}

impl Codec {
    pub fn kind(self) -> TrackKind {
        match self {
            Codec::Opus => TrackKind::Audio,
            Codec::Vp8 | Codec::H264 => TrackKind::Video,
        }
    }

    pub fn clock_rate(self) -> u32 {
        match self {
            Codec::Opus => 48_000,
            Codec::Vp8 | Codec::H264 => 90_000,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Codec::Opus => "opus",
            Codec::Vp8 => "VP8",
            Codec::H264 => "H264",
        }
    }

    /// Does this RTP payload begin a keyframe? Audio packets never do: every audio packet is
    /// a valid starting point. Never panics on short or malformed payloads (returns false).
    pub fn is_keyframe_start(self, payload: &[u8]) -> bool {
        match self {
            Codec::Opus => false,
            Codec::Vp8 => vp8_keyframe_start(payload),
            Codec::H264 => h264_keyframe_start(payload),
        }
    }
}

/// RFC 7741: the payload descriptor, then on a partition start the VP8 frame tag whose
/// lowest bit (P) is 0 for a key frame.
fn vp8_keyframe_start(p: &[u8]) -> bool {
    let Some(&first) = p.first() else {
        return false;
    };
    let extended = first & 0x80 != 0;
    let start_of_partition = first & 0x10 != 0;
    let partition_id = first & 0x0f;
    if !start_of_partition || partition_id != 0 {
        return false;
    }
    let mut at = 1;
    if extended {
        let Some(&x) = p.get(1) else {
            return false;
        };
        at = 2;
        if x & 0x80 != 0 {
            // PictureID: one or two bytes, M bit says which.
            match p.get(at) {
                Some(&pid) if pid & 0x80 != 0 => at += 2,
                Some(_) => at += 1,
                None => return false,
            }
        }
        if x & 0x40 != 0 {
            at += 1; // TL0PICIDX
        }
        if x & 0x30 != 0 {
            at += 1; // TID / KEYIDX
        }
    }
    matches!(p.get(at), Some(&tag) if tag & 0x01 == 0)
}

/// RFC 6184: an IDR slice (5) or a parameter set (7) that precedes one, alone, in a STAP-A
/// aggregate (24), or at the start of a FU-A fragment (28).
fn h264_keyframe_start(p: &[u8]) -> bool {
    let Some(&first) = p.first() else {
        return false;
    };
    let is_key_nal = |t: u8| t == 5 || t == 7;
    match first & 0x1f {
        24 => {
            let mut at = 1;
            while at + 2 < p.len() {
                let size = u16::from_be_bytes([p[at], p[at + 1]]) as usize;
                if is_key_nal(p[at + 2] & 0x1f) {
                    return true;
                }
                at += 2 + size;
            }
            false
        }
        28 => match p.get(1) {
            Some(&fu) => fu & 0x80 != 0 && is_key_nal(fu & 0x1f),
            None => false,
        },
        t => is_key_nal(t),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vp8_plain_descriptor() {
        assert!(Codec::Vp8.is_keyframe_start(&[0x10, 0x00, 0, 0, 0x9d, 0x01, 0x2a]));
        assert!(!Codec::Vp8.is_keyframe_start(&[0x10, 0x01]), "P=1 is a delta frame");
        assert!(!Codec::Vp8.is_keyframe_start(&[0x00, 0x00]), "not a partition start");
        assert!(!Codec::Vp8.is_keyframe_start(&[0x11, 0x00]), "partition 1");
    }

    #[test]
    fn vp8_extended_descriptor_with_long_picture_id() {
        // X=1,S=1 | I=1 | M=1 picture id (2 bytes) | frame tag key
        assert!(Codec::Vp8.is_keyframe_start(&[0x90, 0x80, 0x81, 0x23, 0x00]));
        assert!(!Codec::Vp8.is_keyframe_start(&[0x90, 0x80, 0x81, 0x23, 0x01]));
        // I=1, L=1, T=1: 1-byte picture id, tl0picidx, tid byte
        assert!(Codec::Vp8.is_keyframe_start(&[0x90, 0xe0, 0x05, 0x07, 0x20, 0x00]));
    }

    #[test]
    fn vp8_truncated_is_not_key() {
        assert!(!Codec::Vp8.is_keyframe_start(&[]));
        assert!(!Codec::Vp8.is_keyframe_start(&[0x90]));
        assert!(!Codec::Vp8.is_keyframe_start(&[0x90, 0x80, 0x81]));
    }

    #[test]
    fn h264_forms() {
        assert!(Codec::H264.is_keyframe_start(&[0x65, 0x88]), "IDR single NAL");
        assert!(Codec::H264.is_keyframe_start(&[0x7c, 0x85]), "FU-A start of IDR");
        assert!(!Codec::H264.is_keyframe_start(&[0x7c, 0x05]), "FU-A middle");
        assert!(!Codec::H264.is_keyframe_start(&[0x41, 0x9a]), "non-IDR slice");
        // STAP-A carrying SPS
        assert!(Codec::H264.is_keyframe_start(&[0x78, 0x00, 0x02, 0x67, 0x42]));
        // STAP-A with a bogus size never reads out of bounds
        assert!(!Codec::H264.is_keyframe_start(&[0x78, 0xff, 0xff, 0x41]));
        assert!(!Codec::H264.is_keyframe_start(&[]));
    }
}
