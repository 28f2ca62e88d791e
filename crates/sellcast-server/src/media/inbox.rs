//! Incoming datagrams are read in batches: up to the inbox's capacity per `recvmmsg(2)` call
//! instead of one `recvfrom(2)` each.
//!
//! Why: the driver reads a burst before forwarding (a frame's packets arrive back to back), and
//! each `recvfrom` paid the fixed cost of entering the kernel. The buffers, headers and the list
//! of what arrived are allocated once, so a read allocates nothing.
//!
//! The read goes through tokio's readiness (`UdpSocket::try_io`): when the socket is empty, the
//! WouldBlock clears tokio's readiness flag, so the driver's next `readable().await` waits
//! instead of spinning. A read that returns less than the capacity leaves the flag set, and the
//! next one finds the socket empty and clears it: one empty call per burst, as the final
//! WouldBlock of a `try_recv_from` loop was. Where `recvmmsg` is not available, one
//! `try_recv_from` per datagram, for good.
//!
//! A datagram longer than a buffer is cut by the kernel (MSG_TRUNC); it is dropped and counted,
//! as a cut WebRTC packet could only fail later. A source that is not an IP address is skipped.

use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};

use nix::errno::Errno;
use nix::sys::socket::{recvmmsg, MsgFlags, MultiHeaders, SockaddrStorage};
use tokio::io::Interest;
use tokio::net::UdpSocket;

/// Largest datagram read whole; WebRTC packets stay well under the 1,500-byte MTU.
pub(crate) const MAX_DATAGRAM: usize = 2048;
/// Most datagrams one inbox reads per call (its slices are built on the stack).
const MAX_CAPACITY: usize = 64;

/// What the inbox read, for the driver's shutdown report. Counts are datagrams except
/// `syscalls`.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct InboxStats {
    /// Handed to the caller.
    pub received: u64,
    /// Longer than `MAX_DATAGRAM`: dropped.
    pub truncated: u64,
    /// From a source that is not an IP address: dropped.
    pub not_ip: u64,
    pub syscalls: u64,
}

/// One datagram of the last read: who sent it and where it lies.
#[derive(Debug, Clone, Copy)]
struct Received {
    source: SocketAddr,
    slot: usize,
    len: usize,
}

pub(crate) struct Inbox {
    buffers: Vec<[u8; MAX_DATAGRAM]>,
    /// Reused between reads. The kernel shortens a header's address length to the last
    /// source's; one socket's sources are all of one family, so that length stays right.
    headers: MultiHeaders<SockaddrStorage>,
    received: Vec<Received>,
    batched: bool,
    pub(crate) stats: InboxStats,
}

/// An inbox with no room, which allocates nothing: what `std::mem::take` leaves in the driver
/// while it hands the real inbox's datagrams on.
impl Default for Inbox {
    fn default() -> Self {
        Self::with_capacity(0)
    }
}

