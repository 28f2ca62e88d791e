//! The synthetic host's stream as plain RTP over UDP, for servers that ingest RTP rather than
//! WHIP (Janus's Streaming plugin): the same frames, sizes, keyframes and trailers as
//! `Publisher`, so a side-by-side run feeds both servers the same thing.
//!
//! Plain RTP has no feedback path here: keyframes come only on the GOP schedule (the server
//! can't ask for one), which is what a Streaming mountpoint fed by an encoder sees too.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::net::UdpSocket;

use crate::publisher::{PublishOptions, PublisherStats};
use crate::signalling::PeerError;
use crate::synthetic::{send_audio, send_video, RtpSink};
use crate::trailer::now_us;

/// Where the plain-RTP tracks go and with which payload types (the mountpoint's config).
#[derive(Debug, Clone, Copy)]
pub struct RtpTargets {
    pub video: SocketAddr,
    pub video_pt: u8,
    pub audio: SocketAddr,
    pub audio_pt: u8,
}

pub struct RtpSource {
    pub stats: Arc<PublisherStats>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// One track sent from its own loopback socket.
struct UdpOut {
    socket: UdpSocket,
    dest: SocketAddr,
    ssrc: u32,
    pt: u8,
}

/// The 12-byte fixed RTP header (RFC 3550 section 5.1): version 2, no padding, extension or CSRCs.
fn rtp_header(pt: u8, marker: bool, seq: u16, ts: u32, ssrc: u32) -> [u8; 12] {
    let mut h = [0u8; 12];
    h[0] = 0x80;
    h[1] = (pt & 0x7f) | if marker { 0x80 } else { 0 };
    h[2..4].copy_from_slice(&seq.to_be_bytes());
    h[4..8].copy_from_slice(&ts.to_be_bytes());
    h[8..12].copy_from_slice(&ssrc.to_be_bytes());
    h
}

#[async_trait::async_trait]
impl RtpSink for UdpOut {
    fn ssrc(&self) -> u32 {
        self.ssrc
    }

    async fn send(&self, seq: u16, ts: u32, marker: bool, payload: Vec<u8>) -> bool {
        let mut datagram = Vec::with_capacity(12 + payload.len());
        datagram.extend_from_slice(&rtp_header(self.pt, marker, seq, ts, self.ssrc));
        datagram.extend_from_slice(&payload);
        // A refused datagram (nobody listening yet) is lost like on any network; keep pacing.
        let _ = self.socket.send_to(&datagram, self.dest).await;
        true
    }
}

impl RtpSource {
    /// Start sending to `targets` at once; stops when dropped.
    pub async fn start(targets: RtpTargets, opts: PublishOptions) -> Result<RtpSource, PeerError> {
        let stats = Arc::new(PublisherStats::default());
        let seed = (now_us() & 0xffff_ffff) as u32;
        let bind = |dest: SocketAddr, ssrc: u32, pt: u8| async move {
            let socket = UdpSocket::bind("127.0.0.1:0").await.map_err(|e| PeerError::WebRtc(format!("bind: {e}")))?;
            Ok::<_, PeerError>(UdpOut { socket, dest, ssrc, pt })
        };
        let video = bind(targets.video, seed | 1, targets.video_pt).await?;
        let audio = bind(targets.audio, seed.rotate_left(16) | 2, targets.audio_pt).await?;
        let tasks = vec![
            tokio::spawn(send_video(video, opts.clone(), stats.clone())),
            tokio::spawn(send_audio(audio, opts, stats.clone())),
        ];
        Ok(RtpSource { stats, tasks })
    }

    pub fn video_sent(&self) -> u64 {
        self.stats.video_packets.load(Ordering::Relaxed)
    }

    pub fn audio_sent(&self) -> u64 {
        self.stats.audio_packets.load(Ordering::Relaxed)
    }

}

/// Dropping the source stops its sending tasks.
impl Drop for RtpSource {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_fields_land_where_rfc_3550_puts_them() {
        let h = rtp_header(100, true, 0xabcd, 0x0102_0304, 0xdead_beef);
        assert_eq!(h[0] >> 6, 2);
        assert_eq!((h[1] & 0x80 != 0, h[1] & 0x7f), (true, 100));
        assert_eq!(u16::from_be_bytes([h[2], h[3]]), 0xabcd);
        assert_eq!(&h[4..12], &[1, 2, 3, 4, 0xde, 0xad, 0xbe, 0xef]);
        assert_eq!(rtp_header(111, false, 0, 0, 0)[1], 111);
    }
}
