//! The interaction core of a live-selling room: chat, likes, highlighted products, flash
//! sales and one-tap buys, multiplexed on one data channel per participant.
//!
//! It owns the room's ordered event stream (`(epoch, seq)` on every broadcast, a replay buffer
//! for reconnects), admission of every frame (size, schema, role, rate), and the in-memory side
//! of commerce (stock reservations, per-user limits, a bounded cache of idempotent answers whose
//! source of truth is the store), and rate limits that follow the identity.
//!
//! Its loop is driven from outside: `handle_*` with frames, store results and ticks, all with
//! the current time as an argument; `poll_output` for frames to send and work to persist.
//! It must never do IO, read the clock, or acknowledge an order the store has not committed.

pub mod activity;
mod answer;
mod buy_admission;
mod catalog;
mod chat;
mod event_log;
pub mod fuzzing;
mod identity;
mod identity_limits;
mod likes;
pub mod money;
pub mod protocol;
mod rate_limit;
mod show;
pub mod show_info;
mod tally;
mod totals;

pub use answer::{Answer, CallId, Caller};
pub use buy_admission::{BuyAnswer, BuyItem, BuyOrder, BuyTicket};
pub use catalog::{check_image_url, ImageUrlError, Product, ProductDraft, Sale, SaleDraft, Variant, VariantDraft, MAX_IMAGE_URL, MAX_VARIANTS, MAX_VARIANT_LABEL};
pub use chat::ChatLimits;
pub use event_log::EventLog;
pub use identity::{Identity, ParticipantId, Role};
pub use identity_limits::{IdentityRates, Rate};
pub use likes::LikeCounter;
pub use protocol::{BuyRejection, ClientFrame, ErrorCode, FrameError, OrderLine, Position};
pub use rate_limit::TokenBucket;
pub use show::{Ban, Class, HostAction, Output, ShowLimits, Show, ShowRecord};
pub use show_info::{NameError, ShowInfo, ShowInfoError};
pub use tally::{RoomTally, BUY_OUTCOMES, ERROR_CODES};
pub use totals::{CurrencyAmount, OrderTotals, ProductSales, ShowTotals};
