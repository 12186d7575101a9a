//! [`PostgresConfig`]: how to reach Postgres, under which schema, and the bounds of every call;
//! and the reading of a `postgres://` URL (its `sslmode`, which this crate handles itself).

use std::str::FromStr;
use std::time::Duration;

use imgchkr_core::StoreError;

/// How to reach Postgres, where the engine's tables live, and the time bounds of every call.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PostgresConfig {
    /// `postgres://[user[:password]@]host[:port]/database[?param=value…]` (or
    /// `postgresql://`). `sslmode` is `disable`, `prefer` (the default, as libpq), `require`,
    /// `verify-ca` or `verify-full`; `sslrootcert` names a PEM file of trusted roots (the
    /// WebPKI roots otherwise). Other parameters are those of `tokio-postgres`.
    pub url: String,
    /// The schema holding the engine's tables and functions (`imgchkr` by default; ASCII
    /// letters, digits and `_`): several deployments, or tests, can share one database under
    /// different schemas. It is also the name of the notification channel.
    pub schema: String,
    /// Connections in the pool at most (each engine call holds one for its one statement).
    pub pool_size: usize,
    /// The bound on every call (waiting for a connection, connecting, the statement): past
    /// it the call fails with [`StoreError::Unavailable`].
    pub op_timeout: Duration,
    /// How long one [`work_available`](imgchkr_core::Engine::work_available) waits for a
    /// notification before it resolves anyway (at most 1 s is used: an idle worker also looks
    /// for leases that expired, which notify nobody).
    pub block_time: Duration,
    /// The bound on applying the migrations at start (waiting for another process that is
    /// applying them included).
    pub migrate_timeout: Duration,
}

impl PostgresConfig {
    /// The defaults for `url`: schema `imgchkr`, 16 connections, 2 s per call, 1 s block
    /// time, 60 s for the migrations.
    pub fn new(url: impl Into<String>) -> PostgresConfig {
        PostgresConfig {
            url: url.into(),
            schema: "imgchkr".to_owned(),
            pool_size: 16,
            op_timeout: Duration::from_secs(2),
            block_time: Duration::from_secs(1),
            migrate_timeout: Duration::from_secs(60),
        }
    }

    /// The same configuration under `schema`.
    pub fn with_schema(mut self, schema: impl Into<String>) -> PostgresConfig {
        self.schema = schema.into();
        self
    }

    /// The call bound in use: `op_timeout`, at least 10 ms.
    pub fn timeout(&self) -> Duration {
        self.op_timeout.max(Duration::from_millis(10))
    }

    /// The block time in use: `block_time` between 10 ms and 1 s.
    pub fn block(&self) -> Duration {
        self.block_time
            .clamp(Duration::from_millis(10), Duration::from_secs(1))
    }
}

/// Whether and how the connection is encrypted, as libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SslMode {
    /// Plain TCP.
    Disable,
    /// TLS if the server offers it (the certificate is not checked), plain otherwise.
    Prefer,
    /// TLS, the certificate not checked.
    Require,
    /// TLS, the certificate chain checked against the roots (not the host name).
    VerifyCa,
    /// TLS, the chain and the host name checked.
    VerifyFull,
}

/// A URL read: the driver's configuration, and what this crate handles itself.
pub(crate) struct Parsed {
    pub(crate) pg: tokio_postgres::Config,
    pub(crate) ssl: SslMode,
    pub(crate) root_cert: Option<String>,
}

/// Reads `url`: `sslmode` and `sslrootcert` are taken out (the driver knows only some
/// modes), the rest goes to `tokio-postgres`.
pub(crate) fn parse(url: &str) -> Result<Parsed, StoreError> {
    let bad = |why: String| StoreError::Unavailable(format!("postgres: bad url: {why}"));
    let mut parsed = url::Url::parse(url).map_err(|e| bad(e.to_string()))?;
    if !matches!(parsed.scheme(), "postgres" | "postgresql") {
        return Err(bad(format!(
            "scheme {:?} (want postgres:// or postgresql://)",
            parsed.scheme()
        )));
    }
    let mut ssl = SslMode::Prefer;
    let mut root_cert = None;
    let mut kept = Vec::new();
    for (key, value) in parsed.query_pairs() {
        match key.as_ref() {
            "sslmode" => {
                ssl = match value.as_ref() {
                    "disable" => SslMode::Disable,
                    "allow" | "prefer" => SslMode::Prefer,
                    "require" => SslMode::Require,
                    "verify-ca" => SslMode::VerifyCa,
                    "verify-full" => SslMode::VerifyFull,
                    other => return Err(bad(format!("sslmode={other}"))),
                }
            }
            "sslrootcert" => root_cert = Some(value.into_owned()),
            _ => kept.push((key.into_owned(), value.into_owned())),
        }
    }
    if kept.is_empty() {
        parsed.set_query(None);
    } else {
        parsed.query_pairs_mut().clear().extend_pairs(kept);
    }
    let mut pg =
        tokio_postgres::Config::from_str(parsed.as_str()).map_err(|e| bad(e.to_string()))?;
    pg.ssl_mode(match ssl {
        SslMode::Disable => tokio_postgres::config::SslMode::Disable,
        SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
        _ => tokio_postgres::config::SslMode::Require,
    });
    if pg.get_application_name().is_none() {
        pg.application_name("imgchkr");
    }
    Ok(Parsed { pg, ssl, root_cert })
}

/// `name` as an SQL identifier, quoted.
pub(crate) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `text` as an SQL string literal.
pub(crate) fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// Checks a schema name: 1 to 63 ASCII letters, digits and underscores, not starting with a
/// digit (it is also the notification channel, and appears in the migrations' SQL).
pub(crate) fn check_schema(schema: &str) -> Result<(), StoreError> {
    let well_formed = (1..=63).contains(&schema.len())
        && schema
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && !schema.starts_with(|c: char| c.is_ascii_digit());
    if !well_formed {
        return Err(StoreError::Unavailable(format!(
            "postgres: bad schema name {schema:?} (1 to 63 ASCII letters, digits or _, not starting with a digit)"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sslmode_is_read_and_removed() {
        let p = parse("postgres://u:p@127.0.0.1:5433/db?sslmode=verify-full&sslrootcert=/x.pem&connect_timeout=3").unwrap();
        assert_eq!(p.ssl, SslMode::VerifyFull);
        assert_eq!(p.root_cert.as_deref(), Some("/x.pem"));
        assert_eq!(p.pg.get_dbname(), Some("db"));
        assert_eq!(p.pg.get_connect_timeout(), Some(&Duration::from_secs(3)));
        let p = parse("postgresql://127.0.0.1/db").unwrap();
        assert_eq!(p.ssl, SslMode::Prefer);
        assert!(parse("postgres://h/db?sslmode=sometimes").is_err());
        assert!(parse("redis://h/").is_err());
    }

    #[test]
    fn names_are_quoted() {
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(quote_literal("it's"), "'it''s'");
        assert!(check_schema("").is_err());
        assert!(check_schema(&"x".repeat(64)).is_err());
        assert!(check_schema("a'b").is_err());
        assert!(check_schema("1abc").is_err());
        assert!(check_schema("imgchkr").is_ok());
        assert!(check_schema("Tenant_2").is_ok());
    }
}
