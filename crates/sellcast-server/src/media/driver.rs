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
//! several packets instead of one per packet (figures in `docs/performance.md`).
//!
//! Per forwarded packet it must not allocate in our code, log above debug, or touch JSON.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sellcast_room::{ErrorCode, FrameError, ParticipantId};
use sellcast_sfu::{DropCounters, EstimateSource, ForwarderConfig, ForwarderEvent, MediaPacket, TrackKind, ViewerId};
use str0m::bwe::Bitrate;
use str0m::rtp::Ssrc;
use str0m::media::KeyframeRequestKind;
use str0m::net::{Protocol, Receive};
use str0m::Input;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info};

use super::command::Command;
use super::status_board::{StatusBoard, MediaStats};
use super::relay::{Relay, RelayInbox, ShardLinks};
use super::chat_path::ChatPath;
use super::forward_latency::ForwardLatency;
use super::inbox::Inbox;
use super::lifetime::{expiry, Expiry};
use super::stun_route::binding_request_ufrag;
use super::offer::SessionKind;
use super::outbox::Outbox;
use super::peer::{Peer, PeerFactory, PeerId};
use super::shard_room::ShardRoom;
use super::tcp::links::TcpLinks;
use super::tcp::{ShardTcp, TcpInput};

mod deliveries;
#[cfg(test)]
mod expiry_tests;
#[cfg(test)]
mod fairness_tests;
mod recovery;
mod relay_in;
mod sessions;
mod tcp_in;
mod transmit;

#[cfg(test)]
pub(crate) use transmit::translate_event;
pub(crate) use transmit::write_packet;
use transmit::drain_transmits;
use crate::interaction::messages::ShowMsg;
use crate::interaction::registry::ShowRegistry;
use crate::interaction::session_inbox::FrameRefused;

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
/// The client finishes only when our last DTLS flight reaches it, so the wait must cover a
/// client whose CPU is starved as well as an idle one; it costs every viewer this much of its
/// first frame. Why 15 ms and not less: `docs/performance.md`, "Why these constants".
const VIEWER_SETTLE: Duration = Duration::from_millis(15);

/// Most datagrams read before forwarding what they carried. Below `PACKETS_PER_FLUSH`, so a
/// burst of host packets reaches every viewer in one flush.
const RECV_BURST: usize = 32;
/// Most commands served after a turn the socket woke (`Driver::catch_up`). A chat line to the
/// whole room is one command; so is an offer, which costs a str0m instance and an SDP answer,
/// and live packets read in the next turn wait for it. One per turn is what an idle socket
/// would have given it too, and turns come thousands of times a second under a flood.
///
/// Serving waiting commands for up to 0.5 ms instead was tried (2026-12-04) and changed
/// nothing measurable: a chat line's wait for the media thread was the other broadcasts of
/// the same instant being written one by one (about 0.3 ms each to 51 viewers), not turns;
/// `deliveries` writes such a burst together instead (docs/security.md).
const COMMANDS_PER_TURN: usize = 1;
/// How often the media counters are copied out for the HTTP side.
const STATS_EVERY: Duration = Duration::from_millis(500);
/// How often peers are checked against their deadlines (`media::lifetime`); a peer outlives
/// its deadline by at most this much.
const SWEEP_EVERY: Duration = Duration::from_millis(500);
/// Most peers one sweep frees; the rest are freed in the turns right after, with the socket
/// read in between (`Driver::sweep_expired`).
const FREES_PER_SWEEP: usize = 32;

/// The next input from the TCP side; never ready when TCP is off (the arm is disabled then).
async fn recv_tcp(tcp: &mut Option<TcpLinks>) -> Option<TcpInput> {
    match tcp {
        Some(t) => t.inbox.recv().await,
        None => std::future::pending().await,
    }
}

/// Whether the loop goes on after a turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Turn {
    Go,
    Stop,
}

/// Index of a [`ShardRoom`] inside this shard's driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct ShardRoomId(u32);

