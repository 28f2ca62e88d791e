//! One room's forwarding decisions: the host's tracks in, every viewer's tracks out.
//!
//! The forwarder is owned by exactly one task (the room's media driver), so it needs no
//! locks; the driver calls it with packets and time, drains each viewer's queue into that
//! viewer's transport, and relays [`ForwarderEvent`]s to the host.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::codec::{Codec, TrackKind};
use crate::drop_reason::{DropCounters, DropReason};
use crate::estimate::EstimateSource;
use crate::host_layers::{HostLayers, MAX_LAYERS};
use crate::layer_cap::LayerCap;
use crate::layer_selector::SelectorConfig;
use crate::packet::MediaPacket;
use crate::probe_target::ProbeTarget;
use crate::viewer::{Offered, ViewerOut};

/// How often layers are measured and every viewer's layer decided again.
const DECIDE_EVERY: Duration = Duration::from_millis(250);

/// Identifies a viewer within the server (the driver's peer key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ViewerId(pub u64);

/// Tunables. The defaults are what the server runs with.
#[derive(Debug, Clone)]
pub struct ForwarderConfig {
    /// The host is asked for a keyframe at most once per this interval.
    pub keyframe_request_interval: Duration,
    /// Packets one viewer may have queued before it is declared slow and restarted.
    pub viewer_queue_packets: usize,
    /// Longest keyframe group kept for replay, in packets.
    pub keyframe_cache_packets: usize,
    /// A keyframe group older than this is not replayed (a keyframe is requested instead).
    pub keyframe_cache_max_age: Duration,
    /// How viewers are fitted to their bandwidth.
    pub selection: SelectorConfig,
}

impl Default for ForwarderConfig {
    fn default() -> Self {
        Self {
            keyframe_request_interval: Duration::from_secs(1),
            viewer_queue_packets: 2048,
            keyframe_cache_packets: 1500,
            keyframe_cache_max_age: Duration::from_secs(3),
            selection: SelectorConfig::default(),
        }
    }
}

/// What the forwarder asks of the outside world.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForwarderEvent {
    /// Send a keyframe request (PLI) to this layer (slot) of the host's video.
    RequestKeyframe { layer: u8 },
}

/// One viewer's video as operators see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewerLayerReport {
    /// The layer (slot) being sent, its name (rid) and rank (0 = lowest).
    pub layer: Option<u8>,
    pub layer_name: Option<Arc<str>>,
    pub layer_rank: Option<u8>,
    pub paused: bool,
    pub estimate: Option<(EstimateSource, u64)>,
    /// The viewer's latest loss report and its link's usual loss, in permille.
    pub loss_permille: Option<u16>,
    pub usual_loss_permille: u16,
    pub switches: u64,
    pub pauses: u64,
    pub cap: LayerCap,
}

/// One of the host's layers as operators see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerReport {
    pub slot: u8,
    pub name: Option<Arc<str>>,
    /// 0 = lowest.
    pub rank: u8,
    pub bitrate_bps: u64,
    pub size: Option<(u32, u32)>,
    /// Viewers being sent this layer now.
    pub viewers: usize,
}

#[derive(Debug, Clone, Copy)]
struct TrackIn {
    codec: Codec,
}

#[derive(Debug)]
pub struct Forwarder {
    config: ForwarderConfig,
    tracks: [Option<TrackIn>; 2],
    /// Bumped on every host session so viewers re-anchor their outgoing streams.
    generation: u32,
    layers: HostLayers,
    viewers: Vec<ViewerOut>,
    drops: DropCounters,
    events: VecDeque<ForwarderEvent>,
    /// Bitrates to ask of viewers' estimators, when they changed.
    probes: VecDeque<(ViewerId, ProbeTarget)>,
    received: u64,
    /// When layers are next measured and viewers' layers decided (only while a host is live).
    next_decision: Option<Instant>,
}

impl Forwarder {
    pub fn new(config: ForwarderConfig) -> Self {
        Self {
            layers: HostLayers::new(config.keyframe_cache_packets, config.keyframe_cache_max_age, config.keyframe_request_interval),
            config,
            tracks: [None, None],
            generation: 0,
            viewers: Vec::new(),
            drops: DropCounters::default(),
            events: VecDeque::new(),
            probes: VecDeque::new(),
            received: 0,
            next_decision: None,
        }
    }

    /// A host went live with these codecs (at most one audio and one video).
    pub fn handle_publisher_start(&mut self, codecs: &[Codec]) {
        self.generation = self.generation.wrapping_add(1);
        self.tracks = [None, None];
        for codec in codecs {
            self.tracks[codec.kind().index()] = Some(TrackIn { codec: *codec });
        }
        self.layers.reset();
        self.next_decision = None;
    }

