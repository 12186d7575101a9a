//! The operators' dashboard's JSON (`/admin/dashboard`, `/admin/jobs/<id>`), its token, the
//! OpenAPI document, and a shared deployment's dashboard read from an `api` process that runs
//! no job (the workers' activity comes from their heartbeats).
//!
//! Contract tests run on both engines (`common::both_backends!`); the shared deployment runs
//! on a `redis-server` of its own.

mod common;

use std::time::Duration;

use common::redis_server::RedisServer;
use common::{Receiver, Server, WorkerProcess, jpeg_header, request, wait_for, wait_within};
use serde_json::Value;

const TOO_WIDE: &str = "Image width exceeds maximum (1800/1000)";
const TOO_TALL: &str = "Image height exceeds maximum (1200/1000)";

fn id_of(r: &common::Resp) -> String {
    r.json()["id"].as_str().unwrap().to_owned()
}

/// Submits two valid images and one too large; waits for their verdicts and webhooks. The
/// ids: (valid, valid, failed).
fn three_jobs(server: &Server, hooks: &Receiver) -> [String; 3] {
    server.write("ok.jpg", &jpeg_header(10, 10));
    server.write("big.jpg", &jpeg_header(1800, 1200));
    let ids = ["ok.jpg", "ok.jpg", "big.jpg"].map(|path| {
        let r = server.submit(&hooks.submission(path));
        assert_eq!(r.status, 202, "{}", r.body_text());
        id_of(&r)
    });
    for id in &ids {
        server.wait_final(id);
        hooks.wait_hooks(id, 2);
    }
    ids
}

/// The dashboard once `want` holds of it (the workers' statuses arrive with their
/// heartbeats).
fn dashboard_when(server: &Server, token: Option<&str>, want: impl Fn(&Value) -> bool) -> Value {
    let mut last = Value::Null;
    wait_within("the dashboard", Duration::from_secs(15), || {
        let r = match token {
            Some(t) => server.get_as("/admin/dashboard", t),
            None => server.get("/admin/dashboard"),
        };
        assert_eq!(r.status, 200, "{}", r.body_text());
        last = r.json();
        want(&last).then(|| last.clone())
    })
}

fn dashboard_counts_jobs_workers_deliveries_and_failures() {
    let hooks = Receiver::start();
    let server = Server::start(&["--heartbeat", "300ms"]);
    let [ok, _, failed] = three_jobs(&server, &hooks);
    let d = dashboard_when(&server, None, |d| d["totals"]["failed"] == 1);
    let totals = &d["totals"];
    assert_eq!(totals["success"], 2, "{d}");
    assert_eq!(totals["failed"], 1, "{d}");
    assert!((totals["successRatio"].as_f64().unwrap() - 2.0 / 3.0).abs() < 1e-9);
    // Six events, each delivered to the receiver.
    assert_eq!(totals["delivered"], 6, "{d}");
    assert_eq!(totals["deliveryFailed"], 0, "{d}");
    let minutes = d["minutes"].as_array().unwrap();
    assert_eq!(minutes.len(), 15);
    let in_minutes: u64 = minutes.iter().map(|m| m["success"].as_u64().unwrap()).sum();
    assert_eq!(in_minutes, 2);
    assert_eq!(d["queue"]["waiting"], 0);
    assert_eq!(d["queue"]["capacity"], 10_000);
    assert_eq!(d["engine"]["available"], true);

    let workers = d["workers"].as_array().unwrap();
    assert_eq!(workers.len(), 1, "{d}");
    assert_eq!(workers[0]["alive"], true);
    assert_eq!(workers[0]["finished"], 3);
    assert_eq!(workers[0]["slots"], 1024);

    let hosts = d["slowestDestinations"].as_array().unwrap();
    assert_eq!(hosts[0]["host"], "127.0.0.1", "{d}");
    assert_eq!(hosts[0]["deliveries"], 6);
    assert_eq!(hosts[0]["failed"], 0);

    let failures = d["latestFailures"].as_array().unwrap();
    assert_eq!(failures.len(), 1, "{d}");
    assert_eq!(failures[0]["id"], failed.as_str());
    assert_eq!(
        failures[0]["errors"]["image"],
        serde_json::json!([TOO_WIDE, TOO_TALL])
    );

    // The search by id, across tenants.
    let found = server.get(&format!("/admin/jobs/{ok}"));
    assert_eq!(found.status, 200, "{}", found.body_text());
    assert_eq!(found.json()["jobs"][0]["state"], "success");
    let unknown = server.get("/admin/jobs/00000000-0000-4000-8000-000000000000");
    assert_eq!(unknown.status, 404);
    assert_eq!(server.get("/admin/jobs/not-an-id").status, 400);
    let elsewhere = server.get(&format!("/admin/jobs/{ok}?tenant=other"));
    assert_eq!(elsewhere.status, 404);
}