/// What a peer's output means for its room.
#[derive(Debug)]
pub(crate) enum PeerEvent {
    Connected,
    Closed,
    KeyframeRequest,
    /// An edge pulling every layer asked for a keyframe of this layer (slot).
    LayerKeyframeRequest(u8),
    Media(MediaPacket),
    /// The first packet of a host's video layer, and the layer's name (rid).
    FirstOfLayer(MediaPacket, Option<Arc<str>>),
    SourceReset,
    /// A viewer's bandwidth estimate from its transport (TWCC or REMB), in bits per second.
    Estimate(EstimateSource, u64),
    /// A viewer's video feedback since its last stats: the loss fraction from its receiver
    /// reports (if one came), NACK messages received and packets sent.
    VideoFeedback { loss: Option<f32>, nacks: u64, packets: u64 },
    ChannelOpen,
    ChannelData(Vec<u8>),
    ChannelClose,
}

/// Counters an operator reads from `/metrics` (copied out with the rest of [`MediaStats`])
/// and from the log line on shutdown.
#[derive(Debug, Default)]
pub(crate) struct DriverStats {
    datagrams_in: u64,
    /// Datagrams from an address no peer owns that were not a binding request naming one of
    /// our ufrags (or that the named peer refused): dropped without asking any peer.
    unknown_source: u64,
    input_errors: u64,
    no_payload_type: u64,
    undeclared_ssrc: u64,
    /// Data-channel frames the show task could not take (its frame budget was used up).
    frames_dropped: u64,
    /// Data-channel frames over the protocol's limit, refused with `too_large` before queueing.
    frames_oversize: u64,
    /// Peers freed because they missed a deadline (`media::lifetime`), by reason.
    expired_unconnected: u64,
    expired_idle: u64,
    /// Chat or counter frames skipped for a congested viewer.
    frames_skipped_congested: u64,
    /// Media packets written to viewers, and their payload bytes.
    forwarded_packets: u64,
    forwarded_bytes: u64,
    /// Keyframe requests (PLI or FIR) from viewers, and PLIs sent to hosts.
    viewer_keyframe_requests: u64,
    host_keyframe_requests: u64,
    /// NACK messages from viewers (read from str0m's periodic egress stats).
    nacks: u64,
    /// Drop counters of rooms this shard no longer holds.
    retired_drops: DropCounters,
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
    latency: ForwardLatency,
    /// Time chat lines spend in the server.
    chat_path: ChatPath,
    /// When the counters are next copied out to the status board.
    next_stats: Instant,
    local_addr: SocketAddr,
    factory: PeerFactory,
    shows: Arc<ShowRegistry>,
    forwarder_config: ForwarderConfig,
    status_board: Arc<StatusBoard>,
    peers: HashMap<PeerId, Peer>,
    sessions: HashMap<String, PeerId>,
    by_addr: HashMap<SocketAddr, PeerId>,
    /// Our ICE ufrag of each peer: a first STUN request from a new address names its peer.
    by_ufrag: HashMap<Box<[u8]>, PeerId>,
    peer_room: HashMap<PeerId, ShardRoomId>,
    rooms: HashMap<ShardRoomId, ShardRoom>,
    room_ids: HashMap<String, ShardRoomId>,
    next_peer: u64,
    next_room: u32,
    earliest: Instant,
    /// Reused buffers: events waiting to be applied and rooms whose viewers need writing.
    pending: VecDeque<(PeerId, PeerEvent)>,
    dirty: Vec<ShardRoomId>,
    /// Peers due in `handle_timeouts`, reused.
    due: Vec<PeerId>,
    /// Frames for one room written together (`deliveries`); reused.
    batch: Vec<deliveries::RoomFrame>,
    /// When peers are next checked against their deadlines.
    next_sweep: Instant,
    stats: DriverStats,
    /// ICE over TCP (`media::tcp`), when `--tcp-port` is set.
    tcp: Option<TcpLinks>,
}

impl Driver {
    pub(crate) fn new(
        socket: UdpSocket,
        factory: PeerFactory,
        status_board: Arc<StatusBoard>,
        shows: Arc<ShowRegistry>,
        links: ShardLinks,
    ) -> std::io::Result<Self> {
        let local_addr = socket.local_addr()?;
        Ok(Self::assemble(socket, local_addr, factory, status_board, shows, links))
    }

