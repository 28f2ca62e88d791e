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
            Codec::Vp8 => vp8_frame_tag(payload).is_some_and(|tag| tag[0] & 0x01 == 0),
            Codec::H264 => h264_keyframe_start(payload),
        }
    }

    /// The picture size a keyframe's first packet announces (VP8 only: its key frame header
    /// carries width and height; an H264 SPS would need a bit reader for the same, and H264
    /// hosts publish one layer). Ranks a host's simulcast layers and honours a viewer's
    /// height cap. `None` for anything else, never a panic.
    pub fn keyframe_dimensions(self, payload: &[u8]) -> Option<(u32, u32)> {
        if self != Codec::Vp8 {
            return None;
        }
        let tag = vp8_frame_tag(payload)?;
        // RFC 6386 9.1: 3-byte frame tag, start code 9d 01 2a, then 14-bit width and height
        // (little endian, the top two bits are a scale we ignore).
        if tag.len() < 10 || tag[0] & 0x01 != 0 || tag[3..6] != [0x9d, 0x01, 0x2a] {
            return None;
        }
        let width = u32::from(u16::from_le_bytes([tag[6], tag[7]]) & 0x3fff);
        let height = u32::from(u16::from_le_bytes([tag[8], tag[9]]) & 0x3fff);
        (width > 0 && height > 0).then_some((width, height))
    }
}

/// RFC 7741: the payload descriptor, then on the start of partition 0 the VP8 frame itself,
/// whose first byte's lowest bit (P) is 0 for a key frame. Returns the frame from its tag on,
/// or `None` for a packet that does not start a frame (or is too short to say).
fn vp8_frame_tag(p: &[u8]) -> Option<&[u8]> {
    let &first = p.first()?;
    let extended = first & 0x80 != 0;
    let start_of_partition = first & 0x10 != 0;
    let partition_id = first & 0x0f;
    if !start_of_partition || partition_id != 0 {
        return None;
    }
    let mut at = 1;
    if extended {
        let &x = p.get(1)?;
        at = 2;
        if x & 0x80 != 0 {
            // PictureID: one or two bytes, M bit says which.
            match p.get(at) {
                Some(&pid) if pid & 0x80 != 0 => at += 2,
                Some(_) => at += 1,
                None => return None,
            }
        }
        if x & 0x40 != 0 {
            at += 1; // TL0PICIDX
        }
        if x & 0x30 != 0 {
            at += 1; // TID / KEYIDX
        }
    }
    p.get(at..).filter(|frame| !frame.is_empty())
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
    fn vp8_keyframe_dimensions_come_from_the_key_frame_header() {
        // descriptor, frame tag (key), start code, width 1280, height 720 (little endian)
        let key = [0x10, 0x00, 0x00, 0x00, 0x9d, 0x01, 0x2a, 0x00, 0x05, 0xd0, 0x02];
        assert_eq!(Codec::Vp8.keyframe_dimensions(&key), Some((1280, 720)));
        let mut delta = key;
        delta[1] = 0x01;
        assert_eq!(Codec::Vp8.keyframe_dimensions(&delta), None, "a delta frame has no size");
        assert_eq!(Codec::Vp8.keyframe_dimensions(&key[..8]), None, "truncated");
        let mut bad_start = key;
        bad_start[5] = 0x00;
        assert_eq!(Codec::Vp8.keyframe_dimensions(&bad_start), None, "no start code");
        assert_eq!(Codec::H264.keyframe_dimensions(&[0x65, 0x88]), None);
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
