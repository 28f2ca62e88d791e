//! Commands from HTTP and show tasks: hosts and viewers joining and leaving, data-channel
//! deliveries, kicks, viewers' video caps. Not on the per-packet path.

use std::collections::VecDeque;
use std::time::Instant;

use sellcast_room::{Class, ErrorCode, FrameError, Identity, ParticipantId};
use sellcast_sfu::{EstimateSource, LayerCap, ViewerId};
use tracing::{debug, info};

use super::transmit::drain_transmits;
use super::deliveries::RoomFrame;
use super::{Driver, ShardRoomId, CONGESTED_BYTES};
use crate::admission::SessionTicket;
use crate::interaction::messages::ShowMsg;
use crate::media::command::{Command, SessionAnswer};
use crate::media::error::MediaError;
use crate::media::offer::{PublishPlan, SessionKind};
use crate::media::peer::{choose_out_pts, Accepted, Peer, PeerId};
use crate::media::cascade::relay_layers::{declared_layers, mark_inactive, video_mids, RelayLayers};
use crate::media::video_format::RoomFormat;
use crate::media::relay::{Relay, ShardId};
use crate::media::shard_room::ShardRoom;
use crate::media::router::session_id;

/// The estimate a pulling node's viewer is given: above any layer a host sends.
const RELAY_ESTIMATE_BPS: u64 = 1_000_000_000;

impl Driver {
    pub(super) fn handle_command(&mut self, command: Command) {
        let now = Instant::now();
        match command {
            Command::Publish { room, identity, offer, plan, ticket, reply } => {
                let result = self.publish(now, room, identity, offer.as_str(), plan);
                let _ = reply.send(self.keep_ticket(result, ticket));
            }
            Command::Watch { room, identity, offer, relay, ticket, reply } => {
                let result = self.watch(now, (room, identity), offer.as_str(), relay);
                let _ = reply.send(self.keep_ticket(result, ticket));
            }
            Command::Deliver { room, to, frame, class, since } => {
                self.deliver(&room, to, std::slice::from_ref(&RoomFrame { frame, class, since }), now);
            }
            Command::Kick { peer } => self.remove_peer(PeerId(peer), "kicked"),
            Command::VideoCap { peer, cap } => self.cap_viewer(PeerId(peer), cap, now),
            Command::Rejoin { room } => self.rejoin(&room),
            #[cfg(feature = "test-hooks")]
            Command::InjectPanic { hold, .. } => std::panic::panic_any(crate::supervision::InjectedPanic { hold }),
            Command::End { room, kind, session, reply } => {
                let result = match self.sessions.get(&session).copied() {
                    Some(id)
                        if self.peers.get(&id).is_some_and(|p| p.kind == kind && p.room == room) =>
                    {
                        self.remove_peer(id, "ended by DELETE");
                        Ok(())
                    }
                    _ => Err(MediaError::SessionNotFound),
                };
                let _ = reply.send(result);
            }
        }
        self.process(now);
    }

    pub(super) fn publish(
        &mut self,
        now: Instant,
        room: String,
        identity: Identity,
        offer: &str,
        plan: PublishPlan,
    ) -> Result<SessionAnswer, MediaError> {
        let room_id = self.room_id(&room);
        if let Some(current) = self.rooms.get(&room_id).and_then(|r| r.host) {
            match self.peers.get(&current) {
                Some(p) if p.holds_room(now) => return Err(MediaError::HostAlreadyLive),
                _ => self.remove_peer(current, "replaced by a new host"),
            }
        }
        let mut accepted = self
            .factory
            .accept(now, Some(&plan), offer)
            .map_err(|e| MediaError::OfferRejected(e.to_string()))?;
        let answer = std::mem::take(&mut accepted.answer);
        let id = self.add_peer(now, SessionKind::Publish, (room.clone(), identity), room_id, accepted);
        let format = RoomFormat { audio: plan.audio, video: plan.video };
        let layers = declared_layers(offer);
        if let Some(r) = self.rooms.get_mut(&room_id) {
            r.host = Some(id);
            r.host_layers = layers;
            let (name, home) = (&r.name, self.links.me());
            self.links.broadcast(|| Relay::HostStart { room: name.clone(), home, format, layers });
        }
        self.start_format(room_id, format);
        self.restart_relays(room_id);
        let video = format.video.map(|v| v.describe());
        if let Some(peer) = self.peers.get(&id) {
            info!(parent: &peer.span, audio = ?plan.audio, video, "host publishing");
        }
        self.after_join(id, room_id, now);
        Ok(self.answer(id, answer))
    }

