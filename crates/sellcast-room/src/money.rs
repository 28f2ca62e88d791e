//! Money and stock bounds. Prices are minor units in an `i64` and quantities a `u32`; with
//! these caps no total the show or the store computes can overflow: one order line is at most
//! `MAX_PRICE_MINOR * MAX_ORDER_QTY` (about 1e11), and a sale's revenue at most that times
//! `MAX_STOCK` (about 1e17), under `i64::MAX` (about 9.2e18). The caps are checked where money
//! and stock enter (a product or sale written, a buy admitted) and again by the store.

use crate::protocol::{ErrorCode, FrameError};

/// Highest price of a product or sale, in minor units: 10^9 (10 million in a 2-decimal currency).
pub const MAX_PRICE_MINOR: i64 = 1_000_000_000;
/// Most units in one order.
pub const MAX_ORDER_QTY: u32 = 99;
/// Most units of a product's stock or a sale's stock (and of a per-buyer limit).
pub const MAX_STOCK: u32 = 1_000_000;

/// Why an amount was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AmountError {
    PriceOutOfRange,
    QtyOutOfRange,
    StockOutOfRange,
    /// A total that does not fit (cannot happen within the caps; checked all the same).
    Overflow,
}

impl std::fmt::Display for AmountError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AmountError::PriceOutOfRange => write!(f, "price_minor must be 0..={MAX_PRICE_MINOR}"),
            AmountError::QtyOutOfRange => write!(f, "qty must be 1..={MAX_ORDER_QTY}"),
            AmountError::StockOutOfRange => write!(f, "stock and per-buyer limits must be at most {MAX_STOCK}"),
            AmountError::Overflow => write!(f, "amount out of range"),
        }
    }
}

impl std::error::Error for AmountError {}

impl From<AmountError> for FrameError {
    fn from(e: AmountError) -> Self {
        FrameError::new(ErrorCode::Invalid, e.to_string())
    }
}

pub fn check_price(price_minor: i64) -> Result<(), AmountError> {
    if (0..=MAX_PRICE_MINOR).contains(&price_minor) {
        Ok(())
    } else {
        Err(AmountError::PriceOutOfRange)
    }
}

pub fn check_qty(qty: u32) -> Result<(), AmountError> {
    if (1..=MAX_ORDER_QTY).contains(&qty) {
        Ok(())
    } else {
        Err(AmountError::QtyOutOfRange)
    }
}

pub fn check_stock(stock: u32) -> Result<(), AmountError> {
    if stock <= MAX_STOCK {
        Ok(())
    } else {
        Err(AmountError::StockOutOfRange)
    }
}

/// `price_minor * qty`, checked.
pub fn line_total(price_minor: i64, qty: u32) -> Result<i64, AmountError> {
    price_minor.checked_mul(i64::from(qty)).ok_or(AmountError::Overflow)
}

/// Add an order line to a running total. A total only grows by committed orders, so it cannot
/// be refused; past `i64::MAX` (impossible within the caps) it stays at `i64::MAX`.
pub fn add_line(total: i64, price_minor: i64, qty: u32) -> i64 {
    line_total(price_minor, qty).ok().and_then(|line| total.checked_add(line)).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_bound_every_total() {
        let line = line_total(MAX_PRICE_MINOR, MAX_ORDER_QTY).expect("fits");
        assert!(line.checked_mul(i64::from(MAX_STOCK)).is_some(), "a whole sale at the caps fits in i64");
        assert_eq!(line_total(i64::MAX / 2, 3), Err(AmountError::Overflow));
        assert_eq!(add_line(i64::MAX - 1, 2, 1), i64::MAX);
        assert_eq!(check_price(MAX_PRICE_MINOR + 1), Err(AmountError::PriceOutOfRange));
        assert_eq!(check_price(-1), Err(AmountError::PriceOutOfRange));
        assert_eq!(check_qty(0), Err(AmountError::QtyOutOfRange));
        assert_eq!(check_qty(MAX_ORDER_QTY + 1), Err(AmountError::QtyOutOfRange));
        assert!(check_qty(MAX_ORDER_QTY).is_ok());
    }
}
