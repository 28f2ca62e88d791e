//! The `video_cap` frame: a viewer's cap on its video layer reaches the media plane as
//! `Output::VideoCap` for its own session; a bad height, a host, an HTTP call and a flood are
//! each refused with their code, and a refused cap reaches nothing.

mod common;

use common::*;
use sellcast_room::{CallId, Output, ParticipantId, Role, Show};

const VIEWER: ParticipantId = ParticipantId(1);
const MODERATOR: ParticipantId = ParticipantId(2);
const HOST: ParticipantId = ParticipantId(3);

fn watched_room() -> Show {
    let mut room = room(record(10, 2));
    room.handle_join(0, VIEWER, who("vic", Role::Viewer));
    room.handle_join(0, MODERATOR, who("mo", Role::Moderator));
    room.handle_join(0, HOST, who("hana", Role::Host));
    drain(&mut room);
    room
}

fn caps(outputs: &[Output]) -> Vec<(ParticipantId, bool, Option<u32>)> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::VideoCap { participant, data_saver, max_height } => Some((*participant, *data_saver, *max_height)),
            _ => None,
        })
        .collect()
}

fn cap(room: &mut Show, now_ms: i64, from: ParticipantId, json: &str) -> Vec<Output> {
    frame(room, now_ms, from, json.as_bytes())
}

#[test]
fn a_viewers_cap_reaches_the_media_plane_for_its_own_session() {
    let mut room = watched_room();
    let out = cap(&mut room, 1, VIEWER, r#"{"type":"video_cap","data_saver":true,"max_height":null}"#);
    assert_eq!(caps(&out), vec![(VIEWER, true, None)]);
    assert!(error_codes(&out, VIEWER).is_empty(), "{out:?}");
    assert!(broadcasts(&out).is_empty(), "a cap is nobody else's business");

    let out = cap(&mut room, 2, VIEWER, r#"{"type":"video_cap","data_saver":false,"max_height":1080}"#);
    assert_eq!(caps(&out), vec![(VIEWER, false, Some(1080))]);
    let out = cap(&mut room, 3, VIEWER, r#"{"type":"video_cap","data_saver":false}"#);
    assert_eq!(caps(&out), vec![(VIEWER, false, None)], "an absent max_height is no size cap");
    // The bounds themselves are fine.
    let out = cap(&mut room, 4, VIEWER, r#"{"type":"video_cap","data_saver":false,"max_height":1}"#);
    assert_eq!(caps(&out), vec![(VIEWER, false, Some(1))]);
    let out = cap(&mut room, 5, VIEWER, r#"{"type":"video_cap","data_saver":false,"max_height":4320}"#);
    assert_eq!(caps(&out), vec![(VIEWER, false, Some(4320))]);
    // A moderator watching the show is a viewer of its video.
    let out = cap(&mut room, 6, MODERATOR, r#"{"type":"video_cap","data_saver":true,"max_height":360}"#);
    assert_eq!(caps(&out), vec![(MODERATOR, true, Some(360))]);
}

#[test]
fn a_height_outside_1_to_4320_is_invalid_and_a_wrong_shape_is_malformed() {
    let mut room = watched_room();
    let cases = [
        (r#"{"type":"video_cap","data_saver":false,"max_height":0}"#, "invalid"),
        (r#"{"type":"video_cap","data_saver":false,"max_height":4321}"#, "invalid"),
        (r#"{"type":"video_cap","data_saver":false,"max_height":4294967295}"#, "invalid"),
        (r#"{"type":"video_cap","data_saver":false,"max_height":-5}"#, "malformed"),
        (r#"{"type":"video_cap","data_saver":false,"max_height":720.5}"#, "malformed"),
        (r#"{"type":"video_cap","data_saver":false,"max_height":4294967296}"#, "malformed"),
        (r#"{"type":"video_cap","data_saver":"yes","max_height":720}"#, "malformed"),
        (r#"{"type":"video_cap","max_height":720}"#, "malformed"),
        (r#"{"type":"video_cap","data_saver":true,"max_height":720,"bitrate":1}"#, "malformed"),
    ];
    for (i, (json, code)) in cases.into_iter().enumerate() {
        // A second apart: a session's error replies are paced.
        let out = cap(&mut room, 1_000 * (i as i64 + 1), VIEWER, json);
        assert_eq!(error_codes(&out, VIEWER), vec![code], "{json}");
        assert!(caps(&out).is_empty(), "a refused cap reaches nothing: {json}");
    }
}

#[test]
fn a_host_is_refused_as_forbidden_and_an_http_call_as_invalid() {
    let mut room = watched_room();
    let out = cap(&mut room, 1, HOST, r#"{"type":"video_cap","data_saver":true,"max_height":null}"#);
    assert_eq!(error_codes(&out, HOST), vec!["forbidden"]);
    assert!(caps(&out).is_empty());

    // The HTTP frames API has no media session to cap.
    let frame = sellcast_room::ClientFrame::VideoCap { data_saver: true, max_height: Some(360) };
    room.handle_call(2, CallId(9), who("walk-in", Role::Viewer), frame);
    let out = drain(&mut room);
    assert!(caps(&out).is_empty(), "{out:?}");
    let refused: Vec<_> = out
        .iter()
        .filter_map(|o| match o {
            Output::Answer { answer: sellcast_room::Answer::Refused(e), .. } => Some(e.code),
            _ => None,
        })
        .collect();
    assert_eq!(refused, vec![sellcast_room::ErrorCode::Invalid]);
}

#[test]
fn a_flood_of_caps_is_rate_limited_like_any_frame() {
    let mut room = watched_room();
    let mut taken = 0;
    let mut limited = false;
    // All at one instant: the frame bucket's burst, then refusals.
    for _ in 0..200 {
        let out = cap(&mut room, 1, VIEWER, r#"{"type":"video_cap","data_saver":false,"max_height":720}"#);
        taken += caps(&out).len();
        limited |= error_codes(&out, VIEWER).iter().any(|c| c == "rate_limited");
    }
    assert!(limited, "the frame rate limit refused some");
    assert!(taken > 0 && taken < 200, "{taken} of 200 caps taken");
}
