//! The media plane: one driver thread per shard, each with its own UDP socket, owning its
//! peers and its part of every room; host packets reach the other shards through `relay`.

pub mod cascade;
mod chat_path;
pub mod command;
pub mod status_board;
pub mod driver;
pub mod error;
mod forward_latency;
mod inbox;
pub mod ingest_layers;
pub mod lifetime;
mod message_plan;
pub mod offer;
mod outbox;
pub mod peer;
pub mod relay;
pub mod shard_room;
pub mod stun_route;
pub mod tcp;
pub mod router;
pub(crate) mod rtp_in;
pub(crate) mod shard;
pub mod video_format;

#[cfg(test)]
mod memory_pair;
#[cfg(test)]
mod resend_tests;
#[cfg(test)]
mod sim_ingest_tests;
#[cfg(test)]
mod negotiation_tests;
