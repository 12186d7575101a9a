//! The seam between the service and its webhook sender: a [`Notifier`] that can also vet a
//! destination at submission time.

use imgchkr_core::Notifier;
use imgchkr_core::notify::BoxFuture;
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
