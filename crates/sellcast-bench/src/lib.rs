//! The sellcast load harness as a library: the `sellcast-bench` binary drives it from the
//! command line, and the server's smoke test runs a small step of it in CI.
//!
//! It measures the server process alone (CPU from /proc/<pid>/stat, RSS), never the load
//! generator, and reports; it asserts nothing (tests do that).

pub mod attack;
pub mod chat;
pub mod cluster;
pub mod cluster_kills;
pub mod janus;
pub mod links;
pub mod media_stats;
pub mod nats_server;
pub mod plot;
pub mod priority;
pub mod proc_stats;
pub mod server;
pub mod soak;
pub mod step;
pub mod storm;
pub mod viewer_layers;
pub mod viewer_window;

pub use server::Target;
pub use janus::JanusTarget;
pub use step::{run_step, StepOptions, StepResult, System};
