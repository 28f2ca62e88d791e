//! Datagrams from an address no peer owns yet: the ufrag a STUN binding request names.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ufrag_len = sellcast_server::fuzzing::stun_datagram(data);
});
