//! The state every attempt uses: one pooled HTTP client under the destination policy, and the
//! configuration. Built once per [`crate::WebhookNotifier`] and shared by its clones.

use std::sync::Arc;
use std::time::Duration;

use imgchkr_egress::{DestinationPolicy, client_builder};

use crate::config::{ConfigError, WebhookConfig};

/// Idle pooled connections are closed after this long; receivers often close sooner.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// The HTTP client of the webhooks, with what an attempt needs to know.
#[derive(Debug)]
pub(crate) struct WebhookClient {
    pub(crate) http: reqwest::Client,
    pub(crate) config: WebhookConfig,
    pub(crate) policy: Arc<DestinationPolicy>,
}

impl WebhookClient {
    /// The client for `config` (not validated here).
    pub(crate) fn new(config: WebhookConfig) -> Result<WebhookClient, ConfigError> {
        let policy = Arc::new(config.destinations.clone());
        let http = client_builder(Arc::clone(&policy))
            .user_agent(concat!("imgchkr/", env!("CARGO_PKG_VERSION")))
            // A 3xx is reported, never followed: following would send the signed body to a
            // host nobody checked.
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(config.connect_timeout)
            .timeout(config.timeout)
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .tcp_nodelay(true)
            .build()
            .map_err(|e| ConfigError::Client(e.to_string()))?;
        Ok(WebhookClient {
            http,
            config,
            policy,
        })
    }
}
