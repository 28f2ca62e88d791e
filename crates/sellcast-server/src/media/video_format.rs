//! A room's video format: the codec and, for H264, the profile and packetization mode the host
//! encodes with. Video is forwarded untouched, so a viewer must be able to decode exactly
//! this; each viewer is sent it on its own payload type number (whatever its offer used for a
//! compatible entry).

use sellcast_sfu::Codec;

/// The H264 parameters that decide whether a receiver can decode a stream (RFC 6184 8.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct H264Format {
    /// `profile-level-id`: profile_idc, constraint flags, level_idc (one byte each).
    pub profile_level_id: u32,
    /// 0: one NAL unit per packet; 1: also STAP-A and FU-A. A mode-0 receiver cannot take a
    /// mode-1 stream and the other way round.
    pub packetization_mode: u8,
}

/// H264 profiles as far as decoding compatibility goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum H264Profile {
    ConstrainedBaseline,
    Baseline,
    Main,
    High,
    Other(u8),
}

impl H264Profile {
    /// How widely a stream of this profile can be decoded: lower is wider.
    pub fn reach(self) -> u8 {
        match self {
            Self::ConstrainedBaseline => 0,
            Self::Baseline => 1,
            Self::Main => 2,
            Self::High => 3,
            Self::Other(_) => 4,
        }
    }

    /// Can a decoder of profile `self` take a stream of profile `stream`? Constrained baseline
    /// is the common subset of baseline, main and high. WebRTC encoders that signal baseline
    /// produce constrained baseline, so the two are taken as one.
    fn decodes(self, stream: H264Profile) -> bool {
        use H264Profile::*;
        match stream {
            ConstrainedBaseline => !matches!(self, Other(_)),
            Baseline => matches!(self, ConstrainedBaseline | Baseline),
            Main => matches!(self, Main | High),
            High => self == High,
            Other(idc) => self == Other(idc),
        }
    }
}

impl H264Format {
    /// RFC 6184 default when `profile-level-id` is absent: baseline, level 1.0.
    const DEFAULT_PROFILE_LEVEL_ID: u32 = 0x42000a;

    /// Read the parameters out of an `a=fmtp` line's value; missing ones take their RFC
    /// defaults (packetization-mode 0).
    pub fn from_fmtp(fmtp: &str) -> Self {
        let mut format = Self { profile_level_id: Self::DEFAULT_PROFILE_LEVEL_ID, packetization_mode: 0 };
        for kv in fmtp.split(';') {
            let Some((k, v)) = kv.split_once('=') else {
                continue;
            };
            match k.trim().to_ascii_lowercase().as_str() {
                "profile-level-id" => {
                    if let Ok(id) = u32::from_str_radix(v.trim(), 16) {
                        format.profile_level_id = id & 0xff_ffff;
                    }
                }
                "packetization-mode" => {
                    if let Ok(mode) = v.trim().parse::<u8>() {
                        format.packetization_mode = mode;
                    }
                }
                _ => {}
            }
        }
        format
    }

    pub fn profile(&self) -> H264Profile {
        let idc = (self.profile_level_id >> 16) as u8;
        let flags = (self.profile_level_id >> 8) as u8;
        match idc {
            0x42 if flags & 0x40 != 0 => H264Profile::ConstrainedBaseline,
            0x42 => H264Profile::Baseline,
            0x4d if flags & 0x80 != 0 => H264Profile::ConstrainedBaseline,
            0x4d => H264Profile::Main,
            0x58 if flags & 0xc0 == 0xc0 => H264Profile::ConstrainedBaseline,
            0x64 => H264Profile::High,
            other => H264Profile::Other(other),
        }
    }