fn webhook_failures_and_their_destination_show() {
    let hooks = Receiver::start();
    let server = Server::start(&["--heartbeat", "300ms", "--webhook-attempts", "2"]);
    server.write("ok.jpg", &jpeg_header(10, 10));
    let dead = format!("http://127.0.0.1:{}/hook", common::closed_port());
    let mut body = hooks.submission("ok.jpg");
    body["notifications"]["onStart"] = Value::from(dead.clone());
    body["notifications"]["onSuccess"] = Value::from(dead);
    let id = id_of(&server.submit(&body));
    wait_for("both deliveries given up", || {
        let job = server.get(&format!("/assets/image/{id}")).json();
        let failed = job["notifications"]
            .as_array()?
            .iter()
            .filter(|n| n["status"] == "failed")
            .count();
        (failed == 2).then_some(())
    });
    let d = dashboard_when(&server, None, |d| d["totals"]["deliveryFailed"] == 2);
    assert_eq!(d["totals"]["delivered"], 0, "{d}");
    let host = &d["slowestDestinations"][0];
    assert_eq!(host["host"], "127.0.0.1");
    assert_eq!(
        (host["deliveries"].clone(), host["failed"].clone()),
        (2.into(), 2.into())
    );
    assert_eq!(host["attempts"], 4, "two attempts each: {d}");
}

fn the_admin_token_guards_the_dashboard() {
    // Tenants authenticate and no admin token is set: nobody gets in, a tenant's token
    // included; the document and the page's assets stay open.
    let server = Server::start(&["--auth-token", "a:ta"]);
    for path in ["/ui", "/admin/dashboard", "/admin/jobs/x"] {
        let r = server.get_as(path, "ta");
        assert_eq!(r.status, 401, "{path}");
        let challenge = r.header("www-authenticate").unwrap();
        assert!(challenge.starts_with("Basic realm="), "{challenge}");
    }
    assert_eq!(server.get("/openapi.json").status, 200);
    assert_eq!(server.get("/ui/app.js").status, 200);
    drop(server);

    let server = Server::start(&["--auth-token", "a:ta", "--admin-token", "ops-secret"]);
    assert_eq!(server.get("/admin/dashboard").status, 401);
    assert_eq!(server.get_as("/admin/dashboard", "ta").status, 401);
    assert_eq!(server.get_as("/admin/dashboard", "ops-secret").status, 200);
    // A browser's Basic credentials: any user, the token as the password.
    let basic = "Basic b3BzOm9wcy1zZWNyZXQ="; // ops:ops-secret
    let r = request(server.addr, "GET", "/ui", &[("authorization", basic)], b"");
    assert_eq!(r.status, 200);
    assert!(r.body_text().contains("<title>imgchkr dashboard</title>"));
    let csp = r.header("content-security-policy").unwrap();
    assert!(csp.contains("default-src 'none'") && csp.contains("script-src 'self'"));
    // The admin token is no tenant's.
    assert_eq!(server.get_as("/assets/image", "ops-secret").status, 401);
    let post = request(server.addr, "POST", "/admin/dashboard", &[], b"");
    assert_eq!(post.status, 405);
    assert_eq!(post.header("allow"), Some("GET"));
}

common::both_backends!(
    dashboard_counts_jobs_workers_deliveries_and_failures,
    webhook_failures_and_their_destination_show,
    the_admin_token_guards_the_dashboard,
);

