//! The schema's migrations: applied once however many processes start together (advisory
//! lock), not again on the next start, and a schema migrated by a newer build is refused.

mod support;

use imgchkr_core::Engine;
use imgchkr_core::engine::Submitted;
use imgchkr_postgres::{PostgresEngine, migrations};
use support::{PgCluster, ROOMY, T0, config, fresh_schema, job, request};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_starts_apply_each_migration_once() {
    let cluster = PgCluster::start();
    let url = cluster.url("postgres");
    let schema = fresh_schema("concurrent");
    let starts: Vec<_> = (0..6)
        .map(|_| tokio::spawn(PostgresEngine::connect(config(&url, &schema))))
        .collect();
    let mut engines = Vec::new();
    for start in starts {
        engines.push(
            start
                .await
                .unwrap()
                .expect("every concurrent start succeeds"),
        );
    }
    let applied = cluster.psql(
        "postgres",
        &format!("SELECT version, name FROM {schema}.schema_migrations ORDER BY version"),
    );
    let want: String = migrations()
        .iter()
        .map(|(version, name)| format!("{version}|{name}\n"))
        .collect();
    assert_eq!(applied, want, "each migration recorded once");
    // Every engine works on the one schema: one submits, another leases.
    let queued = job("acme");
    assert_eq!(engines[0].submit(&queued, ROOMY).await, Ok(Submitted::New));
    let taken = engines[5].lease(&request("w", 1, T0)).await.unwrap();
    assert_eq!(taken[0].lease.key, queued.key());

    // A later start applies nothing and keeps the data.
    let again = PostgresEngine::connect(config(&url, &schema))
        .await
        .unwrap();
    assert_eq!(
        cluster.psql(
            "postgres",
            &format!("SELECT count(*) FROM {schema}.schema_migrations")
        ),
        format!("{}\n", migrations().len())
    );
    assert_eq!(again.stats().await.unwrap().in_flight, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schema_of_a_newer_build_is_refused() {
    let cluster = PgCluster::start();
    let url = cluster.url("postgres");
    let schema = fresh_schema("newer");
    drop(
        PostgresEngine::connect(config(&url, &schema))
            .await
            .unwrap(),
    );
    cluster.psql(
        "postgres",
        &format!("INSERT INTO {schema}.schema_migrations (version, name) VALUES (999, 'future')"),
    );
    let refused = PostgresEngine::connect(config(&url, &schema)).await;
    let error = refused
        .expect_err("a schema at an unknown migration")
        .to_string();
    assert!(
        error.contains("at migration 999") && error.contains("this build knows up to"),
        "{error}"
    );
}
