//! One WebRTC peer (a host or a viewer): its str0m instance and what the driver must remember
//! about it. Building the instance and reading its output live here; deciding what to do with
//! that output is the driver's job.

use std::net::SocketAddr;

use str0m::media::Direction;
use std::time::{Duration, Instant};

use sellcast_room::Identity;
use sellcast_sfu::{Codec, TrackKind};
use str0m::channel::ChannelId;

use crate::interaction::session_inbox::SessionSender;
use str0m::change::SdpOffer;
use str0m::config::DtlsCert;
use str0m::format::Codec as WireCodec;
use str0m::media::{MediaKind, Mid, Pt};
use str0m::bwe::Bitrate;
use str0m::net::TcpType;
use str0m::{Candidate, IceCreds, Rtc, RtcConfig, RtcError};

use super::cascade::relay_layers::RelayLayers;
use super::ingest_layers::IngestLayers;
use super::lifetime::SessionTimeouts;
use super::offer::{media_mids, normalize_offer, PublishPlan, SessionKind};
use super::video_format::{H264Format, RoomFormat, VideoFormat};
use super::relay::ShardId;
use super::tcp::ufrag_for;
use super::router::MAX_SHARDS;

/// Resend cache per viewer video stream: at least 1 s of 8 Mbit/s video.
const RESEND_CACHE_PACKETS: usize = 1024;
const RESEND_CACHE_AGE: Duration = Duration::from_millis(1500);
/// Resends stop (the queued ones are dropped) while they are over this share of the bytes a
/// viewer's video sent in the last second. A link that overflows loses packets because it is
/// full: resending all of them fills it further, the resends' own loss is NACKed again, and the
/// viewer's loss climbs from the overflow's 20 % to 70-80 % (seen behind a 1.2 Mbit/s link
/// sent the 1.5 Mbit/s layer), which the loss controller then reads as a far slower link.
/// Random loss of a few percent stays well under the cap and is still repaired.
const RESEND_SHARE_CAP: f32 = 0.15;

/// Viewer entries for constrained high H264 (payload type, RTX, packetization mode 1), on
/// numbers str0m's default entries leave free.
const CONSTRAINED_HIGH: [(u8, u8, bool); 2] = [(116, 117, true), (39, 40, false)];

/// How often a viewer's str0m reports its egress stats: the NACK count in `/metrics` is read
/// from them (so it trails by up to this much), and so is the loss that lets a viewer whose
/// link drops packets be paused or moved down within seconds.
const VIEWER_STATS_EVERY: Duration = Duration::from_secs(1);

/// A viewer's bandwidth estimator's first guess. str0m paces a viewer's media at 1.1 times
/// its estimate, so a low guess would hold a one-layer 2.5 Mbit/s show back in the pacer until
/// the estimate had crept up (seconds of growing delay); a high one costs nothing, because the
/// first layer is chosen by `SelectorConfig::start_bps`, and a slow link pushes the estimate
/// down within a second or two of feedback.
const INITIAL_ESTIMATE_KBPS: u64 = 5_000;

/// Largest data-channel message we advertise (`a=max-message-size`).
const MAX_CHANNEL_MESSAGE: u32 = 2 * 1024 * 1024;

/// Server-wide key of a peer; viewers use it as their `ViewerId` in the forwarding core and
/// the show task as their `ParticipantId`. It carries the peer's shard, so anything addressed
/// to a peer is routed without a lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerId(pub u64);

impl PeerId {
    /// The `n`th peer of `shard`.
    pub fn new(shard: ShardId, n: u64) -> Self {
        Self(n * MAX_SHARDS as u64 + (shard.0 % MAX_SHARDS) as u64)
    }

    pub fn shard(self) -> ShardId {
        ShardId((self.0 % MAX_SHARDS as u64) as usize)
    }
}

