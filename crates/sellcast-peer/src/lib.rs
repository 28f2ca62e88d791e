//! Synthetic WebRTC peers for sellcast, on the `webrtc` crate (webrtc-rs 0.21): a WHIP
//! publisher sending VP8-typed and Opus-typed RTP (not real video: payloads are sized and
//! marked like an encoder's, and carry a trailer with a counter and the send time), and WHEP
//! viewers that record what arrives. Tests use them to cross two independent WebRTC stacks;
//! the bench harness runs hundreds of viewers on a few threads.
//!
//! They never decode media and never reach beyond loopback: no ICE servers, loopback candidates
//! only.

mod counter_set;
mod feedback_counter;
#[cfg(test)]
mod loopback_tests;
mod peer;
mod publisher;
mod room_channel;
mod signalling;
mod socket_runtime;
mod trailer;
mod viewer;
mod vp8;

pub use publisher::{PublishOptions, Publisher, PublisherStats};
pub use counter_set::CounterSet;
pub use feedback_counter::FeedbackCounts;
pub use signalling::PeerError;
pub use trailer::{Trailer, TRAILER_LEN};
pub use viewer::{KindStats, Viewer, ViewerOptions, ViewerStats};
pub use vp8::{is_keyframe_start, FramePlan, KeyframeSchedule};
