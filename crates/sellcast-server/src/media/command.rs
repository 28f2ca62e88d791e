//! Messages from the HTTP side and the show tasks to the media driver, which alone owns peers
//! and rooms. Refusals come back as [`MediaError`], never as an HTTP type.

use std::sync::Arc;
use std::time::Instant;

use sellcast_room::{Class, Identity, ParticipantId};
use sellcast_sfu::LayerCap;
use tokio::sync::oneshot;

use super::error::MediaError;
use super::offer::{PublishPlan, SessionKind};
use crate::admission::SessionTicket;
use crate::http::offer_check::CheckedOffer;

/// Where a chat line was on its way through the server.
#[derive(Debug, Clone, Copy)]
pub struct ChatStamp {
    /// The media thread took the sender's frame off its data channel.
    pub read_at: Instant,
    /// The room's show task took it from its inbox.
    pub handled_at: Instant,
    /// The show task queued the line's `Deliver` for the media threads.
    pub queued_at: Instant,
}

/// A WHIP or WHEP session as the HTTP side knows it.
#[derive(Debug, Clone)]
pub struct SessionAnswer {
    /// Unguessable id used in the session's `Location` URL.
    pub session: String,
    pub sdp: String,
}

#[derive(Debug)]
pub enum Command {
    /// A host offers to publish (WHIP).
    Publish {
        room: String,
        identity: Identity,
        offer: CheckedOffer,
        plan: PublishPlan,
        /// The session's place under the caps; the peer keeps it, and it is freed with the
        /// peer (or with this command, if the offer is refused).
        ticket: SessionTicket,
        reply: oneshot::Sender<Result<SessionAnswer, MediaError>>,
    },
    /// A viewer offers to watch (WHEP).
    Watch {
        room: String,
        identity: Identity,
        offer: CheckedOffer,
        /// Another node pulling the room (`media::cascade`, with a relay token): it is sent
        /// every layer, one per video m-line it offered (`cascade::relay_layers`), or the top
        /// layer if it offered one, whatever its feedback says, and fans it out there.
        relay: bool,
        ticket: SessionTicket,
        reply: oneshot::Sender<Result<SessionAnswer, MediaError>>,
    },
    /// Write a frame on data channels: to one participant, or to everyone in the room.
    Deliver {
        room: String,
        to: Option<ParticipantId>,
        frame: Arc<str>,
        class: Class,
        /// When the data-channel frame this broadcast answers was read and handled (a chat
        /// line's), so the driver can time the chat path through the server (`chat_path`);
        /// `None` for anything else.
        since: Option<ChatStamp>,
    },
    /// Close a peer's session (a banned participant).
    Kick { peer: u64 },
    /// A viewer capped the video layer it is sent (its `video_cap` frame, checked by the room).
    VideoCap { peer: u64, cap: LayerCap },
    /// The room's task was restarted: join each of the room's open data channels to it again.
    Rejoin { room: String },
    /// Test hook: the shard's driver panics on this command.
    #[cfg(feature = "test-hooks")]
    InjectPanic { shard: usize, hold: Option<crate::supervision::RestartHold> },
    /// `DELETE` on a session URL.
    End {
        room: String,
        kind: SessionKind,
        session: String,
        reply: oneshot::Sender<Result<(), MediaError>>,
    },
}
