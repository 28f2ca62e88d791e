//! What a show is called, when it starts and who hosts it: set by the host before or during
//! the show, kept durably, shown in the viewers' header and pre-show page. Also the display
//! names participants choose for themselves. Both are checked here, so nothing a page could
//! misrender (control characters, a `javascript:` avatar) or a blocked word reaches a viewer.

use serde::{Deserialize, Serialize};

use crate::catalog::{check_image_url, ImageUrlError};

/// Longest show title, in Unicode code points.
pub const MAX_TITLE_CHARS: usize = 100;
/// Longest display name, in Unicode code points.
pub const MAX_NAME_CHARS: usize = 40;
/// A scheduled start at most this far ahead (a year and a day).
pub const MAX_SCHEDULE_AHEAD_MS: i64 = 366 * 24 * 3600 * 1000;

/// The show as viewers see it before and while it runs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShowInfo {
    /// Empty: no title set.
    pub title: String,
    /// When the host plans to go live (ms since the epoch, server clock).
    pub starts_at_ms: Option<i64>,
    /// Empty, an `https:` URL or a path on this server.
    pub avatar_url: String,
    /// The host's display name (empty until a host set one or saved the show).
    pub host_name: String,
    /// When the host last pressed End; cleared when the show is set up again.
    pub ended_at_ms: Option<i64>,
}

impl ShowInfo {
    /// Nothing was ever set.
    pub fn is_unset(&self) -> bool {
        *self == ShowInfo::default()
    }
}

/// Why a show's details were refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShowInfoError {
    TitleTooLong,
    TitleControlCharacter,
    /// A start at or before the epoch, or more than [`MAX_SCHEDULE_AHEAD_MS`] ahead.
    StartOutOfRange,
    Avatar(ImageUrlError),
}

impl std::fmt::Display for ShowInfoError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ShowInfoError::TitleTooLong => write!(f, "the title is at most {MAX_TITLE_CHARS} characters"),
            ShowInfoError::TitleControlCharacter => f.write_str("the title must not hold control characters"),
            ShowInfoError::StartOutOfRange => f.write_str("the start must be a time within the next year"),
            ShowInfoError::Avatar(e) => write!(f, "avatar: {e}"),
        }
    }
}

impl std::error::Error for ShowInfoError {}

/// The title, start and avatar a host asked for, checked and trimmed at `now_ms`.
pub fn checked_show(title: &str, starts_at_ms: Option<i64>, avatar_url: &str, now_ms: i64) -> Result<ShowInfo, ShowInfoError> {
    let title = title.trim();
    if title.chars().any(char::is_control) {
        return Err(ShowInfoError::TitleControlCharacter);
    }
    if title.chars().count() > MAX_TITLE_CHARS {
        return Err(ShowInfoError::TitleTooLong);
    }
    if starts_at_ms.is_some_and(|t| t <= 0 || t > now_ms.saturating_add(MAX_SCHEDULE_AHEAD_MS)) {
        return Err(ShowInfoError::StartOutOfRange);
    }
    let avatar_url = avatar_url.trim();
    check_image_url(avatar_url).map_err(ShowInfoError::Avatar)?;
    Ok(ShowInfo { title: title.to_string(), starts_at_ms, avatar_url: avatar_url.to_string(), ..ShowInfo::default() })
}

/// Why a display name was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameError {
    Empty,
    TooLong,
    ControlCharacter,
    /// It holds one of the room's blocked words.
    Blocked,
}

impl std::fmt::Display for NameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NameError::Empty => f.write_str("a name needs at least one visible character"),
            NameError::TooLong => write!(f, "a name is at most {MAX_NAME_CHARS} characters"),
            NameError::ControlCharacter => f.write_str("a name must not hold control characters"),
            NameError::Blocked => f.write_str("this name contains a blocked word"),
        }
    }
}

impl std::error::Error for NameError {}

/// `name` trimmed, if it is fit to show: 1-40 characters, no control characters (a newline
/// or a bidi override would let one name pass for another), none of `blocked` (lowercase).
pub fn checked_name(name: &str, blocked: &[String]) -> Result<String, NameError> {
    let name = name.trim();
    if name.chars().any(|c| c.is_control() || is_bidi_control(c)) {
        return Err(NameError::ControlCharacter);
    }
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(NameError::TooLong);
    }
    let lower = name.to_lowercase();
    if blocked.iter().any(|w| lower.contains(w.as_str())) {
        return Err(NameError::Blocked);
    }
    Ok(name.to_string())
}

/// Unicode's explicit direction controls (not `Cc`, so `is_control` lets them through).
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000_000;

    #[test]
    fn a_show_is_trimmed_and_each_bad_field_has_its_error() {
        let ok = checked_show("  Spring drop  ", Some(NOW + 60_000), "https://cdn.example.com/me.jpg", NOW).expect("valid");
        assert_eq!((ok.title.as_str(), ok.starts_at_ms), ("Spring drop", Some(NOW + 60_000)));
        assert_eq!(checked_show("", None, "/static/me.png", NOW).map(|s| s.avatar_url), Ok("/static/me.png".into()));
        assert_eq!(checked_show(&"x".repeat(101), None, "", NOW), Err(ShowInfoError::TitleTooLong));
        assert!(checked_show(&"é".repeat(100), None, "", NOW).is_ok(), "the cap counts characters, not bytes");
        assert_eq!(checked_show("a\u{7}b", None, "", NOW), Err(ShowInfoError::TitleControlCharacter));
        assert_eq!(checked_show("t", Some(0), "", NOW), Err(ShowInfoError::StartOutOfRange));
        assert_eq!(checked_show("t", Some(NOW + MAX_SCHEDULE_AHEAD_MS + 1), "", NOW), Err(ShowInfoError::StartOutOfRange));
        for bad in ["http://cdn.example.com/me.jpg", "javascript:alert(1)", "//evil.example/me.png", "data:image/png;base64,AA"] {
            assert_eq!(checked_show("t", None, bad, NOW), Err(ShowInfoError::Avatar(ImageUrlError::NotHttpsOrPath)), "{bad}");
        }
    }

    #[test]
    fn a_name_is_trimmed_capped_and_refused_with_control_characters_or_blocked_words() {
        let blocked = vec!["spam".to_string()];
        assert_eq!(checked_name("  Ana  ", &blocked), Ok("Ana".into()));
        assert_eq!(checked_name("   ", &blocked), Err(NameError::Empty));
        assert_eq!(checked_name(&"n".repeat(41), &blocked), Err(NameError::TooLong));
        assert!(checked_name(&"ñ".repeat(40), &blocked).is_ok());
        assert_eq!(checked_name("An\na", &blocked), Err(NameError::ControlCharacter));
        assert_eq!(checked_name("Ana\u{202e}nimda", &blocked), Err(NameError::ControlCharacter));
        assert_eq!(checked_name("SpamKing", &blocked), Err(NameError::Blocked), "blocked words match case-insensitively");
    }
}
