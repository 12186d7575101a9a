//! A minimal webhook sender used until imgchkr-notify lands: one attempt, 5 s timeout.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::Request;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use imgchkr_core::notify::{Attempt, BoxFuture, DeliveryOutcome, Notification, Notifier};
use url::Url;

use crate::webhooks::Webhooks;

/// Stand-in flags (none yet).
#[derive(Debug, Clone, clap::Args)]
pub struct WebhookArgs {}

/// A plain-HTTP webhook sender.
#[derive(Clone)]
pub struct StandinNotifier {
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Default for StandinNotifier {
    fn default() -> Self {
        StandinNotifier {
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }
}

impl Notifier for StandinNotifier {
    fn deliver<'a>(&'a self, n: &'a Notification) -> BoxFuture<'a, DeliveryOutcome> {
        Box::pin(async move {
            let started = Instant::now();
            let request = Request::post(n.url.as_str())
                .header("content-type", "application/json")
                .header("webhook-id", n.webhook_id.as_str())
                .body(Full::new(Bytes::from(n.payload.to_json())));
            let attempt = match request {
                Err(e) => Attempt::failed(1, e.to_string(), started.elapsed()),
                Ok(request) => {
                    match tokio::time::timeout(Duration::from_secs(5), self.client.request(request))
                        .await
                    {
                        Err(_) => Attempt::failed(1, "timeout", started.elapsed()),
                        Ok(Err(e)) => {
                            let text = if format!("{e:?}").contains("ConnectionRefused") {
                                "connection refused".to_owned()
                            } else {
                                e.to_string()
                            };
                            Attempt::failed(1, text, started.elapsed())
                        }
                        Ok(Ok(response)) => {
                            Attempt::answered(1, response.status().as_u16(), started.elapsed())
                        }
                    }
                }
            };
            DeliveryOutcome::from_attempts(vec![attempt])
        })
    }
}

impl Webhooks for StandinNotifier {
    fn check_destination<'a>(&'a self, _url: &'a Url) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(std::future::ready(Ok(())))
    }
}
