//! The media driver: one shard's task, owning its UDP socket, its peers and its part of every
//! room.
//!
//! Its loop: wait for datagrams, a command from HTTP, a message from another shard, or the
//! earliest timeout; hand each input to the one str0m instance it belongs to; turn that
//! peer's output into events for its room; let the room's forwarder decide; write what it
//! queued for each viewer; send the turn's datagrams in `sendmmsg` batches. Nothing here is
//! shared, so nothing here locks. A host's packets are handed to the other shards (once per
//! packet, see `relay`) before this shard forwards them to its own viewers, so the shards fan
//! out in parallel.
//!
//! A turn reads up to `RECV_BURST` datagrams before forwarding: a frame's packets arrive back
//! to back, and forwarding them together costs one poll of each viewer's str0m instance for
//! several packets instead of one per packet (100 viewers: 3.9 -> 2.9 us per forwarded packet).
//!
//! Per forwarded packet it must not allocate in our code, log above debug, or touch JSON.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sellcast_room::{Class, Identity, ParticipantId};
use sellcast_sfu::{ForwarderConfig, ForwarderEvent, MediaPacket, OutPacket, TrackKind, ViewerId};
use str0m::media::KeyframeRequestKind;
use str0m::net::{Protocol, Receive};
use str0m::rtp::RtpWrite;
use str0m::{Event, IceConnectionState, Input, Output};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, warn};

use super::command::{Command, SessionAnswer};
use super::directory::{Directory, MediaStats};
use super::relay::{Relay, RelayInbox, ShardId, ShardLinks};
use super::router::session_id;
use super::forward_clock::ForwardClock;
use super::inbox::Inbox;
use super::offer::{PublishPlan, Role};
use super::outbox::Outbox;
use super::peer::{Peer, PeerFactory, PeerId};
use super::room::Room;
use crate::http::error::SignalError;
use crate::interaction::messages::RoomMsg;
use crate::interaction::registry::Rooms;

/// The loop wakes at least this often even when nothing is due.
const IDLE_WAKE: Duration = Duration::from_millis(100);
/// Most packets written to one viewer per flush. Steady state is one or two; the cap only
/// paces a joining viewer's keyframe-group replay (hundreds of packets), which in one burst
/// overflows the default socket buffer of many clients and must then be recovered by NACKs.
const PACKETS_PER_FLUSH: usize = 48;
/// When a replay is being paced, the next slice goes out this much later.
const PACE_INTERVAL: Duration = Duration::from_millis(2);
/// Media to a new viewer starts this long after our side of DTLS completes. We are the DTLS
/// server, so we finish first; a client that installs its SRTP keys asynchronously would drop
/// the replayed keyframe if it arrived in the same instant, and then need a PLI (seconds).
/// 5 ms covers it with room: at 200 bench viewers every first packet was the keyframe, and
/// the 20-viewer test held on a machine with both cores busy (15 ms cost 10 ms of first frame).
const VIEWER_SETTLE: Duration = Duration::from_millis(5);

/// Most datagrams read before forwarding what they carried. Below `PACKETS_PER_FLUSH`, so a
/// burst of host packets reaches every viewer in one flush.
const RECV_BURST: usize = 32;
/// How often the media counters are copied out for the HTTP side.
const STATS_EVERY: Duration = Duration::from_millis(500);

/// Index of a room inside the driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct RoomId(u32);

/// What a peer's output means for its room.
#[derive(Debug)]
pub(crate) enum PeerEvent {
    Connected,
    Closed,
    KeyframeRequest,
    Media(MediaPacket),
    SourceReset,
    ChannelOpen,
    ChannelData(Vec<u8>),
    ChannelClose,
}

/// Counters an operator can read from the logs on shutdown (and later from metrics).
#[derive(Debug, Default)]
pub(crate) struct DriverStats {
    datagrams_in: u64,
    unknown_source: u64,
    input_errors: u64,
    no_payload_type: u64,
    /// Data-channel frames the room task could not take (its inbox was full).
    frames_dropped: u64,
    /// Chat or counter frames skipped for a congested viewer.
    frames_skipped_congested: u64,
}

/// Above this many buffered bytes a viewer's channel is congested: chat and counters wait.
const CONGESTED_BYTES: usize = 64 * 1024;

