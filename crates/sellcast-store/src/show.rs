//! The show around the selling: its title, scheduled start, avatar and host name, the last
//! End, the likes total, and the display names chosen in the room. Each change is its own
//! transaction; values arrive checked by the room (`sellcast_room::show_info`) and are checked
//! again here for what a table must never hold.

use rusqlite::{params, Connection, OptionalExtension};
use sellcast_room::show_info::{MAX_NAME_CHARS, MAX_TITLE_CHARS};
use sellcast_room::{check_image_url, Sale, ShowInfo};

use crate::error::StoreError;

fn invalid(msg: impl Into<String>) -> StoreError {
    StoreError::Invalid(msg.into())
}

/// What a `shows` row must never hold (both backends check it).
pub(crate) fn check_show(info: &ShowInfo) -> Result<(), StoreError> {
    if info.title.chars().count() > MAX_TITLE_CHARS || info.host_name.chars().count() > MAX_NAME_CHARS {
        return Err(invalid("title or host name too long"));
    }
    check_image_url(&info.avatar_url).map_err(|e| invalid(e.to_string()))
}

/// What a `display_names` row must never hold (both backends check it).
pub(crate) fn check_display_name(identity: &str, name: &str) -> Result<(), StoreError> {
    if identity.is_empty() || identity.len() > 256 {
        return Err(invalid("identity must be 1-256 bytes"));
    }
    let chars = name.chars().count();
    if chars == 0 || chars > MAX_NAME_CHARS || name.chars().any(char::is_control) {
        return Err(invalid(format!("a name is 1-{MAX_NAME_CHARS} characters without control characters")));
    }
    Ok(())
}

/// Title, start and avatar as the host set them, with `host_name`; a new setup clears the last
/// End (the show is on again). The likes total is kept.
pub fn set_show(conn: &mut Connection, room: &str, info: &ShowInfo) -> Result<ShowInfo, StoreError> {
    check_show(info)?;
    conn.execute(
        "INSERT INTO shows (room, title, starts_at_ms, avatar_url, host_name, ended_at_ms) VALUES (?1, ?2, ?3, ?4, ?5, NULL)
         ON CONFLICT (room) DO UPDATE SET title = excluded.title, starts_at_ms = excluded.starts_at_ms,
             avatar_url = excluded.avatar_url, host_name = excluded.host_name, ended_at_ms = NULL",
        params![room, info.title, info.starts_at_ms, info.avatar_url, info.host_name],
    )?;
    Ok(load_show(conn, room)?.0)
}

/// `identity` goes by `name` in `room`; for the host, the show's header says so too.
pub fn set_display_name(conn: &mut Connection, room: &str, identity: &str, name: &str, host: bool) -> Result<(), StoreError> {
    check_display_name(identity, name)?;
    let tx = conn.transaction()?;
    tx.execute(
        "INSERT INTO display_names (room, identity, name) VALUES (?1, ?2, ?3)
         ON CONFLICT (room, identity) DO UPDATE SET name = excluded.name",
        params![room, identity, name],
    )?;
    if host {
        tx.execute(
            "INSERT INTO shows (room, host_name) VALUES (?1, ?2) ON CONFLICT (room) DO UPDATE SET host_name = excluded.host_name",
            params![room, name],
        )?;
    }
    tx.commit()?;
    Ok(())
}

/// Save the room's likes total. It only grows: a save that arrives late never lowers it.
pub fn save_likes(conn: &mut Connection, room: &str, total: u64) -> Result<(), StoreError> {
    let total = i64::try_from(total).map_err(|_| invalid("likes total out of range"))?;
    conn.execute(
        "INSERT INTO shows (room, likes_total) VALUES (?1, ?2)
         ON CONFLICT (room) DO UPDATE SET likes_total = MAX(likes_total, excluded.likes_total)",
        params![room, total],
    )?;
    Ok(())
}

/// End the show at `now_ms`: every sale of the room not ended yet ends now, in the same
/// transaction as the show's End, so no buy can commit on one of them afterwards. Returns the
/// sales it ended.
pub fn end_show(conn: &mut Connection, room: &str, now_ms: i64) -> Result<Vec<Sale>, StoreError> {
    let tx = conn.transaction()?;
    let ids: Vec<i64> = tx
        .prepare("SELECT id FROM sales WHERE room = ?1 AND ended_at_ms IS NULL ORDER BY id")?
        .query_map([room], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    tx.execute("UPDATE sales SET ended_at_ms = ?1 WHERE room = ?2 AND ended_at_ms IS NULL", params![now_ms, room])?;
    tx.execute(
        "INSERT INTO shows (room, ended_at_ms) VALUES (?1, ?2) ON CONFLICT (room) DO UPDATE SET ended_at_ms = excluded.ended_at_ms",
        params![room, now_ms],
    )?;
    tx.commit()?;
    ids.into_iter().map(|id| crate::catalog::sale(conn, room, id)).collect()
}

/// The room's show row (defaults when the host never set one) and its likes total.
pub fn load_show(conn: &Connection, room: &str) -> Result<(ShowInfo, u64), StoreError> {
    let row = conn
        .query_row(
            "SELECT title, starts_at_ms, avatar_url, host_name, ended_at_ms, likes_total FROM shows WHERE room = ?1",
            [room],
            |r| {
                let info = ShowInfo {
                    title: r.get(0)?,
                    starts_at_ms: r.get(1)?,
                    avatar_url: r.get(2)?,
                    host_name: r.get(3)?,
                    ended_at_ms: r.get(4)?,
                };
                Ok((info, r.get::<_, i64>(5)?))
            },
        )
        .optional()?;
    Ok(row.map(|(info, likes)| (info, u64::try_from(likes).unwrap_or(0))).unwrap_or_default())
}

/// Every display name chosen in the room: (identity, name).
pub fn load_names(conn: &Connection, room: &str) -> Result<Vec<(String, String)>, StoreError> {
    Ok(conn
        .prepare("SELECT identity, name FROM display_names WHERE room = ?1 ORDER BY identity")?
        .query_map([room], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?)
}
