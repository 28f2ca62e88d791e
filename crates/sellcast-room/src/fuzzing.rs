//! The body of the `client_frame` fuzz target (fuzz/), shared with the corpus replay test
//! (`tests/fuzz_corpus.rs`) so both run identical code.
//!
//! The input is a sequence of client frames, one per line. Each line is sent by a viewer, then
//! a moderator, then the host of a show with a product and an open sale, exactly as a data
//! channel delivers it (`Show::handle_frame`), with 250 ms of virtual time and a tick between
//! lines. What the show asks of its store is carried out as the store would (host actions
//! applied, buys confirmed), so a frame reaches everything it can change.
//!
//! It panics on what the room promises never to do: panic on any input, answer one frame with
//! an unbounded amount of output, or produce a frame a client cannot parse as JSON.

use crate::buy_admission::BuyAnswer;
use crate::catalog::{Product, Sale};
use crate::identity::{Identity, ParticipantId, Role};
use crate::protocol::MAX_FRAME_BYTES;
use crate::show::{HostAction, Output, Show, ShowLimits, ShowRecord};

/// Lines of one input that are sent; the rest is ignored (the per-participant frame rate
/// refuses more anyway, and a long input would only slow the fuzzer down).
const MAX_LINES: usize = 64;

/// Most output bytes one frame may cause, besides the frames that open a stream (`hello`):
/// a frame is broadcast at most once, JSON-escaped (at most 6 bytes per input byte), with a
/// few small frames beside it.
const MAX_OUTPUT_PER_FRAME: usize = 6 * MAX_FRAME_BYTES + 16 * 1024;

/// Most output bytes of a `hello`: the replay budget or a snapshot of a show this small (50
/// chat lines, 500 blocked words, 50 orders, one product and the sales a fuzz input can start).
const MAX_OUTPUT_PER_HELLO: usize = 1024 * 1024;

const PRODUCT: i64 = 10;
const SALE: i64 = 1;

/// Feed `data` to a show as client frames (see the module doc). Panics if the show breaks a
/// promise.
pub fn client_frame(data: &[u8]) {
    let mut now_ms = START_MS;
    let mut show = show();
    let senders = [
        (ParticipantId(1), identity("viewer", Role::Viewer)),
        (ParticipantId(2), identity("moderator", Role::Moderator)),
        (ParticipantId(3), identity("host", Role::Host)),
    ];
    for (id, who) in &senders {
        show.handle_join(now_ms, *id, who.clone());
    }
    let mut store = FakeStore::default();
    store.carry_out(&mut show, now_ms);
    for line in data.split(|b| *b == b'\n').take(MAX_LINES) {
        for (id, _) in &senders {
            show.handle_frame(now_ms, *id, line);
            let bytes = store.carry_out(&mut show, now_ms);
            let limit = if is_hello(line) { MAX_OUTPUT_PER_HELLO } else { MAX_OUTPUT_PER_FRAME };
            assert!(bytes <= limit, "one frame of {} bytes caused {bytes} bytes of output", line.len());
        }
        now_ms += 250;
        show.handle_tick(now_ms);
        store.carry_out(&mut show, now_ms);
        assert!(show.participant_count() <= senders.len(), "participants appeared from frames");
    }
}

fn is_hello(line: &[u8]) -> bool {
    line.windows(7).any(|w| w == b"\"hello\"")
}

/// The virtual time a fuzzed show starts at.
pub const START_MS: i64 = 1_000;

/// The show every input starts from: one product and one open sale, nobody joined.
pub fn show() -> Show {
    Show::new("fuzz".into(), 7, record(), ShowLimits::default(), START_MS)
}

pub fn identity(id: &str, role: Role) -> Identity {
    Identity { id: id.into(), name: format!("{id} name"), role }
}

fn record() -> ShowRecord {
    let product = Product {
        id: PRODUCT,
        title: "Lipstick".into(),
        price_minor: 1500,
        currency: "EUR".into(),
        image_url: String::new(),
        stock: 100,
        variants: Vec::new(),
    };
    let sale = Sale {
        id: SALE,
        product_id: PRODUCT,
        price_minor: 990,
        currency: "EUR".into(),
        stock_total: 20,
        stock_left: 20,
        per_user_limit: 3,
        starts_at_ms: 0,
        ends_at_ms: 3_600_000,
        ended_at_ms: None,
    };
    ShowRecord { products: vec![product], sales: vec![sale], ..ShowRecord::default() }
}

/// What the show task and the store do with a show's outputs, in memory: host actions are
/// committed and applied, buys confirmed, kicked sessions leave, and every frame a client
/// would be sent (answers to calls included) is checked to be JSON.
#[derive(Debug)]
pub struct FakeStore {
    /// The next id of a sale or an order (above the ones the show starts with).
    next_id: i64,
}

