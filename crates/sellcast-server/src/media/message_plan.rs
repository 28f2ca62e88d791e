//! How one `sendmmsg(2)` call groups queued datagrams into messages when UDP GSO is on.
//!
//! Why: a viewer's packets of one video frame are queued back to back and are mostly the same
//! length. Handed to the kernel as one message with a `UDP_SEGMENT` size, they cross the
//! socket, UDP and IP layers once and are cut into datagrams below them, instead of each
//! paying for the route lookup, the buffer accounting and the qdisc on its own.
//!
//! The kernel's rule, with segment size G: a message of total length <= G leaves as one plain
//! datagram; a longer one is cut into G-byte datagrams, the last one possibly shorter. So one
//! message may carry several of our datagrams only if they go to one destination, every one but
//! the last is exactly G bytes and the last is 1..=G bytes. nix hands the same control messages
//! to every message of a call, so a call has one G, and it must be the longest datagram the
//! call carries: a longer one would be cut.
//!
//! Nothing here touches a socket: the plan is a pure function of the queue, tested as such.

use std::net::SocketAddr;
use std::ops::{Deref, Range};

use super::outbox::BATCH;

/// Most datagrams in one message: older kernels refuse more than 64 segments (EINVAL).
pub(crate) const MAX_SEGMENTS: usize = 64;
/// Most bytes in one message: a UDP payload can't exceed 65,507 bytes, with room to spare.
pub(crate) const MAX_MESSAGE_BYTES: usize = 60_000;
/// Longest segment we ask for: each segment must fit the path MTU (1,500-byte Ethernet less
/// the IPv6 and UDP headers), or the kernel refuses the message. str0m aims at 1,150.
pub(crate) const MAX_SEGMENT: usize = 1452;

/// One message being built: datagrams to one destination, all but the last `segment` bytes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Run {
    to: SocketAddr,
    segment: usize,
    datagrams: usize,
    bytes: usize,
    /// A shorter datagram joined: it has to stay the last.
    ended: bool,
}

impl Run {
    /// A message holding one datagram of `len` bytes.
    pub(crate) fn start(to: SocketAddr, len: usize) -> Self {
        Self { to, segment: len, datagrams: 1, bytes: len, ended: false }
    }

    /// Whether a datagram of `len` bytes to `to` can join this message and come out of the
    /// kernel as itself. An empty datagram never joins: it would add nothing to the message
    /// and so vanish.
    pub(crate) fn accepts(&self, to: SocketAddr, len: usize) -> bool {
        !self.ended
            && to == self.to
            && (1..=self.segment).contains(&len)
            && self.segment <= MAX_SEGMENT
            && self.datagrams < MAX_SEGMENTS
            && self.bytes + len <= MAX_MESSAGE_BYTES
    }

    /// Add a datagram `accepts` let in.
    pub(crate) fn add(&mut self, len: usize) {
        self.datagrams += 1;
        self.bytes += len;
        self.ended = len < self.segment;
    }
}

/// The messages of one `sendmmsg` call over a window of the queue (from its first unsent
/// datagram): where each message ends, and the segment size if any message merges datagrams.
#[derive(Debug)]
pub(crate) struct MessagePlan {
    /// `ends[m]`: one past the window index of message `m`'s last datagram.
    ends: [usize; BATCH],
    messages: usize,
    segment: Option<u16>,
}

impl MessagePlan {
    /// Plan up to `BATCH` messages over `window`. Without `gso`, one datagram per message.
    pub(crate) fn new<D: Deref<Target = [u8]>>(window: &[(SocketAddr, D)], gso: bool) -> Self {
        if !gso {
            return Self::group(window, |_| false);
        }
        // Grouping on each run's own length tells which datagrams the call can reach; the
        // longest of those is the one segment size that cuts none of them.
        let natural = Self::group(window, |_| true);
        let reach = natural.datagrams_in(natural.messages);
        let segment = window[..reach].iter().map(|(_, d)| d.len()).max().unwrap_or(0);
        if segment > MAX_SEGMENT {
            return Self::group(window, |_| false);
        }
        // Only runs of exactly `segment` bytes merge now, so messages only split: the call
        // reaches no further than before, and no datagram in it is longer than `segment`.
        let mut plan = Self::group(window, |first| first == segment);
        if plan.merges() {
            plan.segment = u16::try_from(segment).ok();
        }
        plan
    }

    /// Greedy grouping: a message starting with a datagram of `len` bytes takes the following
    /// datagrams `Run` accepts if `merge(len)`.
    fn group<D: Deref<Target = [u8]>>(window: &[(SocketAddr, D)], merge: impl Fn(usize) -> bool) -> Self {
        let mut plan = Self { ends: [0; BATCH], messages: 0, segment: None };
        let mut i = 0;
        while i < window.len() && plan.messages < BATCH {
            let (to, first) = &window[i];
            let mut run = Run::start(*to, first.len());
            i += 1;
            if merge(first.len()) {
                while let Some((to, next)) = window.get(i) {
                    if !run.accepts(*to, next.len()) {
                        break;
                    }
                    run.add(next.len());
                    i += 1;
                }
            }
            plan.ends[plan.messages] = i;
            plan.messages += 1;
        }
        plan
    }

    /// Messages in the call.
    pub(crate) fn messages(&self) -> usize {
        self.messages
    }

    /// The `UDP_SEGMENT` size to send with, if some message carries several datagrams.
    pub(crate) fn segment(&self) -> Option<u16> {
        self.segment
    }

