//! The PostgreSQL schema's migrations: versioned like SQLite's (which `src/schema.rs` tests on
//! older files), applied once however many nodes start together, and refused by a build older
//! than the database.

use sellcast_store::testing::TestPostgres;
use sellcast_store::{latest_postgres_schema_version, Store, StoreError, StoreOptions};

fn versions(pg: &TestPostgres, db: &str) -> Vec<i64> {
    pg.sql(db, |c| Ok(c.query("SELECT version FROM schema_version ORDER BY version", &[])?.iter().map(|r| r.get(0)).collect()))
        .expect("versions")
}

#[test]
fn nodes_starting_together_migrate_once_and_each_version_is_recorded_once() {
    let pg = TestPostgres::start().unwrap_or_else(|e| panic!("{e}"));
    let url = pg.create_database("shop").expect("db");
    let stores: Vec<Result<Store, StoreError>> = std::thread::scope(|s| {
        let starts: Vec<_> = (0..4).map(|_| s.spawn(|| Store::connect_postgres(&url, StoreOptions::default()))).collect();
        starts.into_iter().map(|t| t.join().expect("thread")).collect()
    });
    assert!(stores.iter().all(Result::is_ok), "every node starts: {:?}", stores.iter().filter_map(|s| s.as_ref().err()).collect::<Vec<_>>());
    let expected: Vec<i64> = (1..=latest_postgres_schema_version()).collect();
    assert_eq!(versions(&pg, "shop"), expected);
    drop(stores);
    Store::connect_postgres(&url, StoreOptions::default()).expect("a restart");
    assert_eq!(versions(&pg, "shop"), expected, "a restart applies nothing again");
}

#[test]
fn a_database_migrated_by_a_newer_build_is_refused() {
    let pg = TestPostgres::start().unwrap_or_else(|e| panic!("{e}"));
    let url = pg.create_database("shop").expect("db");
    drop(Store::connect_postgres(&url, StoreOptions::default()).expect("first start"));
    let newer = latest_postgres_schema_version() + 1;
    pg.sql("shop", move |c| c.execute("INSERT INTO schema_version (version) VALUES ($1)", &[&newer]).map(|_| ())).expect("newer");
    let refused = Store::connect_postgres(&url, StoreOptions::default());
    assert!(matches!(refused, Err(StoreError::Invalid(_))), "{refused:?}");
}
