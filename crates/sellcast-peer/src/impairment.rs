//! A viewer's receive path made worse on purpose: the datagrams its socket reads pass through
//! an [`Impairment`] that can stall the link (drop everything, as a peer that stopped reading or
//! went out of reach), police it to a rate (what exceeds the rate is lost at once), lose chosen
//! video packets once (so the viewer has something to NACK), and emulate a whole downlink
//! ([`LinkProfile`]: a `tbf`-like rate with a bounded queue, random loss, delay and jitter).
//! The kernel here has no `netem`, and a per-viewer `tbf` needs the viewer in its own
//! namespace; in the peer's own socket path the bench can give each of hundreds of viewers in
//! one process its own link.
//!
//! The decisions are made here, on time handed in; `impaired_socket.rs` applies them (and holds
//! the datagrams a link delays). Only what arrives is impaired, unless the peer is muted: then
//! nothing it sends leaves either (a client that vanished without a goodbye).

use std::collections::HashSet;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::link_profile::{Dice, LinkProfile, Shaper, DEFAULT_QUEUE};

/// What happens to the datagrams a peer receives. Shared with the test, which flips it live.
#[derive(Default)]
pub struct Impairment {
    stalled: AtomicBool,
    /// Drop everything the peer sends.
    pub(crate) muted: AtomicBool,
    /// Policed receive rate in bits per second; 0 means no limit.
    rate_bps: AtomicU64,
    /// Lose the first copy of every video RTP packet whose seq is a multiple of this; 0: none.
    lose_video_every: AtomicU64,
    /// The RTP payload type of the video (the original stream, not its RTX repairs).
    video_pt: AtomicU64,
    bucket: Mutex<Bucket>,
    /// (ssrc, seq) already lost once: their retransmissions pass.
    lost_once: Mutex<HashSet<(u32, u16)>>,
    /// The emulated downlink, if any (after the checks above).
    link: Mutex<Option<Link>>,
    /// Set while a link delays datagrams: the socket then holds them until they are due.
    delays: AtomicBool,
    dropped: AtomicU64,
    dropped_rtp_lost: AtomicU64,
    /// Dropped by the link: its queue was full, or its random loss.
    dropped_queue: AtomicU64,
    dropped_loss: AtomicU64,
    passed: AtomicU64,
}

/// A downlink's state: the profile, its bottleneck and its dice.
#[derive(Debug)]
struct Link {
    profile: LinkProfile,
    shaper: Option<Shaper>,
    dice: Dice,
    /// When the last datagram is released (jitter never lets one overtake another).
    last_release: Option<Instant>,
}

/// What the link does with one datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    Drop,
    /// Hand it to the peer at this instant (now, or later when the link delays it).
    ReleaseAt(Instant),
}

#[derive(Default)]
struct Bucket {
    tokens: f64,
    at: Option<Instant>,
}

/// Up to this many bytes may arrive back to back at the policed rate (a `tbf` burst).
const BURST_BYTES: f64 = 32.0 * 1024.0;

impl fmt::Debug for Impairment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Impairment")
            .field("stalled", &self.stalled.load(Ordering::Relaxed))
            .field("rate_bps", &self.rate_bps.load(Ordering::Relaxed))
            .field("dropped", &self.dropped.load(Ordering::Relaxed))
            .field("link", &self.link())
            .finish()
    }
}

impl Impairment {
    pub fn new() -> Arc<Impairment> {
        Arc::new(Impairment::default())
    }

    /// Drop every datagram that arrives (true) or none for this reason (false).
    pub fn set_stalled(&self, stalled: bool) {
        self.stalled.store(stalled, Ordering::Relaxed);
    }

    /// Drop every datagram the peer sends (true), as a client gone without a goodbye.
    pub fn set_muted(&self, muted: bool) {
        self.muted.store(muted, Ordering::Relaxed);
    }

    /// Police what arrives to `bps` bits per second (0: no limit).
    pub fn set_rate(&self, bps: u64) {
        if let Ok(mut b) = self.bucket.lock() {
            *b = Bucket { tokens: BURST_BYTES, at: None };
        }
        self.rate_bps.store(bps, Ordering::Relaxed);
    }

    /// Lose the first arrival of each video packet (payload type `pt`) whose RTP seq is a
    /// multiple of `every` (0: stop). Retransmissions, over RTX or not, pass.
    pub fn lose_video_every(&self, pt: u8, every: u16) {
        self.video_pt.store(u64::from(pt), Ordering::Relaxed);
        self.lose_video_every.store(u64::from(every), Ordering::Relaxed);
    }

