//! The [`Notifier`] trait is imgchkr's plug point for how job events reach the client. This
//! example writes a ~20-line notifier that sends events over a channel, composes it with the
//! real webhook sender (`imgchkr_notify::WebhookNotifier`) through a generic `Both<A, B>`,
//! and runs one job with core's `run_job` and `MemoryStore` on a generated 1200×800 JPEG
//! (which fails the default 1000 px limit), then prints what was recorded:
//!
//! ```text
//! event onStart {"id":"…","state":"started"}
//! event onFailure {"id":"…","state":"failed","errors":{"image":[…]}}
//! job state failed
//! delivery onStart failed attempts=1 error=connection refused
//! ```
//!
//! The webhooks go to `<base>/onStart` etc., `<base>` being argv[1] (default
//! `http://127.0.0.1:9`, where nothing listens: the deliveries fail, which never changes the
//! verdict). Try it against `cargo run --example webhook_receiver`.
//!
//! Embedding a custom notifier in the full HTTP service is not possible through the service's
//! entry point: `imgchkr_http::service::run(ServeArgs, Role)` builds its `WebhookNotifier` itself
//! from the arguments and takes no notifier. The service's notifier seam is the public
//! `imgchkr_http::webhooks::Webhooks` trait (a `Notifier` that can also vet a destination at
//! submission time); using a custom one means re-assembling `service::run` by hand from the
//! public `worker` and `server` modules.
//!
//! Run it from the workspace root:
//!
//! ```text
//! cargo run --example custom_notifier -- http://127.0.0.1:9000/print
//! ```

use std::process::ExitCode;
use std::time::Duration;

use imgchkr_core::job::{AssetPath, JobId, NotificationUrls};
use imgchkr_core::notify::{Attempt, BoxFuture, DeliveryOutcome, Notification, Notifier};
use imgchkr_core::{ImageDir, Job, MemoryStore, Policy, Retention, run_job};
use imgchkr_notify::{WebhookConfig, WebhookNotifier};
use tokio::sync::mpsc;

/// Sends each event's name and JSON body over a channel; always "delivered".
struct ChannelNotifier(mpsc::UnboundedSender<String>);

impl Notifier for ChannelNotifier {
    fn deliver<'a>(&'a self, n: &'a Notification) -> BoxFuture<'a, DeliveryOutcome> {
        Box::pin(async move {
            let body = String::from_utf8_lossy(&n.payload.to_json()).into_owned();
            let sent = self.0.send(format!("{} {body}", n.event.name()));
            let attempt = match sent {
                Ok(()) => Attempt::answered(1, 200, Duration::ZERO),
                Err(_) => Attempt::failed(1, "channel closed", Duration::ZERO),
            };
            DeliveryOutcome::from_attempts(vec![attempt])
        })
    }
}

/// Delivers to both notifiers at once. The outcome reported (and recorded on the job) is the
/// second one's: here the webhook's, the channel being a local side effect.
struct Both<A, B>(A, B);

impl<A: Notifier, B: Notifier> Notifier for Both<A, B> {
    fn deliver<'a>(&'a self, n: &'a Notification) -> BoxFuture<'a, DeliveryOutcome> {
        Box::pin(async move {
            let (_, outcome) = tokio::join!(self.0.deliver(n), self.1.deliver(n));
            outcome
        })
    }
}

fn jpeg(path: &std::path::Path, width: u32, height: u32) -> Result<(), String> {
    image::RgbImage::new(width, height)
        .save_with_format(path, image::ImageFormat::Jpeg)
        .map_err(|e| e.to_string())
}

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("custom_notifier: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), String> {
    let base = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "http://127.0.0.1:9".to_owned());
    let url = |event: &str| url::Url::parse(&format!("{}/{event}", base.trim_end_matches('/')));
    let urls = NotificationUrls {
        on_start: url("onStart").map_err(|e| e.to_string())?,
        on_success: url("onSuccess").map_err(|e| e.to_string())?,
        on_failure: url("onFailure").map_err(|e| e.to_string())?,
    };

    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    jpeg(&dir.path().join("big.jpg"), 1200, 800)?;
    let image_dir = ImageDir::open(dir.path()).map_err(|e| e.to_string())?;

    // One quick attempt per event, so the example ends fast when nothing listens.
    let config = WebhookConfig {
        max_attempts: 1,
        timeout: Duration::from_secs(2),
        deadline: Duration::from_secs(3),
        ..WebhookConfig::default()
    };
    let webhooks = WebhookNotifier::new(config).map_err(|e| e.to_string())?;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let notifier = Both(ChannelNotifier(tx), webhooks);

    let store = MemoryStore::new(Retention {
        max_age: Duration::from_secs(3600),
        max_jobs: 100,
    });
    let asset = AssetPath::Local {
        path: "big.jpg".to_owned(),
    };
    let job = Job::new(JobId::random(), asset, urls);
    store.insert_now(job.clone());

    let policy = Policy::default();
    let validate = async { image_dir.validate("big.jpg", &policy) };
    let state = run_job(&job, &store, &notifier, validate)
        .await
        .map_err(|e| e.to_string())?;
    drop(notifier);

    while let Some(line) = rx.recv().await {
        println!("event {line}");
    }
    println!("job state {}", state.name());
    let stored = store.get_now(job.id).ok_or("job evicted")?;
    for record in &stored.notifications {
        let status = serde_json::to_value(record.status).map_err(|e| e.to_string())?;
        println!(
            "delivery {} {} attempts={} error={}",
            record.event.name(),
            status.as_str().unwrap_or("?"),
            record.attempts,
            record.error.as_deref().unwrap_or("-")
        );
    }
    Ok(())
}
