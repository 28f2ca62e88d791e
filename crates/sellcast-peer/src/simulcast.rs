//! The synthetic host's simulcast: one video track sent as several layers (rids), each its own
//! RTP stream with its own SSRC, RTX SSRC, sequence numbers and keyframes, the way a browser
//! publishes `sendEncodings` with rids.
//!
//! How webrtc-rs 0.21.1 sends it (read from its source): a `TrackLocalStaticRTP` whose
//! `MediaStreamTrack` carries one `RTCRtpEncodingParameters` per layer, each with a `rid`, an
//! `ssrc` and an `rtx` SSRC. The offer then has `a=rid:<rid> send` lines and
//! `a=simulcast:send q;h;f`; with `with_write_ssrc_attributes_for_simulcast(true)` it also
//! declares the SSRCs and their RTX pairs (`a=ssrc-group:FID`), as Firefox does, which is what
//! lets a receiver tie an RTX stream to its layer (webrtc-rs's RTX carries no repaired-rid
//! extension). `write_rtp` picks the encoding by the packet's SSRC but does not add the mid and
//! rid header extensions: the sink below stamps them on every packet with the ids the answer
//! negotiated, so the receiver can bind each SSRC to its rid from the first packet.
//!
//! Every layer has a keyframe on the same frame ticks (the GOP is shared), and one more when
//! its own SSRC is asked for one (PLI/FIR), as a simulcast encoder answers per layer.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rtc::media_stream::MediaStreamTrack;
use rtc::rtp::header::Header;
use rtc::rtp::packet::Packet;
use rtc::rtp_transceiver::rtp_sender::{RTCRtpCodingParameters, RTCRtpEncodingParameters, RTCRtpRtxParameters, RtpCodecKind};
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::rtp_transceiver::RtpSender;

use crate::peer::vp8_codec;
use crate::publisher::{PublishOptions, PublisherStats};
use crate::rtx_tagger::RtxTags;
use crate::signalling::PeerError;
use crate::synthetic::{media_time, RtpSink};
use crate::trailer::{now_us, Trailer, TRAILER_LEN};
use crate::vp8::{write_headers, write_layer_mark, FramePlan};

const SDES_MID_URI: &str = "urn:ietf:params:rtp-hdrext:sdes:mid";
const SDES_RTP_STREAM_ID_URI: &str = "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id";
const SDES_REPAIRED_RTP_STREAM_ID_URI: &str = "urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id";

/// One simulcast layer of the synthetic host.
#[derive(Debug, Clone, PartialEq)]
pub struct SimulcastLayer {
    pub rid: String,
    pub bitrate_bps: u64,
    pub width: u16,
    pub height: u16,
}

impl SimulcastLayer {
    /// The host page's three layers: `q` (320x180, 150 kbit/s), `h` (640x360, 500 kbit/s) and
    /// `f` (1280x720, `full_bps`), lowest first.
    pub fn three(full_bps: u64) -> Vec<SimulcastLayer> {
        let layer = |rid: &str, bitrate_bps, width, height| SimulcastLayer { rid: rid.to_owned(), bitrate_bps, width, height };
        vec![layer("q", 150_000, 320, 180), layer("h", 500_000, 640, 360), layer("f", full_bps, 1280, 720)]
    }
}

/// The SSRC of layer `index` and of its RTX repairs.
pub(crate) fn layer_ssrcs(seed: u32, index: usize) -> (u32, u32) {
    let ssrc = seed.rotate_left(8 * index as u32) ^ (index as u32 + 1) | 1;
    (ssrc, ssrc ^ 0x5a5a_0000)
}

/// A video track with one encoding per layer (rid, SSRC, RTX SSRC).
pub(crate) fn layered_track(layers: &[SimulcastLayer], seed: u32) -> Arc<TrackLocalStaticRTP> {
    let encodings = layers
        .iter()
        .enumerate()
        .map(|(i, layer)| {
            let (ssrc, rtx) = layer_ssrcs(seed, i);
            RTCRtpEncodingParameters {
                rtp_coding_parameters: RTCRtpCodingParameters {
                    rid: layer.rid.clone(),
                    ssrc: Some(ssrc),
                    rtx: Some(RTCRtpRtxParameters { ssrc: rtx }),
                    ..Default::default()
                },
                codec: vp8_codec(),
                ..Default::default()
            }
        })
        .collect();
    let kind = RtpCodecKind::Video;
    Arc::new(TrackLocalStaticRTP::new(MediaStreamTrack::new(
        "sellcast-synthetic".to_string(),
        format!("synthetic-{kind}"),
        format!("synthetic-{kind}"),
        kind,
        encodings,
    )))
}

/// One layer's sending side: the shared track, this layer's SSRC, and the mid and rid header
/// extensions to stamp.
pub(crate) struct LayerSink {
    track: Arc<TrackLocalStaticRTP>,
    ssrc: u32,
    pt: u8,
    extensions: Vec<(u8, Bytes)>,
}

