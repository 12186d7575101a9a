//! The dashboard (`GET /ui`) in a real browser: Debian's headless Chromium driven through
//! `chromedriver` (WebDriver, the `fantoccini` client), against the real binary on the
//! embedded and the Redis engines. After jobs are submitted the page must show their counts,
//! the failed job's error texts, a live worker, and find a job by id; it must stay usable on
//! a phone's width and label what it draws.
//!
//! One browser for the whole binary (Chromium's start-up is the expensive part): one test
//! runs both engines in turn. Needs `chromium` and `chromium-driver` (apt); fails if they are
//! missing. With `IMGCHKR_UI_SCREENSHOTS=<dir>` it also writes `dashboard.png` (1280 px) and
//! `dashboard-phone.png` (390 px) of a busier deployment there
//! (`scripts/screenshot-dashboard.sh` regenerates the README's).

mod common;

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Backend, Receiver, Server, jpeg_header, with_backend};
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};

const TOO_WIDE: &str = "Image width exceeds maximum (1800/1000)";
const TOO_TALL: &str = "Image height exceeds maximum (1200/1000)";

/// `chromedriver` and the Chromium session it drives; both ended on drop (the session first,
/// so chromedriver stops its browser).
struct Browser {
    runtime: tokio::runtime::Runtime,
    client: Option<Client>,
    driver: Child,
    _profile: tempfile::TempDir,
}