    /// Emulate `profile` on what arrives from now on (replacing any earlier one).
    pub fn set_link(&self, profile: LinkProfile) {
        let seed = crate::trailer::now_us() ^ (self as *const Self as u64);
        let link = Link {
            shaper: profile.rate_bps.map(|bps| Shaper::new(bps, profile.queue.unwrap_or(DEFAULT_QUEUE))),
            dice: Dice::new(seed),
            last_release: None,
            profile,
        };
        self.delays.store(profile.rate_bps.is_some() || !profile.delay.is_zero() || !profile.jitter.is_zero(), Ordering::Relaxed);
        if let Ok(mut l) = self.link.lock() {
            *l = Some(link);
        }
    }

    /// The link being emulated, if any.
    pub fn link(&self) -> Option<LinkProfile> {
        self.link.lock().ok().and_then(|l| l.as_ref().map(|l| l.profile))
    }

    /// Datagrams the link dropped because its queue was full (over rate for too long).
    pub fn dropped_by_queue(&self) -> u64 {
        self.dropped_queue.load(Ordering::Relaxed)
    }

    /// Datagrams the link lost at random.
    pub fn dropped_by_loss(&self) -> u64 {
        self.dropped_loss.load(Ordering::Relaxed)
    }

    /// Does the link hold datagrams back (rate, delay or jitter)? Then the socket queues them.
    pub(crate) fn delays(&self) -> bool {
        self.delays.load(Ordering::Relaxed)
    }

    /// Datagrams dropped so far, for every reason.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Video packets lost on purpose (`lose_video_every`) so far.
    pub fn video_packets_lost(&self) -> u64 {
        self.dropped_rtp_lost.load(Ordering::Relaxed)
    }

    /// The (ssrc, seq) of each video packet lost on purpose.
    pub fn lost_video(&self) -> Vec<(u32, u16)> {
        self.lost_once.lock().map(|l| l.iter().copied().collect()).unwrap_or_default()
    }

    /// Datagrams let through so far.
    pub fn passed(&self) -> u64 {
        self.passed.load(Ordering::Relaxed)
    }

    /// What happens to a datagram arriving at `now`: the checks of `admits`, then the link.
    pub(crate) fn judge(&self, now: Instant, datagram: &[u8]) -> Verdict {
        if !self.admits(datagram) {
            return Verdict::Drop;
        }
        let Ok(mut guard) = self.link.lock() else { return Verdict::ReleaseAt(now) };
        let Some(link) = guard.as_mut() else { return Verdict::ReleaseAt(now) };
        let departs = match link.shaper.as_mut() {
            Some(shaper) => match shaper.admit(now, datagram.len()) {
                Some(at) => at,
                None => return self.count_drop(&self.dropped_queue),
            },
            None => now,
        };
        let p = link.profile;
        if p.loss > 0.0 && link.dice.roll() < p.loss {
            return self.count_drop(&self.dropped_loss);
        }
        let jitter = if p.jitter.is_zero() { 0.0 } else { (link.dice.roll() * 2.0 - 1.0) * p.jitter.as_secs_f64() };
        let delay = Duration::from_secs_f64((p.delay.as_secs_f64() + jitter).max(0.0));
        let release = link.last_release.map_or(departs + delay, |last| (departs + delay).max(last));
        link.last_release = Some(release);
        Verdict::ReleaseAt(release)
    }

    /// Move a datagram `admits` counted as passed to the dropped counts.
    fn count_drop(&self, reason: &AtomicU64) -> Verdict {
        reason.fetch_add(1, Ordering::Relaxed);
        self.passed.fetch_sub(1, Ordering::Relaxed);
        self.dropped.fetch_add(1, Ordering::Relaxed);
        Verdict::Drop
    }

    /// Does this datagram pass the stall, the chosen losses and the policer?
    pub(crate) fn admits(&self, datagram: &[u8]) -> bool {
        let keep = !self.stalled.load(Ordering::Relaxed) && !self.loses_rtp(datagram) && self.within_rate(datagram.len());
        let counter = if keep { &self.passed } else { &self.dropped };
        counter.fetch_add(1, Ordering::Relaxed);
        keep
    }

    fn loses_rtp(&self, d: &[u8]) -> bool {
        let every = self.lose_video_every.load(Ordering::Relaxed);
        // RTP version 2, and a payload type (marker bit masked off) that is the video's.
        if every == 0 || d.len() < 12 || d[0] >> 6 != 2 || u64::from(d[1] & 0x7f) != self.video_pt.load(Ordering::Relaxed) {
            return false;
        }
        let seq = u16::from_be_bytes([d[2], d[3]]);
        if u64::from(seq) % every != 0 {
            return false;
        }
        let ssrc = u32::from_be_bytes([d[8], d[9], d[10], d[11]]);
        let first_time = self.lost_once.lock().map(|mut l| l.insert((ssrc, seq))).unwrap_or(false);
        if first_time {
            self.dropped_rtp_lost.fetch_add(1, Ordering::Relaxed);
        }
        first_time
    }

