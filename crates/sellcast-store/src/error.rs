//! Store errors: what the caller did wrong (typed), or what went wrong underneath.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("invalid: {0}")]
    Invalid(String),
    #[error("not found: {0}")]
    NotFound(String),
    #[error("database: {0}")]
    Db(#[from] rusqlite::Error),
    #[error("postgres: {0}")]
    Postgres(#[from] postgres::Error),
    /// The database cannot be reached now (PostgreSQL: the connection is lost and not back).
    #[error("unavailable: {0}")]
    Unavailable(String),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    #[error("the store's writer thread has stopped")]
    Closed,
    #[error("commit failed: {0}")]
    CommitFailed(String),
}
