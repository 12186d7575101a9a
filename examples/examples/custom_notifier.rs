//! The [`Notifier`] trait is imgchkr's plug point for how job events reach the client. This
//! example embeds the full HTTP service in a program of its own and plugs in a ~20-line
//! notifier that appends each event as a line to a writer (a file, a log, stdout: here
//! stdout), composed with the real webhook sender (`imgchkr_notify::WebhookNotifier`) through
//! a generic `Both<A, B>`, so every event is both logged and sent as a webhook:
//!
//! ```text
//! event onStart {"id":"…","state":"started"}
//! event onFailure {"id":"…","state":"failed","errors":{"image":[…]}}
//! ```
//!
//! `Service::notifier` takes any `Notifier`; submissions are still vetted by the webhook
//! destination policy of the configuration (`--notify-allow`, `--notify-deny-private`), and
//! the delivery outcome recorded on the job (`GET /assets/image/{id}`) is the webhook's.
//!
//! It serves `argv[1]` (default 127.0.0.1:8080) with the current directory as the image
//! directory until Ctrl-C. Run it from the directory holding your images, and submit a job
//! whose notification URLs point at `cargo run --example webhook_receiver`:
//!
//! ```text
//! cargo run --example custom_notifier -- 127.0.0.1:8080
//! ```

use std::io::Write;
use std::process::ExitCode;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use imgchkr_core::notify::{Attempt, BoxFuture, DeliveryOutcome, Notification, Notifier};
use imgchkr_http::cli::ServeArgs;
use imgchkr_http::service::Service;
use imgchkr_notify::WebhookNotifier;

/// Appends `<event> <JSON body>` lines to a writer; "delivered" once written.
struct EventLog<W>(Mutex<W>);

impl<W: Write + Send> Notifier for EventLog<W> {
    fn deliver<'a>(&'a self, n: &'a Notification) -> BoxFuture<'a, DeliveryOutcome> {
        let started = Instant::now();
        let mut line = format!("event {} ", n.event.name()).into_bytes();
        line.extend_from_slice(&n.payload.to_json());
        line.push(b'\n');
        let written = match self.0.lock() {
            Ok(mut out) => out.write_all(&line).and_then(|()| out.flush()),
            Err(_) => Err(std::io::Error::other("a writer panicked")),
        };
        let attempt = match written {
            Ok(()) => Attempt::answered(1, 200, started.elapsed()),
            Err(e) => Attempt::failed(1, e.to_string(), started.elapsed()),
        };
        Box::pin(std::future::ready(DeliveryOutcome::from_attempts(vec![
            attempt,
        ])))
    }
}

/// Delivers to both notifiers at once. The outcome reported (and recorded on the job) is the
/// second one's: here the webhook's, the log being a local side effect.
struct Both<A, B>(A, B);

impl<A: Notifier, B: Notifier> Notifier for Both<A, B> {
    fn deliver<'a>(&'a self, n: &'a Notification) -> BoxFuture<'a, DeliveryOutcome> {
        Box::pin(async move {
            let (_, outcome) = tokio::join!(self.0.deliver(n), self.1.deliver(n));
            outcome
        })
    }
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
    // The configuration in code: the `imgchkr serve` defaults, then what this program wants.
    let mut args = ServeArgs::default();
    args.listen = std::env::args()
        .nth(1)
        .as_deref()
        .unwrap_or("127.0.0.1:8080")
        .parse()
        .map_err(|e| format!("invalid address: {e}"))?;
    args.image_dir = ".".into();
    args.drain_timeout = Duration::from_secs(5);
    imgchkr_http::logging::init(args.log_format);

    // The webhook sender the flags would have built, and the log beside it.
    let webhooks = args.webhooks.config().map_err(|e| e.to_string())?;
    let webhooks = WebhookNotifier::new(webhooks).map_err(|e| e.to_string())?;
    let log = EventLog(Mutex::new(std::io::stdout()));

    Service::new(args)
        .notifier(Both(log, webhooks))
        .run()
        .await
        .map_err(|e| e.to_string())
}
