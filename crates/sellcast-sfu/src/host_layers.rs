//! The host's video as the forwarder holds it: one entry per layer (simulcast encoding), each
//! with its own keyframe group for joining viewers, its own keyframe-request throttle, its
//! measured bitrate and picture size.
//!
//! Layers are ranked by picture height, then bitrate, never by name: a host may call its
//! encodings anything (or nothing, with SSRC-only simulcast). A layer the host stopped sending
//! (an encoder drops its top layer when its own uplink is short) leaves the ranking until it
//! comes back.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::bitrate_meter::BitrateMeter;
use crate::codec::Codec;
use crate::keyframe_cache::KeyframeCache;
use crate::keyframe_requester::KeyframeRequester;
use crate::layer_selector::LayerView;
use crate::packet::MediaPacket;

/// Most layers a host's video may have (browsers send at most three).
pub const MAX_LAYERS: usize = 3;

/// A layer silent this long is out of the ranking.
const LAYER_SILENT_AFTER: Duration = Duration::from_secs(2);

#[derive(Debug)]
pub(crate) struct HostLayer {
    pub(crate) name: Option<Arc<str>>,
    pub(crate) cache: KeyframeCache,
    pub(crate) requester: KeyframeRequester,
    meter: BitrateMeter,
    pub(crate) size: Option<(u32, u32)>,
    last_packet: Option<Instant>,
}

#[derive(Debug)]
pub(crate) struct HostLayers {
    pub(crate) layers: [HostLayer; MAX_LAYERS],
    /// Slots of the layers being sent, lowest first; rebuilt by `tick`, never per packet.
    ranked: Vec<LayerView>,
}

impl HostLayers {
    pub(crate) fn new(cache_packets: usize, cache_max_age: Duration, request_interval: Duration) -> Self {
        let layer = || HostLayer {
            name: None,
            cache: KeyframeCache::new(cache_packets, cache_max_age),
            requester: KeyframeRequester::new(request_interval),
            meter: BitrateMeter::default(),
            size: None,
            last_packet: None,
        };
        Self { layers: [layer(), layer(), layer()], ranked: Vec::with_capacity(MAX_LAYERS) }
    }

    /// A video packet of layer `slot` (already checked to be below `MAX_LAYERS`).
    pub(crate) fn handle_packet(&mut self, now: Instant, codec: Codec, packet: &MediaPacket, keyframe_start: bool) {
        let layer = &mut self.layers[usize::from(packet.layer)];
        layer.meter.add(now, packet.payload.len());
        let first = layer.last_packet.is_none();
        layer.last_packet = Some(now);
        layer.cache.handle_packet(packet, keyframe_start);
        if keyframe_start {
            layer.requester.handle_keyframe();
            if let Some(size) = codec.keyframe_dimensions(&packet.payload) {
                layer.size = Some(size);
            }
        }
        if first {
            // A layer appearing changes the ranking at once: a joining viewer must find it.
            self.rerank(now);
        }
    }

    /// Roll the bitrate windows and rank again. Returns whether the ranking changed.
    pub(crate) fn tick(&mut self, now: Instant) -> bool {
        for layer in &mut self.layers {
            layer.meter.roll(now);
        }
        self.rerank(now)
    }

    fn rerank(&mut self, now: Instant) -> bool {
        let before: [Option<u8>; MAX_LAYERS] = std::array::from_fn(|i| self.ranked.get(i).map(|l| l.slot));
        self.ranked.clear();
        for (slot, layer) in self.layers.iter().enumerate() {
            let live = layer.last_packet.is_some_and(|t| now.saturating_duration_since(t) < LAYER_SILENT_AFTER);
            if live {
                self.ranked.push(LayerView { slot: slot as u8, bitrate_bps: layer.meter.bps(), height: layer.size.map(|s| s.1) });
            }
        }
        self.ranked.sort_by_key(|l| (l.height.unwrap_or(0), l.bitrate_bps, l.slot));
        let after: [Option<u8>; MAX_LAYERS] = std::array::from_fn(|i| self.ranked.get(i).map(|l| l.slot));
        before != after
    }

    /// The layers being sent, lowest first.
    pub(crate) fn ranked(&self) -> &[LayerView] {
        &self.ranked
    }

    pub(crate) fn rank_of(&self, slot: u8) -> Option<usize> {
        self.ranked.iter().position(|l| l.slot == slot)
    }

    pub(crate) fn set_name(&mut self, slot: u8, name: Option<Arc<str>>) {
        if let Some(layer) = self.layers.get_mut(usize::from(slot)) {
            layer.name = name;
        }
    }

    pub(crate) fn bitrate(&self, slot: u8) -> u64 {
        self.layers.get(usize::from(slot)).map_or(0, |l| l.meter.bps())
    }

    /// A new host, or the host's source restarted: nothing of the old video is replayable.
    pub(crate) fn clear_media(&mut self) {
        for layer in &mut self.layers {
            layer.cache.clear();
        }
    }

    /// The host left or a new one came: forget everything about its layers.
    pub(crate) fn reset(&mut self) {
        for layer in &mut self.layers {
            layer.name = None;
            layer.cache.clear();
            layer.requester.reset();
            layer.meter.reset();
            layer.size = None;
            layer.last_packet = None;
        }
        self.ranked.clear();
    }

    /// When a throttled keyframe request is next due on any layer.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        self.layers.iter().filter_map(|l| l.requester.poll_timeout()).min()
    }

    /// Keyframe requests sent to the host over all layers.
    pub(crate) fn requests_sent(&self) -> u64 {
        self.layers.iter().map(|l| l.requester.sent()).sum()
    }

    pub(crate) fn cached_packets(&self) -> usize {
        self.layers.iter().map(|l| l.cache.len()).sum()
    }
}