    pub(super) fn watch(&mut self, now: Instant, (room, identity): (String, Identity), offer: &str, relay: bool) -> Result<SessionAnswer, MediaError> {
        let room_id = self.room_id(&room);
        let mut accepted = match self.factory.accept(now, None, offer) {
            Ok(ok) => ok,
            Err(e) => {
                self.drop_room_if_empty(room_id);
                return Err(MediaError::OfferRejected(e.to_string()));
            }
        };
        // A live room's video must be one this viewer can decode; a viewer that asked for
        // video and cannot is told why now, rather than getting a black player.
        let live = self.rooms.get(&room_id).and_then(|r| r.format);
        if let Some(format) = live {
            if let Err(why) = choose_out_pts(&accepted.negotiated, accepted.has_video, &format) {
                self.drop_room_if_empty(room_id);
                return Err(MediaError::UnsupportedCodec(why));
            }
        }
        let mut answer = std::mem::take(&mut accepted.answer);
        // An edge offering a video m-line per layer is sent every layer of the room's video,
        // each on its own m-line; those beyond the room's layers are answered inactive.
        let layered = if relay {
            let room_layers = self.rooms.get(&room_id).map_or(0, |r| r.host_layers);
            RelayLayers::bind(&video_mids(offer), usize::from(room_layers))
        } else {
            None
        };
        if let Some(layers) = &layered {
            let inactive: Vec<_> = layers.inactive_mids().collect();
            answer = mark_inactive(&answer, &inactive);
        }
        let id = self.add_peer(now, SessionKind::Watch, (room.clone(), identity), room_id, accepted);
        if let Some(peer) = self.peers.get_mut(&id) {
            peer.relay_layers = layered;
        }
        if let Some(format) = live {
            self.choose_viewer_formats(id, &format);
        }
        if let Some(r) = self.rooms.get_mut(&room_id) {
            r.viewers.push(id);
            if layered.is_some() {
                r.relays.push(id);
            }
            r.forwarder.add_viewer(ViewerId(id.0));
            if relay {
                // A pull sends no estimate of its own (its node fans out to viewers that do);
                // an estimate no layer exceeds keeps it on the top layer, and a source that
                // has spoken is kept for the session, so its loss reports never replace it.
                r.forwarder.handle_viewer_estimate(now, ViewerId(id.0), EstimateSource::Remb, RELAY_ESTIMATE_BPS);
            }
        }
        if let Some(peer) = self.peers.get(&id) {
            let layers = peer.relay_layers.map(|l| l.active());
            info!(parent: &peer.span, relay, ?layers, "viewer joined");
        }
        self.after_join(id, room_id, now);
        Ok(self.answer(id, answer))
    }

    pub(super) fn add_peer(&mut self, now: Instant, kind: SessionKind, (room, identity): (String, Identity), room_id: ShardRoomId, accepted: Accepted) -> PeerId {
        let id = PeerId::new(self.links.me(), self.next_peer);
        self.next_peer += 1;
        let session = new_session_id(self.links.me());
        self.sessions.insert(session.clone(), id);
        self.peer_room.insert(id, room_id);
        let show_tx = self.shows.get(&room).sessions;
        let ufrag = accepted.ufrag.clone();
        self.peers.insert(id, Peer::new(id, session, kind, (room, identity, show_tx), accepted, now));
        // Random per peer (str0m draws it); a clash would only make the older peer's first
        // STUN from a new address go unrouted, and is logged.
        if let Some(other) = self.by_ufrag.insert(ufrag.into_bytes().into_boxed_slice(), id) {
            tracing::warn!(peer = id.0, other = other.0, "two peers share an ICE ufrag");
        }
        id
    }

    /// A viewer's cap on its video layer, for its room's forwarder on this shard (which picks
    /// the layer at the next keyframe). A peer gone meanwhile, or a host (the room refuses a
    /// host's cap; a peer id never names another session), is left alone.
    fn cap_viewer(&mut self, id: PeerId, cap: LayerCap, now: Instant) {
        let Some(peer) = self.peers.get(&id).filter(|p| p.kind == SessionKind::Watch) else {
            return;
        };
        debug!(parent: &peer.span, data_saver = cap.data_saver, max_height = ?cap.max_height, "viewer capped its video");
        let Some(&room_id) = self.peer_room.get(&id) else {
            return;
        };
        if let Some(room) = self.rooms.get_mut(&room_id) {
            room.forwarder.set_viewer_cap(now, ViewerId(id.0), cap);
            self.mark_dirty(room_id);
        }
    }

