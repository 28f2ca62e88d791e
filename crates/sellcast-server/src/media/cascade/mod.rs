//! The media cascade (cluster mode): a viewer on a node that is not its room's origin (an
//! edge) is served by the edge, which pulls the room from the origin over WebRTC and fans it
//! out to its own viewers like a local host.
//!
//! The edge is a WHEP client of the origin ([`upstream`]), authenticated with a relay token
//! (`relay_token`); the origin counts it as one viewer and sends it every layer of the room's
//! video, one video m-line per layer ([`relay_layers`]). The
//! pulled packets go to every shard through the relay mesh, where each shard's mirror of the
//! room forwards them as it forwards a home shard's host: keyframe replay on join, NACKs from
//! each viewer's own cache, per-viewer sequence rewriting. The hub ([`hub`]) stands where a
//! home shard would: mirrors send it their keyframe requests, and it lets one per layer per
//! second go upstream ([`keyframe_gate`]). It starts a pull when a viewer arrives and stops it
//! once the room had no viewer on this node for a grace ([`pull_rule`]); a pull that fails is
//! tried again with backoff while viewers remain.
//!
//! Without `--cluster` the hub is never asked to pull and sits idle.

pub mod hub;
pub mod keyframe_gate;
pub mod pull_rule;
pub mod relay_layers;
pub mod upstream;

pub use hub::CascadeHub;
