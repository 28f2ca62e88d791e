//! Synthetic WebRTC peers for sellcast, on the `webrtc` crate (webrtc-rs 0.21, kept to this
//! crate): a WHIP publisher sending VP8-typed and Opus-typed RTP (not real video: payloads are
//! sized and marked like an encoder's, and end with a trailer carrying a counter and the send
//! time), and WHEP viewers that record what arrives (and can open the room's data channel).
//! Tests use them to cross two independent WebRTC stacks; the bench runs hundreds of viewers.
//!
//! Loop: each peer is one webrtc-rs driver task on the caller's tokio runtime (no thread per
//! peer); a publisher adds two pacing tasks (video frames, audio packets), a viewer one reader
//! task per received track and one for its data channel. Readers record into a small locked
//! struct; `Viewer::inspect`/`stats` read it.
//!
//! Never: decode media, reach beyond loopback (no ICE servers, no mDNS, sockets bound to
//! 127.0.0.1), or panic on what the server sends (answers and frames are size-limited).

mod counter_set;
mod feedback_counter;
mod feedback_mode;
mod frame_tracker;
mod impaired_socket;
mod impairment;
mod janus;
mod kind_stats;
mod link_profile;
#[cfg(test)]
mod loopback_tests;
mod peer;
mod publisher;
mod remb_estimator;
mod room_channel;
mod rtx_tagger;
mod rtp_source;
mod signalling;
mod simulcast;
mod socket_runtime;
mod synthetic;
mod trailer;
mod viewer;
mod vp8;

pub use counter_set::CounterSet;
pub use feedback_counter::FeedbackCounts;
pub use peer::rsa_certificate;
pub use feedback_mode::FeedbackMode;
pub use frame_tracker::{FrameStats, FrameTracker};
pub use impairment::Impairment;
pub use link_profile::{LinkParseError, LinkProfile, Shaper};
pub use remb_estimator::RembEstimator;
pub use publisher::{PublishOptions, Publisher, PublisherStats};
pub use rtp_source::{RtpSource, RtpTargets};
pub use signalling::PeerError;
pub use simulcast::SimulcastLayer;
pub use trailer::{Trailer, TRAILER_LEN};
pub use kind_stats::KindStats;
pub use viewer::{Viewer, ViewerOptions, ViewerStats};
pub use vp8::{is_keyframe_start, FramePlan, KeyframeSchedule};
