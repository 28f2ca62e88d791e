//! Who may publish, watch and act: HS256 JWTs carrying room, identity, display name, role and
//! expiry. With no secret configured the server runs in dev mode: it signs with a random
//! per-process secret, hands out guest tokens to the pages, and treats a request without a
//! token as a guest — convenient on a laptop, and loudly logged because it is not for production.

use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use sellcast_room::{Identity, Role};
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// The token's claims.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    /// Room the token is valid for; `*` for any room.
    pub room: String,
    /// Stable identity.
    pub sub: String,
    /// Display name shown in chat.
    pub name: String,
    pub role: Role,
    /// Expiry, seconds since the UNIX epoch.
    pub exp: u64,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum AuthError {
    #[error("a bearer token is required")]
    Missing,
    #[error("invalid token: {0}")]
    Invalid(String),
    #[error("the token is for another room")]
    WrongRoom,
    #[error("this needs a {0:?} token")]
    Insufficient(Role),
    #[error("banned from this room")]
    Banned,
}

pub struct Auth {
    encoding: EncodingKey,
    decoding: DecodingKey,
    dev_mode: bool,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth").field("dev_mode", &self.dev_mode).finish_non_exhaustive()
    }
}

pub fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

impl Auth {
    /// `secret: None` is dev mode.
    pub fn new(secret: Option<&[u8]>) -> Self {
        let (secret, dev_mode) = match secret {
            Some(s) => (s.to_vec(), false),
            None => {
                let mut random = [0u8; 32];
                // If the OS RNG fails, dev mode still works with a fixed per-process value.
                let _ = getrandom::fill(&mut random);
                (random.to_vec(), true)
            }
        };
        Self {
            encoding: EncodingKey::from_secret(&secret),
            decoding: DecodingKey::from_secret(&secret),
            dev_mode,
        }
    }

    pub fn dev_mode(&self) -> bool {
        self.dev_mode
    }

    pub fn mint(&self, claims: &Claims) -> Result<String, AuthError> {
        encode(&Header::new(Algorithm::HS256), claims, &self.encoding).map_err(|e| AuthError::Invalid(e.to_string()))
    }

    /// Verify `authorization` (the header value) for `room`, needing at least `min_role`.
    /// In dev mode a missing header is a guest of exactly `min_role`.
    pub fn verify(&self, authorization: Option<&str>, room: &str, min_role: Role) -> Result<Identity, AuthError> {
        let Some(header) = authorization else {
            if self.dev_mode {
                return Ok(guest(min_role));
            }
            return Err(AuthError::Missing);
        };
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .ok_or(AuthError::Missing)?
            .trim();
        self.verify_token(token, room, min_role)
    }

    pub fn verify_token(&self, token: &str, room: &str, min_role: Role) -> Result<Identity, AuthError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_required_spec_claims(&["exp", "sub"]);
        validation.leeway = 5;
        let data = decode::<Claims>(token, &self.decoding, &validation).map_err(|e| AuthError::Invalid(e.to_string()))?;
        let c = data.claims;
        if c.room != room && c.room != "*" {
            return Err(AuthError::WrongRoom);
        }
        if c.role < min_role {
            return Err(AuthError::Insufficient(min_role));
        }
        let name: String = c.name.chars().filter(|ch| !ch.is_control()).take(40).collect();
        let id: String = c.sub.chars().take(128).collect();
        Ok(Identity { id, name, role: c.role })
    }
}

fn guest(role: Role) -> Identity {
    let mut n = [0u8; 3];
    let _ = getrandom::fill(&mut n);
    let tag = format!("{:02x}{:02x}{:02x}", n[0], n[1], n[2]);
    Identity {
        id: format!("guest-{tag}"),
        name: format!("Guest {tag}"),
        role,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(role: Role, room: &str, exp: u64) -> Claims {
        Claims { room: room.into(), sub: "alice".into(), name: "Alice".into(), role, exp }
    }

    #[test]
    fn roles_rooms_and_expiry_are_enforced() {
        let auth = Auth::new(Some(b"test-secret"));
        let host = auth.mint(&claims(Role::Host, "shop", now_secs() + 60)).expect("mint");
        let viewer = auth.mint(&claims(Role::Viewer, "shop", now_secs() + 60)).expect("mint");
        let bearer = |t: &str| format!("Bearer {t}");
        assert_eq!(auth.verify(Some(&bearer(&host)), "shop", Role::Host).map(|i| i.role), Ok(Role::Host));
        assert_eq!(auth.verify(Some(&bearer(&host)), "shop", Role::Viewer).map(|i| i.role), Ok(Role::Host), "host can watch");
        assert_eq!(auth.verify(Some(&bearer(&viewer)), "shop", Role::Host), Err(AuthError::Insufficient(Role::Host)));
        assert_eq!(auth.verify(Some(&bearer(&viewer)), "other", Role::Viewer), Err(AuthError::WrongRoom));
        assert_eq!(auth.verify(None, "shop", Role::Viewer), Err(AuthError::Missing), "no guests outside dev mode");
        let expired = auth.mint(&claims(Role::Viewer, "shop", now_secs() - 3600)).expect("mint");
        assert!(matches!(auth.verify(Some(&bearer(&expired)), "shop", Role::Viewer), Err(AuthError::Invalid(_))));
        let forged = Auth::new(Some(b"other-secret")).mint(&claims(Role::Host, "shop", now_secs() + 60)).expect("mint");
        assert!(matches!(auth.verify(Some(&bearer(&forged)), "shop", Role::Host), Err(AuthError::Invalid(_))));
        assert!(matches!(auth.verify(Some("Bearer garbage"), "shop", Role::Viewer), Err(AuthError::Invalid(_))));
    }

    #[test]
    fn dev_mode_admits_guests() {
        let auth = Auth::new(None);
        let guest = auth.verify(None, "shop", Role::Viewer).expect("guest");
        assert!(guest.id.starts_with("guest-"));
        assert_eq!(guest.role, Role::Viewer);
    }
}
