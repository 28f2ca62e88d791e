//! Where the commerce state (products, sales, orders, idempotency answers) lives: the embedded
//! SQLite file (`--db`, the single-node default) or, with `--postgres URL`, a PostgreSQL
//! database that several nodes share (cluster mode). Kept apart from the other `serve` flags
//! so cluster flags grow beside it without touching them.

use std::path::Path;

/// `serve`'s choice of commerce database.
#[derive(clap::Args, Debug, Clone, Default, PartialEq, Eq)]
pub struct CommerceDbArgs {
    /// Keep products, sales and orders in this PostgreSQL database
    /// (`postgres://user:password@host:5432/db`) instead of the `--db` SQLite file. The schema
    /// is created or migrated at start; while PostgreSQL is down, buys are answered
    /// `unavailable` and the server reconnects once it is back.
    #[arg(long = "postgres", env = "SELLCAST_POSTGRES", hide_env_values = true)]
    pub postgres: Option<String>,
}

/// Where [`crate::start`] opens the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommerceDb<'a> {
    Sqlite(&'a Path),
    Postgres(&'a str),
}

impl CommerceDb<'_> {
    /// What to name in logs and errors: the SQLite path, or PostgreSQL's host and database
    /// (never the URL, which may carry a password).
    pub fn describe(&self) -> String {
        match self {
            CommerceDb::Sqlite(path) => path.display().to_string(),
            CommerceDb::Postgres(url) => {
                let after_scheme = url.split_once("://").map_or(*url, |(_, rest)| rest);
                let host_and_db = after_scheme.rsplit_once('@').map_or(after_scheme, |(_, rest)| rest);
                let without_query = host_and_db.split('?').next().unwrap_or(host_and_db);
                format!("PostgreSQL at {without_query}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_postgres_url_is_described_without_its_password() {
        let url = "postgres://shop:s3cret@db.internal:5432/sellcast?sslmode=disable";
        assert_eq!(CommerceDb::Postgres(url).describe(), "PostgreSQL at db.internal:5432/sellcast");
    }
}
