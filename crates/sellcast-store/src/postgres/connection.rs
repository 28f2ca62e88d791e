//! The writer's PostgreSQL connection, which it gets back by itself after losing it.
//!
//! A lost connection (the server stopped or restarted, the network broke) is noticed by the
//! job that meets it, which fails. The next job reconnects; while the server stays away,
//! attempts are spaced by a growing pause (at most [`RECONNECT_BACKOFF_MAX`]) and jobs that
//! arrive in between are refused at once, never left waiting: a buy hears `unavailable`
//! within a moment and its client retries with the same key.

use std::str::FromStr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use postgres::{Client, Config, NoTls};
use tracing::{info, warn};

use crate::error::StoreError;
use crate::store::Durability;
use crate::writer::WriterStats;

use super::statements::Statements;

/// Longest pause between two reconnection attempts.
const RECONNECT_BACKOFF_MAX: Duration = Duration::from_secs(1);
const RECONNECT_BACKOFF_MIN: Duration = Duration::from_millis(50);
/// A connection attempt to a server that does not answer gives up after this long.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

pub struct Connection {
    config: Config,
    client: Option<Client>,
    /// Statements prepared on `client` (none on a new one).
    statements: Statements,
    /// No attempt before this instant.
    next_attempt: Instant,
    backoff: Duration,
}

impl Connection {
    /// Connect now (the store does not start without its database) and read back the
    /// connection's durability.
    pub fn open(url: &str) -> Result<(Connection, Durability), StoreError> {
        let mut config = Config::from_str(url).map_err(|e| StoreError::Invalid(format!("PostgreSQL URL: {e}")))?;
        config.connect_timeout(CONNECT_TIMEOUT);
        config.application_name("sellcast");
        let mut client = connect(&config)?;
        let durability = durability(&mut client)?;
        let conn = Connection { config, client: Some(client), statements: Statements::default(), next_attempt: Instant::now(), backoff: RECONNECT_BACKOFF_MIN };
        Ok((conn, durability))
    }

    /// Forget the client (after a writer panic its session state is unknown): the next job
    /// connects afresh.
    pub fn drop_client(&mut self) {
        self.client = None;
        self.statements = Statements::default();
    }

    /// [`Connection::client`] with the statements prepared on it.
    pub fn session(&mut self, stats: &WriterStats) -> Result<(&mut Client, &mut Statements), StoreError> {
        self.client(stats)?;
        let client = self.client.as_mut().ok_or(StoreError::Closed)?;
        Ok((client, &mut self.statements))
    }

    /// The live client, reconnecting first when the last one was lost.
    pub fn client(&mut self, stats: &WriterStats) -> Result<&mut Client, StoreError> {
        if self.client.as_ref().is_some_and(Client::is_closed) {
            warn!("the PostgreSQL connection was lost; buys are answered unavailable until it is back");
            self.drop_client();
            stats.up.store(false, Ordering::SeqCst);
        }
        if self.client.is_none() {
            let now = Instant::now();
            if now < self.next_attempt {
                return Err(StoreError::Unavailable("PostgreSQL is unreachable".into()));
            }
            match connect(&self.config) {
                Ok(client) => {
                    info!("reconnected to PostgreSQL");
                    self.client = Some(client);
                    self.backoff = RECONNECT_BACKOFF_MIN;
                    stats.restarts.fetch_add(1, Ordering::SeqCst);
                    stats.up.store(true, Ordering::SeqCst);
                }
                Err(e) => {
                    self.next_attempt = now + self.backoff;
                    self.backoff = (self.backoff * 2).min(RECONNECT_BACKOFF_MAX);
                    stats.up.store(false, Ordering::SeqCst);
                    return Err(StoreError::Unavailable(format!("PostgreSQL is unreachable: {e}")));
                }
            }
        }
        self.client.as_mut().ok_or(StoreError::Closed)
    }
}

/// A new session that commits durably: `synchronous_commit = on` whatever the server's
/// default, so a `COMMIT` returns only once its WAL is flushed to disk.
fn connect(config: &Config) -> Result<Client, StoreError> {
    let mut client = config.connect(NoTls)?;
    client.batch_execute("SET synchronous_commit = on")?;
    Ok(client)
}

fn durability(client: &mut Client) -> Result<Durability, StoreError> {
    let synchronous: String = client.query_one("SHOW synchronous_commit", &[])?.get(0);
    let fsync: String = client.query_one("SHOW fsync", &[])?.get(0);
    if fsync != "on" {
        warn!(fsync, "the PostgreSQL server runs with fsync off: a committed order may not survive a power loss");
    }
    Ok(Durability { journal_mode: "wal".into(), synchronous })
}
