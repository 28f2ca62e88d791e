//! One store test suite, two backends: each test body takes a [`Backend`] and opens its store
//! through a [`Place`] (a temp dir with a SQLite file, or a throwaway PostgreSQL server with
//! a database of its own), and [`on_both_backends!`] instantiates it twice, as
//! `NAME::sqlite` and `NAME::postgres`. Missing PostgreSQL binaries fail the `postgres` half
//! with a message that says what to install.

#![allow(dead_code)]

use std::path::PathBuf;

use sellcast_store::testing::TestPostgres;
use sellcast_store::{Store, StoreOptions};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Where one test's store keeps its data; reopening it finds the same data.
pub enum Place {
    Sqlite { _dir: tempfile::TempDir, path: PathBuf },
    Postgres { pg: TestPostgres, url: String },
}

impl Place {
    pub fn new(backend: Backend) -> Place {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("tmp");
                let path = dir.path().join("s.db");
                Place::Sqlite { _dir: dir, path }
            }
            Backend::Postgres => {
                let pg = TestPostgres::start().unwrap_or_else(|e| panic!("{e}"));
                let url = pg.fresh_database().unwrap_or_else(|e| panic!("{e}"));
                Place::Postgres { pg, url }
            }
        }
    }

    pub fn open(&self) -> Store {
        self.open_with(StoreOptions::default())
    }

    pub fn open_with(&self, options: StoreOptions) -> Store {
        match self {
            Place::Sqlite { path, .. } => Store::open_with(path, options).expect("open the SQLite store"),
            Place::Postgres { url, .. } => Store::connect_postgres(url, options).expect("open the PostgreSQL store"),
        }
    }

    /// Run `sql` on a connection of its own (beside the store's).
    pub fn execute(&self, sql: &str) {
        match self {
            Place::Sqlite { path, .. } => rusqlite::Connection::open(path).and_then(|c| c.execute_batch(sql)).expect("side SQL"),
            Place::Postgres { pg, .. } => {
                let sql = sql.to_string();
                pg.sql(&self.db(), move |c| c.batch_execute(&sql)).expect("side SQL");
            }
        }
    }

    /// The first column of every row `sql` returns, read on a connection of its own.
    pub fn query_i64s(&self, sql: &str) -> Vec<i64> {
        match self {
            Place::Sqlite { path, .. } => {
                let conn = rusqlite::Connection::open(path).expect("a second connection");
                let mut stmt = conn.prepare(sql).expect("prepare");
                let rows = stmt.query_map([], |r| r.get(0)).expect("query");
                rows.collect::<Result<_, _>>().expect("rows")
            }
            Place::Postgres { pg, .. } => {
                let sql = sql.to_string();
                pg.sql(&self.db(), move |c| Ok(c.query(sql.as_str(), &[])?.iter().map(|r| r.get::<_, i64>(0)).collect()))
                    .expect("side query")
            }
        }
    }

    fn db(&self) -> String {
        match self {
            Place::Sqlite { .. } => String::new(),
            Place::Postgres { url, .. } => url.rsplit('/').next().and_then(|d| d.split('?').next()).unwrap_or_default().to_string(),
        }
    }
}

/// `on_both_backends!(test_a, test_b)`: for each `async fn test_a(backend: Backend)`, the tests
/// `test_a::sqlite` and `test_a::postgres`. `on_both_backends!(multi_thread: ...)` runs them on
/// a two-worker runtime.
#[macro_export]
macro_rules! on_both_backends {
    (multi_thread: $($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name($crate::support::Backend::Sqlite).await
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    super::$name($crate::support::Backend::Postgres).await
                }
            }
        )*
    };
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test]
                async fn sqlite() {
                    super::$name($crate::support::Backend::Sqlite).await
                }
                #[tokio::test]
                async fn postgres() {
                    super::$name($crate::support::Backend::Postgres).await
                }
            }
        )*
    };
}