/// The sinks of every layer, once the answer has fixed the payload type and extension ids;
/// also tells `rtx_tags` what to stamp on RTX, when the answer accepted repaired-rid.
pub(crate) async fn layer_sinks(
    track: &Arc<TrackLocalStaticRTP>,
    sender: &dyn RtpSender,
    (mid, rtx_tags): (&str, Option<&RtxTags>),
    layers: &[SimulcastLayer],
    (seed, pt): (u32, u8),
) -> Result<Vec<LayerSink>, PeerError> {
    let params = sender.get_parameters().await?;
    let id_of = |uri: &str| params.rtp_parameters.header_extensions.iter().find(|e| e.uri == uri).map(|e| e.id as u8);
    let (Some(mid_id), Some(rid_id)) = (id_of(SDES_MID_URI), id_of(SDES_RTP_STREAM_ID_URI)) else {
        return Err(PeerError::Protocol("the answer accepted no mid/rid header extensions: simulcast cannot be sent".into()));
    };
    if let (Some(tags), Some(rrid_id)) = (rtx_tags, id_of(SDES_REPAIRED_RTP_STREAM_ID_URI)) {
        tags.set((mid_id, rrid_id), mid, layers.iter().enumerate().map(|(i, l)| (layer_ssrcs(seed, i).1, l.rid.clone())));
    }
    Ok(layers
        .iter()
        .enumerate()
        .map(|(i, layer)| LayerSink {
            track: track.clone(),
            ssrc: layer_ssrcs(seed, i).0,
            pt,
            extensions: vec![(mid_id, Bytes::from(mid.to_owned())), (rid_id, Bytes::from(layer.rid.clone()))],
        })
        .collect())
}

#[async_trait::async_trait]
impl RtpSink for LayerSink {
    fn ssrc(&self) -> u32 {
        self.ssrc
    }

    async fn send(&self, seq: u16, ts: u32, marker: bool, payload: Vec<u8>) -> bool {
        let mut header = Header { version: 2, marker, payload_type: self.pt, sequence_number: seq, timestamp: ts, ssrc: self.ssrc, ..Default::default() };
        for (id, value) in &self.extensions {
            if header.set_extension(*id, value.clone()).is_err() {
                return false;
            }
        }
        self.track.write_rtp(Packet { header, payload: Bytes::from(payload) }).await.is_ok()
    }
}

/// Per-layer sending state.
struct LayerState {
    sink: LayerSink,
    plan: FramePlan,
    width: u16,
    height: u16,
    seq: u16,
    ts_base: u32,
    requests_answered: u64,
}

/// Send every layer's frames on one shared frame clock: keyframes on the same ticks every GOP,
/// plus one on a layer whose SSRC was asked for one since its last frame.
pub(crate) async fn send_layers(sinks: Vec<LayerSink>, layers: Vec<SimulcastLayer>, opts: PublishOptions, stats: Arc<PublisherStats>) {
    let fps = opts.fps.max(1);
    let gop = (opts.keyframe_interval.as_secs_f64() * f64::from(fps)).round().max(1.0) as u64;
    let mut state: Vec<LayerState> = sinks
        .into_iter()
        .zip(&layers)
        .map(|(sink, layer)| LayerState {
            plan: FramePlan { bitrate_bps: layer.bitrate_bps, fps, keyframe_every_frames: gop as u32, max_payload: opts.max_payload },
            width: layer.width,
            height: layer.height,
            seq: (sink.ssrc >> 8) as u16 & 0x3fff,
            ts_base: sink.ssrc.rotate_left(7),
            requests_answered: 0,
            sink,
        })
        .collect();
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(fps)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let started = tokio::time::Instant::now();
    let mut counter = 0u64;
    for frame in 0u64.. {
        tick.tick().await;
        let elapsed = started.elapsed();
        for (index, layer) in state.iter_mut().enumerate() {
            let requests = stats.feedback.keyframe_requests_for(layer.sink.ssrc);
            let key = frame % gop == 0 || requests != layer.requests_answered;
            layer.requests_answered = requests;
            let ts = media_time(layer.ts_base, elapsed, 90_000);
            let sizes = layer.plan.packet_sizes(key);
            let last = sizes.len() - 1;
            for (i, size) in sizes.into_iter().enumerate() {
                let mut payload = vec![0u8; size.max(13 + TRAILER_LEN)];
                write_headers(&mut payload, i == 0, key, layer.width, layer.height);
                write_layer_mark(&mut payload, index as u8);
                // One counter over all layers: a viewer on any layer sees send order, never a restart.
                Trailer { counter, sent_us: now_us() }.write(&mut payload);
                if !layer.sink.send(layer.seq, ts, i == last, payload).await {
                    return;
                }
                counter += 1;
                layer.seq = layer.seq.wrapping_add(1);
                stats.video_packets.fetch_add(1, Ordering::Relaxed);
            }
        }
        stats.video_frames.fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_layers_rise_in_size_and_have_distinct_ssrcs() {
        let layers = SimulcastLayer::three(1_700_000);
        assert_eq!(layers.iter().map(|l| l.rid.as_str()).collect::<Vec<_>>(), ["q", "h", "f"]);
        assert!(layers.windows(2).all(|w| w[0].bitrate_bps < w[1].bitrate_bps && w[0].height < w[1].height));
        let seed = 0x1234_5678;
        let mut all: Vec<u32> = (0..3).flat_map(|i| {
            let (a, b) = layer_ssrcs(seed, i);
            [a, b]
        }).collect();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), 6);
    }
}
