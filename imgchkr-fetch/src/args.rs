//! The `imgchkr serve` flags of remote locations (flattened by the HTTP crate). Every flag
//! also reads an `IMGCHKR_*` environment variable; list flags take a comma-separated variable.

use std::time::Duration;

use imgchkr_core::duration::parse_duration;
use imgchkr_egress::DestinationPolicy;

use crate::config::{
    ConfigError, DEFAULT_MAX_CONCURRENT, DEFAULT_MAX_READS, DEFAULT_MAX_REDIRECTS, RemoteConfig,
};

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

    /// Remote assets fetched at once (their own bound: slow remote servers never hold the
    /// probe places of local reads); past it a fetch waits, within --fetch-timeout.
    #[arg(long, env = "IMGCHKR_FETCH_MAX_CONCURRENT", default_value_t = DEFAULT_MAX_CONCURRENT,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1_000_000))]
    pub fetch_max_concurrent: usize,

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

    /// Whether `url` or `s3` is enabled (a [`crate::RemoteSources`] is needed).
    pub fn remote_enabled(&self) -> bool {
        self.locations
            .iter()
            .any(|l| matches!(l, Location::Url | Location::S3))
    }

    /// The fetch configuration these flags describe, under `destinations`: the server passes
    /// the webhooks' policy (`--notify-allow`, `--notify-deny-private`), one policy for every
    /// outbound request.
    pub fn config(&self, destinations: &DestinationPolicy) -> Result<RemoteConfig, ConfigError> {
        let config = RemoteConfig {
            timeout: self.fetch_timeout,
            request_timeout: self.fetch_request_timeout,
            connect_timeout: self.fetch_connect_timeout,
            max_redirects: self.fetch_max_redirects,
            max_reads: self.fetch_max_reads,
            max_concurrent: self.fetch_max_concurrent,
            s3_buckets: self.s3_buckets.clone(),
            ..RemoteConfig::with_destinations(destinations.clone())
        };
        config.validate()?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DEFAULT_FETCH_TIMEOUT;
    use clap::{CommandFactory, FromArgMatches, Parser};

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        remote: RemoteArgs,
    }

    /// `args` alone, whatever `IMGCHKR_*` variables the test run has: the environment is
    /// switched off for every flag.
    fn parse(args: &[&str]) -> Result<(Vec<&'static str>, RemoteConfig), String> {
        let command = Cli::command().mut_args(|arg| arg.env(None));
        let matches = command
            .try_get_matches_from(std::iter::once("imgchkr").chain(args.iter().copied()))
            .map_err(|e| e.to_string())?;
        let cli = Cli::from_arg_matches(&matches).map_err(|e| e.to_string())?;
        let destinations = DestinationPolicy::new(vec![".example.com".parse().unwrap()], true);
        let config = cli
            .remote
            .config(&destinations)
            .map_err(|e| e.to_string())?;
        Ok((cli.remote.location_names(), config))
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let (locations, c) = parse(&[]).unwrap();
        assert_eq!(locations, ["local"]);
        let d = RemoteConfig::default();
        assert_eq!(
            (c.timeout, c.request_timeout, c.connect_timeout),
            (DEFAULT_FETCH_TIMEOUT, d.request_timeout, d.connect_timeout)
        );
        assert_eq!(
            (c.max_redirects, c.max_reads),
            (d.max_redirects, d.max_reads)
        );
        assert!(c.s3_buckets.is_empty());
    }

    #[test]
    fn flags_parse_and_take_the_given_policy() {
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
            "--fetch-max-concurrent",
            "3",
            "--s3-buckets",
            "images,thumbs",
        ])
        .unwrap();
        assert_eq!(locations, ["local", "url", "s3"]);
        assert_eq!(c.timeout, Duration::from_secs(2));
        assert_eq!(c.request_timeout, Duration::from_millis(500));
        assert_eq!(c.connect_timeout, Duration::from_secs(1));
        assert_eq!((c.max_redirects, c.max_reads, c.max_concurrent), (0, 4, 3));
        assert_eq!(c.s3_buckets, ["images", "thumbs"]);
        assert_eq!(c.destinations.allow().len(), 1);
        assert!(c.destinations.deny_private());
        assert!(parse(&["--locations", "ftp"]).is_err());
        assert!(parse(&["--fetch-max-reads", "0"]).is_err());
        assert!(parse(&["--fetch-max-concurrent", "0"]).is_err());
        assert!(parse(&["--fetch-timeout", "0"]).is_err());
    }

    /// The environment variables, read in a child process (the test binary itself) because
    /// changing this process's environment would race with the other tests. The child gets
    /// exactly the variables of its case: every other `IMGCHKR_*` is removed.
    #[test]
    fn environment_variables_are_read() {
        if let Ok(expected) = std::env::var("IMGCHKR_TEST_EXPECT") {
            let got = match Cli::try_parse_from(["imgchkr"]) {
                Ok(cli) => format!(
                    "{:?} {:?}",
                    cli.remote.location_names(),
                    cli.remote.fetch_timeout
                ),
                Err(_) => "error".to_owned(),
            };
            assert_eq!(got, expected);
            return;
        }
        let cases = [
            (&[][..], r#"["local"] 30s"#),
            (
                &[("IMGCHKR_LOCATIONS", "url,s3")][..],
                r#"["url", "s3"] 30s"#,
            ),
            (&[("IMGCHKR_FETCH_TIMEOUT", "2s")][..], r#"["local"] 2s"#),
            (&[("IMGCHKR_LOCATIONS", "ftp")][..], "error"),
        ];
        let exe = std::env::current_exe().unwrap();
        for (vars, expected) in cases {
            let mut child = std::process::Command::new(&exe);
            child
                .args([
                    "--exact",
                    "args::tests::environment_variables_are_read",
                    "--quiet",
                ])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null());
            for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("IMGCHKR_")) {
                child.env_remove(key);
            }
            child
                .envs(vars.iter().copied())
                .env("IMGCHKR_TEST_EXPECT", expected);
            let status = child.status().unwrap();
            assert!(status.success(), "{vars:?} should give {expected:?}");
        }
    }
}
