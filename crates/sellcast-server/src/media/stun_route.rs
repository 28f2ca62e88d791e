//! Which peer a datagram from an address we do not know yet belongs to, read from the
//! datagram alone, without asking any peer.
//!
//! Only a STUN binding request can open a path (ICE: RFC 8445 section 7.3). Its USERNAME is
//! `receiver_ufrag:sender_ufrag`, and the receiver's ufrag is ours: the one our SDP answer gave
//! that peer. The driver keeps a map from our ufrag to the peer, so a first datagram costs one
//! hash lookup however many peers a shard holds, as LiveKit and mediasoup route. Everything
//! else from an unknown address is dropped and counted before any peer sees it.
//!
//! The parse reads at most `MAX_ATTRIBUTES` attribute headers inside the datagram, allocates
//! nothing and cannot panic: it runs on untrusted bytes at line rate (and is fuzzed). Message
//! integrity is not checked here; the peer the username names checks it (`Rtc::accepts`)
//! before its address is learned.

/// STUN's fixed header: type, length, magic cookie, transaction id (RFC 8489 section 5).
const HEADER: usize = 20;
const MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xA4, 0x42];
/// Method binding, class request.
const BINDING_REQUEST: [u8; 2] = [0x00, 0x01];
const USERNAME: u16 = 0x0006;
/// USERNAME comes before MESSAGE-INTEGRITY and FINGERPRINT, after a few others (PRIORITY,
/// ICE-CONTROLLING, USE-CANDIDATE, GOOG-NETWORK-INFO); a request that hides it deeper is
/// not one a WebRTC stack sends.
const MAX_ATTRIBUTES: usize = 16;
/// RFC 8489 caps USERNAME at 513 bytes.
const MAX_USERNAME: usize = 513;