impl Default for FakeStore {
    fn default() -> Self {
        Self { next_id: 100 }
    }
}

impl FakeStore {
    /// Carry out every output (until none is left); returns the bytes of frames sent.
    pub fn carry_out(&mut self, show: &mut Show, now_ms: i64) -> usize {
        let mut bytes = 0;
        while let Some(output) = show.poll_output() {
            match output {
                Output::Send { frame, .. } | Output::Broadcast { frame, .. } => {
                    bytes += frame.len();
                    assert_json(&frame);
                }
                Output::Answer { answer, .. } => {
                    for frame in answer.to_frames() {
                        bytes += frame.len();
                        assert_json(&frame);
                    }
                }
                Output::Buy(order) => {
                    let rejected = |reason| BuyAnswer::Rejected { sale_id: order.sale_id, product_id: order.product_id, reason };
                    let listed = order.product_id.and_then(|id| show.products().iter().find(|p| p.id == id));
                    let answer = match (order.sale_id.and_then(|id| show.sale(id)), listed) {
                        // The desk's verdict, recorded as the key's answer (no older one here).
                        _ if order.verdict.is_some() => rejected(order.verdict.unwrap_or(crate::BuyRejection::Invalid)),
                        (Some(sale), _) => {
                            self.next_id += 1;
                            BuyAnswer::Confirmed {
                                order_id: self.next_id,
                                sale_id: Some(sale.id),
                                product_id: sale.product_id,
                                variant_id: order.variant_id,
                                qty: order.qty,
                                price_minor: sale.price_minor,
                                currency: sale.currency.clone(),
                            }
                        }
                        (None, Some(p)) if order.sale_id.is_none() => {
                            self.next_id += 1;
                            BuyAnswer::Confirmed {
                                order_id: self.next_id,
                                sale_id: None,
                                product_id: p.id,
                                variant_id: order.variant_id,
                                qty: order.qty,
                                price_minor: p.price_minor,
                                currency: p.currency.clone(),
                            }
                        }
                        (None, Some(_)) => rejected(crate::BuyRejection::SaleNotActive),
                        (None, None) if order.sale_id.is_some() => rejected(crate::BuyRejection::SaleNotActive),
                        (None, None) => rejected(crate::BuyRejection::UnknownProduct),
                    };
                    show.handle_buy_outcome(now_ms, &order.ticket, answer, false, None);
                }
                Output::Persist { from, action, .. } => {
                    self.persist(show, now_ms, action);
                    show.handle_persisted(from);
                }
                Output::Kick { participant } => show.handle_leave(participant),
                Output::Refused { .. } | Output::PersistLikes { .. } | Output::VideoCap { .. } => {}
            }
        }
        bytes
    }

    fn persist(&mut self, show: &mut Show, now_ms: i64, action: HostAction) {
        match action {
            HostAction::Pin(ids) => show.apply_pins(now_ms, ids),
            HostAction::StartSale(d) => {
                self.next_id += 1;
                let currency = d.currency.unwrap_or_else(|| "EUR".into());
                let sale = Sale {
                    id: self.next_id,
                    product_id: d.product_id,
                    price_minor: d.price_minor,
                    currency,
                    stock_total: d.stock,
                    stock_left: d.stock,
                    per_user_limit: d.per_user_limit,
                    starts_at_ms: d.starts_at_ms,
                    ends_at_ms: d.ends_at_ms,
                    ended_at_ms: None,
                };
                show.apply_sale(now_ms, sale);
            }
            HostAction::EndSale(id) => {
                if let Some(sale) = show.sale(id) {
                    let ended = Sale { ended_at_ms: Some(now_ms), ..sale.clone() };
                    show.apply_sale(now_ms, ended);
                }
            }
            HostAction::Ban { identity, by } => show.apply_ban(now_ms, identity, None, by),
            HostAction::Unban(identity) => show.apply_unban(now_ms, identity),
            HostAction::SetBlockedWords(words) => show.apply_blocked_words(words),
            HostAction::SetShow(info) => show.apply_show(now_ms, info),
            HostAction::SetName { identity, name, host } => show.apply_name(now_ms, identity, name, host),
            HostAction::EndShow => {
                let closed: Vec<Sale> = show
                    .sales()
                    .iter()
                    .filter(|s| s.ended_at_ms.is_none())
                    .map(|s| Sale { ended_at_ms: Some(now_ms), ..s.clone() })
                    .collect();
                show.apply_show_ended(now_ms, now_ms, closed);
            }
        }
    }
}

/// A caller is never sent anything it cannot parse.
fn assert_json(frame: &str) {
    if let Err(e) = serde_json::from_str::<serde_json::Value>(frame) {
        panic!("a frame sent to clients is not JSON ({e}): {frame}");
    }
}
