//! Who is talking: the identity a verified token gives a session. The core never sees tokens,
//! only what they proved.

use serde::{Deserialize, Serialize};

/// What a participant may do in a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Viewer,
    Moderator,
    Host,
}

impl Role {
    pub fn can_moderate(self) -> bool {
        matches!(self, Role::Moderator | Role::Host)
    }

    pub fn can_run_show(self) -> bool {
        self == Role::Host
    }
}

/// A participant as others see it: stamped by the server on everything they send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// Stable user id from the token (`sub`).
    pub id: String,
    /// Display name from the token.
    pub name: String,
    pub role: Role,
}

/// One connected session (a data channel, or an HTTP caller) within the room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct ParticipantId(pub u64);
