//! What a show has sold: revenue per currency, orders, units, and units per product, summed
//! over every committed order of the room. The store computes it from its orders when a room
//! loads; the room adds each order the store commits after that. The host console shows these
//! numbers as they are and never adds anything up itself, so its revenue is the sum of the
//! orders after a reload or a restart as much as during the show.

use serde::Serialize;

use crate::money;

/// Revenue in one currency, in minor units.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CurrencyAmount {
    pub currency: String,
    pub minor: i64,
}

/// Orders and units of one product (across all its sales).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProductSales {
    pub product_id: i64,
    pub orders: u64,
    pub units: u64,
}

/// Orders, units and revenue per currency over every committed order of a room: small enough
/// for every staff snapshot and order frame.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct OrderTotals {
    pub orders: u64,
    pub units: u64,
    /// By currency code.
    pub revenue: Vec<CurrencyAmount>,
}

/// [`OrderTotals`] and the sales of each product (as long as the catalog: read over HTTP, and
/// one product's line at a time in order frames).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ShowTotals {
    #[serde(flatten)]
    pub totals: OrderTotals,
    /// By product id.
    pub products: Vec<ProductSales>,
}

impl OrderTotals {
    /// Revenue in `currency` (0 when nothing was sold in it).
    pub fn revenue_in(&self, currency: &str) -> i64 {
        self.revenue.iter().find(|r| r.currency == currency).map_or(0, |r| r.minor)
    }

    /// Add `minor` to the revenue in `currency`.
    pub fn add_revenue(&mut self, currency: &str, minor: i64) {
        match self.revenue.binary_search_by(|r| r.currency.as_str().cmp(currency)) {
            Ok(i) => self.revenue[i].minor = self.revenue[i].minor.saturating_add(minor),
            Err(i) => self.revenue.insert(i, CurrencyAmount { currency: currency.to_string(), minor }),
        }
    }
}

impl ShowTotals {
    /// Count one committed order line in; the product's line after it.
    pub fn add_order(&mut self, product_id: i64, qty: u32, price_minor: i64, currency: &str) -> ProductSales {
        self.add(product_id, 1, u64::from(qty), currency, money::add_line(0, price_minor, qty))
    }

    /// Count `orders` orders of `units` units worth `minor` in `currency` in for `product_id`
    /// (one order live, or a group summed by the store); the product's line after it.
    pub fn add(&mut self, product_id: i64, orders: u64, units: u64, currency: &str, minor: i64) -> ProductSales {
        self.totals.orders += orders;
        self.totals.units += units;
        self.totals.add_revenue(currency, minor);
        let i = match self.products.binary_search_by_key(&product_id, |p| p.product_id) {
            Ok(i) => {
                self.products[i].orders += orders;
                self.products[i].units += units;
                i
            }
            Err(i) => {
                self.products.insert(i, ProductSales { product_id, orders, units });
                i
            }
        };
        self.products[i].clone()
    }

    /// Units sold of `product_id`.
    pub fn units_of(&self, product_id: i64) -> u64 {
        self.products.iter().find(|p| p.product_id == product_id).map_or(0, |p| p.units)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_add_up_per_currency_and_per_product_in_key_order() {
        let mut t = ShowTotals::default();
        t.add_order(7, 2, 1000, "EUR");
        t.add_order(3, 1, 500, "USD");
        let line = t.add_order(7, 1, 250, "EUR");
        assert_eq!(line, ProductSales { product_id: 7, orders: 2, units: 3 });
        assert_eq!((t.totals.orders, t.totals.units), (3, 4));
        assert_eq!(t.totals.revenue_in("EUR"), 2250);
        assert_eq!(t.totals.revenue_in("USD"), 500);
        assert_eq!(t.totals.revenue_in("GBP"), 0);
        assert_eq!(t.totals.revenue.iter().map(|r| r.currency.as_str()).collect::<Vec<_>>(), ["EUR", "USD"]);
        assert_eq!(t.products, vec![ProductSales { product_id: 3, orders: 1, units: 1 }, ProductSales { product_id: 7, orders: 2, units: 3 }]);
    }
}
