//! One viewer's outgoing side: a munger per track and a bounded queue the driver drains.
//!
//! The queue is what isolates a slow viewer: when it is full, this viewer alone loses its
//! queued packets and restarts from the next keyframe; the host and other viewers never wait.

use std::collections::VecDeque;
use std::time::Instant;

use crate::codec::TrackKind;
use crate::drop_reason::{DropCounters, DropReason};
use crate::estimate::ViewerEstimate;
use crate::forwarder::ViewerId;
use crate::layer_cap::LayerCap;
use crate::layer_selector::{Choice, LayerSelector};
use crate::munger::RtpMunger;
use crate::packet::{MediaPacket, OutPacket};
use crate::probe_target::ProbeTarget;

/// What offering a packet to a viewer led to, beyond the packet itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Offered {
    Queued,
    Dropped,
    /// A video packet of a layer this viewer is not being sent (not a loss: another choice).
    Skipped,
    /// The viewer overflowed and now waits for a keyframe: ask the host for one.
    NeedsKeyframe,
}

#[derive(Debug)]
pub struct ViewerOut {
    id: ViewerId,
    ready: bool,
    mungers: [RtpMunger; 2],
    waiting_for_keyframe: bool,
    queue: VecDeque<OutPacket>,
    max_queue: usize,
    forwarded: u64,
    /// The host layer (slot) whose packets this viewer is being sent now; `None` before its
    /// first keyframe and while paused. The selector's choice may differ until the chosen
    /// layer's next keyframe, where the switch happens.
    current_layer: Option<u8>,
    pub(crate) selector: LayerSelector,
    pub(crate) estimate: ViewerEstimate,
    pub(crate) cap: LayerCap,
    /// What was last asked of the transport's estimator, to say it once.
    pub(crate) probe: ProbeTarget,
    switches: u64,
    /// The video started on a layer (a join, a switch, a resume) since the estimator was last
    /// told: its keyframe went out as a burst.
    layer_started: bool,
    /// That start was a climb from a lower layer: not a join or a resume, which replay a cached
    /// keyframe group (a burst of seconds of video whose repair NACKs for long after), nor a
    /// step down, after which the viewer still NACKs what the overflow lost.
    climbed: bool,
}

impl ViewerOut {
    pub(crate) fn new(id: ViewerId, max_queue: usize) -> Self {
        // Start each outgoing stream at a seq derived from the id: distinct per viewer,
        // below 2^15 so even a long session stays clear of ROC signalling trouble at start.
        let base = (id.0.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 49) as u16;
        Self {
            id,
            ready: false,
            // Clock rates are fixed per kind: Opus is 48 kHz, VP8 and H264 90 kHz.
            mungers: [
                RtpMunger::new(48_000, base),
                RtpMunger::new(90_000, base ^ 0x2a5),
            ],
            waiting_for_keyframe: true,
            queue: VecDeque::with_capacity(64),
            max_queue,
            forwarded: 0,
            current_layer: None,
            selector: LayerSelector::default(),
            estimate: ViewerEstimate::default(),
            cap: LayerCap::default(),
            probe: ProbeTarget::default(),
            switches: 0,
            layer_started: false,
            climbed: false,
        }
    }

    pub fn id(&self) -> ViewerId {
        self.id
    }

    pub fn is_ready(&self) -> bool {
        self.ready
    }

    pub(crate) fn set_ready(&mut self) {
        self.ready = true;
    }

