//! Bytes from an ICE-TCP client: RFC 4571 frames cut out of reads of any size, the first one
//! routed by the ufrag it names.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _frames = sellcast_server::fuzzing::tcp_stream(data);
});