#[derive(Debug)]
pub struct Peer {
    pub id: PeerId,
    /// The secret part of the session URL (`Location`), required to `DELETE` it.
    pub session: String,
    pub kind: SessionKind,
    pub room: String,
    /// Who this is, from the token presented at WHIP/WHEP time.
    pub identity: Identity,
    pub rtc: Rtc,
    /// The `sellcast` data channel once the peer opened it.
    pub channel: Option<ChannelId>,
    /// The show task that gets this peer's data-channel frames and its joins and leaves.
    pub show_tx: SessionSender,
    /// When str0m next wants `Input::Timeout`.
    pub timeout: Instant,
    pub created: Instant,
    pub connected: bool,
    /// Our ICE ufrag (from the answer): a first STUN request names it (`media::stun_route`).
    pub ufrag: String,
    /// Last datagram received from this peer (the idle deadline counts from it).
    pub last_input: Instant,
    /// A viewer starts receiving media at this time (shortly after DTLS completes).
    pub ready_at: Option<Instant>,
    /// Last media packet received (hosts) — tells a live host from a vanished one.
    pub last_media: Option<Instant>,
    /// Negotiated m-line per track kind (audio, video).
    pub mids: [Option<Mid>; 2],
    /// Every payload type this peer negotiated for a codec we forward, with its parameters.
    negotiated: Vec<Negotiated>,
    /// The peer's offer has a live video section (a viewer may take audio only).
    wants_video: bool,
    /// Viewers: the payload type each kind (audio, video) is sent on, for the room's current
    /// format; `None` when the room has no such track or this viewer cannot take it.
    out_pts: [Option<Pt>; 2],
    /// Viewers: why the room's video cannot be sent to this one, to be said on its data
    /// channel (once it is open).
    pub codec_notice: Option<String>,
    /// Host only: the audio SSRC currently received, to notice an encoder restart.
    pub audio_ssrc: Option<u32>,
    /// Host only: the video SSRCs received, as layer slots (`media::ingest_layers`).
    pub video_layers: IngestLayers,
    /// Viewers: NACKs per kind already counted from str0m's cumulative egress stats.
    pub nacks_seen: [u64; 2],
    /// Viewers: video packets sent (with resends) already counted from the same stats.
    pub video_packets_seen: u64,
    /// Every log line about this session is in this span: its room, peer id and role.
    pub span: tracing::Span,
    /// The session's place under the caps (`admission`): freed when the peer is dropped.
    pub ticket: Option<crate::admission::SessionTicket>,
    /// An edge pulling every layer (`cascade::relay_layers`): its video m-line per layer. Its
    /// video bypasses the forwarder's per-viewer choice (audio does not).
    pub relay_layers: Option<RelayLayers>,
}

/// One payload type a peer negotiated, as str0m agreed it with the peer's offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Negotiated {
    pub pt: Pt,
    pub codec: Codec,
    pub h264: Option<H264Format>,
}

/// A str0m instance for an accepted offer, its SDP answer and what it negotiated.
#[derive(Debug)]
pub struct Accepted {
    pub rtc: Rtc,
    pub answer: String,
    pub negotiated: Vec<Negotiated>,
    /// The offer has a live video section.
    pub has_video: bool,
    /// Our ICE ufrag for this peer, as the answer gives it.
    pub ufrag: String,
    /// A host's SSRC-only simulcast layers (`PublishPlan::sim_ssrcs`).
    pub sim_ssrcs: Vec<u32>,
}

/// Options that are the same for every peer the driver creates.
#[derive(Debug, Clone)]
pub struct PeerFactory {
    pub cert: DtlsCert,
    pub candidate_addr: SocketAddr,
    /// Our passive ICE-TCP candidate (`--tcp-port`), announced next to the UDP one.
    pub tcp_candidate: Option<SocketAddr>,
    /// The shard whose peers this makes: their ufrags name it, so a TCP connection's first
    /// request finds the shard (`media::tcp::ufrag_for`).
    pub shard: ShardId,
    /// How long a peer may stay unconnected, or silent once connected.
    pub timeouts: SessionTimeouts,
    /// Fit viewers' layers to their bandwidth (REMB, loss, and TWCC when
    /// `transport_estimator` is on).
    pub bwe: bool,
    /// Run str0m's send-side estimator (TWCC feedback, pacing at 1.1x its estimate, probes) for
    /// viewers. Off by default: in our runs its estimate stayed near 250 kbit/s on unlimited
    /// loopback links and its pacer then held every viewer's video back (docs/bandwidth.md).
    pub transport_estimator: bool,
}

fn from_wire(codec: WireCodec) -> Option<Codec> {
    match codec {
        WireCodec::Opus => Some(Codec::Opus),
        WireCodec::Vp8 => Some(Codec::Vp8),
        WireCodec::H264 => Some(Codec::H264),
        _ => None,
    }
}

pub fn track_kind(kind: MediaKind) -> TrackKind {
    match kind {
        MediaKind::Audio => TrackKind::Audio,
        MediaKind::Video => TrackKind::Video,
    }
}

