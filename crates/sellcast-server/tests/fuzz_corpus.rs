//! Replays the saved fuzz corpus (`fuzz/corpus/<target>/`, docs/fuzzing.md) through the
//! function its fuzz target calls, so every input the fuzzer found interesting (and every crash
//! it found, once fixed) is rerun on stable by `cargo test`, without cargo-fuzz.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;

/// Every file of one target's corpus, by name.
fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus").join(target);
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()));
    let mut files: Vec<(String, Vec<u8>)> = entries
        .map(|entry| {
            let path = entry.expect("a directory entry").path();
            let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
            (path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(), bytes)
        })
        .collect();
    files.sort();
    files
}

/// Run `body` on every file of `target`'s corpus; fail naming each file it panicked on.
fn replay<T>(target: &str, body: fn(&[u8]) -> T) {
    let files = corpus(target);
    assert!(files.len() >= 5, "fuzz/corpus/{target} holds {} files: the seed corpus is missing", files.len());
    let panicked: Vec<&str> = files
        .iter()
        .filter(|(_, bytes)| catch_unwind(AssertUnwindSafe(|| {
            let _ = body(bytes);
        }))
        .is_err())
        .map(|(name, _)| name.as_str())
        .collect();
    assert!(panicked.is_empty(), "fuzz/corpus/{target}: {} of {} inputs panicked: {panicked:?}", panicked.len(), files.len());
}

#[test]
fn sdp_offer_corpus_is_checked_and_answered_without_a_panic() {
    replay("sdp_offer", sellcast_server::fuzzing::sdp_offer);
}

#[test]
fn tcp_stream_corpus_is_framed_without_a_panic() {
    replay("tcp_stream", sellcast_server::fuzzing::tcp_stream);
}

#[test]
fn tcp_stream_target_cuts_the_seed_streams_into_their_frames() {
    // Seeds named `frames-N-*` hold N whole frames before any junk.
    for (name, bytes) in corpus("tcp_stream") {
        let Some(n) = name.strip_prefix("frames-").and_then(|rest| rest.split('-').next()).and_then(|n| n.parse::<usize>().ok()) else {
            continue;
        };
        assert_eq!(sellcast_server::fuzzing::tcp_stream(&bytes), n, "{name}");
    }
}

#[test]
fn stun_datagram_corpus_is_routed_without_a_panic() {
    replay("stun_datagram", sellcast_server::fuzzing::stun_datagram);
}

/// The target reaches the USERNAME: the seed binding requests name their ufrag, and the seeds
/// that are not binding requests (RTP, DTLS, a binding response) name none.
#[test]
fn stun_datagram_target_reads_the_ufrag_of_the_seed_requests() {
    let files = corpus("stun_datagram");
    let ufrag_len = |name: &str| {
        let (_, bytes) = files.iter().find(|(n, _)| n == name).unwrap_or_else(|| panic!("seed {name} is missing"));
        sellcast_server::fuzzing::stun_datagram(bytes)
    };
    assert_eq!(ufrag_len("binding_request_chromium_shape.bin"), Some(8));
    assert_eq!(ufrag_len("binding_request_username_first.bin"), Some(4));
    assert_eq!(ufrag_len("rtp_vp8.bin"), None);
    assert_eq!(ufrag_len("dtls_client_hello.bin"), None);
    assert_eq!(ufrag_len("binding_response.bin"), None);
}

#[test]
fn api_bodies_corpus_is_validated_and_answered_without_a_panic() {
    replay("api_bodies", sellcast_server::fuzzing::api_bodies);
}

/// The target reaches str0m: a real browser offer passes the signalling checks and is answered
/// (a host's under each of the three codec policies, a viewer's once).
#[test]
fn sdp_offer_target_answers_the_chromium_seed_offers() {
    let files = corpus("sdp_offer");
    let answered = |name: &str| {
        let (_, bytes) = files.iter().find(|(n, _)| n == name).unwrap_or_else(|| panic!("seed {name} is missing"));
        sellcast_server::fuzzing::sdp_offer(bytes)
    };
    assert_eq!(answered("chromium_156_whip_offer.sdp"), 3);
    assert_eq!(answered("chromium_156_whep_offer.sdp"), 1);
}