pub struct Driver {
    socket: UdpSocket,
    /// This shard's links to the others (host packets out, keyframe requests home).
    links: ShardLinks,
    /// Buffers for one `recvmmsg` of up to `RECV_BURST` datagrams.
    inbox: Inbox,
    /// Datagrams waiting for the end of this turn of the loop (or a full batch).
    outbox: Outbox,
    /// Time live packets spend in the server.
    clock: ForwardClock,
    /// When the counters are next copied out to the directory.
    next_stats: Instant,
    local_addr: SocketAddr,
    factory: PeerFactory,
    interaction: Arc<Rooms>,
    forwarder_config: ForwarderConfig,
    directory: Arc<Directory>,
    peers: HashMap<PeerId, Peer>,
    sessions: HashMap<String, PeerId>,
    by_addr: HashMap<SocketAddr, PeerId>,
    peer_room: HashMap<PeerId, RoomId>,
    rooms: HashMap<RoomId, Room>,
    room_ids: HashMap<String, RoomId>,
    next_peer: u64,
    next_room: u32,
    earliest: Instant,
    /// Reused buffers: events waiting to be applied and rooms whose viewers need writing.
    pending: VecDeque<(PeerId, PeerEvent)>,
    dirty: Vec<RoomId>,
    /// Peers due in `handle_timeouts`, reused.
    due: Vec<PeerId>,
    stats: DriverStats,
}

impl Driver {
    pub(crate) fn new(
        socket: UdpSocket,
        factory: PeerFactory,
        directory: Arc<Directory>,
        interaction: Arc<Rooms>,
        links: ShardLinks,
    ) -> std::io::Result<Self> {
        let local_addr = socket.local_addr()?;
        Ok(Self {
            socket,
            links,
            inbox: Inbox::with_capacity(RECV_BURST),
            outbox: Outbox::new(),
            clock: ForwardClock::new(),
            next_stats: Instant::now(),
            local_addr,
            factory,
            interaction,
            forwarder_config: ForwarderConfig::default(),
            directory,
            peers: HashMap::new(),
            sessions: HashMap::new(),
            by_addr: HashMap::new(),
            peer_room: HashMap::new(),
            rooms: HashMap::new(),
            room_ids: HashMap::new(),
            next_peer: 1,
            next_room: 1,
            earliest: Instant::now(),
            pending: VecDeque::with_capacity(256),
            dirty: Vec::with_capacity(16),
            due: Vec::with_capacity(256),
            stats: DriverStats::default(),
        })
    }

