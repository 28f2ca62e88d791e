//! One room's forwarding decisions: the host's tracks in, every viewer's tracks out.
//!
//! The forwarder is owned by exactly one task (the room's media driver), so it needs no
//! locks; the driver calls it with packets and time, drains each viewer's queue into that
//! viewer's transport, and relays [`ForwarderEvent`]s to the host.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::codec::{Codec, TrackKind};
use crate::drop_reason::{DropCounters, DropReason};
use crate::keyframe_cache::KeyframeCache;
use crate::keyframe_requester::KeyframeRequester;
use crate::packet::MediaPacket;
use crate::viewer::{Offered, ViewerOut};

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
}

impl Default for ForwarderConfig {
    fn default() -> Self {
        Self {
            keyframe_request_interval: Duration::from_secs(1),
            viewer_queue_packets: 2048,
            keyframe_cache_packets: 1500,
            keyframe_cache_max_age: Duration::from_secs(3),
        }
    }
}

/// What the forwarder asks of the outside world.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForwarderEvent {
    /// Send a keyframe request (PLI) to the host's video track.
    RequestKeyframe,
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
    cache: KeyframeCache,
    requester: KeyframeRequester,
    viewers: Vec<ViewerOut>,
    drops: DropCounters,
    events: VecDeque<ForwarderEvent>,
    received: u64,
}

impl Forwarder {
    pub fn new(config: ForwarderConfig) -> Self {
        Self {
            cache: KeyframeCache::new(config.keyframe_cache_packets, config.keyframe_cache_max_age),
            requester: KeyframeRequester::new(config.keyframe_request_interval),
            config,
            tracks: [None, None],
            generation: 0,
            viewers: Vec::new(),
            drops: DropCounters::default(),
            events: VecDeque::new(),
            received: 0,
        }
    }

    /// A host went live with these codecs (at most one audio and one video).
    pub fn handle_publisher_start(&mut self, codecs: &[Codec]) {
        self.generation = self.generation.wrapping_add(1);
        self.tracks = [None, None];
        for codec in codecs {
            self.tracks[codec.kind().index()] = Some(TrackIn { codec: *codec });
        }
        self.cache.clear();
        self.requester.reset();
    }

    /// The host left. Viewers stay, their outgoing streams resume when a host returns.
    pub fn handle_publisher_end(&mut self) {
        self.tracks = [None, None];
        self.cache.clear();
        self.requester.reset();
    }

    /// The host's track restarted mid-session (e.g. new SSRC): treat as a new source.
    pub fn handle_source_reset(&mut self) {
        self.generation = self.generation.wrapping_add(1);
        self.cache.clear();
    }

    pub fn is_live(&self) -> bool {
        self.tracks.iter().any(Option::is_some)
    }

    pub fn codec(&self, kind: TrackKind) -> Option<Codec> {
        self.tracks[kind.index()].map(|t| t.codec)
    }

    /// One packet from the host: cache it if it is video, queue it for every ready viewer.
    pub fn handle_rtp(&mut self, now: Instant, packet: &MediaPacket) {
        let Some(track) = self.tracks[packet.kind.index()] else {
            self.drops.record(DropReason::NoTrack);
            return;
        };
        self.received += 1;
        let keyframe_start = track.codec.is_keyframe_start(&packet.payload);
        if packet.kind == TrackKind::Video {
            self.cache.handle_packet(packet, keyframe_start);
            if keyframe_start {
                self.requester.handle_keyframe();
            }
        }
        let mut needs_keyframe = false;
        for viewer in &mut self.viewers {
            let offered = viewer.offer(packet, self.generation, keyframe_start, false, &mut self.drops);
            needs_keyframe |= offered == Offered::NeedsKeyframe;
        }
        if needs_keyframe {
            self.request_keyframe(now);
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

    /// The viewer's transport is up: give it the cached keyframe group, or ask for a keyframe.
    pub fn handle_viewer_ready(&mut self, now: Instant, id: ViewerId) {
        let Some(i) = self.viewer_index(id) else {
            return;
        };
        let viewer = &mut self.viewers[i];
        viewer.set_ready();
        let Some(video) = self.tracks[TrackKind::Video.index()] else {
            return; // nobody live yet: the first keyframe will start this viewer
        };
        let mut replayed = false;
        if let Some(group) = self.cache.replayable(now) {
            for (n, packet) in group.iter().enumerate() {
                let key = n == 0 && video.codec.is_keyframe_start(&packet.payload);
                viewer.offer(packet, self.generation, key, true, &mut self.drops);
            }
            replayed = !viewer.is_waiting_for_keyframe();
        }
        if !replayed {
            self.request_keyframe(now);
        }
    }

    /// A viewer's decoder lost its picture (PLI/FIR from the viewer).
    pub fn handle_viewer_keyframe_request(&mut self, now: Instant) {
        if self.is_live() {
            self.request_keyframe(now);
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        if self.requester.handle_timeout(now) {
            self.events.push_back(ForwarderEvent::RequestKeyframe);
        }
    }

    /// When [`handle_timeout`](Self::handle_timeout) should next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.requester.poll_timeout()
    }

    pub fn poll_event(&mut self) -> Option<ForwarderEvent> {
        self.events.pop_front()
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

    /// Keyframe requests sent to hosts so far.
    pub fn keyframe_requests_sent(&self) -> u64 {
        self.requester.sent()
    }

    pub fn cached_keyframe_packets(&self) -> usize {
        self.cache.len()
    }

    fn request_keyframe(&mut self, now: Instant) {
        if self.tracks[TrackKind::Video.index()].is_none() {
            return;
        }
        if self.requester.handle_request(now) {
            self.events.push_back(ForwarderEvent::RequestKeyframe);
        }
    }

    fn viewer_index(&self, id: ViewerId) -> Option<usize> {
        self.viewers.iter().position(|v| v.id() == id)
    }
}
