//! The media plane: one UDP socket, one driver task owning every WebRTC peer and room.

pub mod command;
pub mod directory;
pub mod driver;
mod forward_clock;
mod inbox;
mod message_plan;
pub mod offer;
mod outbox;
pub mod peer;
pub mod room;

#[cfg(test)]
mod resend_tests;
