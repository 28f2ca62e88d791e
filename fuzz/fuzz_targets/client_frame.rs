//! Client frames on a data channel, decoded and handled by the room core (`Show`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sellcast_room::fuzzing::client_frame(data));
