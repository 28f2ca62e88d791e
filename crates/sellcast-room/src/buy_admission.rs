//! One-tap buy admission. The store decides durably; this desk decides what can be decided
//! from memory (retries, sold out, limits, inactive sales) and holds reservations for buys
//! in flight, so the store only sees buys that can succeed and stock never goes negative.
//!
//! Idempotency: the store holds the one answer to every `(identity, key)` it was asked about,
//! rejections included, and is the source of truth. Memory keeps only a bounded cache of recent
//! answers. A key missing from that cache may still have an answer in the store (an old retry),
//! so a buy this desk cannot answer from the cache always goes to the store: a buy that can
//! succeed as a reservation, one that cannot with the desk's verdict, which the store records
//! only if the key has no answer yet (else it replays that answer). The store looks the key up
//! by its primary key inside the same group-commit transaction, so a first-time buy pays no
//! extra round trip, and a retry can never place a second order. A retry while the first
//! attempt is still in flight waits for that attempt's answer.

use std::collections::HashMap;

use crate::catalog::{Product, Sale};
use crate::answer::Caller;
use crate::identity::Identity;
use crate::money::MAX_ORDER_QTY;
use crate::protocol::{BuyRejection, MAX_KEY_CHARS};

/// Identifies one buy attempt: the buyer and their idempotency key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BuyTicket {
    pub identity: String,
    pub key: String,
}

/// What a buy asks for: a flash sale's units (`sale_id`), or a product's at its list price
/// (`product_id` and no sale); the variant when the product has any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BuyItem {
    pub sale_id: Option<i64>,
    pub product_id: Option<i64>,
    pub variant_id: Option<i64>,
    pub qty: u32,
}

/// A buy the store must answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuyOrder {
    pub ticket: BuyTicket,
    /// The buyer's display name when the buy was made (the merchant webhook carries it).
    pub buyer_name: String,
    /// `None`: a buy at the product's list price.
    pub sale_id: Option<i64>,
    /// The product bought (the sale's, for a sale), as far as the room knows it.
    pub product_id: Option<i64>,
    pub variant_id: Option<i64>,
    pub qty: u32,
    /// `Some`: the desk found this buy cannot succeed. The store records this rejection as the
    /// key's answer, unless the key already has one (then it replays that).
    pub verdict: Option<BuyRejection>,
}

/// The final answer to a ticket.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum BuyAnswer {
    Confirmed {
        order_id: i64,
        /// `None`: bought at the product's list price.
        sale_id: Option<i64>,
        product_id: i64,
        variant_id: Option<i64>,
        qty: u32,
        price_minor: i64,
        currency: String,
    },
    Rejected {
        sale_id: Option<i64>,
        product_id: Option<i64>,
        reason: BuyRejection,
    },
}

/// What the desk decided about a new buy frame.
#[derive(Debug, PartialEq, Eq)]
pub enum Admission {
    /// Answered from memory (a retry, or a rejection memory can prove).
    Answered(BuyAnswer),
    /// Same ticket already in flight; this caller will get its answer too.
    Joined,
    /// Send this to the store (reserved when it can succeed).
    Submit(BuyOrder),
}

/// A bounded cache of recent answers, least recently used out first (approximately: two
/// generations; a hit in the older one moves the entry to the newer one). Holds at most
/// `capacity` answers; the store holds them all.
#[derive(Debug)]
struct RecentAnswers {
    current: HashMap<BuyTicket, BuyAnswer>,
    previous: HashMap<BuyTicket, BuyAnswer>,
    generation: usize,
}

impl RecentAnswers {
    fn new(capacity: usize) -> Self {
        Self { current: HashMap::new(), previous: HashMap::new(), generation: (capacity / 2).max(1) }
    }

    fn get(&mut self, ticket: &BuyTicket) -> Option<BuyAnswer> {
        if let Some(a) = self.current.get(ticket) {
            return Some(a.clone());
        }
        let (ticket, answer) = self.previous.remove_entry(ticket)?;
        self.insert(ticket, answer.clone());
        Some(answer)
    }

    fn insert(&mut self, ticket: BuyTicket, answer: BuyAnswer) {
        if self.current.len() >= self.generation && !self.current.contains_key(&ticket) {
            self.previous = std::mem::take(&mut self.current);
        }
        self.current.insert(ticket, answer);
    }

    fn len(&self) -> usize {
        self.current.len() + self.previous.len()
    }
}

#[derive(Debug)]
struct InFlight {
    item: BuyItem,
    /// The stock the reservation holds units of (`None`: nothing reserved).
    unit: Option<Unit>,
    /// Who placed it (the order feed names them).
    buyer: Identity,
    waiters: Vec<Caller>,
}

/// Where units come from: a product, or one variant of it.
type Unit = (i64, Option<i64>);

