//! The seam between the service and its notifier: a [`Notifier`] that can also vet a
//! destination at submission time ([`Webhooks`]), and [`Checked`], which gives any notifier
//! the webhook destination policy.

use imgchkr_core::Notifier;
use imgchkr_core::notify::{BoxFuture, DeliveryOutcome, Notification};
use imgchkr_notify::DestinationCheck;
use url::Url;

/// A notifier the service can ask, before queueing, whether it would send to a URL.
pub trait Webhooks: Notifier + 'static {
    /// `Err(text)` when the destination policy refuses `url`; the text is shown to the client
    /// under `notifications.<event>`.
    fn check_destination<'a>(&'a self, url: &'a Url) -> BoxFuture<'a, Result<(), String>>;
}

impl Webhooks for imgchkr_core::RecordingNotifier {
    fn check_destination<'a>(&'a self, _url: &'a Url) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(std::future::ready(Ok(())))
    }
}

impl Webhooks for imgchkr_notify::WebhookNotifier {
    fn check_destination<'a>(&'a self, url: &'a Url) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(imgchkr_notify::WebhookNotifier::check_destination(
            self, url,
        ))
    }
}

/// Any [`Notifier`] delivering the events, with submissions vetted by a webhook destination
/// policy: what [`Service::notifier`](crate::service::Service::notifier) plugs in, so a custom
/// notifier keeps the `--notify-allow` / `--notify-deny-private` refusals.
pub struct Checked<N> {
    notifier: N,
    destinations: DestinationCheck,
}

impl<N: Notifier> Checked<N> {
    /// `notifier` delivers; `destinations` decides which URLs a submission may name.
    pub fn new(notifier: N, destinations: DestinationCheck) -> Checked<N> {
        Checked {
            notifier,
            destinations,
        }
    }
}

impl<N: Notifier> Notifier for Checked<N> {
    fn deliver<'a>(&'a self, n: &'a Notification) -> BoxFuture<'a, DeliveryOutcome> {
        self.notifier.deliver(n)
    }
}

impl<N: Notifier + 'static> Webhooks for Checked<N> {
    fn check_destination<'a>(&'a self, url: &'a Url) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(self.destinations.check(url))
    }
}