impl PeerFactory {
    /// Build the str0m instance for an offer and produce the SDP answer. `plan` is the host's
    /// publish plan, `None` for a viewer.
    ///
    /// A host gets exactly the codecs of its plan (for H264, the one entry of its offer that
    /// the room carries), so its encoder cannot pick another one; a viewer gets every codec we
    /// may forward, and is sent whichever the host uses on its own payload type for it.
    pub fn accept(&self, now: Instant, plan: Option<&PublishPlan>, offer: &str) -> Result<Accepted, RtcError> {
        let offer = normalize_offer(offer);
        let mids = media_mids(&offer);
        let sdp = SdpOffer::from_sdp_string(&offer)?;
        let mut config = RtcConfig::new()
            .set_ice_lite(true)
            .set_local_ice_credentials(IceCreds { ufrag: ufrag_for(self.shard), pass: IceCreds::new().pass })
            .set_rtp_mode(true)
            .set_dtls_cert(self.cert.clone())
            // Large enough that an oversize frame arrives whole and gets a typed error back
            // (the room refuses anything over 16 KiB) instead of breaking the association.
            .set_sctp_max_message_size(MAX_CHANNEL_MESSAGE)
            .clear_codecs();
        match plan {
            Some(p) => {
                config = config.enable_opus(p.audio.is_some(), false).enable_vp8(p.video.is_some_and(|v| v.codec == Codec::Vp8));
                if let Some(h) = &p.h264 {
                    let pm1 = h.format.packetization_mode == 1;
                    config.codec_config().add_h264(h.pt.into(), h.rtx.map(Into::into), pm1, h.format.profile_level_id);
                }
            }
            None => {
                config = config
                    .enable_opus(true, false)
                    .enable_vp8(true)
                    .enable_h264(true)
                    .set_stats_interval(Some(VIEWER_STATS_EVERY));
                // str0m's defaults lack constrained high (640c1f), which Chromium offers.
                for (pt, rtx, mode1) in CONSTRAINED_HIGH {
                    config.codec_config().add_h264(pt.into(), Some(rtx.into()), mode1, 0x640c1f);
                }
                if self.transport_estimator {
                    config = config.enable_bwe(Some(Bitrate::kbps(INITIAL_ESTIMATE_KBPS)));
                }
            }
        }
        let mut rtc = config.build(now);
        let candidate = Candidate::host(self.candidate_addr, "udp")?;
        rtc.add_local_candidate(candidate);
        if let Some(addr) = self.tcp_candidate {
            // RFC 6544: we only accept connections (passive); str0m gives it a lower priority
            // than the UDP one, so a client that can use UDP does.
            let tcp = Candidate::builder().tcp().host(addr).tcptype(TcpType::Passive).build()?;
            rtc.add_local_candidate(tcp);
        }
        let answer = rtc.sdp_api().accept_offer(sdp)?;
        let negotiated = negotiated_formats(&rtc, &mids);
        let has_video = mids
            .iter()
            .filter_map(|m| rtc.media(Mid::from(m.as_str())))
            .any(|m| m.kind() == MediaKind::Video && !m.disabled());
        let ufrag = rtc.direct_api().local_ice_credentials().ufrag;
        let sim_ssrcs = plan.map(|p| p.sim_ssrcs.clone()).unwrap_or_default();
        Ok(Accepted { rtc, answer: answer.to_sdp_string(), negotiated, has_video, ufrag, sim_ssrcs })
    }
}

/// What str0m agreed for each of the offer's media sections: the peer's payload type numbers
/// matched to our codec entries. Entries str0m did not match are left out: their numbers are
/// str0m's own and mean nothing to the peer.
pub(crate) fn negotiated_formats(rtc: &Rtc, mids: &[String]) -> Vec<Negotiated> {
    let params = rtc.codec_config().params();
    let mut out = Vec::new();
    for mid in mids {
        let Some(media) = rtc.media(Mid::from(mid.as_str())) else {
            continue;
        };
        for pt in media.remote_pts() {
            let Some(p) = params.iter().find(|p| p.pt() == *pt) else {
                continue;
            };
            let spec = p.spec();
            let Some(codec) = from_wire(spec.codec) else {
                continue;
            };
            let h264 = (codec == Codec::H264).then(|| H264Format {
                profile_level_id: spec.format.profile_level_id.unwrap_or(0x42000a),
                packetization_mode: spec.format.packetization_mode.unwrap_or(0),
            });
            out.push(Negotiated { pt: *pt, codec, h264 });
        }
    }
    out
}

impl Peer {
    pub fn new(
        id: PeerId,
        session: String,
        kind: SessionKind,
        (room, identity, show_tx): (String, Identity, SessionSender),
        accepted: Accepted,
        now: Instant,
    ) -> Self {
        let Accepted { rtc, negotiated, has_video, ufrag, sim_ssrcs, .. } = accepted;
        let mut video_layers = IngestLayers::default();
        video_layers.set_sim_ssrcs(&sim_ssrcs);
        let span = tracing::info_span!("session", %room, peer = id.0, role = kind.role_name(), identity = %identity.id);
        Self {
            id,
            session,
            kind,
            room,
            identity,
            rtc,
            channel: None,
            show_tx,
            timeout: now,
            created: now,
            connected: false,
            ufrag,
            last_input: now,
            ready_at: None,
            last_media: None,
            mids: [None, None],
            negotiated,
            wants_video: has_video,
            out_pts: [None, None],
            codec_notice: None,
            audio_ssrc: None,
            video_layers,
            nacks_seen: [0, 0],
            video_packets_seen: 0,
            span,
            ticket: None,
            relay_layers: None,
        }
    }