    /// How well a receiver that declared `self` fits a stream in `stream`: `None` when it
    /// cannot decode it, else lower is better (0: the very same entry).
    pub fn fit_for(&self, stream: &H264Format) -> Option<u8> {
        if self.packetization_mode != stream.packetization_mode || !self.profile().decodes(stream.profile()) {
            return None;
        }
        Some(if self.profile_level_id == stream.profile_level_id {
            0
        } else if self.profile() == stream.profile() {
            1
        } else {
            2
        })
    }

    /// For people: "H264 (profile-level-id 42e01f, packetization-mode 1)".
    pub fn describe(&self) -> String {
        format!("H264 (profile-level-id {:06x}, packetization-mode {})", self.profile_level_id, self.packetization_mode)
    }
}

/// What a room's video is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VideoFormat {
    pub codec: Codec,
    /// Set when `codec` is H264.
    pub h264: Option<H264Format>,
}

impl VideoFormat {
    pub fn vp8() -> Self {
        Self { codec: Codec::Vp8, h264: None }
    }

    pub fn h264(format: H264Format) -> Self {
        Self { codec: Codec::H264, h264: Some(format) }
    }

    pub fn describe(&self) -> String {
        match self.h264 {
            Some(h) => h.describe(),
            None => self.codec.name().to_string(),
        }
    }
}

/// The formats of a room, as a viewer must receive them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RoomFormat {
    pub audio: Option<Codec>,
    pub video: Option<VideoFormat>,
}

impl RoomFormat {
    pub fn codecs(&self) -> Vec<Codec> {
        self.audio.into_iter().chain(self.video.map(|v| v.codec)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(id: u32, mode: u8) -> H264Format {
        H264Format { profile_level_id: id, packetization_mode: mode }
    }

    #[test]
    fn fmtp_is_read_with_rfc_defaults() {
        assert_eq!(H264Format::from_fmtp("level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"), h(0x42e01f, 1));
        assert_eq!(H264Format::from_fmtp("profile-level-id=640C1F"), h(0x640c1f, 0));
        assert_eq!(H264Format::from_fmtp(""), h(0x42000a, 0));
        assert_eq!(H264Format::from_fmtp("profile-level-id=zz;packetization-mode=x"), h(0x42000a, 0));
    }

    #[test]
    fn profiles() {
        assert_eq!(h(0x42e01f, 1).profile(), H264Profile::ConstrainedBaseline);
        assert_eq!(h(0x42001f, 1).profile(), H264Profile::Baseline);
        assert_eq!(h(0x4d001f, 1).profile(), H264Profile::Main);
        assert_eq!(h(0x4d401f, 1).profile(), H264Profile::Main);
        assert_eq!(h(0x4d801f, 1).profile(), H264Profile::ConstrainedBaseline);
        assert_eq!(h(0x640c1f, 1).profile(), H264Profile::High);
        assert_eq!(h(0xf4001f, 1).profile(), H264Profile::Other(0xf4));
    }

    #[test]
    fn receivers_fit_by_mode_and_profile() {
        let obs = h(0x42e01f, 1);
        assert_eq!(h(0x42e01f, 1).fit_for(&obs), Some(0));
        assert_eq!(h(0x42e034, 1).fit_for(&obs), Some(1), "same profile, other level");
        assert_eq!(h(0x42001f, 1).fit_for(&obs), Some(2));
        assert_eq!(h(0x640c1f, 1).fit_for(&obs), Some(2), "high decodes constrained baseline");
        assert_eq!(h(0x42e01f, 0).fit_for(&obs), None, "mode 0 cannot take FU-A");
        let high = h(0x640c1f, 1);
        assert_eq!(h(0x42e01f, 1).fit_for(&high), None, "baseline cannot decode high");
        assert_eq!(h(0x4d001f, 1).fit_for(&high), None);
        assert_eq!(h(0x64001f, 1).fit_for(&high), Some(1));
        let main = h(0x4d001f, 1);
        assert_eq!(h(0x64001f, 1).fit_for(&main), Some(2));
        assert_eq!(h(0x42e01f, 1).fit_for(&main), None);
    }
}
