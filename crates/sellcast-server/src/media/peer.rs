//! One WebRTC peer (a host or a viewer): its str0m instance and what the driver must remember
//! about it. Building the instance and reading its output live here; deciding what to do with
//! that output is the driver's job.

use std::net::SocketAddr;

use str0m::media::Direction;
use std::time::{Duration, Instant};

use sellcast_room::Identity;
use sellcast_sfu::{Codec, TrackKind};
use str0m::channel::ChannelId;
use tokio::sync::mpsc;

use crate::interaction::messages::RoomMsg;
use str0m::change::SdpOffer;
use str0m::config::DtlsCert;
use str0m::format::Codec as WireCodec;
use str0m::media::{MediaKind, Mid, Pt};
use str0m::{Candidate, Rtc, RtcConfig, RtcError};

use super::offer::{PublishPlan, Role};
use super::relay::ShardId;
use super::router::MAX_SHARDS;

/// Resend cache per viewer video stream: at least 1 s of 8 Mbit/s video.
const RESEND_CACHE_PACKETS: usize = 1024;
const RESEND_CACHE_AGE: Duration = Duration::from_millis(1500);

/// Largest data-channel message we advertise (`a=max-message-size`).
const MAX_CHANNEL_MESSAGE: u32 = 2 * 1024 * 1024;

/// Server-wide key of a peer; viewers use it as their `ViewerId` in the forwarding core and
/// the room task as their `ParticipantId`. It carries the peer's shard, so anything addressed
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
    pub role: Role,
    pub room: String,
    /// Who this is, from the token presented at WHIP/WHEP time.
    pub identity: Identity,
    pub rtc: Rtc,
    /// The `sellcast` data channel once the peer opened it.
    pub channel: Option<ChannelId>,
    /// The room task that gets this peer's data-channel frames.
    pub room_tx: mpsc::Sender<RoomMsg>,
    /// When str0m next wants `Input::Timeout`.
    pub timeout: Instant,
    pub created: Instant,
    pub connected: bool,
    /// A viewer starts receiving media at this time (shortly after DTLS completes).
    pub ready_at: Option<Instant>,
    /// Last media packet received (hosts) — tells a live host from a vanished one.
    pub last_media: Option<Instant>,
    /// Negotiated m-line per track kind (audio, video).
    pub mids: [Option<Mid>; 2],
    /// This peer's payload type for each codec we forward (Opus, VP8, H264).
    pts: [Option<Pt>; 3],
    /// Host only: the SSRC currently received per kind, to notice an encoder restart.
    pub source_ssrc: [Option<u32>; 2],
}

/// Options that are the same for every peer the driver creates.
#[derive(Debug, Clone)]
pub struct PeerFactory {
    pub cert: DtlsCert,
    pub candidate_addr: SocketAddr,
}

fn codec_slot(codec: Codec) -> usize {
    match codec {
        Codec::Opus => 0,
        Codec::Vp8 => 1,
        Codec::H264 => 2,
    }
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
    /// A host gets exactly the codecs of its plan, so its encoder cannot pick another one;
    /// a viewer gets every codec we may forward, and is sent whichever the host uses.
    pub fn accept(
        &self,
        now: Instant,
        plan: Option<&PublishPlan>,
        offer: &str,
    ) -> Result<(Rtc, String), RtcError> {
        let offer = SdpOffer::from_sdp_string(offer)?;
        let mut config = RtcConfig::new()
            .set_ice_lite(true)
            .set_rtp_mode(true)
            .set_dtls_cert(self.cert.clone())
            // Large enough that an oversize frame arrives whole and gets a typed error back
            // (the room refuses anything over 16 KiB) instead of breaking the association.
            .set_sctp_max_message_size(MAX_CHANNEL_MESSAGE)
            .clear_codecs();
        let (audio, vp8, h264) = match plan {
            Some(p) => (
                p.audio.is_some(),
                p.video == Some(Codec::Vp8),
                p.video == Some(Codec::H264),
            ),
            None => (true, true, true),
        };
        config = config
            .enable_opus(audio, false)
            .enable_vp8(vp8)
            .enable_h264(h264);
        let mut rtc = config.build(now);
        let candidate = Candidate::host(self.candidate_addr, "udp")?;
        rtc.add_local_candidate(candidate);
        let answer = rtc.sdp_api().accept_offer(offer)?;
        Ok((rtc, answer.to_sdp_string()))
    }
}

impl Peer {
    pub fn new(
        id: PeerId,
        session: String,
        role: Role,
        (room, identity, room_tx): (String, Identity, mpsc::Sender<RoomMsg>),
        rtc: Rtc,
        now: Instant,
    ) -> Self {
        let mut peer = Self {
            id,
            session,
            role,
            room,
            identity,
            rtc,
            channel: None,
            room_tx,
            timeout: now,
            created: now,
            connected: false,
            ready_at: None,
            last_media: None,
            mids: [None, None],
            pts: [None; 3],
            source_ssrc: [None, None],
        };
        for p in peer.rtc.codec_config().params() {
            if let Some(codec) = from_wire(p.spec().codec) {
                let slot = &mut peer.pts[codec_slot(codec)];
                if slot.is_none() {
                    *slot = Some(p.pt());
                }
            }
        }
        peer
    }

    /// Our codec for an incoming payload type (hosts).
    pub fn codec_of(&self, pt: Pt) -> Option<Codec> {
        [Codec::Opus, Codec::Vp8, Codec::H264]
            .into_iter()
            .find(|c| self.pts[codec_slot(*c)] == Some(pt))
    }

    /// This peer's payload type for a codec (viewers).
    pub fn pt_for(&self, codec: Codec) -> Option<Pt> {
        self.pts[codec_slot(codec)]
    }

    /// A media line was negotiated. For a viewer's outgoing video, size the resend cache that
    /// answers its NACKs: the payloads are shared with the room, so this costs one entry per
    /// packet, not a copy.
    pub fn handle_media_added(&mut self, mid: Mid, kind: MediaKind, direction: Direction) {
        let kind = track_kind(kind);
        self.mids[kind.index()] = Some(mid);
        if self.role == Role::Viewer && kind == TrackKind::Video && direction.is_sending() {
            let mut api = self.rtc.direct_api();
            if let Some(tx) = api.stream_tx_by_mid(mid, None) {
                tx.set_rtx_cache(RESEND_CACHE_PACKETS, RESEND_CACHE_AGE, None);
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