    /// Window indexes of message `m`'s datagrams.
    pub(crate) fn datagrams_of(&self, m: usize) -> Option<Range<usize>> {
        if m >= self.messages {
            return None;
        }
        let start = if m == 0 { 0 } else { self.ends[m - 1] };
        Some(start..self.ends[m])
    }

    /// Datagrams carried by the first `messages` messages.
    pub(crate) fn datagrams_in(&self, messages: usize) -> usize {
        match messages.min(self.messages) {
            0 => 0,
            m => self.ends[m - 1],
        }
    }

    /// Of the first `messages` messages, those that carry more than one datagram, and the
    /// datagrams they carry.
    pub(crate) fn merged_in(&self, messages: usize) -> (u64, u64) {
        (0..messages.min(self.messages))
            .filter_map(|m| self.datagrams_of(m).map(|r| r.len()))
            .filter(|n| *n > 1)
            .fold((0, 0), |(msgs, datagrams), n| (msgs + 1, datagrams + n as u64))
    }

    fn merges(&self) -> bool {
        (0..self.messages).any(|m| self.datagrams_of(m).is_some_and(|r| r.len() > 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    /// A window of `(destination port, length)` datagrams.
    fn window(spec: &[(u16, usize)]) -> Vec<(SocketAddr, Vec<u8>)> {
        spec.iter().map(|&(port, len)| (addr(port), vec![0u8; len])).collect()
    }

    fn sizes(plan: &MessagePlan) -> Vec<usize> {
        (0..plan.messages()).filter_map(|m| plan.datagrams_of(m)).map(|r| r.len()).collect()
    }

    #[test]
    fn equal_runs_to_one_destination_merge_with_a_shorter_tail() {
        let w = window(&[(1, 1150), (1, 1150), (1, 1150), (1, 700), (2, 1150), (2, 1150)]);
        let plan = MessagePlan::new(&w, true);
        assert_eq!(sizes(&plan), vec![4, 2]);
        assert_eq!(plan.segment(), Some(1150));
        assert_eq!(plan.merged_in(2), (2, 6));
        assert_eq!(plan.merged_in(1), (1, 4));
    }

    #[test]
    fn a_tail_ends_the_message_and_a_longer_datagram_starts_a_new_one() {
        let w = window(&[(1, 1150), (1, 700), (1, 1150), (1, 1150), (1, 900), (1, 900)]);
        let plan = MessagePlan::new(&w, true);
        assert_eq!(sizes(&plan), vec![2, 3, 1]);
    }

    #[test]
    fn runs_shorter_than_the_calls_segment_stay_single() {
        // The 1,200-byte datagram sets G; the 300-byte run can't be cut at 1,200.
        let w = window(&[(1, 300), (1, 300), (2, 1200), (2, 1200), (3, 1200)]);
        let plan = MessagePlan::new(&w, true);
        assert_eq!(sizes(&plan), vec![1, 1, 2, 1]);
        assert_eq!(plan.segment(), Some(1200));
    }

    #[test]
    fn nothing_merged_means_no_segment_size() {
        let w = window(&[(1, 100), (2, 100), (1, 200)]);
        let plan = MessagePlan::new(&w, true);
        assert_eq!(sizes(&plan), vec![1, 1, 1]);
        assert_eq!(plan.segment(), None);
        assert_eq!(plan.merged_in(3), (0, 0));
    }

    #[test]
    fn without_gso_every_datagram_is_a_message() {
        let w = window(&[(1, 1150), (1, 1150), (1, 1150)]);
        let plan = MessagePlan::new(&w, false);
        assert_eq!(sizes(&plan), vec![1, 1, 1]);
        assert_eq!(plan.segment(), None);
    }

    #[test]
    fn messages_are_capped_in_segments_and_bytes() {
        let w = window(&vec![(1, 100); MAX_SEGMENTS + 3]);
        assert_eq!(sizes(&MessagePlan::new(&w, true)), vec![MAX_SEGMENTS, 3]);
        let w = window(&vec![(1, 1400); 50]);
        let per_message = MAX_MESSAGE_BYTES / 1400;
        assert_eq!(sizes(&MessagePlan::new(&w, true)), vec![per_message, 50 - per_message]);
    }

    #[test]
    fn segments_above_the_mtu_are_never_asked_for() {
        let w = window(&[(1, 1400), (1, 1400), (2, MAX_SEGMENT + 1)]);
        let plan = MessagePlan::new(&w, true);
        assert_eq!(sizes(&plan), vec![1, 1, 1]);
        assert_eq!(plan.segment(), None);
    }

    #[test]
    fn a_call_holds_at_most_batch_messages_and_its_segment_covers_them_only() {
        // 64 single messages, then a longer run the call does not reach.
        let mut spec: Vec<(u16, usize)> = (0..BATCH as u16).map(|p| (p + 1, 100)).collect();
        spec.extend([(999, 1300), (999, 1300)]);
        let w = window(&spec);
        let plan = MessagePlan::new(&w, true);
        assert_eq!(plan.messages(), BATCH);
        assert_eq!(plan.datagrams_in(BATCH), BATCH);
        assert_eq!(plan.segment(), None, "no run merged within the call's reach");
    }

    #[test]
    fn empty_datagrams_never_join() {
        let w = window(&[(1, 500), (1, 0), (1, 500)]);
        assert_eq!(sizes(&MessagePlan::new(&w, true)), vec![1, 1, 1]);
    }
}