    fn within_rate(&self, len: usize) -> bool {
        let bps = self.rate_bps.load(Ordering::Relaxed);
        if bps == 0 {
            return true;
        }
        let Ok(mut b) = self.bucket.lock() else {
            return true;
        };
        let now = Instant::now();
        let refill = b.at.map_or(BURST_BYTES, |at| now.duration_since(at).as_secs_f64() * bps as f64 / 8.0);
        b.tokens = (b.tokens + refill).min(BURST_BYTES);
        b.at = Some(now);
        if b.tokens >= len as f64 {
            b.tokens -= len as f64;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rtp(pt: u8, seq: u16, ssrc: u32) -> Vec<u8> {
        let mut d = vec![0x80, pt, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3];
        d[2..4].copy_from_slice(&seq.to_be_bytes());
        d[8..12].copy_from_slice(&ssrc.to_be_bytes());
        d
    }

    #[test]
    fn chosen_video_packets_are_lost_once_and_their_repairs_pass() {
        let imp = Impairment::default();
        imp.lose_video_every(96, 10);
        assert!(!imp.admits(&rtp(96, 20, 7)), "seq 20 is lost");
        assert!(!imp.admits(&rtp(96 | 0x80, 30, 7)), "a marker bit does not hide the payload type");
        assert!(imp.admits(&rtp(96, 21, 7)), "seq 21 is not chosen");
        assert!(imp.admits(&rtp(97, 40, 9)), "RTX and other payload types pass");
        assert!(imp.admits(&rtp(96, 20, 7)), "the retransmission of 20 passes");
        assert_eq!((imp.video_packets_lost(), imp.dropped(), imp.passed()), (2, 2, 3));
    }

    #[test]
    fn a_stalled_link_drops_everything_until_it_is_resumed() {
        let imp = Impairment::default();
        imp.set_stalled(true);
        assert!(!imp.admits(&[0x16, 0xfe, 0xfd]));
        imp.set_stalled(false);
        assert!(imp.admits(&[0x16, 0xfe, 0xfd]));
    }

    #[test]
    fn a_policed_link_passes_its_burst_then_drops() {
        let imp = Impairment::default();
        imp.set_rate(8_000); // 1 kB/s: nothing refills within this test
        let passed = (0..100).filter(|_| imp.admits(&[0u8; 1000])).count();
        assert_eq!(passed, (BURST_BYTES / 1000.0) as usize, "the burst, then nothing");
    }

    #[test]
    fn a_link_delays_by_its_rate_then_drops_when_its_queue_is_full() {
        let imp = Impairment::default();
        imp.set_link("80kbit/q200ms/40ms".parse().expect("test setup")); // 10 kB/s, 3,000-byte burst
        let t0 = Instant::now();
        let verdicts: Vec<Verdict> = (0..7).map(|_| imp.judge(t0, &[0u8; 1000])).collect();
        let at = |ms: u64| Verdict::ReleaseAt(t0 + Duration::from_millis(ms));
        assert_eq!(verdicts, [at(40), at(40), at(40), at(140), at(240), Verdict::Drop, Verdict::Drop]);
        assert_eq!((imp.dropped_by_queue(), imp.dropped(), imp.passed()), (2, 2, 5));
        assert!(imp.delays());
    }

    #[test]
    fn a_lossy_link_loses_about_its_share_and_never_reorders_under_jitter() {
        let imp = Impairment::default();
        imp.set_link("5%/30ms/~20ms".parse().expect("test setup"));
        let t0 = Instant::now();
        let mut last = t0;
        let mut lost = 0;
        for i in 0..20_000u64 {
            match imp.judge(t0 + Duration::from_millis(i), &[0u8; 100]) {
                Verdict::Drop => lost += 1,
                Verdict::ReleaseAt(at) => {
                    assert!(at >= last, "released out of order");
                    assert!(at >= t0 + Duration::from_millis(i + 10), "at least delay - jitter");
                    last = at;
                }
            }
        }
        assert!((800..1200).contains(&lost), "{lost}");
        assert_eq!(imp.dropped_by_loss(), lost);
    }

    #[test]
    fn without_a_link_datagrams_are_released_at_once() {
        let imp = Impairment::default();
        let t0 = Instant::now();
        assert_eq!(imp.judge(t0, &[0u8; 10]), Verdict::ReleaseAt(t0));
        assert!(!imp.delays());
    }
}
