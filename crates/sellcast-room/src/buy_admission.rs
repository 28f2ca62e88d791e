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

use crate::catalog::Sale;
use crate::answer::Caller;
use crate::identity::Identity;
use crate::money::{MAX_ORDER_QTY};
use crate::protocol::{BuyRejection, MAX_KEY_CHARS};

/// Identifies one buy attempt: the buyer and their idempotency key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BuyTicket {
    pub identity: String,
    pub key: String,
}

/// A buy the store must answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuyOrder {
    pub ticket: BuyTicket,
    /// The buyer's display name when the buy was made (the merchant webhook carries it).
    pub buyer_name: String,
    pub sale_id: i64,
    pub qty: u32,
    /// `Some`: the desk found this buy cannot succeed. The store records this rejection as the
    /// key's answer, unless the key already has one (then it replays that).
    pub verdict: Option<BuyRejection>,
}

/// The final answer to a ticket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuyAnswer {
    Confirmed {
        order_id: i64,
        sale_id: i64,
        qty: u32,
        price_minor: i64,
        currency: String,
    },
    Rejected {
        sale_id: i64,
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
    sale_id: i64,
    qty: u32,
    /// Who placed it (the order feed names them).
    buyer: Identity,
    waiters: Vec<Caller>,
}

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
    /// In-flight quantity per (sale, identity) and per sale.
    reserved_user: HashMap<(i64, String), u32>,
    reserved_sale: HashMap<i64, u32>,
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
        }
    }

    pub fn admit(
        &mut self,
        now_ms: i64,
        from: Caller,
        buyer: &Identity,
        sale: Option<&Sale>,
        sale_id: i64,
        qty: u32,
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
        let reject = |reason| BuyAnswer::Rejected { sale_id, reason };
        let verdict = if key.is_empty() || key.chars().count() > MAX_KEY_CHARS {
            // Not remembered: an unusable key cannot be retried meaningfully.
            return Admission::Answered(reject(BuyRejection::Invalid));
        } else {
            match sale {
                None => Err(BuyRejection::Invalid),
                Some(s) if qty == 0 || qty > MAX_ORDER_QTY || qty > s.per_user_limit => Err(BuyRejection::Invalid),
                Some(s) if !s.is_active(now_ms) => Err(BuyRejection::SaleNotActive),
                Some(s) => self.check_stock_and_limit(s, &buyer.id, qty),
            }
        };
        match verdict {
            Err(reason) => {
                // Not in the cache: the store may hold an older answer for this key, which
                // must win. It records this rejection only if it does not.
                self.in_flight.insert(ticket.clone(), InFlight { sale_id, qty: 0, buyer: buyer.clone(), waiters: vec![from] });
                Admission::Submit(BuyOrder { ticket, buyer_name: buyer.name.clone(), sale_id, qty, verdict: Some(reason) })
            }
            Ok(()) => {
                        let user = self.reserved_user.entry((sale_id, buyer.id.clone())).or_insert(0);
                *user = user.saturating_add(qty);
                let sale = self.reserved_sale.entry(sale_id).or_insert(0);
                *sale = sale.saturating_add(qty);
                self.in_flight.insert(
                    ticket.clone(),
                    InFlight {
                        sale_id,
                        qty,
                        buyer: buyer.clone(),
                        waiters: vec![from],
                    },
                );
                Admission::Submit(BuyOrder { ticket, buyer_name: buyer.name.clone(), sale_id, qty, verdict: None })
            }
        }
    }

    fn check_stock_and_limit(&self, sale: &Sale, identity: &str, qty: u32) -> Result<(), BuyRejection> {
        let reserved = self.reserved_sale.get(&sale.id).copied().unwrap_or(0);
        if sale.stock_left.saturating_sub(reserved) < qty {
            return Err(BuyRejection::SoldOut);
        }
        let k = (sale.id, identity.to_string());
        let mine = self.bought.get(&k).copied().unwrap_or(0).saturating_add(self.reserved_user.get(&k).copied().unwrap_or(0));
        if mine.saturating_add(qty) > sale.per_user_limit {
            return Err(BuyRejection::LimitReached);
        }
        Ok(())
    }

    /// The store answered (`replayed`: with an answer it already had). Returns who is
    /// waiting for the answer and who placed the buy.
    pub fn handle_outcome(&mut self, ticket: &BuyTicket, answer: BuyAnswer, replayed: bool) -> Settled {
        let Some(flight) = self.in_flight.remove(ticket) else {
            return Settled::default();
        };
        self.release(ticket, &flight);
        if let (BuyAnswer::Confirmed { sale_id, qty, .. }, false) = (&answer, replayed) {
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
        let k = (flight.sale_id, ticket.identity.clone());
        if let Some(r) = self.reserved_user.get_mut(&k) {
            *r = r.saturating_sub(flight.qty);
            if *r == 0 {
                self.reserved_user.remove(&k);
            }
        }
        if let Some(r) = self.reserved_sale.get_mut(&flight.sale_id) {
            *r = r.saturating_sub(flight.qty);
            if *r == 0 {
                self.reserved_sale.remove(&flight.sale_id);
            }
        }
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
