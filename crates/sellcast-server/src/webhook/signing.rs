//! How a webhook delivery is signed, and how a receiver checks it.
//!
//! The signed material is `{timestamp}.{body}`: the Unix time in seconds sent in
//! `X-Sellcast-Timestamp`, a dot, then the raw body bytes. The signature is
//! `sha256=` and the lowercase hex of HMAC-SHA256 over that material with the shared secret.
//! Binding the timestamp lets a receiver refuse a replayed delivery older than its tolerance
//! (a replay cannot change the timestamp without breaking the signature).

use ring::hmac;

/// The header carrying the signature.
pub const SIGNATURE_HEADER: &str = "x-sellcast-signature";
/// The header carrying the timestamp the signature covers (Unix seconds).
pub const TIMESTAMP_HEADER: &str = "x-sellcast-timestamp";
/// The header carrying the order id: the same on every attempt, so a receiver can drop repeats.
pub const DELIVERY_HEADER: &str = "x-sellcast-delivery";

/// `sha256=<hex>` of HMAC-SHA256(`secret`, `{timestamp}.{body}`).
pub fn sign(secret: &[u8], timestamp: u64, body: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    let mut ctx = hmac::Context::with_key(&key);
    ctx.update(timestamp.to_string().as_bytes());
    ctx.update(b".");
    ctx.update(body);
    format!("sha256={}", hex(ctx.sign().as_ref()))
}

/// Why a receiver refuses a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("the signature header is not sha256=<64 hex digits>")]
    Malformed,
    #[error("the signature does not match the body and timestamp")]
    Mismatch,
    #[error("the timestamp is outside the tolerance (a replay, or a clock far off)")]
    Stale,
}

/// What a receiver does: check `signature` over `timestamp` and `body`, in constant time, and
/// refuse a timestamp more than `tolerance_secs` away from `now_secs`.
pub fn verify(secret: &[u8], timestamp: u64, body: &[u8], signature: &str, now_secs: u64, tolerance_secs: u64) -> Result<(), VerifyError> {
    let tag = signature.strip_prefix("sha256=").and_then(unhex).ok_or(VerifyError::Malformed)?;
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    let mut material = Vec::with_capacity(body.len() + 21);
    material.extend_from_slice(timestamp.to_string().as_bytes());
    material.push(b'.');
    material.extend_from_slice(body);
    hmac::verify(&key, &material, &tag).map_err(|_| VerifyError::Mismatch)?;
    if now_secs.abs_diff(timestamp) > tolerance_secs {
        return Err(VerifyError::Stale);
    }
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() != 64 || !s.is_ascii() {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_hmac_sha256_of_timestamp_dot_body() {
        // The MAC itself: RFC 4231 test case 2. Then the material: timestamp, a dot, the body.
        let rfc = {
            let key = hmac::Key::new(hmac::HMAC_SHA256, b"Jefe");
            hex(hmac::sign(&key, b"what do ya want for nothing?").as_ref())
        };
        assert_eq!(rfc, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
        let key = hmac::Key::new(hmac::HMAC_SHA256, b"s3cret");
        let expected = format!("sha256={}", hex(hmac::sign(&key, b"1700000000.{\"a\":1}").as_ref()));
        assert_eq!(sign(b"s3cret", 1_700_000_000, b"{\"a\":1}"), expected);
    }

    #[test]
    fn a_receiver_accepts_the_signed_body_and_refuses_any_change() {
        let (secret, ts, body) = (b"s3cret".as_slice(), 1_700_000_000, br#"{"order":{"id":7}}"#.as_slice());
        let sig = sign(secret, ts, body);
        assert_eq!(verify(secret, ts, body, &sig, ts + 10, 300), Ok(()));
        assert_eq!(verify(secret, ts, br#"{"order":{"id":8}}"#, &sig, ts, 300), Err(VerifyError::Mismatch), "another body");
        assert_eq!(verify(secret, ts + 1, body, &sig, ts, 300), Err(VerifyError::Mismatch), "another timestamp");
        assert_eq!(verify(b"other", ts, body, &sig, ts, 300), Err(VerifyError::Mismatch), "another secret");
        assert_eq!(verify(secret, ts, body, "sha1=00", ts, 300), Err(VerifyError::Malformed));
        assert_eq!(verify(secret, ts, body, &sig, ts + 301, 300), Err(VerifyError::Stale), "a replay after the tolerance");
    }
}
