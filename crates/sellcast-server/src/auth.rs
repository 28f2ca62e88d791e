//! Who may publish, watch and act: HS256 JWTs carrying room, identity, display name, role and
//! expiry, issued by and for sellcast (`iss` and `aud` are [`ISSUER`] and [`AUDIENCE`], checked
//! on every token). A token is read only from the `Authorization: Bearer` header, never from a
//! URL, so it stays out of access logs, `Referer` headers and browser history.
//!
//! Secrets are at least [`MIN_SECRET_BYTES`] long. Without one the server runs in dev mode: it
//! signs with a secret kept in the data directory (`dev_secret`), hands out guest tokens to the
//! pages, and treats a request without a token as a guest. That is only allowed on a loopback
//! address or with an explicit `--dev` ([`Auth::for_server`] decides), because on a public
//! address it hands anyone a host token.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use sellcast_room::{Identity, Role};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::dev_secret::{self, DevSecretError};

/// The `iss` every sellcast token carries and every check requires.
pub const ISSUER: &str = "sellcast";
/// The `aud` every sellcast token carries and every check requires.
pub const AUDIENCE: &str = "sellcast";
/// Shortest HS256 secret accepted: 256 bits, the size of the hash, so a guessed or brute-forced
/// secret is out of reach.
pub const MIN_SECRET_BYTES: usize = 32;

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

/// A secret the server cannot sign with.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum SecretError {
    #[error("the JWT secret is {len} bytes long; it must be at least {MIN_SECRET_BYTES} (make one with `openssl rand -base64 48`)")]
    TooShort { len: usize },
}

