//! TLS to Postgres as `sslmode` asks, against a cluster with `ssl = on` and a certificate
//! for `localhost` signed by a CA of the test's own (made with `openssl`, which the test
//! needs): `require` encrypts without checking, `verify-ca` checks the chain, `verify-full`
//! the chain and the host name, `disable` stays plain. Whether a connection is encrypted is
//! read from the server (`pg_stat_ssl`).

mod support;

use std::path::Path;
use std::process::Command;

use imgchkr_core::Engine;
use imgchkr_core::engine::Submitted;
use imgchkr_postgres::PostgresEngine;
use support::{PgCluster, ROOMY, config, fresh_schema, job, run_as};

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl is needed for the TLS tests (apt-get install -y openssl)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA and a server certificate for `localhost` (no IP address) signed by it.
fn certificates(dir: &Path) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "2",
            "-subj",
            "/CN=imgchkr test CA",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ],
    );
    std::fs::write(
        dir.join("ext"),
        "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "2",
            "-extfile",
            "ext",
        ],
    );
    if let Some((uid, gid)) = run_as() {
        for name in [".", "server.crt", "server.key"] {
            std::os::unix::fs::chown(dir.join(name), Some(uid), Some(gid)).unwrap();
        }
    }
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        dir.join("server.key"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
}

/// Whether the connections of `app` the server has now are encrypted (all of them), or
/// `None` if it has none.
fn encrypted(cluster: &PgCluster, app: &str) -> Option<bool> {
    let out = cluster.psql(
        "postgres",
        &format!(
            "SELECT bool_and(s.ssl) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
             WHERE a.application_name = '{app}'"
        ),
    );
    match out.trim() {
        "t" => Some(true),
        "f" => Some(false),
        _ => None,
    }
}

async fn open(url: &str) -> Result<PostgresEngine, imgchkr_core::StoreError> {
    PostgresEngine::connect(config(url, &fresh_schema("tls"))).await
}

/// Connects with `url`, submits a job, and says whether the pool's connection is encrypted.
async fn works(cluster: &PgCluster, url: &str, app: &str) -> bool {
    let engine = open(url).await.unwrap_or_else(|e| panic!("{url}: {e}"));
    assert_eq!(engine.submit(&job("acme"), ROOMY).await, Ok(Submitted::New));
    encrypted(cluster, app).unwrap_or_else(|| panic!("no connection of {app} seen"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sslmode_is_honoured() {
    let certs = tempfile::tempdir().unwrap();
    certificates(certs.path());
    let dir = certs.path().display();
    let cluster = PgCluster::start_with(&[
        "ssl=on",
        &format!("ssl_cert_file={dir}/server.crt"),
        &format!("ssl_key_file={dir}/server.key"),
    ]);
    let port = cluster.port;
    let ca = format!("{dir}/ca.crt");
    let url = |host: &str, app: &str, params: &str| {
        format!("postgres://postgres@{host}:{port}/postgres?application_name={app}&{params}")
    };

    assert!(
        works(
            &cluster,
            &url("127.0.0.1", "require", "sslmode=require"),
            "require"
        )
        .await
    );
    assert!(
        works(
            &cluster,
            &url(
                "localhost",
                "full",
                &format!("sslmode=verify-full&sslrootcert={ca}")
            ),
            "full"
        )
        .await
    );
    assert!(
        works(
            &cluster,
            &url(
                "127.0.0.1",
                "ca",
                &format!("sslmode=verify-ca&sslrootcert={ca}")
            ),
            "ca"
        )
        .await
    );
    assert!(
        !works(
            &cluster,
            &url("127.0.0.1", "plain", "sslmode=disable"),
            "plain"
        )
        .await
    );
    assert!(
        works(
            &cluster,
            &url("127.0.0.1", "prefer", "sslmode=prefer"),
            "prefer"
        )
        .await
    );

    // The certificate names localhost, not 127.0.0.1: verify-full refuses it.
    let wrong_name = open(&url(
        "127.0.0.1",
        "wrongname",
        &format!("sslmode=verify-full&sslrootcert={ca}"),
    ))
    .await
    .expect_err("verify-full with a certificate for another name");
    assert!(
        wrong_name.to_string().contains("certificate"),
        "{wrong_name}"
    );
    // Without the test CA among the roots (the WebPKI roots), the chain is refused.
    let unknown_ca = open(&url("localhost", "webpki", "sslmode=verify-full"))
        .await
        .expect_err("verify-full against the WebPKI roots");
    assert!(
        unknown_ca.to_string().contains("certificate"),
        "{unknown_ca}"
    );
}
