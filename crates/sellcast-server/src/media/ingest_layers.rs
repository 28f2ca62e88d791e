//! Which layer of the host's video a packet belongs to: SSRCs mapped to the forwarding core's
//! layer slots.
//!
//! A host whose offer has no simulcast sends one video stream: one slot, and a new SSRC there
//! is its encoder restarting (a source reset: viewers re-anchor). A simulcast host (RFC 8853
//! rids) sends one SSRC per encoding: each new SSRC takes a free slot, named by its rid; a new
//! SSRC for a rid already held is that encoding restarting. A browser sends the rid only in
//! its first packets, so the transport's own SSRC-to-rid mapping is consulted as well.
//! An SSRC-only simulcast host (`a=ssrc-group:SIM`, no rids) declared its layers' SSRCs in
//! its offer: each takes the slot of its place in the group, named `sim0`, `sim1`...

use std::sync::Arc;

use sellcast_sfu::MAX_LAYERS;

/// What one video packet's SSRC means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Classified {
    /// A layer already known.
    Layer(u8),
    /// The first packet of a new layer: tell the forwarder its name.
    NewLayer(u8, Option<Arc<str>>),
    /// The source restarted (this packet is dropped; the next ones flow).
    Reset,
    /// An SSRC outside an SSRC-only simulcast's declared layers: dropped.
    Unknown,
}

#[derive(Debug, Default)]
pub struct IngestLayers {
    simulcast: bool,
    /// The SSRCs of an SSRC-only simulcast, in the offer's order (slot = index).
    sim: Vec<u32>,
    slots: [Option<(u32, Option<Arc<str>>)>; MAX_LAYERS],
}

impl IngestLayers {
    /// The offer's video has simulcast (`a=simulcast:send ...`).
    pub fn set_simulcast(&mut self, simulcast: bool) {
        self.simulcast = simulcast;
    }

    /// The host's offer declared SSRC-only simulcast with these layers (none: not so).
    pub fn set_sim_ssrcs(&mut self, ssrcs: &[u32]) {
        self.sim = ssrcs.iter().copied().take(MAX_LAYERS).collect();
    }

    pub fn is_simulcast(&self) -> bool {
        self.simulcast || !self.sim.is_empty()
    }

    /// The slot of a known SSRC, without classifying (the hot path's common case).
    pub fn slot_of(&self, ssrc: u32) -> Option<u8> {
        self.slots.iter().position(|s| s.as_ref().is_some_and(|(known, _)| *known == ssrc)).map(|i| i as u8)
    }

    /// The SSRC a slot is received on (keyframe requests are addressed to it).
    pub fn ssrc_of(&self, slot: u8) -> Option<u32> {
        self.slots.get(usize::from(slot))?.as_ref().map(|(ssrc, _)| *ssrc)
    }

    /// Classify a packet of an SSRC not in any slot; `rid` as the packet or the transport
    /// names it.
    pub fn classify_new(&mut self, ssrc: u32, rid: Option<&str>) -> Classified {
        if let Some(slot) = self.sim.iter().position(|s| *s == ssrc) {
            let name: Arc<str> = Arc::from(format!("sim{slot}"));
            self.slots[slot] = Some((ssrc, Some(name.clone())));
            return Classified::NewLayer(slot as u8, Some(name));
        }
        if !self.simulcast && !self.sim.is_empty() {
            // Not one of the declared layers (the offer's own SSRCs are fixed): not carried.
            return Classified::Unknown;
        }
        if !self.simulcast {
            let had = self.slots[0].replace((ssrc, None)).is_some();
            return if had { Classified::Reset } else { Classified::NewLayer(0, None) };
        }
        if let Some(rid) = rid {
            if let Some(slot) = self.slots.iter_mut().flatten().find(|(_, name)| name.as_deref() == Some(rid)) {
                slot.0 = ssrc;
                return Classified::Reset;
            }
        }
        let name: Option<Arc<str>> = rid.map(Arc::from);
        if let Some(free) = self.slots.iter().position(Option::is_none) {
            self.slots[free] = Some((ssrc, name.clone()));
            return Classified::NewLayer(free as u8, name);
        }
        // More SSRCs than layers and no rid to place this one: the sender started over.
        self.slots = Default::default();
        self.slots[0] = Some((ssrc, name));
        Classified::Reset
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_layer_hosts_reset_on_a_new_ssrc() {
        let mut l = IngestLayers::default();
        assert_eq!(l.classify_new(10, None), Classified::NewLayer(0, None));
        assert_eq!(l.slot_of(10), Some(0));
        assert_eq!(l.classify_new(11, None), Classified::Reset);
        assert_eq!((l.slot_of(10), l.slot_of(11)), (None, Some(0)));
    }

    #[test]
    fn simulcast_ssrcs_take_slots_by_rid_and_a_known_rid_is_a_restart() {
        let mut l = IngestLayers::default();
        l.set_simulcast(true);
        assert_eq!(l.classify_new(1, Some("f")), Classified::NewLayer(0, Some(Arc::from("f"))));
        assert_eq!(l.classify_new(2, Some("q")), Classified::NewLayer(1, Some(Arc::from("q"))));
        assert_eq!(l.classify_new(3, Some("h")), Classified::NewLayer(2, Some(Arc::from("h"))));
        assert_eq!((l.slot_of(1), l.slot_of(2), l.slot_of(3)), (Some(0), Some(1), Some(2)));
        assert_eq!(l.ssrc_of(1), Some(2));
        assert_eq!(l.classify_new(4, Some("q")), Classified::Reset, "q restarted on a new SSRC");
        assert_eq!(l.slot_of(4), Some(1));
        assert_eq!(l.classify_new(5, None), Classified::Reset, "a fourth stream with no rid");
        assert_eq!((l.slot_of(5), l.slot_of(1)), (Some(0), None));
    }

    #[test]
    fn ssrc_only_simulcast_places_each_declared_ssrc_at_its_place_in_the_group() {
        let mut l = IngestLayers::default();
        l.set_sim_ssrcs(&[100, 200, 300]);
        l.set_simulcast(false); // str0m sees no a=simulcast in such an offer
        assert!(l.is_simulcast());
        assert_eq!(l.classify_new(300, None), Classified::NewLayer(2, Some(Arc::from("sim2"))));
        assert_eq!(l.classify_new(100, None), Classified::NewLayer(0, Some(Arc::from("sim0"))));
        assert_eq!(l.classify_new(200, None), Classified::NewLayer(1, Some(Arc::from("sim1"))));
        assert_eq!((l.slot_of(100), l.slot_of(200), l.slot_of(300)), (Some(0), Some(1), Some(2)));
        assert_eq!(l.classify_new(400, None), Classified::Unknown, "an undeclared SSRC is no restart");
        assert_eq!(l.slot_of(300), Some(2));
    }
}
