//! Where a room's interaction travels in NATS, and the stream that keeps its events.
//!
//! - `sellcast.room.<room>.events` (JetStream, stream [`EVENTS_STREAM`]): the room events
//!   in order, written only by the room's owner, with their epoch, seq and class in headers;
//! - `sellcast.room.<room>.live` (plain NATS): latest-state frames (likes, counters,
//!   activity) and notices, which nobody replays;
//! - `sellcast.room.<room>.calls` (plain NATS request/reply): viewers' frames from other
//!   nodes to the owner, answered to the asking node's reply subject.
//!
//! Room names are `[A-Za-z0-9_-]{1,64}` (`http::signalling::valid_room`), so each is one
//! subject token.

use std::time::Duration;

use async_nats::jetstream::stream;
use async_nats::HeaderMap;
use sellcast_room::{Class, Position};

/// The stream of every room's events.
pub const EVENTS_STREAM: &str = "SELLCAST_ROOM_EVENTS";
/// How long the stream keeps an event: longer than any show, so a viewer resumes from the
/// stream all show long.
pub const EVENTS_MAX_AGE: Duration = Duration::from_secs(24 * 3600);
/// Events kept per room: more than any viewer replays (a resume past the replay budget takes
/// a snapshot anyway), bounding the stream per room.
pub const EVENTS_PER_ROOM: i64 = 10_000;
/// The stream drops a second publish of one event id within this window (an owner's retry).
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);

pub const HEADER_EPOCH: &str = "Sellcast-Epoch";
pub const HEADER_SEQ: &str = "Sellcast-Seq";
pub const HEADER_CLASS: &str = "Sellcast-Class";

pub fn events(room: &str) -> String {
    format!("sellcast.room.{room}.events")
}

pub fn live(room: &str) -> String {
    format!("sellcast.room.{room}.live")
}

pub fn calls(room: &str) -> String {
    format!("sellcast.room.{room}.calls")
}

/// The id JetStream dedupes an event's publish by.
pub fn event_id(room: &str, epoch: u64, seq: u64) -> String {
    format!("{room}:{epoch}:{seq}")
}

pub fn stream_config() -> stream::Config {
    stream::Config {
        name: EVENTS_STREAM.to_string(),
        description: Some("sellcast: each room's events, in the order its owner numbered them".to_string()),
        subjects: vec!["sellcast.room.*.events".to_string()],
        max_age: EVENTS_MAX_AGE,
        max_messages_per_subject: EVENTS_PER_ROOM,
        storage: stream::StorageType::File,
        num_replicas: 1,
        discard: stream::DiscardPolicy::Old,
        duplicate_window: DUPLICATE_WINDOW,
        ..Default::default()
    }
}

/// An event's place in its room's stream, from the headers its owner wrote.
pub fn position(headers: &HeaderMap) -> Option<Position> {
    let number = |name: &str| headers.get(name).and_then(|v| v.as_str().parse::<u64>().ok());
    Some(Position { epoch: number(HEADER_EPOCH)?, seq: number(HEADER_SEQ)? })
}

pub fn class_name(class: Class) -> &'static str {
    match class {
        Class::Control => "control",
        Class::Chat => "chat",
        Class::Latest => "latest",
    }
}

pub fn parse_class(name: &str) -> Option<Class> {
    match name {
        "control" => Some(Class::Control),
        "chat" => Some(Class::Chat),
        "latest" => Some(Class::Latest),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_class_reads_back_as_itself() {
        for class in [Class::Control, Class::Chat, Class::Latest] {
            assert_eq!(parse_class(class_name(class)), Some(class));
        }
        assert_eq!(parse_class("bulk"), None);
    }

    #[test]
    fn an_events_position_reads_back_from_its_headers() {
        let mut headers = HeaderMap::new();
        headers.insert(HEADER_EPOCH, "1700000000000");
        assert_eq!(position(&headers), None, "no seq");
        headers.insert(HEADER_SEQ, "41");
        assert_eq!(position(&headers), Some(Position { epoch: 1_700_000_000_000, seq: 41 }));
        headers.insert(HEADER_SEQ, "forty-one");
        assert_eq!(position(&headers), None);
    }

    #[test]
    fn a_rooms_events_are_in_the_streams_subjects() {
        let config = stream_config();
        let pattern = &config.subjects[0];
        let subject = events("shop-1");
        let (p, s): (Vec<&str>, Vec<&str>) = (pattern.split('.').collect(), subject.split('.').collect());
        assert_eq!(p.len(), s.len());
        assert!(p.iter().zip(&s).all(|(p, s)| *p == "*" || p == s), "{subject} under {pattern}");
        assert_ne!(live("shop-1"), subject, "latest-state frames stay out of the stream");
    }
}
