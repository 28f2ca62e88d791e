//! The token an edge node shows its room's origin when it pulls the room (`media::cascade`).
//!
//! It is a JWT signed with the cluster's shared secret (`--jwt-secret`, the same on every
//! node), with our `iss` and `aud`, and its own claims: the room, the pulling node (`relay`)
//! and a short expiry. It carries no role or display name, so it is no viewer or host token,
//! and a viewer's token, which has no `relay` claim, is no relay token: the origin treats a
//! WHEP as a pull (a subscriber for a whole node, sent the top layer) only with this token.

use serde::{Deserialize, Serialize};

use crate::auth::{now_secs, Auth, AuthError};
use sellcast_room::{Identity, Role};

/// How long a relay token is good for: one pull's signalling, with room for clock skew.
const RELAY_TOKEN_SECS: u64 = 60;

/// The query an edge adds to its WHEP POST (`/whep/ROOM?relay`): "this is a pull".
pub const RELAY_QUERY: &str = "relay";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct RelayClaims {
    room: String,
    /// The pulling node's id, for the origin's logs.
    relay: String,
    sub: String,
    exp: u64,
}

/// A relay token for `room`, pulled by node `edge`.
pub fn mint(auth: &Auth, room: &str, edge: &str) -> Result<String, AuthError> {
    let claims = RelayClaims { room: room.to_string(), relay: edge.to_string(), sub: format!("relay:{edge}"), exp: now_secs() + RELAY_TOKEN_SECS };
    auth.sign(&claims)
}

/// Check a pull's `Authorization` header for `room`. The identity names the pulling node.
/// Dev mode has no guest relays: a pull always needs a token.
pub fn verify(auth: &Auth, authorization: Option<&str>, room: &str) -> Result<Identity, AuthError> {
    let claims: RelayClaims = auth.decode_checked(Auth::bearer(authorization)?)?;
    if claims.room != room {
        return Err(AuthError::WrongRoom);
    }
    let edge: String = claims.relay.chars().filter(|c| !c.is_control()).take(64).collect();
    Ok(Identity { id: format!("relay:{edge}"), name: format!("relay {edge}"), role: Role::Viewer })
}

/// Whether a WHEP query asks to pull the room (`relay` as a key, with or without a value).
pub fn asks_to_pull(query: &str) -> bool {
    query.split('&').any(|kv| kv == RELAY_QUERY || kv.starts_with("relay="))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Claims;

    const SECRET: &[u8] = b"a-test-secret-of-at-least-32-bytes!";

    #[test]
    fn a_relay_token_is_accepted_for_its_room_only() {
        let auth = Auth::new(SECRET).expect("a long enough secret");
        let token = mint(&auth, "shop", "node-b").expect("mint");
        let header = format!("Bearer {token}");
        let identity = verify(&auth, Some(&header), "shop").expect("accepted");
        assert_eq!(identity.id, "relay:node-b");
        assert_eq!(verify(&auth, Some(&header), "other"), Err(AuthError::WrongRoom));
        assert_eq!(verify(&auth, None, "shop"), Err(AuthError::Missing));
    }

    #[test]
    fn a_viewer_or_host_token_is_no_relay_token_and_another_secret_is_refused() {
        let auth = Auth::new(SECRET).expect("a long enough secret");
        let host = auth
            .mint(&Claims { room: "shop".into(), sub: "h".into(), name: "H".into(), role: Role::Host, exp: now_secs() + 60 })
            .expect("mint");
        assert!(matches!(verify(&auth, Some(&format!("Bearer {host}")), "shop"), Err(AuthError::Invalid(_))));
        let other = Auth::new(b"another-secret-also-32-bytes-long").expect("a long enough secret");
        let forged = mint(&other, "shop", "node-b").expect("mint");
        assert!(matches!(verify(&auth, Some(&format!("Bearer {forged}")), "shop"), Err(AuthError::Invalid(_))));
        let relay = mint(&auth, "shop", "node-b").expect("mint");
        assert!(auth.verify(Some(&format!("Bearer {relay}")), "shop", Role::Viewer).is_err(), "a relay token is no viewer token");
    }

    #[test]
    fn the_pull_query_is_recognised() {
        assert!(asks_to_pull("relay"));
        assert!(asks_to_pull("codec=vp8&relay=1"));
        assert!(!asks_to_pull("relayx=1"));
        assert!(!asks_to_pull(""));
    }
}
