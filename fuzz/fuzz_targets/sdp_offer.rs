//! WHIP/WHEP offer bodies: the signalling checks, then str0m's parse and answer.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _answered = sellcast_server::fuzzing::sdp_offer(data);
});
