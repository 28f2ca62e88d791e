//! Outgoing datagrams leave in batches: up to `BATCH` messages per `sendmmsg(2)` call instead
//! of one `sendto(2)` each, and on Linux a run of equal-size datagrams to one viewer travels as
//! one message that the kernel cuts up below UDP (UDP GSO, `UDP_SEGMENT`).
//!
//! Why: the profile at 100 viewers put 43-46 % of the media thread in the kernel's send path:
//! the fixed cost of entering the kernel once per datagram, and then the per-datagram trip
//! through the socket, UDP and IP layers. The driver queues what str0m hands it while it works
//! through one input (a host packet fans out to every viewer, a frame's packets to one viewer
//! lie back to back) and flushes once at the end, or whenever a call's worth is waiting.
//! `MessagePlan` decides which datagrams share a message.
//!
//! The datagrams str0m produced are sent from where they lie (no copy: a merged message is a
//! list of slices), and the headers and addresses are reused, so a flush allocates nothing.
//!
//! Fallbacks, each for good: a kernel without GSO (probed once with `getsockopt`), or one that
//! refuses a segmented call, gets one datagram per message (the refused call is sent again
//! without GSO, so nothing is lost); where `sendmmsg` is not available, one `send_to` per
//! datagram. `SELLCAST_NO_GSO=1` turns GSO off from the start.
//!
//! A datagram the socket can't take now (its buffer is full) is dropped and counted, as a
//! single `try_send_to` did before: media is loss-tolerant and the viewer NACKs what matters.

use std::io::IoSlice;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};

use nix::errno::Errno;
use nix::sys::socket::{getsockopt, sendmmsg, sockopt, ControlMessage, MsgFlags, MultiHeaders, SockaddrStorage};
use str0m::net::DatagramSend;
use tokio::net::UdpSocket;
use tracing::warn;

use super::message_plan::{MessagePlan, Run};

/// Messages per `sendmmsg` call: a host packet to 64 viewers in one syscall.
pub(crate) const BATCH: usize = 64;
/// Most datagrams queued before a flush. With GSO a call's 64 messages can carry far more than
/// 64 datagrams; this bounds how long the first queued datagram waits for the rest (a few
/// hundred microseconds of str0m work) and the slice array a call builds on the stack.
pub(crate) const QUEUE_LIMIT: usize = 4 * BATCH;
/// Set to `1` to send without UDP GSO (e.g. a NIC or tunnel that mishandles it).
pub(crate) const NO_GSO_VAR: &str = "SELLCAST_NO_GSO";

/// What the outbox did, for the driver's shutdown report. All counts are datagrams except
/// `syscalls` and `gso_messages`.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct OutboxStats {
    pub sent: u64,
    pub dropped: u64,
    pub syscalls: u64,
    /// Messages sent that carried more than one datagram.
    pub gso_messages: u64,
    /// Datagrams sent inside those messages.
    pub gso_datagrams: u64,
}

/// Whether calls may carry `UDP_SEGMENT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Gso {
    /// Wanted, not yet asked of the kernel: the first flush probes the socket.
    Untried,
    On,
    Off,
}

pub(crate) struct Outbox {
    queue: Vec<(SocketAddr, DatagramSend)>,
    /// The last queued message and the number queued, so a flush happens when a call's worth
    /// of messages is waiting rather than a call's worth of datagrams.
    last: Option<Run>,
    messages: usize,
    /// Headers for calls without and with the `UDP_SEGMENT` control message. Two sets because
    /// nix keeps a preallocated header's control buffer between calls: a call without GSO must
    /// not carry the previous call's segment size.
    plain: MultiHeaders<SockaddrStorage>,
    segmented: MultiHeaders<SockaddrStorage>,
    batched: bool,
    gso: Gso,
    pub(crate) stats: OutboxStats,
}

impl Outbox {
    /// An outbox that uses GSO where the kernel has it, unless `SELLCAST_NO_GSO=1`.
    pub(crate) fn new() -> Self {
        let disabled = std::env::var_os(NO_GSO_VAR).is_some_and(|v| v == "1");
        Self::with_gso(!disabled)
    }

    /// An outbox that uses GSO (where the kernel has it) only if `gso`.
    pub(crate) fn with_gso(gso: bool) -> Self {
        Self {
            queue: Vec::with_capacity(QUEUE_LIMIT),
            last: None,
            messages: 0,
            plain: MultiHeaders::preallocate(BATCH, None),
            segmented: MultiHeaders::preallocate(BATCH, Some(nix::cmsg_space!(u16))),
            batched: true,
            gso: if gso { Gso::Untried } else { Gso::Off },
            stats: OutboxStats::default(),
        }
    }

