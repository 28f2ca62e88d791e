//! The bodies of the `sdp_offer`, `api_bodies` and `stun_datagram` fuzz targets (fuzz/),
//! shared with the corpus replay test (`tests/fuzz_corpus.rs`) so both run identical code.
//! Each takes the raw bytes of an HTTP body or a datagram and runs what the server runs on
//! it, without sockets or tasks.

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Instant;

use sellcast_room::fuzzing::{identity, FakeStore, START_MS};
use sellcast_room::{CallId, ClientFrame, Product, ProductDraft, Role};
use str0m::config::DtlsCert;

use crate::http::offer_check::check_offer;
use crate::media::offer::{check_watch, plan_publish, CodecPolicy};
use crate::media::peer::PeerFactory;

/// The API's body cap (`http/api.rs`): warp refuses a longer body before any handler runs.
const MAX_API_BODY: usize = 16 * 1024;

/// One DTLS certificate for every input: making one per input would be most of the work.
fn factory() -> &'static PeerFactory {
    static FACTORY: OnceLock<PeerFactory> = OnceLock::new();
    FACTORY.get_or_init(|| {
        let provider = str0m::crypto::from_feature_flags();
        let cert: DtlsCert = match provider.dtls_provider.generate_certificate() {
            Some(cert) => cert,
            None => panic!("the crypto provider makes no DTLS certificate"),
        };
        PeerFactory { cert, candidate_addr: SocketAddr::from(([127, 0, 0, 1], 9)), timeouts: Default::default(), bwe: true, transport_estimator: false }
    })
}

/// A WHIP or WHEP body: the signalling side's checks (`check_offer`, the gate every offer
/// passes before anything else reads it; then `plan_publish` under each codec policy and
/// `check_watch`), and for an offer that passes them what the media thread does with it
/// (normalised, parsed by str0m and answered, `PeerFactory::accept`). A refusal is fine; a
/// panic is a bug. Returns how many of those four sessions str0m answered.
pub fn sdp_offer(data: &[u8]) -> usize {
    let Ok(checked) = check_offer(data) else {
        return 0;
    };
    let offer = checked.as_str();
    let mut answered = 0;
    for policy in [CodecPolicy::Auto, CodecPolicy::Vp8, CodecPolicy::H264] {
        if let Ok(plan) = plan_publish(offer, policy) {
            answered += usize::from(factory().accept(Instant::now(), Some(&plan), offer).is_ok());
        }
    }
    if check_watch(offer).is_ok() {
        answered += usize::from(factory().accept(Instant::now(), None, offer).is_ok());
    }
    answered
}

/// A datagram from an address no peer owns yet: the media thread reads the ufrag it names
/// (`media::stun_route`) at line rate, before any peer sees it. A `None` is fine; a panic, or
/// a ufrag that is not a non-empty slice of the datagram's own USERNAME, is a bug. Returns the
/// ufrag's length.
pub fn stun_datagram(data: &[u8]) -> Option<usize> {
    let ufrag = crate::media::stun_route::binding_request_ufrag(data)?;
    let inside = data.as_ptr_range();
    let (start, end) = (ufrag.as_ptr(), ufrag.as_ptr_range().end);
    assert!(inside.start <= start && end <= inside.end, "the ufrag is read from the datagram itself");
    assert!(!ufrag.is_empty() && ufrag.len() <= 513, "a ufrag of {} bytes", ufrag.len());
    assert!(!ufrag.contains(&b':'), "the ufrag stops at the first colon");
    Some(ufrag.len())
}

/// An HTTP API body, read both ways the API reads a body: as a product create/update
/// (`ProductDraft`, the store's validation, then the room applying the stored product and a
/// caller's `hello` seeing it) and as a frame (`ClientFrame::parse`, then the room's answer
/// to a one-shot call from a viewer and from the host). Every answer body must be JSON.
pub fn api_bodies(data: &[u8]) {
    if data.len() > MAX_API_BODY {
        return;
    }
    let mut show = sellcast_room::fuzzing::show();
    let mut store = FakeStore::default();
    let now = START_MS;
    let (viewer, host) = (identity("viewer", Role::Viewer), identity("host", Role::Host));
    if let Ok(draft) = serde_json::from_slice::<ProductDraft>(data) {
        if sellcast_store::validate_product(&draft).is_ok() {
            let product = stored(draft);
            if let Err(e) = serde_json::to_string(&product) {
                panic!("a stored product does not serialize: {e}");
            }
            show.apply_product(now, product);
            show.handle_call(now, CallId(1), viewer.clone(), ClientFrame::Hello { resume: None });
            store.carry_out(&mut show, now);
        }
    }
    if let Ok(frame) = ClientFrame::parse(data) {
        show.handle_call(now, CallId(2), viewer, frame.clone());
        store.carry_out(&mut show, now);
        show.handle_call(now, CallId(3), host, frame);
        store.carry_out(&mut show, now);
    }
}

/// The product the store would return for a valid draft (`create_product`).
fn stored(draft: ProductDraft) -> Product {
    Product {
        id: 11,
        title: draft.title.trim().to_string(),
        price_minor: draft.price_minor,
        currency: draft.currency,
        image_url: draft.image_url,
        stock: if draft.variants.is_empty() { draft.stock } else { draft.variants.iter().map(|v| v.stock).sum() },
        variants: draft
            .variants
            .into_iter()
            .zip(1..)
            .map(|(v, id)| sellcast_room::Variant { id, label: v.label.trim().to_string(), stock: v.stock })
            .collect(),
    }
}
