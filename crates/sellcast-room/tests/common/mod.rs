//! Helpers shared by the room tests: a room with one product and one sale, participants, and
//! readers for what the room asked its task to send.
#![allow(dead_code)]

use std::sync::Arc;

use sellcast_room::{Caller, Class, Identity, Output, ParticipantId, Product, Role, Sale, Show, ShowLimits, ShowRecord};
use serde_json::Value;

pub const PRODUCT: i64 = 10;
pub const SALE: i64 = 1;
/// The sale is open on [SALE_START, SALE_END).
pub const SALE_START: i64 = 1_000;
pub const SALE_END: i64 = 600_000;

pub fn who(id: &str, role: Role) -> Identity {
    Identity { id: id.into(), name: format!("{id} name"), role }
}

pub fn product(id: i64) -> Product {
    Product { id, title: format!("product {id}"), price_minor: 1500, currency: "EUR".into(), image_url: String::new(), stock: 100, variants: Vec::new() }
}

pub fn sale(stock: u32, limit: u32) -> Sale {
    Sale {
        id: SALE,
        product_id: PRODUCT,
        price_minor: 990,
        currency: "EUR".into(),
        stock_total: stock,
        stock_left: stock,
        per_user_limit: limit,
        starts_at_ms: SALE_START,
        ends_at_ms: SALE_END,
        ended_at_ms: None,
    }
}

pub fn record(stock: u32, limit: u32) -> ShowRecord {
    ShowRecord { products: vec![product(PRODUCT)], sales: vec![sale(stock, limit)], ..ShowRecord::default() }
}

/// A room with the default limits, except buys: the buying tests place many from one identity
/// at one instant (the buy rate itself is tested on its own).
pub fn room(record: ShowRecord) -> Show {
    let mut limits = ShowLimits::default();
    limits.identities.buys = sellcast_room::Rate { burst: 10_000, per_second: 10_000.0 };
    Show::new("r".into(), 42, record, limits, 0)
}

pub fn drain(room: &mut Show) -> Vec<Output> {
    std::iter::from_fn(|| room.poll_output()).collect()
}

pub fn json(frame: &Arc<str>) -> Value {
    serde_json::from_str(frame).expect("frames are JSON")
}

/// Frames sent to `to` alone, in order: its stream, and its answers as its data channel
/// carries them.
pub fn direct(outputs: &[Output], to: ParticipantId) -> Vec<Value> {
    direct_classed(outputs, to).into_iter().map(|(frame, _)| frame).collect()
}

/// Frames sent to `to` alone with their class (answers are control frames).
pub fn direct_classed(outputs: &[Output], to: ParticipantId) -> Vec<(Value, Class)> {
    outputs
        .iter()
        .flat_map(|o| match o {
            Output::Send { to: t, frame, class } if *t == to => vec![(json(frame), *class)],
            Output::Answer { to: Caller::Session(t), answer } if *t == to => {
                answer.to_frames().iter().map(|f| (json(f), Class::Control)).collect()
            }
            _ => Vec::new(),
        })
        .collect()
}

/// Frames broadcast to everyone, in order.
pub fn broadcasts(outputs: &[Output]) -> Vec<Value> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::Broadcast { frame, .. } => Some(json(frame)),
            _ => None,
        })
        .collect()
}

pub fn broadcasts_of(outputs: &[Output], kind: &str) -> Vec<Value> {
    broadcasts(outputs).into_iter().filter(|f| f["type"] == kind).collect()
}

pub fn of_type(frames: &[Value], kind: &str) -> Vec<Value> {
    frames.iter().filter(|f| f["type"] == kind).cloned().collect()
}

/// The error codes `to` was sent.
pub fn error_codes(outputs: &[Output], to: ParticipantId) -> Vec<String> {
    of_type(&direct(outputs, to), "error").iter().filter_map(|f| f["code"].as_str().map(String::from)).collect()
}

pub fn persisted(outputs: &[Output]) -> Vec<sellcast_room::HostAction> {
    outputs.iter().filter_map(|o| if let Output::Persist { action, .. } = o { Some(action.clone()) } else { None }).collect()
}

pub fn buy_frame(sale_id: i64, qty: u32, key: &str) -> Vec<u8> {
    format!(r#"{{"type":"buy","sale_id":{sale_id},"qty":{qty},"idempotency_key":"{key}"}}"#).into_bytes()
}

/// Send `frame` from `from` and return what the room answered.
pub fn frame(room: &mut Show, now_ms: i64, from: ParticipantId, bytes: &[u8]) -> Vec<Output> {
    room.handle_frame(now_ms, from, bytes);
    drain(room)
}
