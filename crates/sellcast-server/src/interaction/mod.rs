//! The interaction plane: one task per room owning its [`sellcast_room::Show`], fed with
//! data-channel frames by the media driver and with calls by the HTTP API, persisting commerce
//! through the store before anything is acknowledged.

pub mod messages;
pub mod registry;
pub mod session_inbox;
pub mod store_client;
pub mod tally;
pub mod task;
