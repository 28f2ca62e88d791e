//! Where the frame parser draws its lines: the 16 KiB size limit, exactly, what an
//! unknown frame type is told back, and the shape of an error frame.

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

#[test]
fn an_error_frame_carries_its_type_code_and_message() {
    let frame = sellcast_room::FrameError::new(ErrorCode::NotFound, "no sale 7").to_frame();
    let json: serde_json::Value = serde_json::from_str(&frame).expect("JSON");
    assert_eq!(json, serde_json::json!({"type": "error", "code": "not_found", "message": "no sale 7"}));
}