    /// Queue one datagram; sends what is queued first if a call's worth is already waiting.
    pub(crate) fn push(&mut self, socket: &UdpSocket, to: SocketAddr, datagram: DatagramSend) {
        let len = datagram.len();
        let joins = self.gso != Gso::Off && self.last.is_some_and(|run| run.accepts(to, len));
        if self.queue.len() >= QUEUE_LIMIT || (!joins && self.messages >= BATCH) {
            self.flush(socket);
        }
        match self.last.as_mut() {
            Some(run) if joins => run.add(len),
            _ => {
                self.last = Some(Run::start(to, len));
                self.messages += 1;
            }
        }
        self.queue.push((to, datagram));
    }

    /// Send everything queued.
    pub(crate) fn flush(&mut self, socket: &UdpSocket) {
        if !self.queue.is_empty() {
            if self.batched {
                self.send_batched(socket);
            } else {
                self.send_each(socket, 0);
            }
            self.queue.clear();
        }
        self.last = None;
        self.messages = 0;
    }

    /// The portable path: one `send_to` per queued datagram from `start` on.
    fn send_each(&mut self, socket: &UdpSocket, start: usize) {
        for (to, datagram) in &self.queue[start..] {
            self.stats.syscalls += 1;
            match socket.try_send_to(datagram, *to) {
                Ok(_) => self.stats.sent += 1,
                Err(_) => self.stats.dropped += 1,
            }
        }
    }

    fn send_batched(&mut self, socket: &UdpSocket) {
        if self.gso == Gso::Untried {
            self.gso = probe_gso(socket);
        }
        let fd = socket.as_raw_fd();
        let mut start = 0;
        while start < self.queue.len() {
            let window = &self.queue[start..self.queue.len().min(start + QUEUE_LIMIT)];
            let plan = MessagePlan::new(window, self.gso == Gso::On);
            let result = send_call(fd, window, &plan, (&mut self.plain, &mut self.segmented));
            self.stats.syscalls += 1;
            match Next::after(result, plan.segment().is_some()) {
                Next::Sent(messages) => {
                    let (merged, in_merged) = plan.merged_in(messages);
                    self.stats.gso_messages += merged;
                    self.stats.gso_datagrams += in_merged;
                    let sent = plan.datagrams_in(messages);
                    self.stats.sent += sent as u64;
                    start += sent;
                }
                Next::DropRest => {
                    self.stats.dropped += (self.queue.len() - start) as u64;
                    return;
                }
                Next::WithoutGso(error) => {
                    // Only a call that carried the segment size gets here, so this logs once.
                    warn!(%error, "the kernel refused UDP GSO; sending one datagram per message from now on");
                    self.gso = Gso::Off;
                }
                Next::OneByOne => {
                    self.batched = false;
                    self.send_each(socket, start);
                    return;
                }
                Next::SkipFirst => {
                    let refused = plan.datagrams_in(1).max(1);
                    self.stats.dropped += refused as u64;
                    start += refused;
                }
            }
        }
    }
}

/// Ask the kernel whether the socket knows `UDP_SEGMENT`. Needed before the first segmented
/// call: a kernel older than 4.18 ignores the unknown control message and would send a merged
/// message as one oversized datagram.
fn probe_gso(socket: &UdpSocket) -> Gso {
    match getsockopt(socket, sockopt::UdpGsoSegment) {
        Ok(_) => Gso::On,
        Err(error) => {
            warn!(%error, "no UDP GSO on this socket; sending one datagram per message");
            Gso::Off
        }
    }
}