#[test]
fn openapi_document_is_served_and_checks_responses() {
    let server = Server::start(&[]);
    let r = server.get("/openapi.json");
    assert_eq!(r.status, 200);
    assert_eq!(r.body_text(), common::openapi::DOCUMENT);
    // The checker every response goes through rejects what the document does not say.
    let accepted = |body: &str| common::Resp {
        status: 202,
        headers: [
            ("content-type".to_owned(), "application/json".to_owned()),
            ("location".to_owned(), "/assets/image/x".to_owned()),
        ]
        .into(),
        body: body.as_bytes().to_vec(),
    };
    let good = accepted(r#"{"id":"497ea3c4-180a-4292-8cc2-0aa1d500d80f","state":"queued"}"#);
    common::openapi::check("POST", "/assets/image", &good);
    for (bad, why) in [
        (
            accepted(r#"{"id":"497ea3c4-180a-4292-8cc2-0aa1d500d80f","state":"started"}"#),
            "a state other than queued",
        ),
        (
            accepted(r#"{"id":"not-a-uuid","state":"queued"}"#),
            "an id not a UUID",
        ),
        (
            common::Resp {
                status: 418,
                ..accepted("{}")
            },
            "an undocumented status",
        ),
        (
            common::Resp {
                headers: [("content-type".to_owned(), "application/json".to_owned())].into(),
                ..accepted(r#"{"id":"497ea3c4-180a-4292-8cc2-0aa1d500d80f","state":"queued"}"#)
            },
            "no Location",
        ),
    ] {
        let caught = std::panic::catch_unwind(|| {
            common::openapi::check("POST", "/assets/image", &bad);
        });
        assert!(caught.is_err(), "the checker let {why} through");
    }
}

/// A shared deployment: one `api` process (no workers), two `worker` processes on one Redis.
/// The API's dashboard shows both workers and adds up their activity; a worker killed with
/// SIGKILL shows as dead once its lease time has passed.
#[test]
fn a_shared_deployment_reads_its_workers_from_their_heartbeats() {
    let redis = RedisServer::start();
    let hooks = Receiver::start();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ok.jpg"), jpeg_header(10, 10)).unwrap();
    std::fs::write(dir.path().join("big.jpg"), jpeg_header(1800, 1200)).unwrap();
    let timing = ["--heartbeat", "300ms", "--lease-idle", "2s"];
    let mut one = WorkerProcess::start(dir.path(), &redis.url(), &timing);
    let _two = WorkerProcess::start(dir.path(), &redis.url(), &timing);
    let api_dir = tempfile::tempdir().unwrap();
    let redis_url = redis.url();
    let args: Vec<&str> = ["--redis", redis_url.as_str()]
        .into_iter()
        .chain(timing)
        .collect();
    let api = Server::start_cmd("api", api_dir, &args, "info");
    let ids: Vec<String> = ["ok.jpg", "ok.jpg", "big.jpg", "big.jpg", "ok.jpg"]
        .iter()
        .map(|path| id_of(&api.submit(&hooks.submission(path))))
        .collect();
    for id in &ids {
        api.wait_final(id);
        hooks.wait_hooks(id, 2);
    }
    let d = dashboard_when(&api, None, |d| {
        d["workers"].as_array().is_some_and(|w| w.len() == 2) && d["totals"]["failed"] == 2
    });
    assert_eq!(d["totals"]["success"], 3, "{d}");
    assert_eq!(d["totals"]["delivered"], 10, "{d}");
    let finished: u64 = d["workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["finished"].as_u64().unwrap())
        .sum();
    assert_eq!(
        finished, 5,
        "each job counted once, by the worker that ran it: {d}"
    );
    assert_eq!(d["latestFailures"].as_array().unwrap().len(), 2);

    one.kill_9();
    let d = dashboard_when(&api, None, |d| {
        d["workers"]
            .as_array()
            .is_some_and(|w| w.iter().filter(|w| w["alive"] == false).count() == 1)
    });
    let dead = d["workers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["alive"] == false)
        .unwrap();
    assert!(
        dead["secondsSinceHeartbeat"].as_f64().unwrap() >= 2.0,
        "{d}"
    );
    // Its history stays in the totals.
    assert_eq!(d["totals"]["success"], 3, "{d}");
}

/// The metric names of every PromQL expression in deploy/ (alert rules, Grafana dashboard):
/// `imgchkr_*` and `process_*` tokens, a histogram's `_bucket`/`_count`/`_sum` series named by
/// their family.
fn metrics_named_in_deploy_files() -> Vec<(String, String)> {
    let deploy = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy");
    let mut names = vec![];
    for file in ["prometheus/alerts.yml", "grafana/imgchkr.json"] {
        let text = std::fs::read_to_string(deploy.join(file)).unwrap();
        let mut rest = text.as_str();
        while let Some(at) = rest.find(['i', 'p']) {
            let tail = &rest[at..];
            let token: String = tail
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
                .collect();
            let boundary = rest[..at]
                .chars()
                .last()
                .is_none_or(|c| !(c.is_ascii_alphanumeric() || c == '_'));
            if boundary
                && (token.starts_with("imgchkr_") || token.starts_with("process_"))
                && token.len() > "process_".len()
            {
                names.push((file.to_owned(), token.clone()));
            }
            rest = &tail[token.len().max(1)..];
        }
    }
    names
}

#[test]
fn deploy_files_name_only_metrics_the_service_exports() {
    let hooks = Receiver::start();
    let server = Server::start(&["--heartbeat", "300ms"]);
    three_jobs(&server, &hooks);
    let exposition = server.get("/metrics").body_text();
    let families: Vec<(&str, &str)> = exposition
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_once(' '))
        .collect();
    let named = metrics_named_in_deploy_files();
    assert!(named.len() > 20, "{named:?}");
    for (file, name) in named {
        let exported = families.iter().any(|(family, kind)| {
            *family == name
                || (*kind == "histogram"
                    && ["_bucket", "_count", "_sum"]
                        .iter()
                        .any(|suffix| name.strip_suffix(suffix) == Some(family)))
        });
        assert!(
            exported,
            "deploy/{file} uses {name}, which /metrics does not export"
        );
    }
}
