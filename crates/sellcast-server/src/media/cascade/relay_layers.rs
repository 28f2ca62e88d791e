//! Every simulcast layer of a room in one pull: which video m-line of an edge's offer carries
//! which layer of the room's video.
//!
//! An edge offers its audio m-line and [`MAX_LAYERS`] recvonly video m-lines. The origin binds
//! video m-line `k` to layer slot `k` of the room's video (the slot the host's encoding took,
//! `media::ingest_layers`), answers the m-lines beyond the room's layer count `inactive`, and
//! forwards each layer untouched on its own m-line (its own SSRC; the host's sequence numbers
//! and timestamps). The edge hands what arrives on m-line `k` to its shards as layer `k`, so
//! its mirrors rank the layers themselves (by picture height, then bitrate) and choose one
//! per viewer exactly as for a simulcast host of their own; a keyframe request for layer `k`
//! goes back on m-line `k` and reaches the host as a request for slot `k`.
//!
//! The pull stays one peer connection: the origin counts it as one subscriber. A relay whose
//! offer has a single video m-line (an edge of an older build) is sent the top layer as before.

use sellcast_sfu::MAX_LAYERS;
use str0m::media::Mid;

/// The video m-lines of a relay's offer, lowest layer first, and how many carry a layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RelayLayers {
    mids: [Option<Mid>; MAX_LAYERS],
    /// Layers sent: the m-lines from this one on were answered `inactive`.
    active: u8,
}

impl RelayLayers {
    /// Bind a relay offer's video m-lines (`video_mids`, in offer order) to the room's layer
    /// slots. `room_layers` is how many layers the room's video has now (0: not known yet,
    /// every m-line stays active). `None` for fewer than two video m-lines: a one-layer pull.
    pub fn bind(video_mids: &[String], room_layers: usize) -> Option<Self> {
        if video_mids.len() < 2 {
            return None;
        }
        let mut mids = [None; MAX_LAYERS];
        for (slot, mid) in mids.iter_mut().zip(video_mids) {
            *slot = Some(Mid::from(mid.as_str()));
        }
        let offered = video_mids.len().min(MAX_LAYERS);
        let active = if room_layers == 0 { offered } else { room_layers.min(offered) };
        Some(Self { mids, active: active as u8 })
    }

    /// The m-line that carries layer `slot`, if it is sent.
    pub fn mid_of(&self, slot: u8) -> Option<Mid> {
        if slot >= self.active {
            return None;
        }
        self.mids.get(usize::from(slot)).copied().flatten()
    }

    /// The layer an m-line carries (a keyframe request names the m-line).
    pub fn layer_of(&self, mid: Mid) -> Option<u8> {
        self.mids.iter().take(usize::from(self.active)).position(|m| *m == Some(mid)).map(|i| i as u8)
    }

    /// How many layers are sent.
    pub fn active(&self) -> u8 {
        self.active
    }

    /// The m-lines answered `inactive` (the room has fewer layers than the edge offered).
    pub fn inactive_mids(&self) -> impl Iterator<Item = Mid> + '_ {
        self.mids.iter().skip(usize::from(self.active)).flatten().copied()
    }
}

/// The `a=mid` of each active video m-line of an SDP, in order.
pub fn video_mids(sdp: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_video = false;
    let mut port_zero = false;
    for line in sdp.lines() {
        let line = line.trim_end_matches('\r');
        if let Some(m) = line.strip_prefix("m=") {
            let mut parts = m.split_whitespace();
            in_video = parts.next() == Some("video");
            port_zero = parts.next() == Some("0");
        } else if let Some(mid) = line.strip_prefix("a=mid:") {
            if in_video && !port_zero {
                out.push(mid.trim().to_string());
            }
        }
    }
    out
}

/// How many layers a host's offer declares for its video: the streams of its
/// `a=simulcast:send` (RFC 8853), else the SSRCs of its `a=ssrc-group:SIM`, else one.
pub fn declared_layers(sdp: &str) -> u8 {
    let mut in_video = false;
    let mut sim_group = None;
    for line in sdp.lines() {
        let line = line.trim_end_matches('\r');
        if let Some(m) = line.strip_prefix("m=") {
            in_video = m.starts_with("video");
        } else if !in_video {
            continue;
        } else if let Some(streams) = line.strip_prefix("a=simulcast:send ") {
            let list = streams.split_whitespace().next().unwrap_or_default();
            return list.split(';').filter(|s| !s.is_empty()).count().clamp(1, MAX_LAYERS) as u8;
        } else if let Some(group) = line.strip_prefix("a=ssrc-group:SIM ") {
            sim_group.get_or_insert(group.split_whitespace().count());
        }
    }
    sim_group.map_or(1, |n| n.clamp(1, MAX_LAYERS) as u8)
}

