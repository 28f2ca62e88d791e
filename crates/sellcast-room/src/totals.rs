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

/// Sums over every committed order of a room.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ShowTotals {
    pub orders: u64,
    pub units: u64,
    /// By currency code.
    pub revenue: Vec<CurrencyAmount>,
    /// By product id.
    pub products: Vec<ProductSales>,
}

impl ShowTotals {
    /// Count one committed order line in.
    pub fn add_order(&mut self, product_id: i64, qty: u32, price_minor: i64, currency: &str) {
        self.orders += 1;
        self.units += u64::from(qty);
        match self.revenue.binary_search_by(|r| r.currency.as_str().cmp(currency)) {
            Ok(i) => self.revenue[i].minor = money::add_line(self.revenue[i].minor, price_minor, qty),
            Err(i) => self.revenue.insert(i, CurrencyAmount { currency: currency.to_string(), minor: money::add_line(0, price_minor, qty) }),
        }
        match self.products.binary_search_by_key(&product_id, |p| p.product_id) {
            Ok(i) => {
                self.products[i].orders += 1;
                self.products[i].units += u64::from(qty);
            }
            Err(i) => self.products.insert(i, ProductSales { product_id, orders: 1, units: u64::from(qty) }),
        }
    }

    /// Revenue in `currency` (0 when nothing was sold in it).
    pub fn revenue_in(&self, currency: &str) -> i64 {
        self.revenue.iter().find(|r| r.currency == currency).map_or(0, |r| r.minor)
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
        t.add_order(7, 1, 250, "EUR");
        assert_eq!((t.orders, t.units), (3, 4));
        assert_eq!(t.revenue_in("EUR"), 2250);
        assert_eq!(t.revenue_in("USD"), 500);
        assert_eq!(t.revenue_in("GBP"), 0);
        assert_eq!(t.revenue.iter().map(|r| r.currency.as_str()).collect::<Vec<_>>(), ["EUR", "USD"]);
        assert_eq!(t.products, vec![ProductSales { product_id: 3, orders: 1, units: 1 }, ProductSales { product_id: 7, orders: 2, units: 3 }]);
    }
}