    /// The host left. Viewers stay, their outgoing streams resume when a host returns.
    pub fn handle_publisher_end(&mut self) {
        self.tracks = [None, None];
        self.layers.reset();
        self.next_decision = None;
    }

    /// The host's track restarted mid-session (e.g. new SSRC): treat as a new source.
    pub fn handle_source_reset(&mut self) {
        self.generation = self.generation.wrapping_add(1);
        self.layers.clear_media();
    }

    /// The transport learned a layer's name (its rid), for reports.
    pub fn set_layer_name(&mut self, layer: u8, name: Option<Arc<str>>) {
        self.layers.set_name(layer, name);
    }

    pub fn is_live(&self) -> bool {
        self.tracks.iter().any(Option::is_some)
    }

    pub fn codec(&self, kind: TrackKind) -> Option<Codec> {
        self.tracks[kind.index()].map(|t| t.codec)
    }

    /// One packet from the host: cache it if it is video, queue it for every ready viewer
    /// being sent its layer.
    pub fn handle_rtp(&mut self, now: Instant, packet: &MediaPacket) {
        let Some(track) = self.tracks[packet.kind.index()] else {
            self.drops.record(DropReason::NoTrack);
            return;
        };
        let video = packet.kind == TrackKind::Video;
        if video && usize::from(packet.layer) >= MAX_LAYERS {
            self.drops.record(DropReason::NoTrack);
            return;
        }
        self.received += 1;
        let keyframe_start = track.codec.is_keyframe_start(&packet.payload);
        if video {
            let new_layer = self.layers.rank_of(packet.layer).is_none();
            self.layers.handle_packet(now, track.codec, packet, keyframe_start);
            if new_layer {
                // Viewers waiting for any video, or for a better layer, hear of it now (a
                // keyframe in hand needs no request).
                self.decide_all(now, keyframe_start.then_some(packet.layer));
            }
            if self.next_decision.is_none() {
                self.next_decision = Some(now + DECIDE_EVERY);
            }
        }
        let mut needs_keyframe = false;
        for viewer in &mut self.viewers {
            let offered = viewer.offer(packet, self.generation, keyframe_start, false, &mut self.drops);
            needs_keyframe |= offered == Offered::NeedsKeyframe;
        }
        if needs_keyframe {
            self.request_keyframe(now, packet.layer);
        }
    }

    /// Register a viewer. It receives nothing until [`handle_viewer_ready`](Self::handle_viewer_ready).
    pub fn add_viewer(&mut self, id: ViewerId) {
        if self.viewer_index(id).is_none() {
            self.viewers
                .push(ViewerOut::new(id, self.config.viewer_queue_packets));
        }
    }

    pub fn remove_viewer(&mut self, id: ViewerId) {
        self.viewers.retain(|v| v.id() != id);
    }

    /// The viewer's transport is up: choose its layer, give it that layer's cached keyframe
    /// group, or ask for a keyframe of it.
    pub fn handle_viewer_ready(&mut self, now: Instant, id: ViewerId) {
        let Some(i) = self.viewer_index(id) else {
            return;
        };
        self.viewers[i].set_ready();
        if self.tracks[TrackKind::Video.index()].is_none() {
            return; // nobody live yet: the first keyframe will start this viewer
        }
        if self.layers.ranked().is_empty() {
            // Live, but no video yet: its first layer will need a keyframe for this viewer.
            self.request_keyframe(now, 0);
            return;
        }
        self.decide(now, i);
        self.start_awaited_layer(now, i);
    }

    /// A viewer's decoder lost its picture (PLI/FIR from the viewer): a keyframe of the layer
    /// it is being sent (or waits for).
    pub fn handle_keyframe_request_from(&mut self, now: Instant, id: ViewerId) {
        let Some(i) = self.viewer_index(id) else {
            return;
        };
        let viewer = &self.viewers[i];
        if let Some(layer) = viewer.current_layer().or(viewer.awaited_layer()) {
            self.request_keyframe(now, layer);
        }
    }

    /// A keyframe of one layer is wanted (by another shard's viewers, or an unnamed viewer).
    pub fn handle_viewer_keyframe_request(&mut self, now: Instant) {
        self.handle_layer_keyframe_request(now, 0);
    }

    /// A keyframe of this layer (slot) is wanted (another shard relays its viewers' needs).
    pub fn handle_layer_keyframe_request(&mut self, now: Instant, layer: u8) {
        if self.is_live() && usize::from(layer) < MAX_LAYERS {
            self.request_keyframe(now, layer);
        }
    }