/// Why the server cannot start with the authentication it was given.
#[derive(Debug, Error)]
pub enum AuthSetupError {
    #[error(
        "no JWT secret and --http {0} is not a loopback address: without a secret anyone could get a host token. \
         Set --jwt-secret or SELLCAST_JWT_SECRET (at least {MIN_SECRET_BYTES} bytes, e.g. `openssl rand -base64 48`), \
         or pass --dev to run the open dev mode on a trusted network"
    )]
    NoSecretOnPublicAddress(SocketAddr),
    #[error("--jwt-secret / SELLCAST_JWT_SECRET: {0}")]
    Secret(#[from] SecretError),
    #[error(transparent)]
    DevSecret(#[from] DevSecretError),
}

/// What a token says beyond its [`Claims`]: who issued it and for whom.
#[derive(Serialize)]
struct Signed<'a> {
    #[serde(flatten)]
    claims: &'a Claims,
    iss: &'static str,
    aud: &'static str,
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
    /// Production: tokens signed with `secret`, no guests.
    pub fn new(secret: &[u8]) -> Result<Self, SecretError> {
        Self::with_secret(secret, false)
    }

    /// Dev mode: guest tokens for the asking and guests without a token, signed with `secret`.
    pub fn dev(secret: &[u8]) -> Result<Self, SecretError> {
        Self::with_secret(secret, true)
    }

    fn with_secret(secret: &[u8], dev_mode: bool) -> Result<Self, SecretError> {
        if secret.len() < MIN_SECRET_BYTES {
            return Err(SecretError::TooShort { len: secret.len() });
        }
        Ok(Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            dev_mode,
        })
    }

    /// The server's authentication: the configured secret; else dev mode with the secret kept in
    /// `data_dir`, allowed only when `http` is a loopback address or `dev` was asked for.
    pub fn for_server(secret: Option<&str>, dev: bool, http: SocketAddr, data_dir: &Path) -> Result<Self, AuthSetupError> {
        if let Some(secret) = secret {
            return Ok(Self::new(secret.as_bytes())?);
        }
        if !dev && !http.ip().to_canonical().is_loopback() {
            return Err(AuthSetupError::NoSecretOnPublicAddress(http));
        }
        let secret = dev_secret::load_or_create(data_dir)?;
        Ok(Self::dev(&secret)?)
    }

    pub fn dev_mode(&self) -> bool {
        self.dev_mode
    }

    pub fn mint(&self, claims: &Claims) -> Result<String, AuthError> {
        let signed = Signed { claims, iss: ISSUER, aud: AUDIENCE };
        encode(&Header::new(Algorithm::HS256), &signed, &self.encoding).map_err(|e| AuthError::Invalid(e.to_string()))
    }

    /// Verify `authorization` (the `Authorization` header's value; the only place a token is read) for `room`, needing at least `min_role`.
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

    /// Sign any claims with the server's secret, with our `iss` and `aud` (relay tokens).
    pub(crate) fn sign<T: Serialize>(&self, claims: &T) -> Result<String, AuthError> {
        #[derive(Serialize)]
        struct Wrapped<'a, T> {
            #[serde(flatten)]
            claims: &'a T,
            iss: &'static str,
            aud: &'static str,
        }
        let signed = Wrapped { claims, iss: ISSUER, aud: AUDIENCE };
        encode(&Header::new(Algorithm::HS256), &signed, &self.encoding).map_err(|e| AuthError::Invalid(e.to_string()))
    }

    /// Check a token's signature, expiry, issuer and audience, and read its claims as `T`.
    pub(crate) fn decode_checked<T: serde::de::DeserializeOwned>(&self, token: &str) -> Result<T, AuthError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_required_spec_claims(&["exp", "sub", "iss", "aud"]);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.leeway = 5;
        decode::<T>(token, &self.decoding, &validation).map(|d| d.claims).map_err(|e| AuthError::Invalid(e.to_string()))
    }

    /// The token of an `Authorization: Bearer` header value.
    pub(crate) fn bearer(authorization: Option<&str>) -> Result<&str, AuthError> {
        let header = authorization.ok_or(AuthError::Missing)?;
        Ok(header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .ok_or(AuthError::Missing)?
            .trim())
    }

    fn verify_token(&self, token: &str, room: &str, min_role: Role) -> Result<Identity, AuthError> {
        let c: Claims = self.decode_checked(token)?;
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

    const SECRET: &[u8] = b"a-test-secret-of-at-least-32-bytes!";

    fn claims(role: Role, room: &str, exp: u64) -> Claims {
        Claims { room: room.into(), sub: "alice".into(), name: "Alice".into(), role, exp }
    }

    fn bearer(token: &str) -> String {
        format!("Bearer {token}")
    }

    /// A token signed with `secret` carrying exactly `extra` besides valid claims.
    fn raw_token(secret: &[u8], extra: serde_json::Value) -> String {
        let mut body = serde_json::to_value(claims(Role::Host, "shop", now_secs() + 60)).expect("claims as JSON");
        if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
            body.extend(extra.clone());
        }
        encode(&Header::new(Algorithm::HS256), &body, &EncodingKey::from_secret(secret)).expect("encode")
    }

    #[test]
    fn roles_rooms_and_expiry_are_enforced() {
        let auth = Auth::new(SECRET).expect("a long enough secret");
        let host = auth.mint(&claims(Role::Host, "shop", now_secs() + 60)).expect("mint");
        let viewer = auth.mint(&claims(Role::Viewer, "shop", now_secs() + 60)).expect("mint");
        assert_eq!(auth.verify(Some(&bearer(&host)), "shop", Role::Host).map(|i| i.role), Ok(Role::Host));
        assert_eq!(auth.verify(Some(&bearer(&host)), "shop", Role::Viewer).map(|i| i.role), Ok(Role::Host), "host can watch");
        assert_eq!(auth.verify(Some(&bearer(&viewer)), "shop", Role::Host), Err(AuthError::Insufficient(Role::Host)));
        assert_eq!(auth.verify(Some(&bearer(&viewer)), "other", Role::Viewer), Err(AuthError::WrongRoom));
        assert_eq!(auth.verify(None, "shop", Role::Viewer), Err(AuthError::Missing), "no guests outside dev mode");
        let expired = auth.mint(&claims(Role::Viewer, "shop", now_secs() - 3600)).expect("mint");
        assert!(matches!(auth.verify(Some(&bearer(&expired)), "shop", Role::Viewer), Err(AuthError::Invalid(_))));
        let other = Auth::new(b"another-secret-also-32-bytes-long").expect("a long enough secret");
        let forged = other.mint(&claims(Role::Host, "shop", now_secs() + 60)).expect("mint");
        assert!(matches!(auth.verify(Some(&bearer(&forged)), "shop", Role::Host), Err(AuthError::Invalid(_))));
        assert!(matches!(auth.verify(Some("Bearer garbage"), "shop", Role::Viewer), Err(AuthError::Invalid(_))));
    }

    #[test]
    fn minted_tokens_carry_the_sellcast_issuer_and_audience() {
        let auth = Auth::new(SECRET).expect("a long enough secret");
        let token = auth.mint(&claims(Role::Viewer, "shop", now_secs() + 60)).expect("mint");
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_audience(&[AUDIENCE]);
        let data = decode::<serde_json::Value>(&token, &DecodingKey::from_secret(SECRET), &validation).expect("decode");
        assert_eq!(data.claims["iss"], ISSUER);
        assert_eq!(data.claims["aud"], AUDIENCE);
    }

    #[test]
    fn a_token_for_another_audience_or_issuer_is_refused() {
        let auth = Auth::new(SECRET).expect("a long enough secret");
        let right = raw_token(SECRET, serde_json::json!({ "iss": ISSUER, "aud": AUDIENCE }));
        assert_eq!(auth.verify(Some(&bearer(&right)), "shop", Role::Host).map(|i| i.role), Ok(Role::Host), "the same claims with the right iss/aud pass");
        let cases = [
            ("another audience", serde_json::json!({ "iss": ISSUER, "aud": "billing" })),
            ("another issuer", serde_json::json!({ "iss": "someone-else", "aud": AUDIENCE })),
            ("no audience", serde_json::json!({ "iss": ISSUER })),
            ("no issuer", serde_json::json!({ "aud": AUDIENCE })),
            ("neither", serde_json::json!({})),
        ];
        for (what, extra) in cases {
            let token = raw_token(SECRET, extra);
            assert!(matches!(auth.verify(Some(&bearer(&token)), "shop", Role::Host), Err(AuthError::Invalid(_))), "{what} was accepted");
        }
    }

    #[test]
    fn a_secret_shorter_than_32_bytes_is_refused() {
        assert_eq!(Auth::new(b"test-secret").err(), Some(SecretError::TooShort { len: 11 }));
        assert_eq!(Auth::new(&[7u8; MIN_SECRET_BYTES - 1]).err(), Some(SecretError::TooShort { len: 31 }));
        assert!(Auth::new(&[7u8; MIN_SECRET_BYTES]).is_ok());
        assert!(Auth::dev(b"short").is_err(), "dev mode has the same floor");
        let public: SocketAddr = "192.0.2.1:8080".parse().expect("an address");
        let dir = tempfile::tempdir().expect("tempdir");
        let refused = Auth::for_server(Some("test-secret"), false, public, dir.path());
        assert!(matches!(refused, Err(AuthSetupError::Secret(SecretError::TooShort { len: 11 }))), "{refused:?}");
    }

    #[test]
    fn without_a_secret_only_loopback_or_an_explicit_dev_flag_runs_dev_mode() {
        let dir = tempfile::tempdir().expect("tempdir");
        let at = |addr: &str| addr.parse::<SocketAddr>().expect("an address");
        for public in ["0.0.0.0:8080", "192.0.2.1:0", "[::]:8080", "[2001:db8::1]:443"] {
            let refused = Auth::for_server(None, false, at(public), dir.path());
            assert!(matches!(refused, Err(AuthSetupError::NoSecretOnPublicAddress(_))), "{public}: {refused:?}");
            let dev = Auth::for_server(None, true, at(public), dir.path()).expect("--dev allows it");
            assert!(dev.dev_mode());
        }
        for loopback in ["127.0.0.1:8080", "127.8.0.1:0", "[::1]:8080", "[::ffff:127.0.0.1]:80"] {
            assert!(Auth::for_server(None, false, at(loopback), dir.path()).expect(loopback).dev_mode());
        }
        let with_secret = Auth::for_server(Some(std::str::from_utf8(SECRET).expect("ASCII")), false, at("0.0.0.0:80"), dir.path());
        assert!(!with_secret.expect("a secret runs anywhere").dev_mode());
    }

    #[test]
    fn dev_mode_admits_guests() {
        let auth = Auth::dev(SECRET).expect("a long enough secret");
        let guest = auth.verify(None, "shop", Role::Viewer).expect("guest");
        assert!(guest.id.starts_with("guest-"));
        assert_eq!(guest.role, Role::Viewer);
    }
}
