//! The ceiling every load figure is divided by: a do-nothing server on imgchkr's own HTTP stack
//! (hyper 1, the same accept loop settings) and imgchkr's own webhook sender
//! (`imgchkr_notify::WebhookNotifier`, default settings). It accepts a submission, parses its
//! JSON, answers `202` with a job id, queues the job in memory, and sends the two webhooks —
//! onStart, then onSuccess (or onFailure with the seed's errors for `big.jpg`) — without
//! validating, recording or fairness. Whatever imgchkr does beyond this is its own cost.
//!
//! It takes `imgchkr serve`'s command line (and ignores what it does not use), so the load
//! generator starts it the same way: `loadgen --server target/release/ceiling`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use imgchkr_core::notify::Notifier;
use imgchkr_core::{
    AssetPath, ErrorMap, Event, Job, JobId, JobState, JobUpdate, Notification, NotificationUrls,
};
use imgchkr_notify::{WebhookConfig, WebhookNotifier};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// What the worker needs of a submission.
struct Queued {
    job: Job,
    failed: bool,
}

fn listen_addr() -> SocketAddr {
    let args: Vec<String> = std::env::args().collect();
    args.windows(2)
        .find(|pair| pair[0] == "--listen")
        .and_then(|pair| pair[1].parse().ok())
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)))
}

fn answer(status: StatusCode, body: Vec<u8>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    response
}

/// Parses a submission the way any JSON service would, or says why not.
fn parse(body: &[u8]) -> Option<Queued> {
    let value: Value = serde_json::from_slice(body).ok()?;
    let path = value["assetPath"]["path"].as_str()?.to_owned();
    let url = |event: &str| value["notifications"][event].as_str()?.parse().ok();
    let urls = NotificationUrls {
        on_start: url("onStart")?,
        on_success: url("onSuccess")?,
        on_failure: url("onFailure")?,
    };
    let failed = path.contains("big");
    Some(Queued {
        job: Job::new(JobId::random(), AssetPath::Local { path }, urls),
        failed,
    })
}

async fn submit(
    request: Request<Incoming>,
    queue: mpsc::UnboundedSender<Queued>,
) -> Response<Full<Bytes>> {
    let Ok(body) = Limited::new(request.into_body(), 64 * 1024).collect().await else {
        return answer(StatusCode::BAD_REQUEST, b"{}".to_vec());
    };
    let Some(queued) = parse(&body.to_bytes()) else {
        return answer(StatusCode::BAD_REQUEST, b"{}".to_vec());
    };
    let id = queued.job.id;
    let _ = queue.send(queued);
    let body = format!(r#"{{"id":"{id}","state":"queued"}}"#).into_bytes();
    let mut response = answer(StatusCode::ACCEPTED, body);
    if let Ok(location) = hyper::header::HeaderValue::from_str(&format!("/assets/image/{id}")) {
        response
            .headers_mut()
            .insert(hyper::header::LOCATION, location);
    }
    response
}

/// onStart, then the final event once onStart is delivered: each job its own task.
async fn work(mut queue: mpsc::UnboundedReceiver<Queued>, notifier: Arc<WebhookNotifier>) {
    while let Some(Queued { mut job, failed }) = queue.recv().await {
        let notifier = Arc::clone(&notifier);
        tokio::spawn(async move {
            notifier
                .deliver(&Notification::new(&job, Event::OnStart))
                .await;
            let errors = failed.then(|| {
                ErrorMap::from([(
                    "image".to_owned(),
                    vec![
                        "Image width exceeds maximum (1800/1000)".to_owned(),
                        "Image height exceeds maximum (1200/1000)".to_owned(),
                    ],
                )])
            });
            job.apply(&JobUpdate::Verdict {
                errors,
                warnings: Vec::new(),
                at: time::OffsetDateTime::now_utc(),
            });
            let event = match job.state {
                JobState::Failed => Event::OnFailure,
                _ => Event::OnSuccess,
            };
            notifier.deliver(&Notification::new(&job, event)).await;
        });
    }
}

#[tokio::main]
async fn main() {
    let notifier = match WebhookNotifier::new(WebhookConfig::default()) {
        Ok(notifier) => Arc::new(notifier),
        Err(e) => {
            eprintln!("ceiling: {e}");
            std::process::exit(2);
        }
    };
    let (queue, jobs) = mpsc::unbounded_channel();
    tokio::spawn(work(jobs, notifier));
    let listener = match TcpListener::bind(listen_addr()).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("ceiling: cannot listen: {e}");
            std::process::exit(2);
        }
    };
    let addr = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    eprintln!("ceiling: listening addr={addr}");
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new()).keep_alive(true);
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let queue = queue.clone();
        let service = service_fn(move |request: Request<Incoming>| {
            let queue = queue.clone();
            async move { Ok::<_, Infallible>(submit(request, queue).await) }
        });
        let connection = http.serve_connection(TokioIo::new(stream), service);
        tokio::spawn(async move {
            let _ = connection.await;
        });
    }
}
