//! [`DestinationCheck`]: the webhook destination policy applied to a notification URL at
//! submission time, so a refused URL is a `400` rather than a failed delivery later.

use std::sync::Arc;
use std::time::Duration;

use imgchkr_egress::{DestinationPolicy, check_url};
use url::Url;

use crate::config::WebhookConfig;

/// The destination policy of a [`WebhookConfig`] applied to a notification URL at submission
/// time. Cheap to clone.
#[derive(Debug, Clone)]
pub struct DestinationCheck {
    policy: Arc<DestinationPolicy>,
    timeout: Duration,
}

impl DestinationCheck {
    /// The check of `config`'s policy (the config is not otherwise validated).
    pub fn new(config: &WebhookConfig) -> DestinationCheck {
        DestinationCheck::with_policy(Arc::new(config.destinations.clone()), config)
    }

    /// The check of `policy`, already shared with a client, bounding DNS by `config`'s
    /// connect timeout.
    pub(crate) fn with_policy(
        policy: Arc<DestinationPolicy>,
        config: &WebhookConfig,
    ) -> DestinationCheck {
        DestinationCheck {
            policy,
            timeout: config.connect_timeout,
        }
    }

    /// Whether `url` may receive notifications. The error is the text to show under the field
    /// (`Notification URL not allowed: 10.0.0.1 is a private address`). With no policy
    /// configured this returns at once, without DNS.
    ///
    /// A name that does not resolve (now) is accepted: it may resolve by delivery time, and
    /// the policy is enforced again on the addresses connected to then.
    pub async fn check(&self, url: &Url) -> Result<(), String> {
        let refuse = |why: String| Err(format!("Notification URL not allowed: {why}"));
        if !matches!(url.scheme(), "http" | "https") {
            return refuse(format!(
                "the scheme must be http or https, not {}",
                url.scheme()
            ));
        }
        check_url(&self.policy, url, self.timeout)
            .await
            .or_else(refuse)
    }
}
