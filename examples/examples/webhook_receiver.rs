//! The client side of the webhook contract: a tiny hyper 1 server that receives imgchkr's
//! webhook POSTs and prints each event as one line, `<event-path> <body>`, e.g.
//!
//! ```text
//! listening on 127.0.0.1:9000
//! /print/onStart {"id":"…","state":"started"}
//! /print/onFailure {"id":"…","state":"failed","errors":{"image":["…"]}}
//! ```
//!
//! - With `--secret whsec_…` it verifies the Standard Webhooks signature (`webhook-id`,
//!   `webhook-timestamp`, `webhook-signature`) with the `standardwebhooks` crate and answers
//!   `401` when it does not match (or the timestamp is more than 5 minutes off).
//! - It deduplicates by `webhook-id` (the id is stable across imgchkr's retries), remembering
//!   the last 10,000 ids; a duplicate is acknowledged (`200`) but not printed again.
//! - Bodies over 1 MiB get `413`; anything but `POST` gets `405`.
//!
//! Run it from the workspace root (point the server's notification URLs at
//! `http://127.0.0.1:9000/print/onStart` and so on):
//!
//! ```text
//! cargo run --example webhook_receiver -- --listen 127.0.0.1:9000 --secret whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw
//! ```

use std::collections::{HashSet, VecDeque};
use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use standardwebhooks::Webhook;
use tokio::net::TcpListener;

const MAX_BODY: usize = 1024 * 1024;
const REMEMBERED_IDS: usize = 10_000;

/// The last `capacity` webhook ids seen, oldest evicted first.
struct Seen {
    ids: HashSet<String>,
    order: VecDeque<String>,
    capacity: usize,
}

impl Seen {
    /// Records `id`; false when it was already there.
    fn insert(&mut self, id: &str) -> bool {
        if self.ids.contains(id) {
            return false;
        }
        if self.order.len() == self.capacity
            && let Some(oldest) = self.order.pop_front()
        {
            self.ids.remove(&oldest);
        }
        self.ids.insert(id.to_owned());
        self.order.push_back(id.to_owned());
        true
    }
}

struct Receiver {
    verifier: Option<Webhook>,
    seen: Mutex<Seen>,
}

fn reply(status: StatusCode, text: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    *response.status_mut() = status;
    response
}

async fn handle(
    receiver: Arc<Receiver>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, hyper::Error> {
    if request.method() != Method::POST {
        return Ok(reply(StatusCode::METHOD_NOT_ALLOWED, "POST only\n"));
    }
    let (parts, body) = request.into_parts();
    let body = match Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return Ok(reply(StatusCode::PAYLOAD_TOO_LARGE, "body too large\n")),
    };
    if let Some(verifier) = &receiver.verifier
        && verifier.verify(&body, &parts.headers).is_err()
    {
        return Ok(reply(StatusCode::UNAUTHORIZED, "bad signature\n"));
    }
    let id = parts
        .headers
        .get("webhook-id")
        .and_then(|v| v.to_str().ok());
    let fresh = match id {
        Some(id) => receiver
            .seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id),
        None => true,
    };
    if fresh {
        let line = format!(
            "{} {}\n",
            parts.uri.path(),
            String::from_utf8_lossy(&body).trim_end()
        );
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(line.as_bytes()).and_then(|()| out.flush());
    }
    Ok(reply(StatusCode::OK, "ok\n"))
}

struct Args {
    listen: SocketAddr,
    secret: Option<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        listen: SocketAddr::from(([127, 0, 0, 1], 9000)),
        secret: None,
    };
    let mut argv = std::env::args().skip(1);
    while let Some(flag) = argv.next() {
        let value = argv.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--listen" => args.listen = value.parse().map_err(|e| format!("--listen: {e}"))?,
            "--secret" => args.secret = Some(value),
            _ => return Err(format!("unknown argument {flag}")),
        }
    }
    Ok(args)
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!(
                "webhook_receiver: {e}\nusage: webhook_receiver [--listen ADDR] [--secret whsec_...]"
            );
            return ExitCode::from(2);
        }
    };
    let verifier = match args.secret.as_deref().map(Webhook::new).transpose() {
        Ok(verifier) => verifier,
        Err(e) => {
            eprintln!("webhook_receiver: bad --secret: {e}");
            return ExitCode::from(2);
        }
    };
    let receiver = Arc::new(Receiver {
        verifier,
        seen: Mutex::new(Seen {
            ids: HashSet::new(),
            order: VecDeque::new(),
            capacity: REMEMBERED_IDS,
        }),
    });
    let listener = match TcpListener::bind(args.listen).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("webhook_receiver: cannot listen on {}: {e}", args.listen);
            return ExitCode::from(2);
        }
    };
    let addr = listener.local_addr().unwrap_or(args.listen);
    println!("listening on {addr}");
    let _ = std::io::stdout().flush();

    loop {
        let (stream, _) = match listener.accept().await {
            Ok(conn) => conn,
            Err(e) => {
                eprintln!("accept: {e}");
                continue;
            }
        };
        let receiver = Arc::clone(&receiver);
        tokio::spawn(async move {
            let service = service_fn(move |request| handle(Arc::clone(&receiver), request));
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
