//! The schema's migrations: versioned, forward-only, applied at start under an advisory lock
//! (so processes starting together apply each once), each in a transaction of its own and
//! recorded in `<schema>.schema_migrations`.

use imgchkr_core::StoreError;
use tracing::info;

use crate::config::{Parsed, quote_ident, quote_literal};
use crate::conn::{bounded, connect_one, error};

/// The migrations, in order: (version, name, SQL with `@S@` for the schema and `@CHANNEL@`
/// for the notification channel's name as a literal).
pub(crate) const MIGRATIONS: &[(i32, &str, &str)] = &[
    (1, "tables", include_str!("sql/0001_tables.sql")),
    (2, "functions", include_str!("sql/0002_functions.sql")),
    (3, "split store", include_str!("sql/0003_split_store.sql")),
];

/// The SQL of a migration for `schema`.
pub(crate) fn render(sql: &str, schema: &str) -> String {
    sql.replace("@S@", &quote_ident(schema))
        .replace("@CHANNEL@", &quote_literal(schema))
}

/// Brings `schema` up to the last migration this build knows; returns the versions it
/// applied. Fails if the schema is at a version this build does not know (a newer build
/// migrated it).
pub(crate) async fn migrate(
    parsed: &Parsed,
    schema: &str,
    timeout: std::time::Duration,
) -> Result<Vec<i32>, StoreError> {
    let (mut client, driver) = connect_one(parsed, timeout, None).await?;
    let applied = bounded(timeout, async {
        let key = format!("imgchkr-migrations:{schema}");
        client
            .execute("SELECT pg_advisory_lock(hashtext($1))", &[&key])
            .await
            .map_err(|e| error(&e))?;
        let outcome = apply(&mut client, schema).await;
        // Released with the session anyway; unlocking lets a waiting process go on at once.
        let _ = client
            .execute("SELECT pg_advisory_unlock(hashtext($1))", &[&key])
            .await;
        outcome
    })
    .await;
    drop(client);
    driver.abort();
    applied
}

async fn apply(client: &mut tokio_postgres::Client, schema: &str) -> Result<Vec<i32>, StoreError> {
    let s = quote_ident(schema);
    client
        .batch_execute(&format!(
            "CREATE SCHEMA IF NOT EXISTS {s};
             CREATE TABLE IF NOT EXISTS {s}.schema_migrations (
                 version    integer PRIMARY KEY,
                 name       text NOT NULL,
                 applied_at timestamptz NOT NULL DEFAULT now());"
        ))
        .await
        .map_err(|e| error(&e))?;
    let rows = client
        .query(&format!("SELECT version FROM {s}.schema_migrations"), &[])
        .await
        .map_err(|e| error(&e))?;
    let done: Vec<i32> = rows.iter().map(|row| row.get(0)).collect();
    let known = MIGRATIONS.last().map_or(0, |(version, _, _)| *version);
    if let Some(newer) = done.iter().find(|version| **version > known) {
        return Err(StoreError::Unavailable(format!(
            "postgres: schema {schema} is at migration {newer}; this build knows up to {known}"
        )));
    }
    let mut applied = Vec::new();
    for (version, name, sql) in MIGRATIONS {
        if done.contains(version) {
            continue;
        }
        let tx = client.transaction().await.map_err(|e| error(&e))?;
        tx.batch_execute(&render(sql, schema))
            .await
            .map_err(|e| error(&e))?;
        tx.execute(
            &format!("INSERT INTO {s}.schema_migrations (version, name) VALUES ($1, $2)"),
            &[version, name],
        )
        .await
        .map_err(|e| error(&e))?;
        tx.commit().await.map_err(|e| error(&e))?;
        info!(schema, version, name, "postgres: migration applied");
        applied.push(*version);
    }
    Ok(applied)
}