impl Browser {
    fn start() -> Browser {
        for tool in ["/usr/bin/chromium", "/usr/bin/chromedriver"] {
            assert!(
                std::path::Path::new(tool).exists(),
                "{tool} is missing: apt-get install chromium chromium-driver"
            );
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver = Command::new("/usr/bin/chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let profile = tempfile::tempdir().unwrap();
        let mut browser = Browser {
            runtime,
            client: None,
            driver,
            _profile: profile,
        };
        let capabilities = json!({
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--hide-scrollbars",
                    "--window-size=1280,1400",
                    format!("--user-data-dir={}", browser._profile.path().display()),
                ]
            }
        });
        let Value::Object(capabilities) = capabilities else {
            unreachable!()
        };
        let url = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        let client = browser.runtime.block_on(async {
            loop {
                let connected = ClientBuilder::new(HttpConnector::new())
                    .capabilities(capabilities.clone())
                    .connect(&url)
                    .await;
                match connected {
                    Ok(client) => break client,
                    // chromedriver may not listen yet.
                    Err(e) if started.elapsed() < Duration::from_secs(20) => {
                        let _ = e;
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    Err(e) => panic!("no WebDriver session: {e}"),
                }
            }
        });
        eprintln!("browser session in {:?}", started.elapsed());
        browser.client = Some(client);
        browser
    }

    fn client(&self) -> &Client {
        self.client.as_ref().unwrap()
    }

    fn run<T>(&self, f: impl std::future::Future<Output = T>) -> T {
        self.runtime.block_on(f)
    }

    /// Runs `script` in the page; its return value.
    fn js(&self, script: &str) -> Value {
        self.run(self.client().execute(script, vec![]))
            .unwrap_or_else(|e| panic!("script {script:?}: {e}"))
    }

    fn text(&self, selector: &str) -> String {
        let script = format!(
            "const e = document.querySelector({}); return e ? e.textContent : null;",
            Value::from(selector)
        );
        self.js(&script).as_str().unwrap_or("").to_owned()
    }

    /// Polls until `f` holds of the page, or fails after `deadline` with what it saw.
    fn wait_until(&self, what: &str, deadline: Duration, f: impl Fn(&Browser) -> bool) {
        let end = Instant::now() + deadline;
        while !f(self) {
            assert!(
                Instant::now() < end,
                "timed out waiting for {what}; the page says {:?}: {}",
                self.text("#engine"),
                self.text("main")
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Sends `header: value` with every request of the page (a Chrome DevTools command
    /// through chromedriver): how the test presents the admin token.
    fn always_send(&self, header: &str, value: &str) {
        let client = self.client();
        self.run(client.issue_cmd(Cdp(json!({"cmd": "Network.enable", "params": {}}))))
            .unwrap();
        let headers = json!({"cmd": "Network.setExtraHTTPHeaders",
                             "params": {"headers": {header: value}}});
        self.run(client.issue_cmd(Cdp(headers))).unwrap();
    }

    fn screenshot(&self, path: &std::path::Path) {
        let png = self.run(self.client().screenshot()).unwrap();
        std::fs::write(path, png).unwrap();
    }
}

/// A Chrome DevTools Protocol command, `{"cmd": ..., "params": ...}`.
#[derive(Debug)]
struct Cdp(Value);

impl fantoccini::wd::WebDriverCompatibleCommand for Cdp {
    fn endpoint(
        &self,
        base: &url::Url,
        session: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base.join(&format!(
            "session/{}/goog/cdp/execute",
            session.unwrap_or("")
        ))
    }

    fn method_and_body(&self, _url: &url::Url) -> (hyper::Method, Option<String>) {
        (hyper::Method::POST, Some(self.0.to_string()))
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            let _ = self.runtime.block_on(async {
                tokio::time::timeout(Duration::from_secs(10), client.close()).await
            });
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn id_of(r: &common::Resp) -> String {
    r.json()["id"].as_str().unwrap().to_owned()
}

/// The page of `server` with its jobs, checked in `browser`.
fn check_the_page(browser: &Browser, server: &Server, hooks: &Receiver) {
    server.write("ok.jpg", &jpeg_header(10, 10));
    server.write("big.jpg", &jpeg_header(1800, 1200));
    let ids: Vec<String> = ["ok.jpg", "ok.jpg", "big.jpg"]
        .iter()
        .map(|path| id_of(&server.submit(&hooks.submission(path))))
        .collect();
    for id in &ids {
        server.wait_final(id);
        hooks.wait_hooks(id, 2);
    }
    let failed = &ids[2];

    let url = format!("http://{}/ui", server.addr);
    browser
        .run(browser.client().set_window_size(1280, 1400))
        .unwrap();
    let asked = Instant::now();
    browser.run(browser.client().goto(&url)).unwrap();
    // The page fetches its figures with JS; the worker's status arrives with its heartbeat.
    browser.wait_until("the counts of the jobs", Duration::from_secs(15), |b| {
        b.text("#total-success") == "2" && b.text("#total-failed") == "1"
    });
    let shown = asked.elapsed();
    let timing = browser.js("const n = performance.getEntriesByType('navigation')[0];
         return {dcl: n.domContentLoadedEventEnd, bytes: performance.getEntriesByType('resource')
            .concat([n]).reduce((s, e) => s + (e.transferSize || 0), 0)};");
    eprintln!(
        "{:?}: DOMContentLoaded {:.0} ms, {} bytes over the wire (page, assets, JSON); counts shown {shown:?} after goto",
        common::backend(),
        timing["dcl"].as_f64().unwrap_or(-1.0),
        timing["bytes"],
    );
    assert_eq!(browser.text("#success-ratio"), "66.67 %");
    assert_eq!(browser.text("#waiting"), "0");
    assert_eq!(browser.text("#workers-alive"), "1 / 1");
    assert_eq!(browser.text("#engine"), "Engine available");
    let failures = browser.text("#failures");
    assert!(failures.contains(failed.as_str()), "{failures}");
    assert!(
        failures.contains(TOO_WIDE) && failures.contains(TOO_TALL),
        "{failures}"
    );
    assert!(failures.contains("big.jpg"), "{failures}");
    let workers = browser.text("#workers");
    assert!(workers.contains("alive"), "{workers}");
    let hosts = browser.text("#hosts");
    assert!(hosts.contains("127.0.0.1"), "{hosts}");
    // Charts: one bar group per minute, the last with both outcomes drawn.
    let bars = browser.js("return document.querySelectorAll('#chart-jobs g').length;");
    assert_eq!(bars, 15);
    let caption = browser.text("#cap-jobs");
    assert!(caption.contains("2 succeeded, 1 failed"), "{caption}");

    // Find the failed job by its id.
    let input = browser
        .run(browser.client().find(Locator::Css("#search-id")))
        .unwrap();
    browser.run(input.send_keys(failed)).unwrap();
    let button = browser
        .run(browser.client().find(Locator::Css("#search button")))
        .unwrap();
    browser.run(button.click()).unwrap();
    browser.wait_until("the search result", Duration::from_secs(5), |b| {
        b.text("#search-result").contains(TOO_TALL)
    });
    let result = browser.text("#search-result");
    assert!(
        result.contains(failed.as_str()) && result.contains("failed"),
        "{result}"
    );

    // Accessible: a language, every control labelled, every chart an image with a text.
    let unlabelled = browser.js("return [...document.querySelectorAll('input, button')]
            .filter(e => e.tagName === 'INPUT' ? e.labels.length === 0 : !e.textContent.trim())
            .map(e => e.outerHTML);");
    assert_eq!(unlabelled, json!([]), "controls without a label");
    let charts = browser.js(
        "return [...document.querySelectorAll('svg')].map(s => s.getAttribute('role') === 'img'
            && document.getElementById(s.getAttribute('aria-labelledby')).textContent.length > 20);",
    );
    assert_eq!(charts, json!([true, true, true]));
    assert_eq!(browser.js("return document.documentElement.lang;"), "en");

    // A phone: nothing wider than the screen (wide tables scroll inside their own box).
    browser
        .run(browser.client().set_window_size(390, 844))
        .unwrap();
    let overflow = browser
        .js("return document.documentElement.scrollWidth - document.documentElement.clientWidth;");
    assert_eq!(overflow, 0, "the page scrolls sideways at 390 px");
}

/// A busier deployment for the README's screenshots: three tenants, a slow receiver and a
/// dead one.
fn screenshots(browser: &Browser, dir: PathBuf) {
    let hooks = Receiver::start();
    hooks.set_path_delay("onSuccess", Duration::from_millis(120));
    let server = Server::start(&[
        "--heartbeat",
        "300ms",
        "--auth-token",
        "acme:ta",
        "--auth-token",
        "globex:tg",
        "--auth-token",
        "initech:ti",
        "--admin-token",
        "ops",
        "--webhook-attempts",
        "2",
        "--max-concurrent-jobs",
        "4",
    ]);
    server.write("ok.jpg", &jpeg_header(800, 600));
    server.write("big.jpg", &jpeg_header(1800, 1200));
    server.write("wide.jpg", &jpeg_header(2400, 900));
    let dead = format!("http://127.0.0.1:{}/hooks", common::closed_port());
    for i in 0..36 {
        let (token, path) = match i % 6 {
            0 => ("tg", "big.jpg"),
            1 => ("ti", "wide.jpg"),
            2 => ("ta", "missing.jpg"),
            _ => (["ta", "tg", "ti"][i % 3], "ok.jpg"),
        };
        let mut body = hooks.submission(path);
        if i % 9 == 4 {
            body["notifications"]["onStart"] = Value::from(dead.clone());
        }
        let auth = format!("Bearer {token}");
        let r = server.post_json(&[("authorization", &auth)], &body);
        assert_eq!(r.status, 202, "{}", r.body_text());
    }
    common::wait_within("the jobs", Duration::from_secs(30), || {
        let d = server.get_as("/admin/dashboard", "ops").json();
        let done = d["totals"]["success"].as_u64()? + d["totals"]["failed"].as_u64()?;
        (done == 36).then_some(())
    });
    // Leave some waiting for the picture.
    hooks.set_delay(Duration::from_secs(3));
    for i in 0..10 {
        let token = ["ta", "tg", "ti", "ta"][i % 4];
        let auth = format!("Bearer {token}");
        server.post_json(&[("authorization", &auth)], &hooks.submission("ok.jpg"));
    }
    let url = format!("http://{}/ui", server.addr);
    browser.always_send("Authorization", "Bearer ops");
    browser
        .run(browser.client().set_window_size(1280, 1500))
        .unwrap();
    browser.run(browser.client().goto(&url)).unwrap();
    browser.wait_until("the page", Duration::from_secs(15), |b| {
        b.text("#total-success") != "–" && b.text("#waiting") != "0"
    });
    std::fs::create_dir_all(&dir).unwrap();
    browser.screenshot(&dir.join("dashboard.png"));
    browser
        .run(browser.client().set_window_size(390, 1500))
        .unwrap();
    browser.screenshot(&dir.join("dashboard-phone.png"));
    eprintln!("screenshots written to {}", dir.display());
}

#[test]
fn the_dashboard_shows_jobs_workers_and_failures_in_chromium() {
    let browser = Browser::start();
    // The SQLite default, memory, and Redis (a worker seen through the shared store).
    for backend in [Backend::Sqlite, Backend::Embedded, Backend::Redis] {
        with_backend(backend, || {
            let hooks = Receiver::start();
            let server = Server::start(&["--heartbeat", "300ms"]);
            check_the_page(&browser, &server, &hooks);
        });
    }
    if let Some(dir) = std::env::var_os("IMGCHKR_UI_SCREENSHOTS") {
        with_backend(Backend::Embedded, || screenshots(&browser, dir.into()));
    }
}
