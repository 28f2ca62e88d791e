//! The show's products and flash sales: one definition, held in memory by the room and made
//! durable by `sellcast-store`. The room loads them from the store and updates them only after
//! the store committed.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Product {
    pub id: i64,
    pub title: String,
    /// Price in minor units (cents) of `currency`.
    pub price_minor: i64,
    pub currency: String,
    pub image_url: String,
    /// Units in stock. A product with variants has the sum of its variants' stock.
    pub stock: u32,
    /// Sizes, colours...: each with its own stock. A buy of a product with variants names one.
    pub variants: Vec<Variant>,
}

/// One variant of a product ("S", "Red"): its own stock, taken off with the product's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Variant {
    pub id: i64,
    pub label: String,
    pub stock: u32,
}

/// A variant as a host submits it with its product.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VariantDraft {
    pub label: String,
    pub stock: u32,
}

/// Most variants of one product.
pub const MAX_VARIANTS: usize = 20;
/// Longest variant label, in characters.
pub const MAX_VARIANT_LABEL: usize = 32;

impl Product {
    /// The variant `id` of this product.
    pub fn variant(&self, id: i64) -> Option<&Variant> {
        self.variants.iter().find(|v| v.id == id)
    }
}

/// A product as a host submits it (over the HTTP API); the store validates it and gives it an id.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProductDraft {
    pub title: String,
    pub price_minor: i64,
    pub currency: String,
    #[serde(default)]
    pub image_url: String,
    /// Ignored when `variants` is not empty: the product's stock is then their sum.
    pub stock: u32,
    /// Empty: a product without variants. On an update, variants are matched by label: a
    /// listed label gets the given stock, a new one is added, and one left out keeps its
    /// place (its orders name it) with no stock.
    #[serde(default)]
    pub variants: Vec<VariantDraft>,
}

/// Longest `image_url` accepted.
pub const MAX_IMAGE_URL: usize = 2048;

/// Why a product's `image_url` is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageUrlError {
    TooLong,
    /// Not `https://host...` nor a path on this server (`/...`, not `//...`).
    NotHttpsOrPath,
    /// A control character, whitespace or a backslash: browsers drop or rewrite these when
    /// they parse a URL (`/\host` becomes `//host`), so what was checked is not what loads.
    UnsafeCharacter,
}

impl std::fmt::Display for ImageUrlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ImageUrlError::TooLong => write!(f, "image_url is over {MAX_IMAGE_URL} characters"),
            ImageUrlError::NotHttpsOrPath => {
                f.write_str("image_url must be an https:// URL or a path on this server starting with a single /")
            }
            ImageUrlError::UnsafeCharacter => f.write_str("image_url must not hold spaces, control characters or backslashes"),
        }
    }
}

impl std::error::Error for ImageUrlError {}

impl ProductDraft {
    /// The page shows `image_url` in an `<img>`: only an `https:` URL or a path on this
    /// server (empty: no image). Plain `http:` would be mixed content and readable on the way;
    /// `//host`, `data:` and `javascript:` are not what a merchant means by an image link.
    pub fn check_image_url(&self) -> Result<(), ImageUrlError> {
        check_image_url(&self.image_url)
    }
}

/// An image link a page may show (a product's picture, a host's avatar): empty, an `https:`
/// URL or a path on this server.
pub fn check_image_url(url: &str) -> Result<(), ImageUrlError> {
    if url.is_empty() {
        return Ok(());
    }
    if url.len() > MAX_IMAGE_URL {
        return Err(ImageUrlError::TooLong);
    }
    if url.chars().any(|c| c.is_control() || c.is_whitespace() || c == '\\') {
        return Err(ImageUrlError::UnsafeCharacter);
    }
    let https_host = url
        .get(..8)
        .filter(|scheme| scheme.eq_ignore_ascii_case("https://"))
        .and_then(|_| url[8..].chars().next())
        .is_some_and(|first| !matches!(first, '/' | '?' | '#'));
    let same_origin_path = url.starts_with('/') && !url.starts_with("//");
    if https_host || same_origin_path {
        Ok(())
    } else {
        Err(ImageUrlError::NotHttpsOrPath)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Sale {
    pub id: i64,
    pub product_id: i64,
    pub price_minor: i64,
    pub currency: String,
    pub stock_total: u32,
    /// Committed stock left (in-flight reservations are not subtracted here).
    pub stock_left: u32,
    pub per_user_limit: u32,
    pub starts_at_ms: i64,
    pub ends_at_ms: i64,
    pub ended_at_ms: Option<i64>,
}

impl Sale {
    /// Open for buying at `now_ms`.
    pub fn is_active(&self, now_ms: i64) -> bool {
        self.ended_at_ms.is_none() && now_ms >= self.starts_at_ms && now_ms < self.ends_at_ms
    }

    /// Over, by the host's hand or the clock.
    pub fn is_over(&self, now_ms: i64) -> bool {
        self.ended_at_ms.is_some() || now_ms >= self.ends_at_ms
    }

    pub fn sold(&self) -> u32 {
        self.stock_total.saturating_sub(self.stock_left)
    }
}

/// What a host asks for when starting a sale (validated by the store before it exists).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaleDraft {
    pub product_id: i64,
    pub price_minor: i64,
    /// `None`: the product's currency.
    pub currency: Option<String>,
    pub stock: u32,
    pub per_user_limit: u32,
    pub starts_at_ms: i64,
    pub ends_at_ms: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_image(url: &str) -> ProductDraft {
        ProductDraft { title: "Mug".into(), price_minor: 1200, currency: "EUR".into(), image_url: url.into(), stock: 3, variants: Vec::new() }
    }

    #[test]
    fn image_urls_are_https_or_a_path_on_this_server() {
        for ok in ["", "https://cdn.example.com/mug.jpg", "HTTPS://cdn.example.com/a?b=c", "/static/mug.png", "/a//b"] {
            assert_eq!(with_image(ok).check_image_url(), Ok(()), "{ok:?}");
        }
        let refused = [
            ("http://cdn.example.com/mug.jpg", ImageUrlError::NotHttpsOrPath),
            ("//evil.example/mug.jpg", ImageUrlError::NotHttpsOrPath),
            ("javascript:alert(1)", ImageUrlError::NotHttpsOrPath),
            ("data:image/png;base64,AAAA", ImageUrlError::NotHttpsOrPath),
            ("https:///path-only", ImageUrlError::NotHttpsOrPath),
            ("https://", ImageUrlError::NotHttpsOrPath),
            ("mug.png", ImageUrlError::NotHttpsOrPath),
            ("/\\evil.example/mug.jpg", ImageUrlError::UnsafeCharacter),
            ("/\t/evil.example/mug.jpg", ImageUrlError::UnsafeCharacter),
            (" https://cdn.example.com/mug.jpg", ImageUrlError::UnsafeCharacter),
        ];
        for (url, why) in refused {
            assert_eq!(with_image(url).check_image_url(), Err(why), "{url:?}");
        }
        let long = format!("https://cdn.example.com/{}", "a".repeat(MAX_IMAGE_URL));
        assert_eq!(with_image(&long).check_image_url(), Err(ImageUrlError::TooLong));
    }
}
