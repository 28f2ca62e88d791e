//! What the media driver and the HTTP API tell a show task.

use sellcast_room::{
    Answer, Ban, BuyTicket, Caller, ClientFrame, FrameError, Identity, OrderLine, ParticipantId, Product, Role, Sale, ShowTotals,
};

use std::time::Instant;

use tokio::sync::oneshot;

use sellcast_room::ProductDraft;
use sellcast_store::BuyOutcome;

use super::store_client::StoreFailure;

/// A product change made over the HTTP API.
#[derive(Debug)]
pub enum CatalogOp {
    Create(ProductDraft),
    Update(i64, ProductDraft),
    Delete(i64),
}

/// A message to a show task.
#[derive(Debug)]
pub enum ShowMsg {
    /// A participant's data channel opened.
    Join { participant: ParticipantId, identity: Identity },
    Leave { participant: ParticipantId },
    /// A participant whose data channel was open when the room task restarted: join it again
    /// and greet it as a new channel would be (a `welcome` and, the epoch being new, a
    /// `snapshot`).
    Rejoin { participant: ParticipantId, identity: Identity },
    /// One data-channel frame, unparsed (the core checks size and schema). `read_at` is when
    /// the media thread took it off the channel: where the chat path measured by
    /// `media::chat_path` starts.
    Frame { participant: ParticipantId, bytes: Vec<u8>, read_at: Instant },
    /// A one-shot caller's frame (HTTP); the reply is the room's answer to it (for `buy`: the
    /// confirmation or rejection, once the store has answered).
    Call { identity: Identity, frame: ClientFrame, reply: oneshot::Sender<Answer> },
    /// Product management from the HTTP API (host only, checked by the caller).
    Catalog { op: CatalogOp, reply: oneshot::Sender<Result<Option<Product>, StoreFailure>> },
    /// The store finished a catalog change (internal).
    CatalogDone { result: Result<Option<Product>, StoreFailure>, reply: oneshot::Sender<Result<Option<Product>, StoreFailure>> },
    /// The store deleted a product (internal).
    ProductDeleted { product_id: i64, reply: oneshot::Sender<Result<Option<Product>, StoreFailure>> },
    /// A request of the room's HTTP API (`room_api`): a mirror sends it to the room's owner;
    /// a show task answers it as a local caller would be answered.
    RoomApi { request: super::room_api::RoomApiRequest, reply: oneshot::Sender<super::room_api::RoomApiReply> },
    /// Room state for the HTTP API.
    Sales { reply: oneshot::Sender<(Vec<Product>, Vec<Sale>)> },
    /// Whether `identity` coming with `role` is turned away (a ban binds roles below its placer's).
    IsBanned { identity: String, role: Role, reply: oneshot::Sender<bool> },
    /// The recent orders (oldest first) and the totals over every order, for staff.
    Orders { reply: oneshot::Sender<(Vec<OrderLine>, ShowTotals)> },
    /// The show's title, start, avatar and host name (public).
    ShowInfo { reply: oneshot::Sender<sellcast_room::ShowInfo> },
    /// The bans in force, for staff.
    Bans { reply: oneshot::Sender<Vec<(String, Ban)>> },
    /// The store finished a buy.
    BuyDone { ticket: BuyTicket, result: Result<BuyOutcome, StoreFailure> },
    /// The store finished a durable host action.
    Persisted { from: Caller, result: Result<Applied, FrameError> },
    /// Likes another node summed for its viewers in one tick (cluster mode, `across_nodes`).
    NodeLikes { count: u32 },
    /// A likes-total save finished (internal): a drain waits for the last one.
    LikesSaved,
    /// The server is draining: tell the participants to reconnect after `reconnect_after_ms`,
    /// take no new buys, and answer `done` with the participant count once no buy is left
    /// with the store.
    Drain { reconnect_after_ms: u64, done: oneshot::Sender<usize> },
    /// Test hook: the show task panics on this message.
    #[cfg(feature = "test-hooks")]
    InjectPanic { hold: Option<crate::supervision::RestartHold> },
}

/// A committed host action, ready to apply to the room.
#[derive(Debug)]
pub enum Applied {
    Pins(Vec<i64>),
    Sale(Sale),
    Ban(String, Option<i64>, Role),
    Unban(String),
    BlockedWords(Vec<String>),
    Show(sellcast_room::ShowInfo),
    Name { identity: String, name: String, host: bool },
    /// The show ended at this time, closing these sales.
    ShowEnded(i64, Vec<Sale>),
}