    /// Our codec for an incoming payload type (hosts).
    pub fn codec_of(&self, pt: Pt) -> Option<Codec> {
        self.negotiated.iter().find(|n| n.pt == pt).map(|n| n.codec)
    }

    /// The payload type a packet of this kind goes out on (viewers).
    pub fn out_pt(&self, kind: TrackKind) -> Option<Pt> {
        self.out_pts[kind.index()]
    }

    /// Choose this viewer's payload types for the room's format. Err says, for people, why the
    /// room's video cannot be sent to it (audio still is).
    pub fn choose_formats(&mut self, room: &RoomFormat) -> Result<(), String> {
        let chosen = choose_out_pts(&self.negotiated, self.wants_video, room);
        self.out_pts = match &chosen {
            Ok(pts) => *pts,
            Err(_) => [room.audio.and_then(|c| self.negotiated.iter().find(|n| n.codec == c)).map(|n| n.pt), None],
        };
        chosen.map(|_| ())
    }
}

/// A viewer's payload types (audio, video) for a room's format. Err says, for people, why the
/// room's video cannot be sent to a viewer that asked for video.
pub fn choose_out_pts(negotiated: &[Negotiated], wants_video: bool, room: &RoomFormat) -> Result<[Option<Pt>; 2], String> {
    let audio = room.audio.and_then(|c| negotiated.iter().find(|n| n.codec == c)).map(|n| n.pt);
    let video = room.video.and_then(|v| video_pt_for(negotiated, &v));
    match room.video {
        Some(v) if wants_video && video.is_none() => {
            let offered: Vec<String> = negotiated
                .iter()
                .filter(|n| n.codec.kind() == TrackKind::Video)
                .map(|n| n.h264.map_or_else(|| n.codec.name().to_string(), |h| h.describe()))
                .collect();
            let offered = if offered.is_empty() { "no video codec we forward".to_string() } else { offered.join(", ") };
            Err(format!("this show's video is {}; your player offered {offered}", v.describe()))
        }
        _ => Ok([audio, video]),
    }
}

/// The best of a peer's payload types for a video format: VP8 is VP8; for H264 the entry with
/// the same packetization mode whose profile decodes the stream, the closest match first.
fn video_pt_for(negotiated: &[Negotiated], format: &VideoFormat) -> Option<Pt> {
    let candidates = negotiated.iter().filter(|n| n.codec == format.codec);
    match format.h264 {
        None => candidates.map(|n| n.pt).next(),
        Some(stream) => candidates
            .filter_map(|n| Some((n.h264?.fit_for(&stream)?, n.pt)))
            .min_by_key(|(fit, _)| *fit)
            .map(|(_, pt)| pt),
    }
}

impl Peer {
    /// A media line was negotiated. For a viewer's outgoing video, size the resend cache that
    /// answers its NACKs (the payloads are shared with the room, so this costs one entry per
    /// packet, not a copy) and cap the resends' share of what it sends.
    pub fn handle_media_added(&mut self, mid: Mid, kind: MediaKind, direction: Direction, simulcast: bool) {
        let kind = track_kind(kind);
        // A layered relay's video m-lines are written per layer, never by the forwarder.
        if !(kind == TrackKind::Video && self.relay_layers.is_some()) {
            self.mids[kind.index()] = Some(mid);
        }
        if self.kind == SessionKind::Publish && kind == TrackKind::Video {
            self.video_layers.set_simulcast(simulcast);
        }
        if self.kind == SessionKind::Watch && kind == TrackKind::Video && direction.is_sending() {
            let mut api = self.rtc.direct_api();
            if let Some(tx) = api.stream_tx_by_mid(mid, None) {
                tx.set_rtx_cache(RESEND_CACHE_PACKETS, RESEND_CACHE_AGE, Some(RESEND_SHARE_CAP));
            }
        }
    }

    /// A host that is sending, or still connecting, holds the room; a silent one can be replaced.
    pub fn holds_room(&self, now: Instant) -> bool {
        const CONNECT_GRACE: Duration = Duration::from_secs(10);
        const SILENCE: Duration = Duration::from_secs(3);
        if !self.rtc.is_alive() {
            return false;
        }
        match self.last_media {
            Some(at) => now.saturating_duration_since(at) < SILENCE,
            None => now.saturating_duration_since(self.created) < CONNECT_GRACE,
        }
    }
}