/// One `sendmmsg` call: each planned message is a list of slices over the queued datagrams.
/// Returns how many messages the kernel took.
fn send_call(
    fd: RawFd,
    window: &[(SocketAddr, DatagramSend)],
    plan: &MessagePlan,
    (plain, segmented): (&mut MultiHeaders<SockaddrStorage>, &mut MultiHeaders<SockaddrStorage>),
) -> Result<usize, Errno> {
    let slices: [IoSlice<'_>; QUEUE_LIMIT] =
        std::array::from_fn(|i| IoSlice::new(window.get(i).map_or(&[][..], |(_, d)| &d[..])));
    let messages: [&[IoSlice<'_>]; BATCH] =
        std::array::from_fn(|m| plan.datagrams_of(m).and_then(|r| slices.get(r)).unwrap_or(&[]));
    let addrs: [Option<SockaddrStorage>; BATCH] = std::array::from_fn(|m| {
        plan.datagrams_of(m).and_then(|r| window.get(r.start)).map(|(to, _)| SockaddrStorage::from(*to))
    });
    let n = plan.messages();
    match plan.segment() {
        Some(segment) => {
            let gso = [ControlMessage::UdpGsoSegments(&segment)];
            sendmmsg(fd, segmented, messages[..n].iter(), &addrs[..n], gso, MsgFlags::empty()).map(Iterator::count)
        }
        None => sendmmsg(fd, plain, messages[..n].iter(), &addrs[..n], [], MsgFlags::empty()).map(Iterator::count),
    }
}

/// What one `sendmmsg` call's result means for the rest of the flush.
#[derive(Debug, PartialEq, Eq)]
enum Next {
    /// This many messages left; go on after them.
    Sent(usize),
    /// The socket buffer is full: drop what is left of this flush.
    DropRest,
    /// The kernel refused the segment size: GSO off for good, the same window again without it.
    WithoutGso(Errno),
    /// No `sendmmsg` here: one `send_to` per datagram from now on.
    OneByOne,
    /// The first message was refused (e.g. an unreachable destination): drop its datagrams
    /// and keep the rest.
    SkipFirst,
}

impl Next {
    /// `sendmmsg` fails only when its first message fails; a later failure shows as fewer
    /// messages sent, and the next call then starts with that message and reports it.
    fn after(result: Result<usize, Errno>, segmented: bool) -> Self {
        match result {
            Ok(0) | Err(Errno::EAGAIN) => Next::DropRest,
            Ok(messages) => Next::Sent(messages),
            // EIO: no checksum offload on the device; EINVAL/ENOPROTOOPT/EOPNOTSUPP: no GSO
            // for this socket or route; EMSGSIZE: a segment above the route's MTU (a tunnel).
            Err(e @ (Errno::EIO | Errno::EINVAL | Errno::ENOPROTOOPT | Errno::EOPNOTSUPP | Errno::EMSGSIZE))
                if segmented =>
            {
                Next::WithoutGso(e)
            }
            Err(Errno::ENOSYS | Errno::EOPNOTSUPP) => Next::OneByOne,
            Err(_) => Next::SkipFirst,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every queued datagram arrives, in order, whole, through batches larger and smaller
    /// than `BATCH`.
    #[tokio::test]
    async fn batches_arrive_whole_and_in_order() -> std::io::Result<()> {
        let sender = UdpSocket::bind("127.0.0.1:0").await?;
        let receiver = std::net::UdpSocket::bind("127.0.0.1:0")?;
        receiver.set_read_timeout(Some(std::time::Duration::from_secs(5)))?;
        let to = receiver.local_addr()?;
        let mut outbox = Outbox::new();
        let total = BATCH * 2 + 7;
        for i in 0..total {
            let mut datagram = vec![(i % 251) as u8; 100 + i];
            datagram[..4].copy_from_slice(&(i as u32).to_be_bytes());
            outbox.push(&sender, to, datagram.into());
        }
        assert_eq!(outbox.stats.sent, (BATCH * 2) as u64, "full batches go out as they fill");
        outbox.flush(&sender);
        assert_eq!((outbox.stats.sent, outbox.stats.dropped, outbox.stats.syscalls), (total as u64, 0, 3));
        let mut buf = [0u8; 2048];
        for i in 0..total {
            let (n, _) = receiver.recv_from(&mut buf)?;
            assert_eq!(n, 100 + i);
            assert_eq!(u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]), i as u32);
            assert!(buf[4..n].iter().all(|b| *b == (i % 251) as u8));
        }
        Ok(())
    }

    const ROUNDS: u8 = 6;

    /// The fan-out shape, per round: viewer 0 gets a frame (nine full packets and a shorter
    /// tail), viewer 1 an audio packet then a frame of equal packets, viewer 2 two odd sizes.
    /// Each datagram says whose it is, its round and its place.
    fn fan_out() -> Vec<(usize, Vec<u8>)> {
        let datagram = |viewer: usize, round: u8, i: u8, len: usize| {
            let mut d = vec![round.wrapping_mul(31) ^ i; len];
            d[..3].copy_from_slice(&[viewer as u8, round, i]);
            (viewer, d)
        };
        let mut queue = Vec::new();
        for round in 0..ROUNDS {
            queue.extend((0..9).map(|i| datagram(0, round, i, 1150)));
            queue.push(datagram(0, round, 9, 700));
            queue.push(datagram(1, round, 0, 120));
            queue.extend((1..7).map(|i| datagram(1, round, i, 1150)));
            queue.push(datagram(2, round, 0, 333));
            queue.push(datagram(2, round, 1, 1149));
        }
        queue
    }

    /// Queue `fan_out` in `outbox`, flush once, and return what each of three plain
    /// (non-GRO) receivers got, in order.
    async fn send_fan_out(outbox: &mut Outbox) -> std::io::Result<Vec<Vec<Vec<u8>>>> {
        let sender = UdpSocket::bind("127.0.0.1:0").await?;
        let mut receivers = Vec::new();
        for _ in 0..3 {
            let r = std::net::UdpSocket::bind("127.0.0.1:0")?;
            // Room for a burst of a few hundred kilobytes; the kernel caps it at rmem_max.
            let _ = socket2::SockRef::from(&r).set_recv_buffer_size(1 << 20);
            r.set_read_timeout(Some(std::time::Duration::from_secs(5)))?;
            receivers.push(r);
        }
        let queue = fan_out();
        for (viewer, d) in &queue {
            outbox.push(&sender, receivers[*viewer].local_addr()?, d.clone().into());
        }
        outbox.flush(&sender);
        let mut got = vec![Vec::new(); receivers.len()];
        let mut buf = [0u8; 2048];
        for (viewer, receiver) in receivers.iter().enumerate() {
            let expected = queue.iter().filter(|(v, _)| *v == viewer).count();
            for _ in 0..expected {
                let (n, _) = receiver.recv_from(&mut buf)?;
                got[viewer].push(buf[..n].to_vec());
            }
            receiver.set_nonblocking(true)?;
            assert!(receiver.recv_from(&mut buf).is_err(), "viewer {viewer} got more than was sent");
        }
        Ok(got)
    }

    fn expected_fan_out() -> Vec<Vec<Vec<u8>>> {
        let mut per_viewer = vec![Vec::new(); 3];
        for (viewer, d) in fan_out() {
            per_viewer[viewer].push(d);
        }
        per_viewer
    }

    /// Runs of equal datagrams to one viewer leave as GSO messages; the receivers still see
    /// every datagram whole and in order, and one call carries what needed two without GSO.
    #[tokio::test]
    async fn gso_runs_arrive_as_separate_datagrams_in_order() -> std::io::Result<()> {
        let mut outbox = Outbox::with_gso(true);
        let got = send_fan_out(&mut outbox).await?;
        assert_eq!(got, expected_fan_out());
        let total = fan_out().len() as u64;
        let s = outbox.stats;
        assert_eq!((s.sent, s.dropped), (total, 0), "{s:?}");
        // Per round: viewer 0's frame and viewer 1's six full packets merge.
        assert_eq!((s.gso_messages, s.gso_datagrams), (2 * ROUNDS as u64, 16 * ROUNDS as u64), "{s:?}");
        assert!(s.syscalls < total.div_ceil(BATCH as u64), "{s:?}");
        Ok(())
    }

    /// GSO off (as with `SELLCAST_NO_GSO=1`): the receivers get exactly the same.
    #[tokio::test]
    async fn without_gso_the_same_datagrams_arrive() -> std::io::Result<()> {
        let mut outbox = Outbox::with_gso(false);
        let got = send_fan_out(&mut outbox).await?;
        assert_eq!(got, expected_fan_out());
        let total = fan_out().len() as u64;
        let s = outbox.stats;
        assert_eq!((s.sent, s.dropped, s.gso_messages, s.gso_datagrams), (total, 0, 0, 0), "{s:?}");
        assert_eq!(s.syscalls, total.div_ceil(BATCH as u64), "{s:?}");
        Ok(())
    }

    #[test]
    fn a_refused_segment_size_turns_gso_off_and_other_errors_keep_their_meaning() {
        assert_eq!(Next::after(Ok(3), true), Next::Sent(3));
        assert_eq!(Next::after(Ok(0), false), Next::DropRest);
        assert_eq!(Next::after(Err(Errno::EAGAIN), true), Next::DropRest);
        for refusal in [Errno::EIO, Errno::EINVAL, Errno::ENOPROTOOPT, Errno::EOPNOTSUPP, Errno::EMSGSIZE] {
            assert_eq!(Next::after(Err(refusal), true), Next::WithoutGso(refusal));
        }
        assert_eq!(Next::after(Err(Errno::EOPNOTSUPP), false), Next::OneByOne);
        assert_eq!(Next::after(Err(Errno::ENOSYS), true), Next::OneByOne);
        assert_eq!(Next::after(Err(Errno::EINVAL), false), Next::SkipFirst);
        assert_eq!(Next::after(Err(Errno::ECONNREFUSED), true), Next::SkipFirst);
    }
}
