//! The interaction plane: one task per room owning its [`sellcast_room::Show`], fed with
//! data-channel frames by the media driver and with calls by the HTTP API, persisting commerce
//! through the store before anything is acknowledged. In cluster mode a room owned by another
//! node is served by a mirror instead (`across_nodes`).

pub mod across_nodes;
pub mod messages;
pub mod registry;
pub mod room_api;
pub mod session_inbox;
pub mod store_client;
pub mod tally;
pub mod task;
