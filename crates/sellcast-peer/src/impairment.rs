//! A viewer's receive path made worse on purpose, for tests: the datagrams its socket reads
//! pass through an [`Impairment`] that can stall the link (drop everything, as a peer that
//! stopped reading or went out of reach), police it to a rate (a slow link: what exceeds the
//! rate is lost, like a `tbf` with no queue), or lose chosen video packets once (so the
//! viewer has something to NACK). The kernel here has no `netem`, and a per-viewer `tbf`
//! needs the viewer in its own namespace; in the peer's own socket path the test can aim at
//! one viewer of many in one process.
//!
//! Only what arrives is impaired, unless the peer is muted: then nothing it sends leaves
//! either (a client that vanished without a goodbye).

use std::collections::HashSet;
use std::fmt;
use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

use webrtc::runtime::{AsyncUdpSocket, RecvMeta, Transmit};

/// What happens to the datagrams a peer receives. Shared with the test, which flips it live.
#[derive(Default)]
pub struct Impairment {
    stalled: AtomicBool,
    /// Drop everything the peer sends.
    muted: AtomicBool,
    /// Policed receive rate in bits per second; 0 means no limit.
    rate_bps: AtomicU64,
    /// Lose the first copy of every video RTP packet whose seq is a multiple of this; 0: none.
    lose_video_every: AtomicU64,
    /// The RTP payload type of the video (the original stream, not its RTX repairs).
    video_pt: AtomicU64,
    bucket: Mutex<Bucket>,
    /// (ssrc, seq) already lost once: their retransmissions pass.
    lost_once: Mutex<HashSet<(u32, u16)>>,
    dropped: AtomicU64,
    dropped_rtp_lost: AtomicU64,
    passed: AtomicU64,
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

    /// Does this datagram reach the peer?
    fn admits(&self, datagram: &[u8]) -> bool {
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

/// A UDP socket whose received datagrams pass through an [`Impairment`].
#[derive(Debug)]
pub(crate) struct ImpairedSocket {
    pub(crate) inner: Arc<dyn AsyncUdpSocket>,
    pub(crate) impairment: Arc<Impairment>,
}

impl ImpairedSocket {
    /// Keep the admitted datagrams of one (possibly GRO-coalesced) message, in order, at the
    /// front of `buf`; returns the new length (0: none admitted).
    fn filter_message(&self, buf: &mut [u8], len: usize, stride: usize) -> usize {
        let stride = stride.max(1);
        let mut kept = 0;
        let mut at = 0;
        while at < len {
            let end = (at + stride).min(len);
            if self.impairment.admits(&buf[at..end]) {
                buf.copy_within(at..end, kept);
                kept += end - at;
            }
            at = end;
        }
        kept
    }
}

impl AsyncUdpSocket for ImpairedSocket {
    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    fn poll_send(&self, cx: &mut Context<'_>, transmit: &Transmit<'_>) -> Poll<io::Result<usize>> {
        if self.impairment.muted.load(Ordering::Relaxed) {
            return Poll::Ready(Ok(transmit.contents.len()));
        }
        self.inner.poll_send(cx, transmit)
    }

    fn poll_recv(&self, cx: &mut Context<'_>, bufs: &mut [IoSliceMut<'_>], meta: &mut [RecvMeta]) -> Poll<io::Result<usize>> {
        loop {
            let n = match self.inner.poll_recv(cx, bufs, meta) {
                Poll::Ready(Ok(n)) => n,
                other => return other,
            };
            let mut kept = 0;
            for i in 0..n {
                let len = self.filter_message(&mut bufs[i], meta[i].len, meta[i].stride);
                if len == 0 {
                    continue;
                }
                meta[i].len = len;
                if kept != i {
                    let (front, back) = bufs.split_at_mut(i);
                    front[kept][..len].copy_from_slice(&back[0][..len]);
                    meta[kept] = meta[i];
                }
                kept += 1;
            }
            if kept > 0 {
                return Poll::Ready(Ok(kept));
            }
            // Everything was dropped: read again (this registers the waker when nothing is left).
        }
    }

    fn max_gso_segments(&self) -> usize {
        self.inner.max_gso_segments()
    }

    fn max_gro_segments(&self) -> usize {
        self.inner.max_gro_segments()
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
    fn a_coalesced_message_keeps_its_admitted_datagrams_in_order() {
        let imp = Arc::new(Impairment::default());
        imp.lose_video_every(96, 2);
        let sock = ImpairedSocket { inner: Arc::new(NoSocket), impairment: imp };
        let mut buf: Vec<u8> = [rtp(96, 1, 5), rtp(96, 2, 5), rtp(96, 3, 5)].concat();
        let kept = sock.filter_message(&mut buf, 45, 15);
        assert_eq!(kept, 30);
        assert_eq!(&buf[..15], &rtp(96, 1, 5)[..]);
        assert_eq!(&buf[15..30], &rtp(96, 3, 5)[..]);
    }

    #[derive(Debug)]
    struct NoSocket;

    impl AsyncUdpSocket for NoSocket {
        fn local_addr(&self) -> io::Result<SocketAddr> {
            Err(io::ErrorKind::Unsupported.into())
        }
        fn poll_send(&self, _: &mut Context<'_>, _: &Transmit<'_>) -> Poll<io::Result<usize>> {
            Poll::Pending
        }
        fn poll_recv(&self, _: &mut Context<'_>, _: &mut [IoSliceMut<'_>], _: &mut [RecvMeta]) -> Poll<io::Result<usize>> {
            Poll::Pending
        }
    }
}
