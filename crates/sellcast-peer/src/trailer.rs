//! The bytes a synthetic packet ends with, so a viewer can measure loss and one-way latency.

/// Identifies a trailer (and rejects payloads without one).
const MAGIC: u32 = 0x5EC7_CA57;
pub const TRAILER_LEN: usize = 4 + 8 + 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trailer {
    /// The publisher's packet counter, per kind, from 0.
    pub counter: u64,
    /// Send time, microseconds since the UNIX epoch.
    pub sent_us: u64,
}

impl Trailer {
    pub fn write(&self, out: &mut [u8]) {
        if out.len() < TRAILER_LEN {
            return;
        }
        let at = out.len() - TRAILER_LEN;
        out[at..at + 4].copy_from_slice(&MAGIC.to_be_bytes());
        out[at + 4..at + 12].copy_from_slice(&self.counter.to_be_bytes());
        out[at + 12..at + 20].copy_from_slice(&self.sent_us.to_be_bytes());
    }

    pub fn read(payload: &[u8]) -> Option<Trailer> {
        let at = payload.len().checked_sub(TRAILER_LEN)?;
        let magic = u32::from_be_bytes(payload[at..at + 4].try_into().ok()?);
        if magic != MAGIC {
            return None;
        }
        Some(Trailer {
            counter: u64::from_be_bytes(payload[at + 4..at + 12].try_into().ok()?),
            sent_us: u64::from_be_bytes(payload[at + 12..at + 20].try_into().ok()?),
        })
    }
}

pub fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_rejects_foreign_payloads() {
        let mut p = vec![7u8; 100];
        Trailer { counter: 42, sent_us: 123_456 }.write(&mut p);
        assert_eq!(Trailer::read(&p), Some(Trailer { counter: 42, sent_us: 123_456 }));
        assert_eq!(Trailer::read(&[0u8; 100]), None);
        assert_eq!(Trailer::read(&[0u8; 5]), None);
    }
}