/// Who waits for a ticket's answer, and who placed it.
#[derive(Debug, Default)]
pub struct Settled {
    pub waiters: Vec<Caller>,
    pub buyer: Option<Identity>,
}

/// Decides each buy from memory where it can, and holds reservations and remembered answers.
#[derive(Debug)]
pub struct BuyAdmission {
    answers: RecentAnswers,
    in_flight: HashMap<BuyTicket, InFlight>,
    /// Committed quantity per (sale, identity), loaded from the store at start.
    bought: HashMap<(i64, String), u32>,
    /// In-flight quantity per (sale, identity), per sale, and per product or variant.
    reserved_user: HashMap<(i64, String), u32>,
    reserved_sale: HashMap<i64, u32>,
    reserved_unit: HashMap<Unit, u32>,
}

impl BuyAdmission {
    /// `bought`: committed quantity per (sale, identity), from the store; `recent_answers`:
    /// how many answers the cache holds.
    pub fn new(bought: impl IntoIterator<Item = (i64, String, u32)>, recent_answers: usize) -> Self {
        Self {
            answers: RecentAnswers::new(recent_answers),
            in_flight: HashMap::new(),
            bought: bought.into_iter().map(|(s, i, q)| ((s, i), q)).collect(),
            reserved_user: HashMap::new(),
            reserved_sale: HashMap::new(),
            reserved_unit: HashMap::new(),
        }
    }

    /// Admit a buy of `item`. `sale` is the sale it names (if the room knows it), `product`
    /// the product it buys (the sale's, or the one named for a list-price buy).
    pub fn admit(
        &mut self,
        now_ms: i64,
        from: Caller,
        buyer: &Identity,
        (item, sale, product): (BuyItem, Option<&Sale>, Option<&Product>),
        key: &str,
    ) -> Admission {
        let ticket = BuyTicket {
            identity: buyer.id.clone(),
            key: key.to_string(),
        };
        if let Some(answer) = self.answers.get(&ticket) {
            return Admission::Answered(answer);
        }
        if let Some(flight) = self.in_flight.get_mut(&ticket) {
            flight.waiters.push(from);
            return Admission::Joined;
        }
        let product_id = product.map(|p| p.id).or(item.product_id);
        if key.is_empty() || key.chars().count() > MAX_KEY_CHARS {
            // Not remembered: an unusable key cannot be retried meaningfully.
            return Admission::Answered(BuyAnswer::Rejected { sale_id: item.sale_id, product_id, reason: BuyRejection::Invalid });
        }
        let verdict = match item.sale_id {
            Some(_) => self.check_sale(now_ms, &buyer.id, item, sale, product),
            None => self.check_list_price(item, product),
        };
        let order = |verdict| BuyOrder {
            ticket: ticket.clone(),
            buyer_name: buyer.name.clone(),
            sale_id: item.sale_id,
            product_id,
            variant_id: item.variant_id,
            qty: item.qty,
            verdict,
        };
        match verdict {
            Err(reason) => {
                // Not in the cache: the store may hold an older answer for this key, which
                // must win. It records this rejection only if it does not.
                let flight = InFlight { item, unit: None, buyer: buyer.clone(), waiters: vec![from] };
                self.in_flight.insert(ticket.clone(), flight);
                Admission::Submit(order(Some(reason)))
            }
            Ok(unit) => {
                let qty = item.qty;
                if let Some(sale_id) = item.sale_id {
                    add(&mut self.reserved_user, (sale_id, buyer.id.clone()), qty);
                    add(&mut self.reserved_sale, sale_id, qty);
                }
                add(&mut self.reserved_unit, unit, qty);
                let flight = InFlight { item, unit: Some(unit), buyer: buyer.clone(), waiters: vec![from] };
                self.in_flight.insert(ticket.clone(), flight);
                Admission::Submit(order(None))
            }
        }
    }

    /// A sale's buy: the sale is known, active and matches the product named (if any); the
    /// quantity within the caps and the sale's limit; units left in the sale, the product (or
    /// variant) and the buyer's limit, counting buys in flight.
    fn check_sale(&self, now_ms: i64, identity: &str, item: BuyItem, sale: Option<&Sale>, product: Option<&Product>) -> Result<Unit, BuyRejection> {
        let Some(s) = sale else {
            return Err(BuyRejection::Invalid);
        };
        if item.product_id.is_some_and(|p| p != s.product_id) {
            return Err(BuyRejection::Invalid);
        }
        if item.qty == 0 || item.qty > MAX_ORDER_QTY || item.qty > s.per_user_limit {
            return Err(BuyRejection::Invalid);
        }
        if !s.is_active(now_ms) {
            return Err(BuyRejection::SaleNotActive);
        }
        let unit = (s.product_id, item.variant_id);
        if let Some(p) = product {
            self.check_unit(p, item)?;
        }
        let reserved = self.reserved_sale.get(&s.id).copied().unwrap_or(0);
        if s.stock_left.saturating_sub(reserved) < item.qty {
            return Err(BuyRejection::SoldOut);
        }
        let k = (s.id, identity.to_string());
        let mine = self.bought.get(&k).copied().unwrap_or(0).saturating_add(self.reserved_user.get(&k).copied().unwrap_or(0));
        if mine.saturating_add(item.qty) > s.per_user_limit {
            return Err(BuyRejection::LimitReached);
        }
        Ok(unit)
    }