    /// A host went live in `format` (here or, for a mirror, on its home shard): the forwarder
    /// learns the codecs, and each of this shard's viewers gets its payload types for them.
    pub(super) fn start_format(&mut self, room_id: ShardRoomId, format: RoomFormat) {
        let Some(room) = self.rooms.get_mut(&room_id) else {
            return;
        };
        room.forwarder.handle_publisher_start(&format.codecs());
        room.format = Some(format);
        let viewers = room.viewers.clone();
        for id in viewers {
            self.choose_viewer_formats(id, &format);
        }
    }

    /// Point a viewer at the room's format; one that cannot decode its video keeps audio and
    /// the data channel, and is told why there.
    pub(super) fn choose_viewer_formats(&mut self, id: PeerId, format: &RoomFormat) {
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        match peer.choose_formats(format) {
            Ok(()) => peer.codec_notice = None,
            Err(why) => {
                info!(parent: &peer.span, %why, "viewer cannot decode the room's video");
                peer.codec_notice = Some(why);
                self.say_codec_notice(id, Instant::now());
            }
        }
    }

    /// Say a pending codec notice on the viewer's data channel, once it is open.
    pub(super) fn say_codec_notice(&mut self, id: PeerId, now: Instant) {
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        let (Some(channel_id), Some(why)) = (peer.channel, peer.codec_notice.take()) else {
            return;
        };
        let frame = FrameError::new(ErrorCode::UnsupportedCodec, why).to_frame();
        if let Some(mut channel) = peer.rtc.channel(channel_id) {
            let _ = channel.write(false, frame.as_bytes());
        }
        drain_transmits(peer, (&self.socket, &mut self.outbox, &mut self.tcp), &mut self.stats, &mut self.pending, now);
        self.earliest = self.earliest.min(peer.timeout);
    }