/// Our ufrag (the part of USERNAME before the colon) if `datagram` is a STUN binding
/// request that carries one; `None` for anything else.
pub fn binding_request_ufrag(datagram: &[u8]) -> Option<&[u8]> {
    let header = datagram.get(..HEADER)?;
    if header[0..2] != BINDING_REQUEST || header[4..8] != MAGIC_COOKIE {
        return None;
    }
    let declared = usize::from(u16::from_be_bytes([header[2], header[3]]));
    // The length counts the attributes and is a multiple of 4; trailing bytes mean this is
    // not one STUN message.
    if declared % 4 != 0 || declared != datagram.len() - HEADER {
        return None;
    }
    let mut rest = datagram.get(HEADER..)?;
    for _ in 0..MAX_ATTRIBUTES {
        let kind = u16::from_be_bytes([*rest.first()?, *rest.get(1)?]);
        let len = usize::from(u16::from_be_bytes([*rest.get(2)?, *rest.get(3)?]));
        let value = rest.get(4..4 + len)?;
        if kind == USERNAME {
            if len > MAX_USERNAME {
                return None;
            }
            let colon = value.iter().position(|b| *b == b':')?;
            let ours = &value[..colon];
            return (!ours.is_empty()).then_some(ours);
        }
        // Values are padded to a multiple of 4.
        let padded = 4 + len.div_ceil(4) * 4;
        rest = rest.get(padded..)?;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A binding request with these attributes, each padded; the length field matches.
    fn request(attributes: &[(u16, &[u8])]) -> Vec<u8> {
        let mut body = Vec::new();
        for (kind, value) in attributes {
            body.extend_from_slice(&kind.to_be_bytes());
            body.extend_from_slice(&(value.len() as u16).to_be_bytes());
            body.extend_from_slice(value);
            body.resize(body.len().div_ceil(4) * 4, 0);
        }
        let mut d = vec![0x00, 0x01];
        d.extend_from_slice(&(body.len() as u16).to_be_bytes());
        d.extend_from_slice(&MAGIC_COOKIE);
        d.extend_from_slice(&[7; 12]);
        d.extend_from_slice(&body);
        d
    }

    const PRIORITY: u16 = 0x0024;
    const ICE_CONTROLLING: u16 = 0x802A;
    const INTEGRITY: u16 = 0x0008;

    #[test]
    fn our_ufrag_is_read_from_the_username_of_a_binding_request() {
        let d = request(&[(USERNAME, b"srvA:cli1"), (INTEGRITY, &[0; 20])]);
        assert_eq!(binding_request_ufrag(&d), Some(&b"srvA"[..]));
    }

    #[test]
    fn the_username_is_found_after_other_attributes_with_padding() {
        let d = request(&[(PRIORITY, &[1, 2, 3, 4]), (0xC057, &[9, 9, 9]), (ICE_CONTROLLING, &[0; 8]), (USERNAME, b"abc:defgh")]);
        assert_eq!(binding_request_ufrag(&d), Some(&b"abc"[..]));
    }

    #[test]
    fn anything_but_a_binding_request_with_a_username_is_not_routed() {
        let good = request(&[(USERNAME, b"srvA:cli1")]);
        let mut response = good.clone();
        response[1] = 0x01;
        response[0] = 0x01; // binding success response
        assert_eq!(binding_request_ufrag(&response), None, "a response");
        let mut indication = good.clone();
        indication[1] = 0x11;
        assert_eq!(binding_request_ufrag(&indication), None, "an indication");
        let mut no_cookie = good.clone();
        no_cookie[4] = 0;
        assert_eq!(binding_request_ufrag(&no_cookie), None, "no magic cookie (RFC 3489 or not STUN)");
        let mut trailing = good.clone();
        trailing.extend_from_slice(&[0; 4]);
        assert_eq!(binding_request_ufrag(&trailing), None, "bytes past the declared length");
        assert_eq!(binding_request_ufrag(&request(&[(PRIORITY, &[0; 4])])), None, "no username");
        assert_eq!(binding_request_ufrag(&request(&[(USERNAME, b"nocolon")])), None, "no colon");
        assert_eq!(binding_request_ufrag(&request(&[(USERNAME, b":cli")])), None, "empty ufrag");
        let rtp = [0x80u8, 96, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
        assert_eq!(binding_request_ufrag(&rtp), None, "RTP");
        let dtls = [22u8, 254, 253, 0, 0, 0, 0, 0, 0, 0, 0, 0, 16, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(binding_request_ufrag(&dtls), None, "a DTLS record");
    }

    #[test]
    fn a_username_hidden_past_the_attribute_bound_is_not_read() {
        let filler: Vec<(u16, &[u8])> = (0..MAX_ATTRIBUTES).map(|_| (PRIORITY, &[0u8; 4][..])).collect();
        let mut attributes = filler.clone();
        attributes.push((USERNAME, b"srvA:cli1"));
        assert_eq!(binding_request_ufrag(&request(&attributes)), None);
        let mut within = filler[1..].to_vec();
        within.push((USERNAME, b"srvA:cli1"));
        assert_eq!(binding_request_ufrag(&request(&within)), Some(&b"srvA"[..]));
    }

    #[test]
    fn truncated_and_lying_lengths_are_refused_without_panicking() {
        let good = request(&[(PRIORITY, &[0; 4]), (USERNAME, b"srvA:cli1")]);
        for cut in 0..good.len() {
            let mut d = good[..cut].to_vec();
            if d.len() >= 4 {
                // Make the header agree with the cut, so the attribute walk itself meets the end.
                let body = d.len().saturating_sub(HEADER) as u16;
                d[2..4].copy_from_slice(&body.to_be_bytes());
            }
            assert_eq!(binding_request_ufrag(&d), None, "cut at {cut}");
        }
        let mut lying = good.clone();
        lying[HEADER + 8 + 2..HEADER + 8 + 4].copy_from_slice(&0xFFFFu16.to_be_bytes());
        assert_eq!(binding_request_ufrag(&lying), None, "an attribute longer than the datagram");
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        // A cheap deterministic sweep; the fuzz target covers the rest.
        let mut x: u32 = 0x1234_5678;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x
        };
        for _ in 0..20_000 {
            let len = (next() % 120) as usize;
            let mut d: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            if d.len() >= 8 && next() % 2 == 0 {
                d[0..2].copy_from_slice(&BINDING_REQUEST);
                d[4..8].copy_from_slice(&MAGIC_COOKIE);
                let body = (d.len().saturating_sub(HEADER)) as u16;
                d[2..4].copy_from_slice(&body.to_be_bytes());
            }
            let _ = binding_request_ufrag(&d);
        }
    }
}
