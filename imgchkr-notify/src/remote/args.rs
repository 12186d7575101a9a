//! The `imgchkr serve` flags of remote locations (flattened by the HTTP crate). Every flag
//! also reads an `IMGCHKR_*` environment variable; list flags take a comma-separated variable.

use std::time::Duration;

use super::{DEFAULT_MAX_READS, DEFAULT_MAX_REDIRECTS, RemoteConfig};
use crate::config::{ConfigError, WebhookConfig, parse_duration};

/// An `assetPath.location` a server can accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum Location {
    /// A file in the image directory.
    Local,
    /// An http(s) URL, read with range requests.
    Url,
    /// An object in an S3-compatible store, `s3://bucket/key`.
    S3,
}

impl Location {
    /// The name in the contract.
    pub const fn name(self) -> &'static str {
        match self {
            Location::Local => "local",
            Location::Url => "url",
            Location::S3 => "s3",
        }
    }
}

/// Which locations are accepted, and how remote ones are fetched.
#[derive(Debug, Clone, clap::Args)]
pub struct RemoteArgs {
    /// Accepted `assetPath.location` values: `local`, `url`, `s3` (comma-separated).
    #[arg(
        long,
        env = "IMGCHKR_LOCATIONS",
        value_delimiter = ',',
        value_enum,
        default_value = "local"
    )]
    pub locations: Vec<Location>,

    /// Bound on one remote asset's validation, every request and redirect included.
    #[arg(long, env = "IMGCHKR_FETCH_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub fetch_timeout: Duration,

    /// Bound on one request of a remote asset (connect, status, body).
    #[arg(long, env = "IMGCHKR_FETCH_REQUEST_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub fetch_request_timeout: Duration,

    /// Connect timeout for remote assets (DNS, TCP, TLS).
    #[arg(long, env = "IMGCHKR_FETCH_CONNECT_TIMEOUT", default_value = "5s", value_parser = parse_duration)]
    pub fetch_connect_timeout: Duration,

    /// Redirects followed per request of a `url` asset (each judged by the destination policy).
    #[arg(long, env = "IMGCHKR_FETCH_MAX_REDIRECTS", default_value_t = DEFAULT_MAX_REDIRECTS)]
    pub fetch_max_redirects: usize,

    /// Range reads per remote asset (a JPEG needs one per large segment before its frame).
    #[arg(long, env = "IMGCHKR_FETCH_MAX_READS", default_value_t = DEFAULT_MAX_READS,
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub fetch_max_reads: u32,

    /// Buckets `s3` assets may name. Unset: any bucket the credentials can read.
    #[arg(
        long,
        env = "IMGCHKR_S3_BUCKETS",
        value_delimiter = ',',
        value_name = "BUCKET"
    )]
    pub s3_buckets: Vec<String>,
}

impl RemoteArgs {
    /// The accepted location names, deduplicated, for `Submission::from_json`.
    pub fn location_names(&self) -> Vec<&'static str> {
        let mut names: Vec<&'static str> = Vec::new();
        for location in &self.locations {
            if !names.contains(&location.name()) {
                names.push(location.name());
            }
        }
        names
    }

    /// Whether `url` or `s3` is enabled (a [`super::RemoteSources`] is needed).
    pub fn remote_enabled(&self) -> bool {
        self.locations
            .iter()
            .any(|l| matches!(l, Location::Url | Location::S3))
    }

    /// The fetch configuration these flags describe, with the destination policy of
    /// `webhooks` (`--notify-allow`, `--notify-deny-private`): one policy for every outbound
    /// request.
    pub fn config(&self, webhooks: &WebhookConfig) -> Result<RemoteConfig, ConfigError> {
        let config = RemoteConfig {
            timeout: self.fetch_timeout,
            request_timeout: self.fetch_request_timeout,
            connect_timeout: self.fetch_connect_timeout,
            max_redirects: self.fetch_max_redirects,
            max_reads: self.fetch_max_reads,
            s3_buckets: self.s3_buckets.clone(),
            ..RemoteConfig::with_destinations_of(webhooks)
        };
        config.validate()?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        remote: RemoteArgs,
        #[command(flatten)]
        webhook: crate::WebhookArgs,
    }

    fn parse(args: &[&str]) -> Result<(Vec<&'static str>, RemoteConfig), String> {
        let cli = Cli::try_parse_from(std::iter::once("imgchkr").chain(args.iter().copied()))
            .map_err(|e| e.to_string())?;
        let webhooks = cli.webhook.config().map_err(|e| e.to_string())?;
        let config = cli.remote.config(&webhooks).map_err(|e| e.to_string())?;
        Ok((cli.remote.location_names(), config))
    }

    #[test]
    fn flags_parse_and_share_the_webhook_policy() {
        if std::env::vars().any(|(k, _)| k.starts_with("IMGCHKR_")) {
            return;
        }
        let (locations, c) = parse(&[]).unwrap();
        assert_eq!(locations, ["local"]);
        assert_eq!(c.timeout, super::super::DEFAULT_FETCH_TIMEOUT);
        let (locations, c) = parse(&[
            "--locations",
            "local,url",
            "--locations",
            "s3,url",
            "--fetch-timeout",
            "2s",
            "--fetch-request-timeout",
            "500ms",
            "--fetch-connect-timeout",
            "1",
            "--fetch-max-redirects",
            "0",
            "--fetch-max-reads",
            "4",
            "--s3-buckets",
            "images,thumbs",
            "--notify-allow",
            ".example.com",
            "--notify-deny-private",
        ])
        .unwrap();
        assert_eq!(locations, ["local", "url", "s3"]);
        assert_eq!(c.timeout, Duration::from_secs(2));
        assert_eq!(c.request_timeout, Duration::from_millis(500));
        assert_eq!(c.connect_timeout, Duration::from_secs(1));
        assert_eq!((c.max_redirects, c.max_reads), (0, 4));
        assert_eq!(c.s3_buckets, ["images", "thumbs"]);
        assert_eq!(c.allow.len(), 1);
        assert!(c.deny_private);
        assert!(parse(&["--locations", "ftp"]).is_err());
        assert!(parse(&["--fetch-max-reads", "0"]).is_err());
        assert!(parse(&["--fetch-timeout", "0"]).is_err());
    }
}
