//! Where the frame parser draws its lines: the 16 KiB size limit, exactly, and what an
//! unknown frame type is told back.

use sellcast_room::protocol::MAX_FRAME_BYTES;
use sellcast_room::{ClientFrame, ErrorCode};

/// A valid `chat` frame padded with JSON whitespace to exactly `len` bytes.
fn chat_frame_of(len: usize) -> Vec<u8> {
    let mut f = br#"{"type":"chat","text":"hi"}"#.to_vec();
    let pad = len - f.len();
    f.splice(1..1, std::iter::repeat_n(b' ', pad));
    assert_eq!(f.len(), len);
    f
}

#[test]
fn a_frame_of_exactly_16_kib_is_accepted_and_one_byte_more_is_too_large() {
    assert_eq!(MAX_FRAME_BYTES, 16 * 1024);
    assert_eq!(ClientFrame::parse(&chat_frame_of(16 * 1024)), Ok(ClientFrame::Chat { text: "hi".into() }));
    assert_eq!(ClientFrame::parse(&chat_frame_of(16 * 1024 + 1)).map_err(|e| e.code), Err(ErrorCode::TooLarge));
    assert!(ClientFrame::parse(&chat_frame_of(2_000)).is_ok(), "a large but legal frame");
}

#[test]
fn an_unknown_type_is_named_back_cut_to_40_characters() {
    let long = "t".repeat(100);
    let err = ClientFrame::parse(format!(r#"{{"type":"{long}"}}"#).as_bytes()).expect_err("unknown");
    assert_eq!(err.code, ErrorCode::UnknownType);
    assert_eq!(err.message, format!("unknown frame type `{}`", "t".repeat(40)));
    let err = ClientFrame::parse(br#"{"type":"teleport"}"#).expect_err("unknown");
    assert_eq!(err.message, "unknown frame type `teleport`");
}