    fn assemble(
        socket: UdpSocket,
        local_addr: SocketAddr,
        factory: PeerFactory,
        status_board: Arc<StatusBoard>,
        shows: Arc<ShowRegistry>,
        links: ShardLinks,
    ) -> Self {
        let adapt = factory.bwe;
        Self {
            socket,
            links,
            inbox: Inbox::with_capacity(RECV_BURST),
            outbox: Outbox::new(),
            latency: ForwardLatency::new(),
            chat_path: ChatPath::new(),
            next_stats: Instant::now(),
            local_addr,
            factory,
            shows,
            forwarder_config: {
                let mut config = ForwarderConfig::default();
                config.selection.adapt = adapt;
                config
            },
            status_board,
            peers: HashMap::new(),
            sessions: HashMap::new(),
            by_addr: HashMap::new(),
            by_ufrag: HashMap::new(),
            peer_room: HashMap::new(),
            rooms: HashMap::new(),
            room_ids: HashMap::new(),
            next_peer: 1,
            next_room: 1,
            earliest: Instant::now(),
            pending: VecDeque::with_capacity(256),
            dirty: Vec::with_capacity(16),
            due: Vec::with_capacity(256),
            batch: Vec::with_capacity(64),
            next_sweep: Instant::now() + SWEEP_EVERY,
            stats: DriverStats::default(),
            tcp: None,
        }
    }

    /// Take this shard's TCP connections too (`--tcp-port`).
    pub(crate) fn with_tcp(mut self, parts: ShardTcp) -> Self {
        self.tcp = Some(TcpLinks::new(parts, self.links.me()));
        self
    }

    /// Run until `shutdown` fires or every command sender is gone. The queues are borrowed
    /// from the shard's supervisor (`media::shard`), and the driver is left in place if this
    /// panics, so the supervisor can close its peers and start a new driver on the same
    /// socket and queues.
    pub(crate) async fn run(
        &mut self,
        commands: &mut mpsc::Receiver<Command>,
        relays: &mut RelayInbox,
        shutdown: &mut oneshot::Receiver<()>,
    ) {
        // With one shard nobody can send to us: the arm would return `None` at once, forever.
        let mut relays_open = self.links.has_peers();
        info!(shard = self.links.me().0, udp = %self.local_addr, "media driver running");
        while self.turn(commands, relays, &mut relays_open, shutdown).await == Turn::Go {}
        // What was queued before the stop (a drain's last answers) is written before every
        // peer is closed, and leaves in the same turn.
        while let Ok(command) = commands.try_recv() {
            self.handle_command(command);
        }
        self.close_all();
        self.end_turn();
        info!(stats = ?self.stats, received = ?self.inbox.stats, sent = ?self.outbox.stats, "media driver stopped");
    }

    /// One turn of the loop: whatever is due, then one wake-up (datagrams, a relay, a command or
    /// a timeout), then the commands and relays that are waiting anyway, then the turn's
    /// datagrams leave.
    ///
    /// The wake-up is biased towards the socket, and a datagram flood (junk from anywhere, or
    /// just a busy show) keeps the socket readable turn after turn: on its own the bias would
    /// hold every chat line (one `Deliver` command per event) and every honest offer until the
    /// socket happened to be empty. The catch-up step serves them in the same turns.
    async fn turn(
        &mut self,
        commands: &mut mpsc::Receiver<Command>,
        relays: &mut RelayInbox,
        relays_open: &mut bool,
        shutdown: &mut oneshot::Receiver<()>,
    ) -> Turn {
        let now = Instant::now();
        if now >= self.earliest {
            self.handle_timeouts(now);
            self.end_turn();
        }
        let wake = self.earliest.min(Instant::now() + IDLE_WAKE);
        let woke_by_socket = tokio::select! {
            biased;
            _ = &mut *shutdown => return Turn::Stop,
            readable = self.socket.readable() => {
                match readable {
                    Ok(()) => self.receive_burst(),
                    Err(e) => debug!(error = %e, "udp readiness error"),
                }
                true
            }
            input = recv_tcp(&mut self.tcp), if self.tcp.is_some() => {
                if let Some(input) = input {
                    self.receive_tcp(input);
                }
                false
            }
            relay = relays.recv(), if *relays_open => {
                match relay {
                    Some(message) => self.receive_relays(message, relays),
                    None => *relays_open = false,
                }
                false
            }
            command = commands.recv() => match command {
                Some(c) => {
                    self.serve_command(c, commands);
                    false
                }
                None => return Turn::Stop,
            },
            _ = tokio::time::sleep_until(wake.into()) => false,
        };
        if woke_by_socket {
            self.catch_up(commands, relays, *relays_open);
        }
        self.end_turn();
        Turn::Go
    }

