//! A host's RTP payloads and numbering through keyframe detection and a room's forwarder.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sellcast_sfu::fuzzing::rtp_codec(data));
