//! The show around the selling on PostgreSQL: the same rows and rules as the SQLite backend's
//! `show.rs` (whose checks it shares).

use postgres::{Client, GenericClient};
use sellcast_room::{Sale, ShowInfo};

use crate::error::StoreError;
use crate::show::{check_display_name, check_show};

pub fn set_show(c: &mut Client, room: &str, info: &ShowInfo) -> Result<ShowInfo, StoreError> {
    check_show(info)?;
    c.execute(
        "INSERT INTO shows (room, title, starts_at_ms, avatar_url, host_name, ended_at_ms) VALUES ($1, $2, $3, $4, $5, NULL)
         ON CONFLICT (room) DO UPDATE SET title = excluded.title, starts_at_ms = excluded.starts_at_ms,
             avatar_url = excluded.avatar_url, host_name = excluded.host_name, ended_at_ms = NULL",
        &[&room, &info.title, &info.starts_at_ms, &info.avatar_url, &info.host_name],
    )?;
    Ok(load_show(c, room)?.0)
}

pub fn set_display_name(c: &mut Client, room: &str, identity: &str, name: &str, host: bool) -> Result<(), StoreError> {
    check_display_name(identity, name)?;
    let mut tx = c.transaction()?;
    tx.execute(
        "INSERT INTO display_names (room, identity, name) VALUES ($1, $2, $3)
         ON CONFLICT (room, identity) DO UPDATE SET name = excluded.name",
        &[&room, &identity, &name],
    )?;
    if host {
        tx.execute(
            "INSERT INTO shows (room, host_name) VALUES ($1, $2) ON CONFLICT (room) DO UPDATE SET host_name = excluded.host_name",
            &[&room, &name],
        )?;
    }
    tx.commit()?;
    Ok(())
}

/// Save the room's likes total. It only grows: a save that arrives late never lowers it.
pub fn save_likes(c: &mut Client, room: &str, total: u64) -> Result<(), StoreError> {
    let total = i64::try_from(total).map_err(|_| StoreError::Invalid("likes total out of range".into()))?;
    c.execute(
        "INSERT INTO shows (room, likes_total) VALUES ($1, $2)
         ON CONFLICT (room) DO UPDATE SET likes_total = GREATEST(shows.likes_total, excluded.likes_total)",
        &[&room, &total],
    )?;
    Ok(())
}

/// End the show: every sale of the room not ended yet ends now, in the show End's transaction.
pub fn end_show(c: &mut Client, room: &str, now_ms: i64) -> Result<Vec<Sale>, StoreError> {
    let mut tx = c.transaction()?;
    let ids: Vec<i64> = tx
        .query(
            "UPDATE sales SET ended_at_ms = $1 WHERE room = $2 AND ended_at_ms IS NULL RETURNING id",
            &[&now_ms, &room],
        )?
        .iter()
        .map(|r| r.get(0))
        .collect();
    tx.execute(
        "INSERT INTO shows (room, ended_at_ms) VALUES ($1, $2) ON CONFLICT (room) DO UPDATE SET ended_at_ms = excluded.ended_at_ms",
        &[&room, &now_ms],
    )?;
    tx.commit()?;
    let mut ids = ids;
    ids.sort_unstable();
    ids.into_iter().map(|id| super::catalog::sale(c, room, id)).collect()
}

/// The room's show row (defaults when the host never set one) and its likes total.
pub fn load_show(c: &mut impl GenericClient, room: &str) -> Result<(ShowInfo, u64), StoreError> {
    let row = c.query_opt(
        "SELECT title, starts_at_ms, avatar_url, host_name, ended_at_ms, likes_total FROM shows WHERE room = $1",
        &[&room],
    )?;
    Ok(row
        .map(|r| {
            let info = ShowInfo { title: r.get(0), starts_at_ms: r.get(1), avatar_url: r.get(2), host_name: r.get(3), ended_at_ms: r.get(4) };
            (info, u64::try_from(r.get::<_, i64>(5)).unwrap_or(0))
        })
        .unwrap_or_default())
}

/// Every display name chosen in the room: (identity, name).
pub fn load_names(c: &mut impl GenericClient, room: &str) -> Result<Vec<(String, String)>, StoreError> {
    Ok(c.query("SELECT identity, name FROM display_names WHERE room = $1 ORDER BY identity", &[&room])?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect())
}