    /// Offer one host packet. `generation` identifies the host session the packet belongs to.
    pub(crate) fn offer(
        &mut self,
        packet: &MediaPacket,
        generation: u32,
        keyframe_start: bool,
        replay: bool,
        drops: &mut DropCounters,
    ) -> Offered {
        if !self.ready {
            drops.record(DropReason::ViewerNotReady);
            return Offered::Dropped;
        }
        let kind = packet.kind;
        let video = kind == TrackKind::Video;
        if video && self.current_layer != Some(packet.layer) {
            // Only the chosen layer's keyframe starts (or switches) this viewer's video; the
            // outgoing numbers continue across the switch through a re-anchor.
            if self.selector.choice() != Some(Choice::Layer(packet.layer)) || !keyframe_start {
                return Offered::Skipped;
            }
            if self.current_layer.is_some() {
                self.switches += 1;
            }
            self.climbed = self.current_layer.is_some() && self.selector.climbed_last();
            self.current_layer = Some(packet.layer);
            self.layer_started = true;
            self.mungers[kind.index()].unanchor();
        }
        let munger = &mut self.mungers[kind.index()];
        if video && (self.waiting_for_keyframe || !munger.is_anchored_to(generation)) {
            if !keyframe_start {
                self.waiting_for_keyframe = true;
                drops.record(DropReason::WaitingForKeyframe);
                return Offered::Dropped;
            }
            munger.anchor(generation, packet);
            self.waiting_for_keyframe = false;
        } else if !video && !munger.is_anchored_to(generation) {
            munger.anchor(generation, packet);
        }
        let (seq, timestamp) = match munger.rewrite(packet) {
            Ok(numbers) => numbers,
            Err(reason) => {
                drops.record(reason);
                return Offered::Dropped;
            }
        };
        if self.queue.len() >= self.max_queue {
            self.overflow(kind, seq, drops);
            return Offered::NeedsKeyframe;
        }
        self.queue.push_back(OutPacket {
            kind,
            seq,
            timestamp,
            marker: packet.marker,
            payload: packet.payload.clone(),
            arrival: packet.arrival,
            replay,
        });
        Offered::Queued
    }

    /// The queue is full: drop it whole, reuse the dropped numbers, restart video at a keyframe.
    /// `rejected_kind`/`rejected_seq` describe the packet that did not fit (already numbered).
    fn overflow(&mut self, rejected_kind: TrackKind, rejected_seq: u64, drops: &mut DropCounters) {
        for kind in [TrackKind::Audio, TrackKind::Video] {
            let first_queued = self.queue.iter().find(|p| p.kind == kind).map(|p| p.seq);
            let first_unsent = match (first_queued, kind == rejected_kind) {
                (Some(seq), _) => Some(seq),
                (None, true) => Some(rejected_seq),
                (None, false) => None,
            };
            let m = &mut self.mungers[kind.index()];
            if let Some(seq) = first_unsent {
                m.rewind_to(seq);
            }
            m.unanchor();
        }
        for _ in 0..=self.queue.len() {
            drops.record(DropReason::ViewerQueueFull);
        }
        self.queue.clear();
        self.waiting_for_keyframe = true;
    }

    /// The next packet to send to this viewer.
    pub fn pop_packet(&mut self) -> Option<OutPacket> {
        let p = self.queue.pop_front()?;
        self.forwarded += 1;
        Some(p)
    }

    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Packets handed to the transport so far.
    pub fn forwarded(&self) -> u64 {
        self.forwarded
    }

    pub fn is_waiting_for_keyframe(&self) -> bool {
        self.waiting_for_keyframe
    }

    /// The host layer (slot) being sent to this viewer now, if any.
    pub fn current_layer(&self) -> Option<u8> {
        self.current_layer
    }

    /// The selector chose a layer other than the one being sent (a switch waits for that
    /// layer's keyframe), or chose none. A pause takes effect at once.
    pub(crate) fn handle_choice(&mut self, choice: Choice) {
        if choice == Choice::Paused {
            self.current_layer = None;
            self.mungers[TrackKind::Video.index()].unanchor();
        }
    }

    /// The layer this viewer waits for a keyframe of: its chosen layer when that is not the
    /// one being sent (a start or a switch), its current one when it lost its picture.
    pub(crate) fn awaited_layer(&self) -> Option<u8> {
        match self.selector.choice() {
            Some(Choice::Layer(slot)) if self.current_layer != Some(slot) => Some(slot),
            _ if self.waiting_for_keyframe => self.current_layer,
            _ => None,
        }
    }

    /// Tell the estimator, once, that the video started on a layer since it was last told.
    pub(crate) fn note_layer_start(&mut self, now: Instant) {
        if std::mem::take(&mut self.layer_started) {
            self.estimate.handle_layer_start(now, std::mem::take(&mut self.climbed));
        }
    }

    /// Layer switches made (at a keyframe), not counting the first layer.
    pub fn switches(&self) -> u64 {
        self.switches
    }

    pub fn is_paused(&self) -> bool {
        self.selector.choice() == Some(Choice::Paused)
    }
}