    /// Run until `shutdown` fires or every command sender is gone.
    pub(crate) async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        mut relays: RelayInbox,
        mut shutdown: oneshot::Receiver<()>,
    ) {
        // With one shard nobody can send to us: the arm would return `None` at once, forever.
        let mut relays_open = self.links.has_peers();
        info!(shard = self.links.me().0, udp = %self.local_addr, "media driver running");
        loop {
            let now = Instant::now();
            if now >= self.earliest {
                self.handle_timeouts(now);
                self.end_turn();
            }
            let wake = self.earliest.min(Instant::now() + IDLE_WAKE);
            tokio::select! {
                biased;
                _ = &mut shutdown => break,
                readable = self.socket.readable() => match readable {
                    Ok(()) => self.receive_burst(),
                    Err(e) => debug!(error = %e, "udp readiness error"),
                },
                relay = relays.recv(), if relays_open => match relay {
                    Some(message) => self.receive_relays(message, &mut relays),
                    None => relays_open = false,
                },
                command = commands.recv() => match command {
                    Some(c) => self.handle_command(c),
                    None => break,
                },
                _ = tokio::time::sleep_until(wake.into()) => {}
            }
            self.end_turn();
        }
        self.close_all();
        self.end_turn();
        info!(stats = ?self.stats, received = ?self.inbox.stats, sent = ?self.outbox.stats, "media driver stopped");
    }

    /// Everything this turn produced leaves now, in as few syscalls as it fits; then the
    /// forward clock stops for the packets it carried.
    fn end_turn(&mut self) {
        self.outbox.flush(&self.socket);
        let now = Instant::now();
        self.clock.sent(now);
        if now >= self.next_stats {
            self.next_stats = now + STATS_EVERY;
            self.directory.publish_media(
                self.links.me(),
                MediaStats {
                    datagrams_in: self.stats.datagrams_in,
                    datagrams_out: self.outbox.stats.sent,
                    datagrams_dropped: self.outbox.stats.dropped,
                    send_syscalls: self.outbox.stats.syscalls,
                    gso_messages: self.outbox.stats.gso_messages,
                    gso_datagrams: self.outbox.stats.gso_datagrams,
                    relayed: self.links.stats.sent,
                    relay_dropped: self.links.stats.dropped,
                    peers: self.peers.len(),
                    forward_latency_us: Some(self.clock.histogram().clone()),
                },
            );
        }
    }

    /// Read what is waiting (up to `RECV_BURST` datagrams), hand each to its peer, and only
    /// then forward: a frame's packets arrive back to back, and forwarding them together
    /// writes several packets per viewer per poll of its str0m instance, and sends them in
    /// fuller batches. One `recvmmsg` reads them; the inbox is taken out of `self` while its
    /// datagrams are handed on, and put back.
    fn receive_burst(&mut self) {
        let mut inbox = std::mem::take(&mut self.inbox);
        match inbox.receive(&self.socket) {
            Ok(_) => {
                for (source, data) in inbox.datagrams() {
                    self.handle_datagram(source, data);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => debug!(error = %e, "udp receive error"),
        }
        self.inbox = inbox;
        self.process(Instant::now());
    }

    /// Apply what other shards sent (up to `RECV_BURST` messages), then forward: relayed
    /// packets of one frame go to this shard's viewers together, as read datagrams do.
    fn receive_relays(&mut self, first: Relay, relays: &mut RelayInbox) {
        let now = Instant::now();
        self.handle_relay(first, now);
        for _ in 1..RECV_BURST {
            let Some(message) = relays.try_recv() else {
                break;
            };
            self.handle_relay(message, now);
        }
        self.process(now);
    }

    /// One message from another shard about a room mirrored here, or (at the home shard) a
    /// mirror's keyframe request.
    fn handle_relay(&mut self, message: Relay, now: Instant) {
        let room_id = match &message {
            // A host going live creates the mirror, so its keyframe cache is warm before
            // this shard's first viewer of the room arrives.
            Relay::HostStart { room, .. } => self.room_id(room),
            Relay::HostEnd { room }
            | Relay::SourceReset { room }
            | Relay::Media { room, .. }
            | Relay::KeyframeRequest { room } => match self.room_ids.get(&**room) {
                Some(id) => *id,
                None => return,
            },
        };
        let Some(room) = self.rooms.get_mut(&room_id) else {
            return;
        };
        match message {
            Relay::Media { packet, .. } => room.forwarder.handle_rtp(now, &packet),
            Relay::HostStart { home, codecs, .. } => {
                room.relayed_from = Some(home);
                room.forwarder.handle_publisher_start(&codecs);
            }
            Relay::HostEnd { .. } => {
                room.relayed_from = None;
                room.forwarder.handle_publisher_end();
                self.drop_room_if_empty(room_id);
                return;
            }
            Relay::SourceReset { .. } => room.forwarder.handle_source_reset(),
            Relay::KeyframeRequest { .. } => room.forwarder.handle_viewer_keyframe_request(now),
        }
        if !self.dirty.contains(&room_id) {
            self.dirty.push(room_id);
        }
    }

    fn handle_datagram(&mut self, source: SocketAddr, data: &[u8]) {
        let now = Instant::now();
        self.stats.datagrams_in += 1;
        let Ok(receive) = Receive::new(Protocol::Udp, source, self.local_addr, data) else {
            self.stats.input_errors += 1;
            return;
        };
        let input = Input::Receive(now, receive);
        let id = match self.by_addr.get(&source) {
            Some(id) => *id,
            None => {
                // First packet from this address: the STUN username tells whose it is.
                let Some(id) = self.peers.values().find(|p| p.rtc.accepts(&input)).map(|p| p.id) else {
                    self.stats.unknown_source += 1;
                    return;
                };
                debug!(peer = id.0, %source, "peer address learned");
                self.by_addr.insert(source, id);
                id
            }
        };
        let Some(peer) = self.peers.get_mut(&id) else {
            self.by_addr.remove(&source);
            return;
        };
        if let Err(e) = peer.rtc.handle_input(input) {
            self.stats.input_errors += 1;
            debug!(peer = id.0, error = %e, "input rejected");
        }
        self.poll_peer(id, now);
    }

    /// Drain one peer's output: datagrams join the outbox, events wait in `pending`.
    fn poll_peer(&mut self, id: PeerId, now: Instant) {
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        drain_transmits(peer, (&self.socket, &mut self.outbox), &mut self.stats, &mut self.pending, now);
        self.earliest = self.earliest.min(peer.timeout);
    }

    /// Apply pending events to rooms, then write what the forwarders queued, until quiet.
    fn process(&mut self, now: Instant) {
        loop {
            while let Some((id, event)) = self.pending.pop_front() {
                self.apply(id, event, now);
            }
            let Some(room_id) = self.dirty.pop() else {
                return;
            };
            self.flush_room(room_id, now);
        }
    }

    fn apply(&mut self, id: PeerId, event: PeerEvent, now: Instant) {
        let to_room = match event {
            PeerEvent::Closed => {
                self.remove_peer(id, "closed");
                return;
            }
            PeerEvent::ChannelOpen => self.peers.get(&id).map(|p| RoomMsg::Join {
                participant: ParticipantId(id.0),
                identity: p.identity.clone(),
            }),
            PeerEvent::ChannelData(bytes) => Some(RoomMsg::Frame { participant: ParticipantId(id.0), bytes }),
            PeerEvent::ChannelClose => Some(RoomMsg::Leave { participant: ParticipantId(id.0) }),
            other => {
                self.apply_media(id, other, now);
                return;
            }
        };
        if let (Some(msg), Some(peer)) = (to_room, self.peers.get(&id)) {
            if peer.room_tx.try_send(msg).is_err() {
                self.stats.frames_dropped += 1;
            }
        }
    }

    fn apply_media(&mut self, id: PeerId, event: PeerEvent, now: Instant) {
        let Some(&room_id) = self.peer_room.get(&id) else {
            return;
        };
        let Some(room) = self.rooms.get_mut(&room_id) else {
            return;
        };
        match event {
            PeerEvent::Media(packet) => {
                // Other shards first: they fan out while this one does.
                let name = &room.name;
                self.links.broadcast(|| Relay::Media { room: name.clone(), packet: packet.clone() });
                room.forwarder.handle_rtp(now, &packet);
            }
            PeerEvent::Connected => {
                if let Some(peer) = self.peers.get_mut(&id) {
                    peer.connected = true;
                    info!(peer = id.0, room = %room.name, role = ?peer.role, "peer connected");
                    if peer.role == Role::Viewer {
                        let at = now + VIEWER_SETTLE;
                        peer.ready_at = Some(at);
                        self.earliest = self.earliest.min(at);
                    }
                }
            }
            PeerEvent::KeyframeRequest => room.forwarder.handle_viewer_keyframe_request(now),
            PeerEvent::SourceReset => {
                let name = &room.name;
                self.links.broadcast(|| Relay::SourceReset { room: name.clone() });
                room.forwarder.handle_source_reset();
            }
            PeerEvent::Closed | PeerEvent::ChannelOpen | PeerEvent::ChannelData(_) | PeerEvent::ChannelClose => {}
        }
        if !self.dirty.contains(&room_id) {
            self.dirty.push(room_id);
        }
    }

    /// Write every viewer's queued packets into its transport and relay keyframe requests.
    fn flush_room(&mut self, room_id: RoomId, now: Instant) {
        let Some(room) = self.rooms.get_mut(&room_id) else {
            return;
        };
        let codecs = [
            room.forwarder.codec(TrackKind::Audio),
            room.forwarder.codec(TrackKind::Video),
        ];
        let mut left_over = false;
        for viewer in room.forwarder.viewers_mut() {
            if viewer.queued() == 0 {
                continue;
            }
            let id = PeerId(viewer.id().0);
            let Some(peer) = self.peers.get_mut(&id) else {
                while viewer.pop_packet().is_some() {}
                continue;
            };
            for _ in 0..PACKETS_PER_FLUSH {
                let Some(packet) = viewer.pop_packet() else {
                    break;
                };
                write_packet(peer, &packet, codecs[packet.kind.index()]);
                if !packet.replay {
                    self.clock.written(packet.arrival);
                }
            }
            left_over |= viewer.queued() > 0;
            // Inline poll: the viewer's datagrams join the turn's batch, in forwarding order.
            drain_transmits(peer, (&self.socket, &mut self.outbox), &mut self.stats, &mut self.pending, now);
            self.earliest = self.earliest.min(peer.timeout);
        }
        if left_over {
            let at = now + PACE_INTERVAL;
            room.flush_at = Some(room.flush_at.map_or(at, |t| t.min(at)));
            self.earliest = self.earliest.min(at);
        }
        let (host, home) = (room.host, room.relayed_from);
        let mut keyframe = false;
        while let Some(event) = room.forwarder.poll_event() {
            match event {
                ForwarderEvent::RequestKeyframe => keyframe = true,
            }
        }
        if let (true, Some(home)) = (keyframe, home) {
            // A mirror: its forwarder already throttled this; the home shard throttles again
            // across all shards, so the host never sees more than one PLI per interval.
            let room = room.name.clone();
            self.links.send(home, Relay::KeyframeRequest { room });
        }
        if let (true, Some(host)) = (keyframe, host) {
            if let Some(peer) = self.peers.get_mut(&host) {
                if let Some(mid) = peer.mids[TrackKind::Video.index()] {
                    let mut api = peer.rtc.direct_api();
                    if let Some(rx) = api.stream_rx_by_mid(mid, None) {
                        debug!(peer = host.0, "keyframe requested from host");
                        rx.request_keyframe(KeyframeRequestKind::Pli);
                    }
                }
                self.poll_peer(host, now);
            }
        }
        if let Some(t) = self.rooms.get(&room_id).and_then(|r| r.forwarder.poll_timeout()) {
            self.earliest = self.earliest.min(t);
        }
    }

    fn handle_timeouts(&mut self, now: Instant) {
        // Reused buffer: a wake allocates nothing.
        let mut due = std::mem::take(&mut self.due);
        due.clear();
        due.extend(self.peers.values().filter(|p| p.timeout <= now).map(|p| p.id));
        for &id in &due {
            if let Some(peer) = self.peers.get_mut(&id) {
                if let Err(e) = peer.rtc.handle_input(Input::Timeout(now)) {
                    debug!(peer = id.0, error = %e, "timeout input failed");
                }
            }
            self.poll_peer(id, now);
        }
        due.clear();
        due.extend(self.peers.values().filter(|p| p.ready_at.is_some_and(|t| t <= now)).map(|p| p.id));
        for &id in &due {
            if let Some(peer) = self.peers.get_mut(&id) {
                peer.ready_at = None;
            }
            if let Some(room) = self.peer_room.get(&id).and_then(|r| self.rooms.get_mut(r)) {
                room.forwarder.handle_viewer_ready(now, ViewerId(id.0));
            }
            if let Some(r) = self.peer_room.get(&id).copied() {
                if !self.dirty.contains(&r) {
                    self.dirty.push(r);
                }
            }
        }
        self.due = due;
        for (room_id, room) in &mut self.rooms {
            let forwarder_due = room.forwarder.poll_timeout().is_some_and(|t| t <= now);
            if forwarder_due {
                room.forwarder.handle_timeout(now);
            }
            let flush_due = room.flush_at.is_some_and(|t| t <= now);
            if flush_due {
                room.flush_at = None;
            }
            if (forwarder_due || flush_due) && !self.dirty.contains(room_id) {
                self.dirty.push(*room_id);
            }
        }
        self.process(now);
        self.earliest = self
            .peers
            .values()
            .flat_map(|p| [Some(p.timeout), p.ready_at])
            .flatten()
            .chain(self.rooms.values().flat_map(|r| [r.forwarder.poll_timeout(), r.flush_at]).flatten())
            .min()
            .unwrap_or(now + IDLE_WAKE)
            .max(now + Duration::from_micros(100));
    }

    fn handle_command(&mut self, command: Command) {
        let now = Instant::now();
        match command {
            Command::Publish { room, identity, offer, plan, reply } => {
                let result = self.publish(now, room, identity, &offer, plan);
                let _ = reply.send(result);
            }
            Command::Watch { room, identity, offer, reply } => {
                let result = self.watch(now, room, identity, &offer);
                let _ = reply.send(result);
            }
            Command::Deliver { room, to, frame, class } => self.deliver(&room, to, &frame, class, now),
            Command::Kick { peer } => self.remove_peer(PeerId(peer), "kicked"),
            Command::End { room, role, session, reply } => {
                let result = match self.sessions.get(&session).copied() {
                    Some(id)
                        if self.peers.get(&id).is_some_and(|p| p.role == role && p.room == room) =>
                    {
                        self.remove_peer(id, "ended by DELETE");
                        Ok(())
                    }
                    _ => Err(SignalError::SessionNotFound),
                };
                let _ = reply.send(result);
            }
        }
        self.process(now);
    }

    fn publish(
        &mut self,
        now: Instant,
        room: String,
        identity: Identity,
        offer: &str,
        plan: PublishPlan,
    ) -> Result<SessionAnswer, SignalError> {
        let room_id = self.room_id(&room);
        if let Some(current) = self.rooms.get(&room_id).and_then(|r| r.host) {
            match self.peers.get(&current) {
                Some(p) if p.holds_room(now) => return Err(SignalError::HostAlreadyLive),
                _ => self.remove_peer(current, "replaced by a new host"),
            }
        }
        let (rtc, answer) = self
            .factory
            .accept(now, Some(&plan), offer)
            .map_err(|e| SignalError::BadOffer(e.to_string()))?;
        let id = self.add_peer(now, Role::Host, (room.clone(), identity), room_id, rtc);
        let codecs = plan.codecs();
        if let Some(r) = self.rooms.get_mut(&room_id) {
            r.host = Some(id);
            r.forwarder.handle_publisher_start(&codecs);
            let (name, home) = (&r.name, self.links.me());
            self.links.broadcast(|| Relay::HostStart { room: name.clone(), home, codecs: codecs.clone() });
        }
        info!(peer = id.0, %room, codecs = ?plan.codecs(), "host publishing");
        self.after_join(id, room_id, now);
        Ok(self.answer(id, answer))
    }

    fn watch(&mut self, now: Instant, room: String, identity: Identity, offer: &str) -> Result<SessionAnswer, SignalError> {
        let room_id = self.room_id(&room);
        let accepted = self.factory.accept(now, None, offer);
        let (rtc, answer) = match accepted {
            Ok(ok) => ok,
            Err(e) => {
                self.drop_room_if_empty(room_id);
                return Err(SignalError::BadOffer(e.to_string()));
            }
        };
        let id = self.add_peer(now, Role::Viewer, (room.clone(), identity), room_id, rtc);
        if let Some(r) = self.rooms.get_mut(&room_id) {
            r.viewers.push(id);
            r.forwarder.add_viewer(ViewerId(id.0));
        }
        info!(peer = id.0, %room, "viewer joined");
        self.after_join(id, room_id, now);
        Ok(self.answer(id, answer))
    }

    fn add_peer(&mut self, now: Instant, role: Role, (room, identity): (String, Identity), room_id: RoomId, rtc: str0m::Rtc) -> PeerId {
        let id = PeerId::new(self.links.me(), self.next_peer);
        self.next_peer += 1;
        let session = new_session_id(self.links.me());
        self.sessions.insert(session.clone(), id);
        self.peer_room.insert(id, room_id);
        let room_tx = self.interaction.get(&room).tx;
        self.peers.insert(id, Peer::new(id, session, role, (room, identity, room_tx), rtc, now));
        id
    }

    /// Write a room frame on data channels. Control frames always go; chat and counters are
    /// skipped for a viewer whose channel is congested.
    fn deliver(&mut self, room: &str, to: Option<ParticipantId>, frame: &str, class: Class, now: Instant) {
        let targets: Vec<PeerId> = match to {
            Some(p) => vec![PeerId(p.0)],
            None => match self.room_ids.get(room).and_then(|id| self.rooms.get(id)) {
                Some(r) => r.host.into_iter().chain(r.viewers.iter().copied()).collect(),
                None => return,
            },
        };
        let mut broken = Vec::new();
        for id in targets {
            let Some(peer) = self.peers.get_mut(&id) else {
                continue;
            };
            let Some(channel_id) = peer.channel else {
                continue;
            };
            let Some(mut channel) = peer.rtc.channel(channel_id) else {
                continue;
            };
            if class != Class::Control && channel.buffered_amount() > CONGESTED_BYTES {
                self.stats.frames_skipped_congested += 1;
                continue;
            }
            match channel.write(false, frame.as_bytes()) {
                Ok(true) => {}
                _ if class == Class::Control => broken.push(id),
                _ => self.stats.frames_skipped_congested += 1,
            }
            drain_transmits(peer, (&self.socket, &mut self.outbox), &mut self.stats, &mut self.pending, now);
            self.earliest = self.earliest.min(peer.timeout);
        }
        // A viewer that cannot take a control frame has lost the stream; it reconnects and
        // resumes from its last seq, so nothing is missed.
        for id in broken {
            self.remove_peer(id, "data channel overflow");
        }
    }

    fn answer(&self, id: PeerId, sdp: String) -> SessionAnswer {
        let session = self.peers.get(&id).map(|p| p.session.clone()).unwrap_or_default();
        SessionAnswer { session, sdp }
    }

    fn after_join(&mut self, id: PeerId, room_id: RoomId, now: Instant) {
        self.publish_status(room_id);
        self.poll_peer(id, now);
    }

    fn room_id(&mut self, name: &str) -> RoomId {
        if let Some(id) = self.room_ids.get(name) {
            return *id;
        }
        let id = RoomId(self.next_room);
        self.next_room += 1;
        self.room_ids.insert(name.to_string(), id);
        self.rooms.insert(id, Room::new(name, self.forwarder_config.clone()));
        id
    }

    fn remove_peer(&mut self, id: PeerId, why: &str) {
        let Some(mut peer) = self.peers.remove(&id) else {
            return;
        };
        peer.rtc.disconnect();
        // Queue what disconnecting produced (DTLS close); it leaves at the end of this turn.
        let now = Instant::now();
        drain_transmits(&mut peer, (&self.socket, &mut self.outbox), &mut self.stats, &mut VecDeque::new(), now);
        self.sessions.remove(&peer.session);
        if peer.channel.is_some() {
            let _ = peer.room_tx.try_send(RoomMsg::Leave { participant: ParticipantId(id.0) });
        }
        self.by_addr.retain(|_, p| *p != id);
        let Some(room_id) = self.peer_room.remove(&id) else {
            return;
        };
        if let Some(room) = self.rooms.get_mut(&room_id) {
            match peer.role {
                Role::Host if room.host == Some(id) => {
                    room.host = None;
                    room.forwarder.handle_publisher_end();
                    let name = &room.name;
                    self.links.broadcast(|| Relay::HostEnd { room: name.clone() });
                }
                Role::Host => {}
                Role::Viewer => {
                    room.viewers.retain(|v| *v != id);
                    room.forwarder.remove_viewer(ViewerId(id.0));
                }
            }
            info!(peer = id.0, room = %room.name, role = ?peer.role, why, "peer left");
        }
        self.publish_status(room_id);
        self.drop_room_if_empty(room_id);
    }

    fn drop_room_if_empty(&mut self, room_id: RoomId) {
        if self.rooms.get(&room_id).is_some_and(Room::is_empty) {
            if let Some(room) = self.rooms.remove(&room_id) {
                self.room_ids.remove(&*room.name);
            }
        }
    }

    fn publish_status(&self, room_id: RoomId) {
        if let Some(room) = self.rooms.get(&room_id) {
            self.directory.publish(self.links.me(), room.status());
        }
    }

    fn close_all(&mut self) {
        let ids: Vec<PeerId> = self.peers.keys().copied().collect();
        for id in ids {
            self.remove_peer(id, "server shutting down");
        }
    }
}

/// Turn one str0m event into what the room cares about. Media is converted without copying
/// the payload.
pub(crate) fn translate_event(peer: &mut Peer, event: Event, now: Instant, stats: &mut DriverStats) -> Option<PeerEvent> {
    match event {
        Event::Connected => Some(PeerEvent::Connected),
        Event::IceConnectionStateChange(IceConnectionState::Disconnected) => Some(PeerEvent::Closed),
        Event::Closed => Some(PeerEvent::Closed),
        Event::MediaAdded(m) => {
            peer.handle_media_added(m.mid, m.kind, m.direction);
            None
        }
        Event::KeyframeRequest(_) if peer.role == Role::Viewer => Some(PeerEvent::KeyframeRequest),
        Event::ChannelOpen(id, label) if label == "sellcast" && peer.channel.is_none() => {
            peer.channel = Some(id);
            Some(PeerEvent::ChannelOpen)
        }
        Event::ChannelData(d) if peer.channel == Some(d.id) => Some(PeerEvent::ChannelData(d.data)),
        Event::ChannelClose(id) if peer.channel == Some(id) => {
            peer.channel = None;
            Some(PeerEvent::ChannelClose)
        }
        Event::RtpPacket(p) if peer.role == Role::Host => {
            let Some(codec) = peer.codec_of(p.header.payload_type) else {
                stats.no_payload_type += 1;
                return None;
            };
            let kind = codec.kind();
            let ssrc = *p.header.ssrc;
            let slot = &mut peer.source_ssrc[kind.index()];
            let reset = slot.is_some_and(|s| s != ssrc);
            *slot = Some(ssrc);
            peer.last_media = Some(now);
            if reset {
                return Some(PeerEvent::SourceReset);
            }
            Some(PeerEvent::Media(MediaPacket {
                kind,
                seq: *p.seq_no,
                timestamp: p.header.timestamp,
                marker: p.header.marker,
                payload: p.payload,
                arrival: p.timestamp,
            }))
        }
        _ => None,
    }
}

/// Hand one rewritten packet to a viewer's outgoing stream (str0m encrypts and queues it).
pub(crate) fn write_packet(peer: &mut Peer, packet: &OutPacket, codec: Option<sellcast_sfu::Codec>) {
    let Some(codec) = codec else {
        return;
    };
    let (Some(mid), Some(pt)) = (peer.mids[packet.kind.index()], peer.pt_for(codec)) else {
        return;
    };
    let mut api = peer.rtc.direct_api();
    let Some(tx) = api.stream_tx_by_mid(mid, None) else {
        return;
    };
    let write = RtpWrite::new(pt, packet.seq.into(), packet.timestamp, packet.arrival, packet.payload.clone())
        .marker(packet.marker)
        .nackable(packet.kind == TrackKind::Video);
    tx.write_rtp(write);
}

/// Poll a peer until it has nothing more to send, queueing its datagrams in the outbox.
fn drain_transmits(
    peer: &mut Peer,
    (socket, outbox): (&UdpSocket, &mut Outbox),
    stats: &mut DriverStats,
    pending: &mut VecDeque<(PeerId, PeerEvent)>,
    now: Instant,
) {
    loop {
        if !peer.rtc.is_alive() {
            pending.push_back((peer.id, PeerEvent::Closed));
            return;
        }
        match peer.rtc.poll_output() {
            Ok(Output::Timeout(t)) => {
                peer.timeout = t;
                return;
            }
            Ok(Output::Transmit(t)) => outbox.push(socket, t.destination, t.contents),
            Ok(Output::Event(event)) => {
                if let Some(e) = translate_event(peer, event, now, stats) {
                    pending.push_back((peer.id, e));
                }
            }
            Err(e) => {
                warn!(peer = peer.id.0, error = %e, "peer failed");
                pending.push_back((peer.id, PeerEvent::Closed));
                return;
            }
        }
    }
}

/// The shard and 128 random bits, hex: the session part of a WHIP/WHEP `Location`.
fn new_session_id(shard: ShardId) -> String {
    let mut bytes = [0u8; 16];
    if getrandom::fill(&mut bytes).is_err() {
        // The OS RNG failing is not something a server can work around; fall back to time+counter
        // uniqueness so at least sessions never collide.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        bytes = nanos.to_le_bytes();
    }
    session_id(shard, bytes)
}
