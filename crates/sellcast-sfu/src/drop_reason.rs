//! Why a packet did not reach a viewer. The media path never errors or logs per packet;
//! it counts a reason, and operators read the counters.

/// A named reason for not forwarding one packet to one viewer (or at all).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// The packet's track is not (or no longer) published.
    NoTrack,
    /// A video packet arrived before the viewer had a keyframe to start from.
    WaitingForKeyframe,
    /// The viewer's bounded queue was full: the viewer is too slow.
    ViewerQueueFull,
    /// The viewer's transport is not connected yet.
    ViewerNotReady,
    /// A packet older than the viewer's starting point (late reordering across a re-anchor).
    TooOld,
}

impl DropReason {
    pub const ALL: [DropReason; 5] = [
        DropReason::NoTrack,
        DropReason::WaitingForKeyframe,
        DropReason::ViewerQueueFull,
        DropReason::ViewerNotReady,
        DropReason::TooOld,
    ];

    pub fn name(self) -> &'static str {
        match self {
            DropReason::NoTrack => "no_track",
            DropReason::WaitingForKeyframe => "waiting_for_keyframe",
            DropReason::ViewerQueueFull => "viewer_queue_full",
            DropReason::ViewerNotReady => "viewer_not_ready",
            DropReason::TooOld => "too_old",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Counters, one per [`DropReason`]. Plain integers: the owner of the forwarder is the only writer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DropCounters {
    counts: [u64; DropReason::ALL.len()],
}

impl DropCounters {
    pub fn record(&mut self, reason: DropReason) {
        self.counts[reason.index()] += 1;
    }

    pub fn get(&self, reason: DropReason) -> u64 {
        self.counts[reason.index()]
    }

    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Add another set of counters to these (a retired forwarder's, into its shard's total).
    pub fn add(&mut self, other: &DropCounters) {
        for (mine, theirs) in self.counts.iter_mut().zip(other.counts) {
            *mine += theirs;
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (DropReason, u64)> + '_ {
        DropReason::ALL.iter().map(|r| (*r, self.get(*r)))
    }
}
