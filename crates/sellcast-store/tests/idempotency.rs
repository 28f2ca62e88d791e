//! The store answers every idempotency key: a room keeps only a small cache of recent answers
//! and loads none at start, and a retry of any key, however old, gets the store's one answer
//! and never places a second order.

use sellcast_room::{
    Answer, BuyAnswer, CallId, ClientFrame, Identity, Output, ProductDraft, Role, SaleDraft, Show, ShowLimits, ShowRecord,
};
use sellcast_store::{BuyRequest, Store};

mod support;
use support::{Backend, Place};

const START: i64 = 1_000_000;
const END: i64 = 2_000_000;
const NOW: i64 = START + 10;

async fn open(backend: Backend) -> (Place, Store) {
    let place = Place::new(backend);
    let store = place.open();
    (place, store)
}

/// A sale of `stock` units (all of its product's), at most `limit` per buyer, open on [START, END).
async fn sale(store: &Store, stock: u32, limit: u32) -> i64 {
    let draft = ProductDraft { title: "Lamp".into(), price_minor: 1999, currency: "EUR".into(), image_url: String::new(), stock, variants: Vec::new() };
    let p = store.create_product("r", draft).await.expect("product");
    let d = SaleDraft { product_id: p.id, price_minor: 750, currency: None, stock, per_user_limit: limit, starts_at_ms: START, ends_at_ms: END };
    store.create_sale("r", d).await.expect("sale").id
}

/// The room as a show task would start it from the store, with a cache of `cache` answers.
async fn show(store: &Store, cache: usize) -> Show {
    let r = store.load_room("r").await.expect("load");
    let record = ShowRecord {
        products: r.products,
        sales: r.sales,
        pinned: r.pins,
        banned: r.bans.into_iter().map(|b| (b.identity, b.until_ms, b.by)).collect(),
        blocked_words: r.blocked_words,
        bought: r.purchased,
        ..ShowRecord::default()
    };
    let limits = ShowLimits { recent_answers: cache, ..ShowLimits::default() };
    Show::new("r".into(), 1, record, limits, 0)
}

/// One buy over the call path, carried out as the show task does (the store answers what the
/// show sends it), and the answer the buyer got.
async fn buy(show: &mut Show, store: &Store, call: u64, who: &str, sale_id: i64, key: &str) -> BuyAnswer {
    let identity = Identity { id: who.into(), name: who.into(), role: Role::Viewer };
    show.handle_call(NOW, CallId(call), identity, ClientFrame::Buy { sale_id: Some(sale_id), product_id: None, variant_id: None, qty: 1, idempotency_key: key.into() });
    loop {
        let mut sent = Vec::new();
        while let Some(out) = show.poll_output() {
            match out {
                Output::Answer { answer: Answer::Buy { answer, .. }, .. } => return answer,
                Output::Answer { answer, .. } => panic!("a buy answered {answer:?}"),
                Output::Buy(order) => sent.push(order),
                _ => {}
            }
        }
        assert!(!sent.is_empty(), "neither answered nor sent to the store");
        for order in sent {
            let req = BuyRequest {
                room: "r".into(),
                sale_id: order.sale_id,
                product_id: order.product_id,
                variant_id: order.variant_id,
                identity: order.ticket.identity.clone(),
                buyer_name: order.buyer_name.clone(),
                qty: order.qty,
                idempotency_key: order.ticket.key.clone(),
                now_ms: NOW,
                verdict: order.verdict,
            };
            let outcome = store.buy(req).await.expect("store");
            show.handle_buy_outcome(NOW, &order.ticket, outcome.answer, outcome.replayed, outcome.stock_left);
        }
    }
}

async fn an_old_key_retried_after_the_cache_forgot_it_gets_the_same_order_and_no_second_one(backend: Backend) {
    let (_place, store) = open(backend).await;
    const N: u32 = 40;
    let s = sale(&store, N, 1).await;
    let mut show = show(&store, 4).await;
    let mut first = Vec::new();
    for i in 0..N {
        let answer = buy(&mut show, &store, u64::from(i), &format!("u{i}"), s, "k").await;
        assert!(matches!(answer, BuyAnswer::Confirmed { .. }), "{answer:?}");
        first.push(answer);
    }
    assert!(show.cached_answers() <= 4, "the cache holds {}", show.cached_answers());
    assert_eq!(show.sale(s).map(|x| x.stock_left), Some(0), "sold out: memory alone would now say sold_out");
    // u0's answer left the cache long ago; its retry must still be its order.
    for i in [0_u32, 1, 17] {
        let again = buy(&mut show, &store, 1_000 + u64::from(i), &format!("u{i}"), s, "k").await;
        assert_eq!(again, first[i as usize], "u{i}'s retry");
    }
    assert_eq!(store.sale_totals("r", s).await.expect("totals").0, i64::from(N), "one order per key, no second one");
    // A new key of a buyer at its limit is refused, and that refusal is the key's answer too.
    let refused = buy(&mut show, &store, 2_000, "u0", s, "k2").await;
    assert!(matches!(refused, BuyAnswer::Rejected { .. }), "{refused:?}");
    // After a restart (nothing loaded but the catalog), every key still gets its answer.
    let mut restarted = show_again(&store).await;
    assert_eq!(buy(&mut restarted, &store, 1, "u3", s, "k").await, first[3]);
    assert_eq!(buy(&mut restarted, &store, 2, "u0", s, "k2").await, refused);
    assert_eq!(store.sale_totals("r", s).await.expect("totals").0, i64::from(N));
}

async fn show_again(store: &Store) -> Show {
    show(store, 4).await
}

async fn loading_a_room_reads_no_idempotency_answer(backend: Backend) {
    let (place, store) = open(backend).await;
    let s = sale(&store, 500, 1).await;
    let mut show = show(&store, 16).await;
    for i in 0..200 {
        buy(&mut show, &store, i, &format!("u{i}"), s, "k").await;
    }
    // Hide the answers from every reader: a load that read them would fail.
    place.execute("ALTER TABLE idempotency RENAME TO idempotency_hidden");
    let room = store.load_room("r").await.expect("the room loads without reading any answer");
    assert_eq!(room.purchased.len(), 200, "what a room needs is still there");
    place.execute("ALTER TABLE idempotency_hidden RENAME TO idempotency");
    let mut show = self::show(&store, 16).await;
    let again = buy(&mut show, &store, 1, "u7", s, "k").await;
    assert!(matches!(again, BuyAnswer::Confirmed { .. }));
    assert_eq!(store.sale_totals("r", s).await.expect("totals").0, 200);
}

on_both_backends!(
    an_old_key_retried_after_the_cache_forgot_it_gets_the_same_order_and_no_second_one,
    loading_a_room_reads_no_idempotency_answer,
);
