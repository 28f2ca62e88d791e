//! The buy path's statements, prepared once per connection. An unprepared query costs a round
//! trip to parse it before the one that runs it; a buy runs about ten, so preparing them once
//! halves its round trips, which is what bounds a batch's time in the writer. Prepared
//! statements belong to the session, not to a transaction: a rolled-back savepoint keeps them,
//! and a new connection starts with none (the cache goes with the old one).

use std::collections::HashMap;

use postgres::types::ToSql;
use postgres::{GenericClient, Row, Statement};

type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

#[derive(Default)]
pub struct Statements {
    prepared: HashMap<&'static str, Statement>,
}

impl Statements {
    /// `sql` prepared on this connection (preparing it the first time).
    pub fn get(&mut self, client: &mut impl GenericClient, sql: &'static str) -> Result<Statement, postgres::Error> {
        if let Some(statement) = self.prepared.get(sql) {
            return Ok(statement.clone());
        }
        let statement = client.prepare(sql)?;
        self.prepared.insert(sql, statement.clone());
        Ok(statement)
    }

    pub fn execute(&mut self, client: &mut impl GenericClient, sql: &'static str, params: Params<'_>) -> Result<u64, postgres::Error> {
        let statement = self.get(client, sql)?;
        client.execute(&statement, params)
    }

    pub fn query_one(&mut self, client: &mut impl GenericClient, sql: &'static str, params: Params<'_>) -> Result<Row, postgres::Error> {
        let statement = self.get(client, sql)?;
        client.query_one(&statement, params)
    }

    pub fn query_opt(&mut self, client: &mut impl GenericClient, sql: &'static str, params: Params<'_>) -> Result<Option<Row>, postgres::Error> {
        let statement = self.get(client, sql)?;
        client.query_opt(&statement, params)
    }
}
