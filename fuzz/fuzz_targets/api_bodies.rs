//! HTTP API bodies: product create/update and frames, with the validation and the room's answer.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sellcast_server::fuzzing::api_bodies(data));