    /// A list-price buy: a known product, a quantity within the caps, the variant named when
    /// the product has any, and units left counting buys in flight.
    fn check_list_price(&self, item: BuyItem, product: Option<&Product>) -> Result<Unit, BuyRejection> {
        if item.product_id.is_none() {
            return Err(BuyRejection::Invalid);
        }
        let Some(p) = product else {
            return Err(BuyRejection::UnknownProduct);
        };
        if item.qty == 0 || item.qty > MAX_ORDER_QTY {
            return Err(BuyRejection::Invalid);
        }
        let stock = self.check_unit(p, item)?;
        let unit = (p.id, item.variant_id);
        let reserved = self.reserved_unit.get(&unit).copied().unwrap_or(0);
        if stock.saturating_sub(reserved) < item.qty {
            return Err(BuyRejection::SoldOut);
        }
        Ok(unit)
    }

    /// The variant named fits the product (one of its own, and one is named when it has
    /// any); the stock of what is bought.
    fn check_unit(&self, p: &Product, item: BuyItem) -> Result<u32, BuyRejection> {
        match (item.variant_id, p.variants.is_empty()) {
            (None, true) => Ok(p.stock),
            (None, false) => Err(BuyRejection::VariantRequired),
            (Some(_), true) => Err(BuyRejection::UnknownVariant),
            (Some(v), false) => {
                let variant = p.variant(v).ok_or(BuyRejection::UnknownVariant)?;
                let reserved = self.reserved_unit.get(&(p.id, Some(v))).copied().unwrap_or(0);
                if item.sale_id.is_some() && variant.stock.saturating_sub(reserved) < item.qty {
                    return Err(BuyRejection::SoldOut);
                }
                Ok(variant.stock)
            }
        }
    }

    /// The store answered (`replayed`: with an answer it already had). Returns who is
    /// waiting for the answer and who placed the buy.
    pub fn handle_outcome(&mut self, ticket: &BuyTicket, answer: BuyAnswer, replayed: bool) -> Settled {
        let Some(flight) = self.in_flight.remove(ticket) else {
            return Settled::default();
        };
        self.release(ticket, &flight);
        if let (BuyAnswer::Confirmed { sale_id: Some(sale_id), qty, .. }, false) = (&answer, replayed) {
            let bought = self.bought.entry((*sale_id, ticket.identity.clone())).or_insert(0);
            *bought = bought.saturating_add(*qty);
        }
        self.remember(ticket.clone(), answer);
        Settled { waiters: flight.waiters, buyer: Some(flight.buyer) }
    }

    /// The store failed (nothing committed): release the reservation, remember nothing, so a
    /// retry with the same key tries again.
    pub fn handle_failure(&mut self, ticket: &BuyTicket) -> Vec<Caller> {
        let Some(flight) = self.in_flight.remove(ticket) else {
            return Vec::new();
        };
        self.release(ticket, &flight);
        flight.waiters
    }

    fn release(&mut self, ticket: &BuyTicket, flight: &InFlight) {
        let Some(unit) = flight.unit else {
            return;
        };
        let qty = flight.item.qty;
        if let Some(sale_id) = flight.item.sale_id {
            take(&mut self.reserved_user, (sale_id, ticket.identity.clone()), qty);
            take(&mut self.reserved_sale, sale_id, qty);
        }
        take(&mut self.reserved_unit, unit, qty);
    }

    fn remember(&mut self, ticket: BuyTicket, answer: BuyAnswer) {
        self.answers.insert(ticket, answer);
    }

    /// Answers in the cache now.
    pub fn cached_answers(&self) -> usize {
        self.answers.len()
    }

    pub fn bought(&self, sale_id: i64, identity: &str) -> u32 {
        self.bought.get(&(sale_id, identity.to_string())).copied().unwrap_or(0)
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Every ticket waiting for the store.
    pub fn tickets_in_flight(&self) -> Vec<BuyTicket> {
        self.in_flight.keys().cloned().collect()
    }
}

fn add<K: std::hash::Hash + Eq>(map: &mut HashMap<K, u32>, k: K, qty: u32) {
    let n = map.entry(k).or_insert(0);
    *n = n.saturating_add(qty);
}

fn take<K: std::hash::Hash + Eq>(map: &mut HashMap<K, u32>, k: K, qty: u32) {
    if let Some(n) = map.get_mut(&k) {
        *n = n.saturating_sub(qty);
        if *n == 0 {
            map.remove(&k);
        }
    }
}