    /// Write room frames, in order, on data channels: on one participant's, or on everyone's
    /// in the room. Control frames always go; chat and counters are skipped for a viewer whose
    /// channel is congested. Each viewer's channel is drained once, after all of `frames`:
    /// frames written together leave together (`deliveries`).
    pub(super) fn deliver(&mut self, room: &str, to: Option<ParticipantId>, frames: &[RoomFrame], now: Instant) {
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
            for RoomFrame { frame, class, .. } in frames {
                if *class != Class::Control && channel.buffered_amount() > CONGESTED_BYTES {
                    self.stats.frames_skipped_congested += 1;
                    continue;
                }
                match channel.write(false, frame.as_bytes()) {
                    Ok(true) => {}
                    _ if *class == Class::Control => {
                        broken.push(id);
                        break;
                    }
                    _ => self.stats.frames_skipped_congested += 1,
                }
            }
            drain_transmits(peer, (&self.socket, &mut self.outbox, &mut self.tcp), &mut self.stats, &mut self.pending, now);
            self.earliest = self.earliest.min(peer.timeout);
        }
        // A viewer that cannot take a control frame has lost the stream; it reconnects and
        // resumes from its last seq, so nothing is missed.
        for id in broken {
            self.remove_peer(id, "data channel overflow");
        }
        if to.is_none() {
            let written = Instant::now();
            for line in frames.iter().filter(|f| f.class == Class::Chat) {
                if let Some(stamp) = line.since {
                    self.chat_path.delivered(stamp, now, written);
                }
            }
        }
    }

    /// Tell the room's (restarted) show task about every peer here whose data channel is open.
    pub(super) fn rejoin(&mut self, room: &str) {
        let Some(r) = self.room_ids.get(room).and_then(|id| self.rooms.get(id)) else {
            return;
        };
        for id in r.host.iter().chain(r.viewers.iter()) {
            let Some(peer) = self.peers.get(id).filter(|p| p.channel.is_some()) else {
                continue;
            };
            let msg = ShowMsg::Rejoin { participant: ParticipantId(id.0), identity: peer.identity.clone() };
            peer.show_tx.lifecycle(msg);
        }
    }

    /// The new session's peer keeps its admission ticket; a refused offer drops it here.
    fn keep_ticket(&mut self, result: Result<SessionAnswer, MediaError>, ticket: SessionTicket) -> Result<SessionAnswer, MediaError> {
        if let Ok(answer) = &result {
            if let Some(peer) = self.sessions.get(&answer.session).and_then(|id| self.peers.get_mut(id)) {
                peer.ticket = Some(ticket);
            }
        }
        result
    }

    pub(super) fn answer(&self, id: PeerId, sdp: String) -> SessionAnswer {
        let session = self.peers.get(&id).map(|p| p.session.clone()).unwrap_or_default();
        SessionAnswer { session, sdp }
    }

    pub(super) fn after_join(&mut self, id: PeerId, room_id: ShardRoomId, now: Instant) {
        self.publish_status(room_id);
        self.poll_peer(id, now);
    }

    pub(super) fn room_id(&mut self, name: &str) -> ShardRoomId {
        if let Some(id) = self.room_ids.get(name) {
            return *id;
        }
        let id = ShardRoomId(self.next_room);
        self.next_room += 1;
        self.room_ids.insert(name.to_string(), id);
        self.rooms.insert(id, ShardRoom::new(name, self.forwarder_config.clone()));
        id
    }

    pub(super) fn remove_peer(&mut self, id: PeerId, why: &str) {
        if let Some(room_id) = self.detach_peer(id, why) {
            self.publish_status(room_id);
            self.drop_room_if_empty(room_id);
        }
    }

    /// Everything `remove_peer` does but the room's status and its drop: the room the peer was
    /// in, for the caller to do those once for many peers (`sweep_expired`), since the status
    /// costs a pass over the room's viewers.
    pub(super) fn detach_peer(&mut self, id: PeerId, why: &str) -> Option<ShardRoomId> {
        let Some(mut peer) = self.peers.remove(&id) else {
            return None;
        };
        peer.rtc.disconnect();
        // Queue what disconnecting produced (DTLS close); it leaves at the end of this turn.
        let now = Instant::now();
        drain_transmits(&mut peer, (&self.socket, &mut self.outbox, &mut self.tcp), &mut self.stats, &mut VecDeque::new(), now);
        self.sessions.remove(&peer.session);
        if peer.channel.is_some() {
            peer.show_tx.lifecycle(ShowMsg::Leave { participant: ParticipantId(id.0) });
        }
        self.by_addr.retain(|_, p| *p != id);
        if let Some(tcp) = self.tcp.as_mut() {
            tcp.forget_peer(id);
        }
        if self.by_ufrag.get(peer.ufrag.as_bytes()) == Some(&id) {
            self.by_ufrag.remove(peer.ufrag.as_bytes());
        }
        let room_id = self.peer_room.remove(&id)?;
        if let Some(room) = self.rooms.get_mut(&room_id) {
            match peer.kind {
                SessionKind::Publish if room.host == Some(id) => {
                    room.host = None;
                    room.host_layers = 0;
                    room.forwarder.handle_publisher_end();
                    let name = &room.name;
                    self.links.broadcast(|| Relay::HostEnd { room: name.clone() });
                }
                SessionKind::Publish => {}
                SessionKind::Watch => {
                    room.viewers.retain(|v| *v != id);
                    room.relays.retain(|v| *v != id);
                    room.forwarder.remove_viewer(ViewerId(id.0));
                }
            }
            if peer.connected {
                info!(parent: &peer.span, why, "peer left");
            } else {
                // Never connected: a flood of dead offers must not flood the log as well;
                // `expired_unconnected` counts them.
                debug!(parent: &peer.span, why, "peer left");
            }
        }
        Some(room_id)
    }

    pub(super) fn drop_room_if_empty(&mut self, room_id: ShardRoomId) {
        if self.rooms.get(&room_id).is_some_and(ShardRoom::is_empty) {
            if let Some(room) = self.rooms.remove(&room_id) {
                self.room_ids.remove(&*room.name);
                self.stats.retired_drops.add(room.forwarder.drops());
            }
        }
    }

    pub(super) fn publish_status(&self, room_id: ShardRoomId) {
        if let Some(room) = self.rooms.get(&room_id) {
            self.status_board.publish(self.links.me(), room.status());
        }
    }

    pub(super) fn close_all(&mut self) {
        let ids: Vec<PeerId> = self.peers.keys().copied().collect();
        for id in ids {
            self.remove_peer(id, "server shutting down");
        }
        if let Some(tcp) = self.tcp.as_mut() {
            tcp.close_all();
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
