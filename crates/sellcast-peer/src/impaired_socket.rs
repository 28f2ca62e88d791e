//! The socket side of an [`Impairment`]: every datagram the peer's UDP socket reads is judged,
//! and dropped, handed on at once, or (when a link delays it) held in a small delay line and
//! handed on when due. The driver polls `poll_recv`; a held datagram wakes it with a timer.

use std::collections::VecDeque;
use std::future::Future;
use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

use webrtc::runtime::{AsyncUdpSocket, RecvMeta, Transmit};

use crate::impairment::{Impairment, Verdict};

/// A datagram a link holds back until `due`.
#[derive(Debug)]
struct Held {
    due: Instant,
    meta: RecvMeta,
    data: Vec<u8>,
}

/// The datagrams on their way through a delaying link, oldest (and earliest due) first.
#[derive(Debug, Default)]
pub(crate) struct DelayLine {
    held: VecDeque<Held>,
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
}

/// A UDP socket whose received datagrams pass through an [`Impairment`].
#[derive(Debug)]
pub(crate) struct ImpairedSocket {
    pub(crate) inner: Arc<dyn AsyncUdpSocket>,
    pub(crate) impairment: Arc<Impairment>,
    pub(crate) line: Mutex<DelayLine>,
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
            if matches!(self.impairment.judge(Instant::now(), &buf[at..end]), Verdict::ReleaseAt(_)) {
                buf.copy_within(at..end, kept);
                kept += end - at;
            }
            at = end;
        }
        kept
    }

    /// Judge every datagram of one (possibly coalesced) message; keep the admitted ones in the line.
    fn hold_message(&self, line: &mut DelayLine, now: Instant, buf: &[u8], meta: RecvMeta) {
        let stride = meta.stride.max(1);
        for datagram in buf[..meta.len.min(buf.len())].chunks(stride) {
            if let Verdict::ReleaseAt(due) = self.impairment.judge(now, datagram) {
                let mut meta = meta;
                (meta.len, meta.stride) = (datagram.len(), datagram.len());
                line.held.push_back(Held { due, meta, data: datagram.to_vec() });
            }
        }
    }

    /// The delaying path: read everything the socket has into the line, hand on what is due,
    /// and otherwise wait for the socket or for the first held datagram, whichever is sooner.
    fn poll_recv_delayed(&self, cx: &mut Context<'_>, bufs: &mut [IoSliceMut<'_>], meta: &mut [RecvMeta]) -> Poll<io::Result<usize>> {
        let mut line = self.line.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut failed = None;
        loop {
            match self.inner.poll_recv(cx, bufs, meta) {
                Poll::Ready(Ok(n)) => {
                    let now = Instant::now();
                    for i in 0..n {
                        self.hold_message(&mut line, now, &bufs[i], meta[i]);
                    }
                }
                Poll::Ready(Err(e)) => {
                    failed = Some(e);
                    break;
                }
                // The socket's waker is registered: it wakes us when more arrives.
                Poll::Pending => break,
            }
        }
        let now = Instant::now();
        let mut filled = 0;
        while filled < bufs.len() && line.held.front().is_some_and(|h| h.due <= now) {
            let Some(h) = line.held.pop_front() else { break };
            let len = h.data.len().min(bufs[filled].len());
            bufs[filled][..len].copy_from_slice(&h.data[..len]);
            meta[filled] = h.meta;
            (meta[filled].len, meta[filled].stride) = (len, len);
            filled += 1;
        }
        if filled > 0 {
            return Poll::Ready(Ok(filled));
        }
        if let Some(e) = failed {
            return Poll::Ready(Err(e));
        }
        if let Some(due) = line.held.front().map(|h| h.due) {
            let timer = line.timer.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(due.into())));
            timer.as_mut().reset(due.into());
            if timer.as_mut().poll(cx).is_ready() {
                cx.waker().wake_by_ref();
            }
        }
        Poll::Pending
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
        let delaying = self.impairment.delays() || self.line.lock().is_ok_and(|l| !l.held.is_empty());
        if delaying {
            return self.poll_recv_delayed(cx, bufs, meta);
        }
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

    fn socket(imp: Arc<Impairment>) -> ImpairedSocket {
        ImpairedSocket { inner: Arc::new(NoSocket), impairment: imp, line: Mutex::default() }
    }

    #[test]
    fn a_coalesced_message_keeps_its_admitted_datagrams_in_order() {
        let imp = Arc::new(Impairment::default());
        imp.lose_video_every(96, 2);
        let sock = socket(imp);
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

    #[tokio::test]
    async fn a_delaying_link_hands_datagrams_on_when_due_and_in_order() {
        use webrtc::runtime::{Runtime, TokioRuntime};
        let rx = std::net::UdpSocket::bind("127.0.0.1:0").expect("test setup");
        let to = rx.local_addr().expect("test setup");
        let imp = Impairment::new();
        imp.set_link("50ms".parse().expect("test setup"));
        let inner = TokioRuntime.wrap_udp_socket(rx).expect("test setup");
        let sock = ImpairedSocket { inner, impairment: imp, line: Mutex::default() };
        let tx = std::net::UdpSocket::bind("127.0.0.1:0").expect("test setup");
        let sent = Instant::now();
        for i in 0..3u8 {
            tx.send_to(&[i; 10], to).expect("test setup");
        }
        let mut got = Vec::new();
        while got.len() < 3 {
            let mut buf = [0u8; 64];
            let mut meta = [RecvMeta::default(); 1];
            let n = std::future::poll_fn(|cx| sock.poll_recv(cx, &mut [IoSliceMut::new(&mut buf)], &mut meta)).await.expect("test setup");
            assert_eq!((n, meta[0].len), (1, 10));
            got.push(buf[0]);
            assert!(sent.elapsed() >= std::time::Duration::from_millis(50), "held for the link's delay");
        }
        assert_eq!(got, [0, 1, 2]);
        assert!(sent.elapsed() < std::time::Duration::from_secs(1), "and not forgotten");
    }
}
