//! Shapes synthetic VP8 RTP like an encoder would: one timestamp per frame, a payload
//! descriptor on every packet, a keyframe tag on the first packet of a key frame, the marker
//! bit on a frame's last packet, and frame sizes that add up to the target bitrate.

/// How a publisher sizes its frames.
#[derive(Debug, Clone)]
pub struct FramePlan {
    pub bitrate_bps: u64,
    pub fps: u32,
    pub keyframe_every_frames: u32,
    pub max_payload: usize,
}

impl FramePlan {
    /// Payload sizes of a frame (keyframes are 4x a delta frame, as encoders roughly do).
    pub fn packet_sizes(&self, keyframe: bool) -> Vec<usize> {
        let per_frame = (self.bitrate_bps / 8 / u64::from(self.fps.max(1))) as usize;
        let gop = u64::from(self.keyframe_every_frames.max(1));
        // Average over a GOP stays at the bitrate: 1 key (4 units) + (gop-1) deltas (1 unit).
        let units = 4 + gop as usize - 1;
        let delta = per_frame * gop as usize / units;
        let size = if keyframe { delta * 4 } else { delta }.max(64);
        let packets = size.div_ceil(self.max_payload);
        let each = size / packets;
        vec![each.max(64); packets]
    }
}

/// Which frames are keyframes, like an encoder decides: the first, one every GOP, and one as
/// soon as a keyframe request (PLI/FIR) has arrived since the last frame, which restarts the GOP.
#[derive(Debug, Clone)]
pub struct KeyframeSchedule {
    gop: u32,
    since_key: Option<u32>,
    requests_answered: u64,
}

impl KeyframeSchedule {
    pub fn new(gop: u32) -> Self {
        Self { gop: gop.max(1), since_key: None, requests_answered: 0 }
    }

    /// Is the next frame a keyframe? `requests` is the running count of keyframe requests.
    pub fn next_frame(&mut self, requests: u64) -> bool {
        let key = self.since_key.is_none_or(|f| f >= self.gop) || requests != self.requests_answered;
        self.requests_answered = requests;
        self.since_key = Some(match self.since_key {
            Some(f) if !key => f + 1,
            _ => 1,
        });
        key
    }
}

/// Write the VP8 payload descriptor and (on a frame start) the frame tag at the front.
pub fn write_headers(payload: &mut [u8], frame_start: bool, keyframe: bool, width: u16, height: u16) {
    if payload.len() < 11 {
        return;
    }
    payload[0] = if frame_start { 0x10 } else { 0x00 }; // S bit, partition 0
    if frame_start {
        // Frame tag: bit0 = P (0 key), show_frame set.
        payload[1] = if keyframe { 0x10 } else { 0x11 };
        payload[2] = 0;
        payload[3] = 0;
        if keyframe {
            payload[4..7].copy_from_slice(&[0x9d, 0x01, 0x2a]);
            payload[7..9].copy_from_slice(&width.to_le_bytes());
            payload[9..11].copy_from_slice(&height.to_le_bytes());
        }
    }
}

/// Marks the two bytes before a simulcast packet's trailer: `LAYER_MAGIC`, then the layer index.
const LAYER_MAGIC: u8 = 0xa5;

/// Mark the payload (which ends with a trailer) as belonging to simulcast layer `layer`, so a
/// viewer knows which layer the server sends it. A single-layer host writes no mark.
pub fn write_layer_mark(payload: &mut [u8], layer: u8) {
    if let Some(at) = payload.len().checked_sub(crate::trailer::TRAILER_LEN + 2).filter(|at| *at >= 11) {
        payload[at] = LAYER_MAGIC;
        payload[at + 1] = layer;
    }
}

/// The layer a simulcast host marked this payload with, if any.
pub fn read_layer_mark(payload: &[u8]) -> Option<u8> {
    let at = payload.len().checked_sub(crate::trailer::TRAILER_LEN + 2).filter(|at| *at >= 11)?;
    (payload[at] == LAYER_MAGIC).then(|| payload[at + 1])
}

/// Does a VP8 RTP payload begin a frame (S bit set, partition 0)?
pub fn is_frame_start(payload: &[u8]) -> bool {
    payload.first().is_some_and(|first| first & 0x10 != 0 && first & 0x0f == 0)
}

/// Does a VP8 RTP payload begin a key frame? (Simple descriptor, as written above and by
/// the SFU's forwarding; the extended form is handled by the server's own parser.)
pub fn is_keyframe_start(payload: &[u8]) -> bool {
    match payload {
        [first, rest @ ..] if first & 0x10 != 0 && first & 0x0f == 0 => {
            let at = if first & 0x80 != 0 { 1 } else { 0 };
            if at == 1 {
                return false; // extended descriptors are not produced by the synthetic publisher
            }
            rest.first().is_some_and(|tag| tag & 0x01 == 0)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyframes_every_gop_and_on_request() {
        let mut k = KeyframeSchedule::new(3);
        let plain: Vec<bool> = (0..7).map(|_| k.next_frame(0)).collect();
        assert_eq!(plain, [true, false, false, true, false, false, true]);
        // A request after frame 7 makes frame 8 a keyframe and restarts the GOP from there.
        let asked: Vec<bool> = [1, 1, 1, 1, 2].iter().map(|r| k.next_frame(*r)).collect();
        assert_eq!(asked, [true, false, false, true, true]);
    }

    #[test]
    fn frames_add_up_to_the_bitrate_and_keyframes_are_marked() {
        let plan = FramePlan { bitrate_bps: 2_500_000, fps: 30, keyframe_every_frames: 60, max_payload: 1100 };
        let bytes: usize = (0..60).flat_map(|n| plan.packet_sizes(n == 0)).sum();
        let bps = bytes as f64 * 8.0 / 2.0;
        assert!((bps - 2_500_000.0).abs() / 2_500_000.0 < 0.05, "{bps}");
        assert!(plan.packet_sizes(true).len() > plan.packet_sizes(false).len());
        assert!(plan.packet_sizes(true).iter().all(|s| (1000..=1100).contains(s)));
        let mut p = vec![0u8; 100];
        write_headers(&mut p, true, true, 640, 480);
        assert!(is_keyframe_start(&p));
        write_headers(&mut p, true, false, 640, 480);
        assert!(!is_keyframe_start(&p));
        write_headers(&mut p, false, false, 640, 480);
        assert!(!is_keyframe_start(&p));
    }

    #[test]
    fn a_layer_mark_is_read_back_and_absent_without_one() {
        let mut p = vec![0u8; 100];
        assert_eq!(read_layer_mark(&p), None);
        write_layer_mark(&mut p, 2);
        crate::trailer::Trailer { counter: 1, sent_us: 2 }.write(&mut p);
        assert_eq!(read_layer_mark(&p), Some(2));
        assert_eq!(read_layer_mark(&[0u8; 20]), None);
    }
}
