//! The sans-IO forwarding core of sellcast.
//!
//! It owns, per room, what a selective forwarding unit must decide for every packet:
//! which viewers get it, under which sequence number and timestamp, what to replay to a
//! viewer who just joined, and when to ask the host for a keyframe.
//!
//! Its loop is driven from outside: the media driver calls `handle_*` with packets, joins and
//! the current time, then drains each viewer's queue and `poll_event` for upstream requests.
//!
//! It must never: open a socket, spawn a task, take a lock, read the clock, log per packet,
//! or allocate per forwarded packet (payloads are shared `Arc<[u8]>`, queues are preallocated).

mod bitrate_meter;
mod codec;
mod drop_reason;
mod estimate;
mod forwarder;
pub mod fuzzing;
mod host_layers;
mod keyframe_cache;
mod keyframe_requester;
mod layer_cap;
mod layer_selector;
mod munger;
mod nack_watch;
mod probe_target;
mod packet;
mod viewer;

pub use codec::{Codec, TrackKind};
pub use drop_reason::{DropCounters, DropReason};
pub use estimate::{Estimate, EstimateSource, ViewerEstimate};
pub use forwarder::{Forwarder, ForwarderConfig, ForwarderEvent, LayerReport, ViewerId, ViewerLayerReport};
pub use host_layers::MAX_LAYERS;
pub use layer_cap::LayerCap;
pub use layer_selector::{Choice, LayerSelector, LayerView, SelectorConfig};
pub use keyframe_cache::KeyframeCache;
pub use keyframe_requester::KeyframeRequester;
pub use munger::RtpMunger;
pub use packet::{MediaPacket, OutPacket};
pub use probe_target::ProbeTarget;
pub use viewer::ViewerOut;