    /// After a turn the socket woke: serve up to `COMMANDS_PER_TURN` waiting commands, one
    /// burst of waiting relays and one of TCP input (ICE-TCP viewers would otherwise wait for
    /// the UDP socket to run dry). Bounded, so a queue of offers (each a str0m instance to
    /// build) cannot stretch a turn that live packets wait on.
    fn catch_up(&mut self, commands: &mut mpsc::Receiver<Command>, relays: &mut RelayInbox, relays_open: bool) {
        for _ in 0..COMMANDS_PER_TURN {
            match commands.try_recv() {
                Ok(command) => self.serve_command(command, commands),
                Err(_) => break,
            }
        }
        if relays_open {
            if let Some(first) = relays.try_recv() {
                self.receive_relays(first, relays);
            }
        }
        if let Some(first) = self.tcp.as_mut().and_then(|t| t.inbox.try_recv().ok()) {
            self.receive_tcp(first);
        }
    }

    /// Everything this turn produced leaves now, in as few syscalls as it fits; then the
    /// forward-latency clock stops for the packets it carried.
    fn end_turn(&mut self) {
        self.outbox.flush(&self.socket);
        let now = Instant::now();
        self.latency.sent(now);
        if now >= self.next_stats {
            self.next_stats = now + STATS_EVERY;
            if let Some(tcp) = &self.tcp {
                tcp.publish();
            }
            let mut drops = self.stats.retired_drops.clone();
            let (mut hosts, mut viewers) = (0, 0);
            let (mut viewer_video, mut layers) = (Vec::new(), Vec::new());
            let me = self.links.me();
            for room in self.rooms.values_mut() {
                drops.add(room.forwarder.drops());
                hosts += usize::from(room.host.is_some());
                viewers += room.viewers.len();
                room.video_report(&mut viewer_video, &mut layers);
                // Layer counts move without joins or leaves: the dashboard reads them here.
                let status = room.status();
                if room.last_status.as_ref() != Some(&status) {
                    self.status_board.publish(me, status.clone());
                    room.last_status = Some(status);
                }
            }
            self.status_board.publish_media(
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
                    forward_latency_us: Some(self.latency.histogram().clone()),
                    chat_path_us: Some(self.chat_path.histogram().clone()),
                    chat_write_us: Some(self.chat_path.writing().clone()),
                    chat_to_show_us: Some(self.chat_path.to_show().clone()),
                    chat_in_show_us: Some(self.chat_path.in_show().clone()),
                    hosts,
                    viewers,
                    forwarded_packets: self.stats.forwarded_packets,
                    forwarded_bytes: self.stats.forwarded_bytes,
                    drops,
                    unknown_source: self.stats.unknown_source,
                    input_errors: self.stats.input_errors,
                    no_payload_type: self.stats.no_payload_type,
                    undeclared_ssrc: self.stats.undeclared_ssrc,
                    frames_dropped: self.stats.frames_dropped,
                    frames_oversize: self.stats.frames_oversize,
                    expired_unconnected: self.stats.expired_unconnected,
                    expired_idle: self.stats.expired_idle,
                    frames_skipped_congested: self.stats.frames_skipped_congested,
                    viewer_keyframe_requests: self.stats.viewer_keyframe_requests,
                    host_keyframe_requests: self.stats.host_keyframe_requests,
                    nacks: self.stats.nacks,
                    viewer_video,
                    layers,
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

    fn handle_datagram(&mut self, source: SocketAddr, data: &[u8]) {
        let now = Instant::now();
        self.stats.datagrams_in += 1;
        // A new address is routed by the ufrag its STUN request names, one lookup; anything
        // else from it is dropped before it is parsed further (`media::stun_route`).
        let known = self.by_addr.get(&source).copied();
        let id = match known {
            Some(id) => id,
            None => match binding_request_ufrag(data).and_then(|ufrag| self.by_ufrag.get(ufrag)) {
                Some(id) => *id,
                None => {
                    self.stats.unknown_source += 1;
                    return;
                }
            },
        };
        // str0m takes a STUN request only on one of our candidates, and ours is the announced
        // address: behind 1:1 NAT, or bound to 0.0.0.0, the socket's own address is not it.
        let Ok(receive) = Receive::new(Protocol::Udp, source, self.factory.candidate_addr, data) else {
            match known {
                Some(_) => self.stats.input_errors += 1,
                None => self.stats.unknown_source += 1,
            }
            return;
        };
        let input = Input::Receive(now, receive);
        let Some(peer) = self.peers.get_mut(&id) else {
            self.by_addr.remove(&source);
            return;
        };
        if known.is_none() {
            // The named peer checks the request's integrity before its address is learned.
            if !peer.rtc.accepts(&input) {
                self.stats.unknown_source += 1;
                return;
            }
            debug!(peer = id.0, %source, "peer address learned");
            self.by_addr.insert(source, id);
        }
        peer.last_input = now;
        if let Err(e) = peer.rtc.handle_input(input) {
            self.stats.input_errors += 1;
            debug!(parent: &peer.span, error = %e, "input rejected");
        }
        self.poll_peer(id, now);
    }

    /// Drain one peer's output: datagrams join the outbox, events wait in `pending`.
    fn poll_peer(&mut self, id: PeerId, now: Instant) {
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        drain_transmits(peer, (&self.socket, &mut self.outbox, &mut self.tcp), &mut self.stats, &mut self.pending, now);
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
            PeerEvent::ChannelOpen => {
                self.say_codec_notice(id, now);
                self.peers.get(&id).map(|p| ShowMsg::Join {
                    participant: ParticipantId(id.0),
                    identity: p.identity.clone(),
                })
            }
            PeerEvent::ChannelData(bytes) => {
                self.frame_to_room(id, bytes, now);
                return;
            }
            PeerEvent::ChannelClose => Some(ShowMsg::Leave { participant: ParticipantId(id.0) }),
            other => {
                self.apply_media(id, other, now);
                return;
            }
        };
        if let (Some(msg), Some(peer)) = (to_room, self.peers.get(&id)) {
            peer.show_tx.lifecycle(msg);
        }
    }

    /// Queue a data-channel frame for the show task, within its byte budget; a frame over the
    /// protocol's limit is answered with `too_large` here and never queued.
    fn frame_to_room(&mut self, id: PeerId, bytes: Vec<u8>, now: Instant) {
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        let len = bytes.len();
        match peer.show_tx.frame(ParticipantId(id.0), bytes) {
            Ok(()) | Err(FrameRefused::Closed) => {}
            Err(FrameRefused::Full) => self.stats.frames_dropped += 1,
            Err(FrameRefused::TooLarge) => {
                self.stats.frames_oversize += 1;
                let limit = sellcast_room::protocol::MAX_FRAME_BYTES;
                let error = FrameError::new(ErrorCode::TooLarge, format!("frame of {len} bytes exceeds {limit}"));
                if let Some(mut channel) = peer.channel.and_then(|c| peer.rtc.channel(c)) {
                    let _ = channel.write(false, error.to_frame().as_bytes());
                }
                drain_transmits(peer, (&self.socket, &mut self.outbox, &mut self.tcp), &mut self.stats, &mut self.pending, now);
                self.earliest = self.earliest.min(peer.timeout);
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
                transmit::write_to_relays(&mut self.peers, &room.relays, &packet);
            }
            PeerEvent::FirstOfLayer(packet, layer_name) => {
                let name = &room.name;
                let layer = packet.layer;
                self.links.broadcast(|| Relay::LayerName { room: name.clone(), layer, name: layer_name.clone() });
                self.links.broadcast(|| Relay::Media { room: name.clone(), packet: packet.clone() });
                room.forwarder.set_layer_name(layer, layer_name);
                room.forwarder.handle_rtp(now, &packet);
                transmit::write_to_relays(&mut self.peers, &room.relays, &packet);
            }
            PeerEvent::Estimate(source, bps) => room.forwarder.handle_viewer_estimate(now, ViewerId(id.0), source, bps),
            PeerEvent::VideoFeedback { loss, nacks, packets } => {
                if let Some(fraction) = loss {
                    room.forwarder.handle_viewer_loss(now, ViewerId(id.0), fraction);
                }
                room.forwarder.handle_viewer_nacks(now, ViewerId(id.0), nacks, packets);
            }
            PeerEvent::Connected => {
                if let Some(peer) = self.peers.get_mut(&id) {
                    peer.connected = true;
                    info!(parent: &peer.span, "peer connected");
                    if peer.kind == SessionKind::Watch {
                        let at = now + VIEWER_SETTLE;
                        peer.ready_at = Some(at);
                        self.earliest = self.earliest.min(at);
                    }
                }
            }
            PeerEvent::KeyframeRequest => room.forwarder.handle_keyframe_request_from(now, ViewerId(id.0)),
            PeerEvent::LayerKeyframeRequest(layer) => room.forwarder.handle_layer_keyframe_request(now, layer),
            PeerEvent::SourceReset => {
                let name = &room.name;
                self.links.broadcast(|| Relay::SourceReset { room: name.clone() });
                room.forwarder.handle_source_reset();
                self.restart_relays(room_id);
            }
            PeerEvent::Closed | PeerEvent::ChannelOpen | PeerEvent::ChannelData(_) | PeerEvent::ChannelClose => {}
        }
        if !self.dirty.contains(&room_id) {
            self.dirty.push(room_id);
        }
    }

    /// The host's video started over (a new host, or a new source): edges pulling every layer
    /// are let go, so each pulls again with the new layer count and sequence (its viewers
    /// stay connected across it, as across an origin change).
    fn restart_relays(&mut self, room_id: ShardRoomId) {
        let Some(room) = self.rooms.get_mut(&room_id) else {
            return;
        };
        for id in std::mem::take(&mut room.relays) {
            self.remove_peer(id, "the host's video started over: the edge pulls again");
        }
    }

    /// Write every viewer's queued packets into its transport and relay keyframe requests.
    fn flush_room(&mut self, room_id: ShardRoomId, now: Instant) {
        let Some(room) = self.rooms.get_mut(&room_id) else {
            return;
        };
        // Edges pulling every layer were written to as packets came: send what is queued.
        for id in &room.relays {
            if let Some(peer) = self.peers.get_mut(id) {
                drain_transmits(peer, (&self.socket, &mut self.outbox, &mut self.tcp), &mut self.stats, &mut self.pending, now);
                self.earliest = self.earliest.min(peer.timeout);
            }
        }
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
                write_packet(peer, &packet);
                self.stats.forwarded_packets += 1;
                self.stats.forwarded_bytes += packet.payload.len() as u64;
                if !packet.replay {
                    self.latency.written(packet.arrival);
                }
            }
            left_over |= viewer.queued() > 0;
            // Inline poll: the viewer's datagrams join the turn's batch, in forwarding order.
            drain_transmits(peer, (&self.socket, &mut self.outbox, &mut self.tcp), &mut self.stats, &mut self.pending, now);
            self.earliest = self.earliest.min(peer.timeout);
        }
        if left_over {
            let at = now + PACE_INTERVAL;
            room.flush_at = Some(room.flush_at.map_or(at, |t| t.min(at)));
            self.earliest = self.earliest.min(at);
        }
        // Viewers' estimators probe towards the best layer each may have, and pad towards the
        // next layer up so their estimates can grow into it.
        while let Some((viewer, target)) = room.forwarder.poll_probe_target() {
            if let Some(peer) = self.peers.get_mut(&PeerId(viewer.0)) {
                peer.rtc.bwe().set_bitrate(Bitrate::bps(target.minimum_bps), Bitrate::bps(target.desired_bps));
            }
        }
        let (host, home) = (room.host, room.relayed_from);
        let mut keyframe = [false; sellcast_sfu::MAX_LAYERS];
        while let Some(event) = room.forwarder.poll_event() {
            match event {
                ForwarderEvent::RequestKeyframe { layer } => {
                    if let Some(wanted) = keyframe.get_mut(usize::from(layer)) {
                        *wanted = true;
                    }
                }
            }
        }
        if let Some(home) = home {
            // A mirror: its forwarder already throttled this; the home shard throttles again
            // across all shards, so the host never sees more than one PLI per layer per interval.
            for (layer, _) in keyframe.iter().enumerate().filter(|(_, wanted)| **wanted) {
                let room = room.name.clone();
                self.links.send(home, Relay::KeyframeRequest { room, layer: layer as u8 });
            }
        }
        if let (true, Some(host)) = (keyframe.contains(&true), host) {
            if let Some(peer) = self.peers.get_mut(&host) {
                if let Some(mid) = peer.mids[TrackKind::Video.index()] {
                    for (layer, _) in keyframe.iter().enumerate().filter(|(_, wanted)| **wanted) {
                        let ssrc = peer.video_layers.ssrc_of(layer as u8);
                        let mut api = peer.rtc.direct_api();
                        let rx = match ssrc {
                            Some(ssrc) => api.stream_rx(&Ssrc::from(ssrc)),
                            None if layer == 0 && !peer.video_layers.is_simulcast() => api.stream_rx_by_mid(mid, None),
                            None => None,
                        };
                        if let Some(rx) = rx {
                            debug!(peer = host.0, layer, "keyframe requested from host");
                            rx.request_keyframe(KeyframeRequestKind::Pli);
                            self.stats.host_keyframe_requests += 1;
                        }
                    }
                }
                self.poll_peer(host, now);
            }
        }
        if let Some(t) = self.rooms.get(&room_id).and_then(|r| r.forwarder.poll_timeout()) {
            self.earliest = self.earliest.min(t);
        }
    }