/// The answer with the m-lines named in `inactive` marked `a=inactive` instead of their
/// direction: the edge then expects nothing on them.
pub fn mark_inactive(answer: &str, inactive: &[Mid]) -> String {
    if inactive.is_empty() {
        return answer.to_string();
    }
    // Split into sections, find each one's mid, rewrite its direction line.
    let mut out = String::with_capacity(answer.len());
    let mut section: Vec<&str> = Vec::new();
    let flush = |section: &mut Vec<&str>, out: &mut String| {
        let off = section
            .iter()
            .find_map(|l| l.trim_end_matches(['\r', '\n']).strip_prefix("a=mid:"))
            .is_some_and(|mid| inactive.iter().any(|m| **m == *mid.trim()));
        for line in section.drain(..) {
            let bare = line.trim_end_matches(['\r', '\n']);
            if off && matches!(bare, "a=sendonly" | "a=sendrecv" | "a=recvonly") {
                out.push_str("a=inactive");
                out.push_str(&line[bare.len()..]);
            } else {
                out.push_str(line);
            }
        }
    };
    for line in answer.split_inclusive('\n') {
        if line.starts_with("m=") {
            flush(&mut section, &mut out);
        }
        section.push(line);
    }
    flush(&mut section, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFER: &str = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na=recvonly\r\n\
        m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:1\r\na=recvonly\r\n\
        m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:2\r\na=recvonly\r\n\
        m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:3\r\na=recvonly\r\n";

    #[test]
    fn video_m_lines_are_bound_to_layer_slots_lowest_first() {
        let mids = video_mids(OFFER);
        assert_eq!(mids, ["1", "2", "3"]);
        let layers = RelayLayers::bind(&mids, 3).expect("three m-lines");
        assert_eq!((layers.mid_of(0), layers.mid_of(1), layers.mid_of(2)), (Some(Mid::from("1")), Some(Mid::from("2")), Some(Mid::from("3"))));
        assert_eq!(layers.layer_of(Mid::from("3")), Some(2));
        assert_eq!(layers.layer_of(Mid::from("0")), None, "the audio m-line carries no layer");
        assert_eq!(layers.inactive_mids().count(), 0);
    }

    #[test]
    fn m_lines_beyond_the_rooms_layers_carry_nothing() {
        let layers = RelayLayers::bind(&video_mids(OFFER), 1).expect("three m-lines");
        assert_eq!(layers.active(), 1);
        assert_eq!(layers.mid_of(0), Some(Mid::from("1")));
        assert_eq!(layers.mid_of(1), None);
        assert_eq!(layers.layer_of(Mid::from("2")), None, "a request on an inactive m-line is no layer's");
        assert_eq!(layers.inactive_mids().collect::<Vec<_>>(), [Mid::from("2"), Mid::from("3")]);
        let unknown = RelayLayers::bind(&video_mids(OFFER), 0).expect("three m-lines");
        assert_eq!(unknown.active(), 3, "a room with no layers yet keeps every m-line");
    }

    #[test]
    fn one_video_m_line_is_a_one_layer_pull() {
        assert_eq!(RelayLayers::bind(&["1".to_string()], 3), None);
        let rejected = "v=0\r\nm=video 9 X 96\r\na=mid:1\r\nm=video 0 X 96\r\na=mid:2\r\n";
        assert_eq!(video_mids(rejected), ["1"], "a rejected m-line is not offered");
    }

    #[test]
    fn a_hosts_offer_declares_its_layers() {
        let rids = "v=0\r\nm=audio 9 X 111\r\na=mid:0\r\nm=video 9 X 96\r\na=mid:1\r\na=rid:q send\r\na=simulcast:send q;h;~f\r\n";
        assert_eq!(declared_layers(rids), 3);
        let sim = "v=0\r\nm=video 9 X 96\r\na=ssrc-group:SIM 1 2\r\na=ssrc-group:FID 1 3\r\n";
        assert_eq!(declared_layers(sim), 2);
        assert_eq!(declared_layers("v=0\r\nm=video 9 X 96\r\na=mid:1\r\n"), 1);
        let alternatives = "v=0\r\nm=video 9 X 96\r\na=simulcast:send q,x;h recv r\r\n";
        assert_eq!(declared_layers(alternatives), 2, "alternatives of one stream are one layer");
    }

    #[test]
    fn the_answer_marks_the_unbound_m_lines_inactive() {
        let answer = OFFER.replace("a=recvonly", "a=sendonly");
        let marked = mark_inactive(&answer, &[Mid::from("2"), Mid::from("3")]);
        let directions: Vec<&str> = marked.lines().filter(|l| l.starts_with("a=") && !l.starts_with("a=mid")).collect();
        assert_eq!(directions, ["a=sendonly", "a=sendonly", "a=inactive", "a=inactive"]);
        assert!(marked.ends_with("a=inactive\r\n"), "line endings are kept: {marked:?}");
        assert_eq!(mark_inactive(&answer, &[]), answer);
    }
}