    /// The transport's bandwidth estimate for a viewer (TWCC or REMB).
    pub fn handle_viewer_estimate(&mut self, now: Instant, id: ViewerId, source: EstimateSource, bps: u64) {
        if let Some(i) = self.viewer_index(id) {
            self.viewers[i].estimate.handle_transport(now, source, bps);
        }
    }

    /// A viewer's receiver report: the fraction of video it lost since the last one.
    pub fn handle_viewer_loss(&mut self, now: Instant, id: ViewerId, fraction_lost: f32) {
        let Some(i) = self.viewer_index(id) else {
            return;
        };
        let audio = self.config.selection.audio_bps;
        let sending = self.sending_bps(i);
        let ceiling = self.layers.ranked().last().map_or(0, |l| l.bitrate_bps) * 3 / 2 + audio;
        self.viewers[i].note_layer_start(now);
        self.viewers[i].estimate.handle_loss(now, fraction_lost, sending, ceiling);
    }

    /// A viewer's NACK messages received and video packets sent since the last call (from the
    /// transport's per-stream stats): the fast word on whether its new layer overflows.
    pub fn handle_viewer_nacks(&mut self, now: Instant, id: ViewerId, nacks: u64, packets: u64) {
        let Some(i) = self.viewer_index(id) else {
            return;
        };
        let sending = self.sending_bps(i);
        self.viewers[i].note_layer_start(now);
        self.viewers[i].estimate.handle_nacks(now, nacks, packets, sending);
    }

    /// What viewer `i` is being sent: its layer's measured bitrate and audio.
    fn sending_bps(&self, i: usize) -> u64 {
        self.viewers[i].current_layer().map_or(0, |l| self.layers.bitrate(l)) + self.config.selection.audio_bps
    }

    /// The viewer's own ceiling (data saver, player size). Applied at once.
    pub fn set_viewer_cap(&mut self, now: Instant, id: ViewerId, cap: LayerCap) {
        let Some(i) = self.viewer_index(id) else {
            return;
        };
        self.viewers[i].cap = cap;
        if self.viewers[i].is_ready() && self.is_live() {
            self.decide(now, i);
            self.start_awaited_layer(now, i);
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        for slot in 0..MAX_LAYERS {
            if self.layers.layers[slot].requester.handle_timeout(now) {
                self.events.push_back(ForwarderEvent::RequestKeyframe { layer: slot as u8 });
            }
        }
        if self.next_decision.is_some_and(|t| t <= now) {
            self.next_decision = self.is_live().then_some(now + DECIDE_EVERY);
            self.layers.tick(now);
            self.decide_all(now, None);
        }
    }

    /// When [`handle_timeout`](Self::handle_timeout) should next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        [self.layers.poll_timeout(), self.next_decision].into_iter().flatten().min()
    }

    pub fn poll_event(&mut self) -> Option<ForwarderEvent> {
        self.events.pop_front()
    }

    /// What a viewer's estimator should now aim for (changed since last said).
    pub fn poll_probe_target(&mut self) -> Option<(ViewerId, ProbeTarget)> {
        self.probes.pop_front()
    }

    /// Decide every ready viewer's layer again; ask for keyframes of layers viewers wait for,
    /// except `arriving`, whose keyframe is being forwarded right now.
    fn decide_all(&mut self, now: Instant, arriving: Option<u8>) {
        let mut awaited = [false; MAX_LAYERS];
        for i in 0..self.viewers.len() {
            if !self.viewers[i].is_ready() {
                continue;
            }
            self.decide(now, i);
            if let Some(layer) = self.viewers[i].awaited_layer() {
                awaited[usize::from(layer)] = true;
            }
        }
        for (slot, wanted) in awaited.into_iter().enumerate() {
            if wanted && arriving != Some(slot as u8) {
                self.request_keyframe(now, slot as u8);
            }
        }
    }

    /// One viewer's layer, from its estimate and cap; and what its estimator should aim for
    /// (`ProbeTarget`).
    fn decide(&mut self, now: Instant, i: usize) {
        let ranked = self.layers.ranked();
        let ceiling = ranked.last().map_or(0, |l| l.bitrate_bps) * 3 / 2 + self.config.selection.audio_bps;
        let viewer = &mut self.viewers[i];
        viewer.note_layer_start(now);
        viewer.estimate.handle_silence(now, ceiling);
        let estimate = viewer.estimate.judged(now);
        if let Some(choice) = viewer.selector.decide(now, ranked, viewer.cap, estimate, &self.config.selection) {
            viewer.handle_choice(choice);
        }
        let top = viewer.cap.top_rank(ranked.iter().map(|l| l.height));
        if let Some(target) = ProbeTarget::for_viewer(ranked, viewer.selector.choice(), top, &self.config.selection) {
            if target.differs_from(&viewer.probe) {
                viewer.probe = target;
                self.probes.push_back((viewer.id(), target));
            }
        }
    }