    fn mark_dirty(&mut self, room_id: ShardRoomId) {
        if !self.dirty.contains(&room_id) {
            self.dirty.push(room_id);
        }
    }

    /// Free peers past their connect or idle deadline (`media::lifetime`), at most
    /// `FREES_PER_SWEEP` of them: true when more are due, to be freed in the next turn.
    ///
    /// A flood of dead offers admitted within a second expires within a second, 10 s later:
    /// freeing 800 of them in one go held the media thread for over 100 ms (every live packet
    /// and chat line waited in the socket meanwhile). Each room's status, a pass over its
    /// viewers, is published once per sweep, not once per peer.
    fn sweep_expired(&mut self, now: Instant) -> bool {
        let timeouts = self.factory.timeouts;
        let mut due = std::mem::take(&mut self.due);
        due.clear();
        due.extend(
            self.peers
                .values()
                .filter(|p| expiry(&timeouts, now, p.created, p.connected, p.last_input).is_some())
                .map(|p| p.id),
        );
        let more = due.len() > FREES_PER_SWEEP;
        due.truncate(FREES_PER_SWEEP);
        let mut rooms: Vec<ShardRoomId> = Vec::new();
        for &id in &due {
            let Some(why) = self.peers.get(&id).and_then(|p| expiry(&timeouts, now, p.created, p.connected, p.last_input)) else {
                continue;
            };
            match why {
                Expiry::Unconnected => self.stats.expired_unconnected += 1,
                Expiry::Idle => self.stats.expired_idle += 1,
            }
            if let Some(room_id) = self.detach_peer(id, why.name()) {
                if !rooms.contains(&room_id) {
                    rooms.push(room_id);
                }
            }
        }
        for room_id in rooms {
            self.publish_status(room_id);
            self.drop_room_if_empty(room_id);
        }
        self.due = due;
        more
    }

    fn handle_timeouts(&mut self, now: Instant) {
        if now >= self.next_sweep {
            let more = self.sweep_expired(now);
            self.next_sweep = if more { now } else { now + SWEEP_EVERY };
        }
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
            .chain((!self.peers.is_empty()).then_some(self.next_sweep))
            .min()
            .unwrap_or(now + IDLE_WAKE)
            .max(now + Duration::from_micros(100));
    }

}