impl Inbox {
    /// An inbox that reads up to `capacity` datagrams at a time (at most 64).
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        let capacity = capacity.min(MAX_CAPACITY);
        Self {
            buffers: vec![[0u8; MAX_DATAGRAM]; capacity],
            headers: MultiHeaders::preallocate(capacity, None),
            received: Vec::with_capacity(capacity),
            batched: true,
            stats: InboxStats::default(),
        }
    }

    /// Read what is waiting, up to the capacity, replacing the previous read. `Ok(n)`: `n`
    /// datagrams to take from `datagrams` (cut or non-IP ones already left out, so `n` may be
    /// 0). `Err` of kind WouldBlock: nothing was waiting, and tokio knows it.
    pub(crate) fn receive(&mut self, socket: &UdpSocket) -> io::Result<usize> {
        self.received.clear();
        if self.batched {
            let fd = socket.as_raw_fd();
            match socket.try_io(Interest::READABLE, || self.read_batch(fd)) {
                Err(e) if e.raw_os_error() == Some(Errno::ENOSYS as i32) => self.batched = false,
                other => return other,
            }
        }
        self.read_each(socket)
    }

    /// The datagrams of the last read, in arrival order.
    pub(crate) fn datagrams(&self) -> impl Iterator<Item = (SocketAddr, &[u8])> + '_ {
        self.received
            .iter()
            .filter_map(|r| Some((r.source, self.buffers.get(r.slot)?.get(..r.len)?)))
    }

    /// One `recvmmsg` into every buffer; called inside `try_io`, so EAGAIN clears readiness.
    fn read_batch(&mut self, fd: RawFd) -> io::Result<usize> {
        let capacity = self.buffers.len();
        let mut buffers = self.buffers.iter_mut();
        let mut slices: [[IoSliceMut<'_>; 1]; MAX_CAPACITY] =
            std::array::from_fn(|_| [IoSliceMut::new(buffers.next().map_or(&mut [][..], |b| &mut b[..]))]);
        self.stats.syscalls += 1;
        let results = recvmmsg(fd, &mut self.headers, slices[..capacity].iter_mut(), MsgFlags::MSG_DONTWAIT, None)?;
        for (slot, message) in results.enumerate() {
            if message.flags.contains(MsgFlags::MSG_TRUNC) {
                self.stats.truncated += 1;
                continue;
            }
            match message.address.as_ref().and_then(ip_address) {
                Some(source) => self.received.push(Received { source, slot, len: message.bytes }),
                None => self.stats.not_ip += 1,
            }
        }
        self.stats.received += self.received.len() as u64;
        Ok(self.received.len())
    }

    /// The portable path: `try_recv_from` until the socket is empty or every buffer is used.
    fn read_each(&mut self, socket: &UdpSocket) -> io::Result<usize> {
        for (slot, buffer) in self.buffers.iter_mut().enumerate() {
            self.stats.syscalls += 1;
            match socket.try_recv_from(buffer) {
                // recvfrom doesn't say whether it cut the datagram; one that fills the buffer
                // may have been cut.
                Ok((len, _)) if len == MAX_DATAGRAM => self.stats.truncated += 1,
                Ok((len, source)) => self.received.push(Received { source, slot, len }),
                Err(e) if slot == 0 => return Err(e),
                Err(_) => break,
            }
        }
        self.stats.received += self.received.len() as u64;
        Ok(self.received.len())
    }
}

/// The source as an IP socket address, if it is one.
fn ip_address(address: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = address.as_sockaddr_in() {
        return Some(SocketAddr::V4((*v4).into()));
    }
    address.as_sockaddr_in6().map(|v6| SocketAddr::V6((*v6).into()))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::time::Duration;

    use super::*;

    const PER_SOURCE: usize = 20;

    /// Datagram `i` of source `tag`: its own length and bytes, its number up front.
    fn datagram(tag: u8, i: usize) -> Vec<u8> {
        let mut d = vec![tag ^ i as u8; 60 + 37 * i + tag as usize];
        d[0] = tag;
        d[1] = i as u8;
        d
    }

    /// Two sources send 20 datagrams each, interleaved; returns what the inbox read, per read.
    async fn read_forty(inbox: &mut Inbox) -> io::Result<(Vec<usize>, Vec<(SocketAddr, Vec<u8>)>, [SocketAddr; 2])> {
        let receiver = UdpSocket::bind("127.0.0.1:0").await?;
        let to = receiver.local_addr()?;
        let sources = [std::net::UdpSocket::bind("127.0.0.1:0")?, std::net::UdpSocket::bind("127.0.0.1:0")?];
        for i in 0..PER_SOURCE {
            for (tag, source) in sources.iter().enumerate() {
                source.send_to(&datagram(tag as u8, i), to)?;
            }
        }
        // Loopback delivers during send_to unless softirqs are deferred to ksoftirqd (a busy
        // machine); a moment's wait lets every datagram be waiting before the first read.
        tokio::time::sleep(Duration::from_millis(20)).await;
        let (mut reads, mut got) = (Vec::new(), Vec::new());
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while got.len() < 2 * PER_SOURCE {
            tokio::time::timeout_at(deadline, receiver.readable()).await??;
            match inbox.receive(&receiver) {
                Ok(n) => {
                    reads.push(n);
                    got.extend(inbox.datagrams().map(|(from, d)| (from, d.to_vec())));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
        let err = inbox.receive(&receiver).err().map(|e| e.kind());
        assert_eq!(err, Some(io::ErrorKind::WouldBlock), "the socket is empty now");
        Ok((reads, got, [sources[0].local_addr()?, sources[1].local_addr()?]))
    }

    /// Every datagram whole, from the right source, in each source's order.
    fn assert_whole_and_in_order(got: &[(SocketAddr, Vec<u8>)], sources: [SocketAddr; 2]) {
        assert_eq!(got.len(), 2 * PER_SOURCE);
        let mut per_source: HashMap<SocketAddr, Vec<&Vec<u8>>> = HashMap::new();
        for (from, d) in got {
            per_source.entry(*from).or_default().push(d);
        }
        for (tag, source) in sources.iter().enumerate() {
            let expected: Vec<Vec<u8>> = (0..PER_SOURCE).map(|i| datagram(tag as u8, i)).collect();
            let received: Vec<Vec<u8>> = per_source[source].iter().map(|d| d.to_vec()).collect();
            assert_eq!(received, expected, "source {tag}");
        }
    }

    #[tokio::test]
    async fn a_read_takes_up_to_capacity_each_whole_with_its_source() -> io::Result<()> {
        let mut inbox = Inbox::with_capacity(32);
        let (reads, got, sources) = read_forty(&mut inbox).await?;
        assert!(reads.len() >= 2 && reads.iter().all(|n| *n <= 32), "reads {reads:?}");
        assert_eq!(reads.iter().max(), Some(&32), "40 waiting: a read fills the inbox, {reads:?}");
        assert_whole_and_in_order(&got, sources);
        assert_eq!(inbox.stats.received, 40);
        assert!(inbox.stats.syscalls < 40, "batched: {:?}", inbox.stats);
        Ok(())
    }

    #[tokio::test]
    async fn one_datagram_per_call_gives_the_same() -> io::Result<()> {
        let mut inbox = Inbox::with_capacity(32);
        inbox.batched = false;
        let (reads, got, sources) = read_forty(&mut inbox).await?;
        assert!(reads.iter().all(|n| *n <= 32), "reads {reads:?}");
        assert_whole_and_in_order(&got, sources);
        assert!(inbox.stats.syscalls >= 40);
        Ok(())
    }

    #[tokio::test]
    async fn an_oversized_datagram_is_dropped_and_counted() -> io::Result<()> {
        let receiver = UdpSocket::bind("127.0.0.1:0").await?;
        let source = std::net::UdpSocket::bind("127.0.0.1:0")?;
        source.send_to(&[7u8; MAX_DATAGRAM + 500], receiver.local_addr()?)?;
        source.send_to(&[8u8; 300], receiver.local_addr()?)?;
        let mut inbox = Inbox::with_capacity(32);
        let mut got = Vec::new();
        while got.is_empty() {
            tokio::time::timeout(Duration::from_secs(5), receiver.readable()).await??;
            if inbox.receive(&receiver).is_ok() {
                got.extend(inbox.datagrams().map(|(_, d)| d.to_vec()));
            }
        }
        assert_eq!(got, vec![vec![8u8; 300]]);
        assert_eq!(inbox.stats.truncated, 1);
        Ok(())
    }

    #[test]
    fn an_empty_inbox_allocates_no_buffers() {
        let inbox = Inbox::default();
        assert_eq!(inbox.buffers.capacity(), 0);
        assert_eq!(inbox.datagrams().count(), 0);
    }
}