    /// A viewer now waits for a layer it is not being sent: replay that layer's cached group if
    /// the viewer has no picture yet, else ask the host for a keyframe of it.
    fn start_awaited_layer(&mut self, now: Instant, i: usize) {
        let Some(layer) = self.viewers[i].awaited_layer() else {
            return;
        };
        let Some(video) = self.tracks[TrackKind::Video.index()] else {
            return;
        };
        let viewer = &mut self.viewers[i];
        // A viewer with a picture switches at the next keyframe; a cached group (up to seconds
        // old) would show it the past again.
        let mut replayed = false;
        if viewer.current_layer().is_none() {
            if let Some(group) = self.layers.layers[usize::from(layer)].cache.replayable(now) {
                for (n, packet) in group.iter().enumerate() {
                    let key = n == 0 && video.codec.is_keyframe_start(&packet.payload);
                    viewer.offer(packet, self.generation, key, true, &mut self.drops);
                }
                replayed = viewer.current_layer() == Some(layer) && !viewer.is_waiting_for_keyframe();
            }
        }
        if !replayed {
            self.request_keyframe(now, layer);
        }
    }

    pub fn viewer_mut(&mut self, id: ViewerId) -> Option<&mut ViewerOut> {
        let i = self.viewer_index(id)?;
        Some(&mut self.viewers[i])
    }

    /// Every viewer, for the driver to drain their queues.
    pub fn viewers_mut(&mut self) -> impl Iterator<Item = &mut ViewerOut> {
        self.viewers.iter_mut()
    }

    pub fn viewer_count(&self) -> usize {
        self.viewers.len()
    }

    pub fn drops(&self) -> &DropCounters {
        &self.drops
    }

    /// Packets received from hosts (on a published track).
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Keyframe requests sent to hosts so far (all layers).
    pub fn keyframe_requests_sent(&self) -> u64 {
        self.layers.requests_sent()
    }

    pub fn cached_keyframe_packets(&self) -> usize {
        self.layers.cached_packets()
    }

    /// A viewer's video: layer, estimate, switches (for `/api/stats/media`; not per packet).
    pub fn viewer_report(&self, id: ViewerId) -> Option<ViewerLayerReport> {
        let viewer = &self.viewers[self.viewer_index(id)?];
        let layer = viewer.current_layer();
        let (loss_permille, usual_loss_permille) = viewer.estimate.loss_permille();
        Some(ViewerLayerReport {
            layer,
            layer_name: layer.and_then(|l| self.layers.layers[usize::from(l)].name.clone()),
            layer_rank: layer.and_then(|l| self.layers.rank_of(l)).map(|r| r as u8),
            paused: viewer.is_paused(),
            estimate: viewer.estimate.current(),
            loss_permille,
            usual_loss_permille,
            switches: viewer.switches(),
            pauses: viewer.selector.pauses(),
            cap: viewer.cap,
        })
    }

    /// The host's layers being sent, lowest first, with how many viewers get each.
    pub fn layer_reports(&self) -> Vec<LayerReport> {
        self.layers
            .ranked()
            .iter()
            .enumerate()
            .map(|(rank, view)| {
                let layer = &self.layers.layers[usize::from(view.slot)];
                LayerReport {
                    slot: view.slot,
                    name: layer.name.clone(),
                    rank: rank as u8,
                    bitrate_bps: view.bitrate_bps,
                    size: layer.size,
                    viewers: self.viewers.iter().filter(|v| v.current_layer() == Some(view.slot)).count(),
                }
            })
            .collect()
    }

    /// Viewers whose video is paused for lack of bandwidth.
    pub fn paused_viewers(&self) -> usize {
        self.viewers.iter().filter(|v| v.is_paused()).count()
    }

    fn request_keyframe(&mut self, now: Instant, layer: u8) {
        if self.tracks[TrackKind::Video.index()].is_none() {
            return;
        }
        let Some(host_layer) = self.layers.layers.get_mut(usize::from(layer)) else {
            return;
        };
        if host_layer.requester.handle_request(now) {
            self.events.push_back(ForwarderEvent::RequestKeyframe { layer });
        }
    }

    fn viewer_index(&self, id: ViewerId) -> Option<usize> {
        self.viewers.iter().position(|v| v.id() == id)
    }
}
