//! The `imgchkr serve` flags of the notifier (flattened by the HTTP crate). Every flag also
//! reads an `IMGCHKR_*` environment variable; list flags take a comma-separated variable.

use std::time::Duration;

use imgchkr_core::duration::parse_duration;
use imgchkr_egress::{AllowRule, DestinationPolicy};

use crate::config::{ConfigError, WebhookConfig};
use crate::sign::{Secret, SecretText};

/// Webhook delivery settings.
#[derive(Debug, Clone, clap::Args)]
pub struct WebhookArgs {
    /// Standard Webhooks signing secret, `whsec_<base64>` (the prefix is optional). Repeat to
    /// sign with several (key rotation). Unset: webhooks are sent unsigned.
    #[arg(
        long = "webhook-secret",
        env = "IMGCHKR_WEBHOOK_SECRET",
        value_delimiter = ',',
        hide_env_values = true,
        value_name = "SECRET"
    )]
    pub webhook_secret: Vec<SecretText>,

    /// Per-attempt timeout, connect included (`15s`, `300ms`, or seconds).
    #[arg(long, env = "IMGCHKR_WEBHOOK_TIMEOUT", default_value = "15s", value_parser = parse_duration)]
    pub webhook_timeout: Duration,

    /// Per-attempt connect timeout (DNS, TCP, TLS).
    #[arg(long, env = "IMGCHKR_WEBHOOK_CONNECT_TIMEOUT", default_value = "5s", value_parser = parse_duration)]
    pub webhook_connect_timeout: Duration,

    /// Attempts per event, the first included.
    #[arg(long, env = "IMGCHKR_WEBHOOK_ATTEMPTS", default_value_t = crate::config::DEFAULT_MAX_ATTEMPTS,
          value_parser = clap::value_parser!(u32).range(1..=100))]
    pub webhook_attempts: u32,

    /// Hard bound on one event's delivery, retries and waits included.
    #[arg(long, env = "IMGCHKR_WEBHOOK_DEADLINE", default_value = "60s", value_parser = parse_duration)]
    pub webhook_deadline: Duration,

    /// Webhook attempts in flight at once, across all jobs.
    #[arg(long, env = "IMGCHKR_WEBHOOK_MAX_IN_FLIGHT", default_value_t = crate::config::DEFAULT_MAX_IN_FLIGHT)]
    pub webhook_max_in_flight: usize,

    /// Webhook attempts in flight at once for one tenant [default: with several tenants
    /// configured, --webhook-max-in-flight divided among them; else no share].
    #[arg(long, env = "IMGCHKR_WEBHOOK_TENANT_MAX_IN_FLIGHT", value_parser = clap::value_parser!(u64).range(1..))]
    pub webhook_tenant_max_in_flight: Option<u64>,

    /// Allowed notification destinations: host names, `.domain` suffixes, IP addresses or
    /// CIDR ranges. Unset: any host.
    #[arg(
        long,
        env = "IMGCHKR_NOTIFY_ALLOW",
        value_delimiter = ',',
        value_name = "HOST|.SUFFIX|CIDR"
    )]
    pub notify_allow: Vec<AllowRule>,

    /// Refuse notification URLs that reach loopback, private, link-local, unique-local,
    /// CGNAT, multicast or cloud-metadata addresses. Turn on when clients are not trusted.
    #[arg(
        long,
        env = "IMGCHKR_NOTIFY_DENY_PRIVATE",
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub notify_deny_private: bool,
}

impl WebhookArgs {
    /// The notifier configuration these flags describe.
    pub fn config(&self) -> Result<WebhookConfig, ConfigError> {
        let config = WebhookConfig {
            secrets: self
                .webhook_secret
                .iter()
                .map(|s| Secret::parse(&s.0))
                .collect::<Result<_, _>>()?,
            timeout: self.webhook_timeout,
            connect_timeout: self.webhook_connect_timeout,
            max_attempts: self.webhook_attempts,
            deadline: self.webhook_deadline,
            max_in_flight: self.webhook_max_in_flight,
            max_in_flight_per_tenant: self
                .webhook_tenant_max_in_flight
                .and_then(|n| usize::try_from(n).ok()),
            destinations: DestinationPolicy::new(
                self.notify_allow.clone(),
                self.notify_deny_private,
            ),
            ..WebhookConfig::default()
        };
        config.validate()?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, FromArgMatches, Parser};

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        webhook: WebhookArgs,
    }

    /// `args` alone, whatever `IMGCHKR_*` variables the test run has: the environment is
    /// switched off for every flag.
    fn parse(args: &[&str]) -> Result<WebhookConfig, String> {
        let command = Cli::command().mut_args(|arg| arg.env(None));
        let matches = command
            .try_get_matches_from(std::iter::once("imgchkr").chain(args.iter().copied()))
            .map_err(|e| e.to_string())?;
        let cli = Cli::from_arg_matches(&matches).map_err(|e| e.to_string())?;
        cli.webhook.config().map_err(|e| e.to_string())
    }

    /// What the binary does: flags, then the environment.
    fn parse_with_env() -> Result<WebhookConfig, String> {
        let cli = Cli::try_parse_from(["imgchkr"]).map_err(|e| e.to_string())?;
        cli.webhook.config().map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_match_the_config_defaults() {
        let c = parse(&[]).unwrap();
        let d = WebhookConfig::default();
        assert_eq!(
            (
                c.timeout,
                c.connect_timeout,
                c.max_attempts,
                c.deadline,
                c.max_in_flight
            ),
            (
                d.timeout,
                d.connect_timeout,
                d.max_attempts,
                d.deadline,
                d.max_in_flight
            )
        );
        assert!(c.secrets.is_empty() && c.destinations.is_open());
    }

    #[test]
    fn flags_parse() {
        let c = parse(&[
            "--webhook-secret",
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw,whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
            "--webhook-timeout",
            "300ms",
            "--webhook-connect-timeout",
            "2",
            "--webhook-attempts",
            "5",
            "--webhook-deadline",
            "2m",
            "--webhook-max-in-flight",
            "8",
            "--notify-allow",
            ".example.com,10.0.0.0/8",
            "--notify-allow",
            "hooks.test",
            "--notify-deny-private",
        ])
        .unwrap();
        assert_eq!(c.secrets.len(), 2);
        assert_eq!(c.timeout, Duration::from_millis(300));
        assert_eq!(c.connect_timeout, Duration::from_secs(2));
        assert_eq!(c.max_attempts, 5);
        assert_eq!(c.deadline, Duration::from_secs(120));
        assert_eq!(c.max_in_flight, 8);
        assert_eq!(c.destinations.allow().len(), 3);
        assert!(c.destinations.deny_private());
    }

    #[test]
    fn bad_values_are_refused_with_a_reason() {
        let err = parse(&["--webhook-secret", "whsec_!!"]).unwrap_err();
        assert!(err.contains("invalid webhook secret"), "{err}");
        let err = parse(&["--notify-allow", "10.0.0.0/40"]).unwrap_err();
        assert!(err.contains("CIDR"), "{err}");
        assert!(parse(&["--webhook-attempts", "0"]).is_err());
        assert!(parse(&["--webhook-timeout", "0"]).is_err());
        assert!(parse(&["--webhook-max-in-flight", "0"]).is_err());
        // A secret never appears in an error.
        let err = parse(&["--webhook-secret", "whsec_c2hvcnQ="]).unwrap_err();
        assert!(!err.contains("c2hvcnQ"), "{err}");
    }

    /// The environment variables, read in a child process (the test binary itself) because
    /// changing this process's environment would race with the other tests. The child gets
    /// exactly the variables of its case: every other `IMGCHKR_*` is removed.
    #[test]
    fn environment_variables_are_read() {
        if let Ok(expected) = std::env::var("IMGCHKR_TEST_EXPECT") {
            let got = match parse_with_env() {
                Ok(c) => format!("{} {}", c.destinations.deny_private(), c.secrets.len()),
                Err(_) => "error".to_owned(),
            };
            assert_eq!(got, expected);
            return;
        }
        let two = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw,whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
        let cases = [
            ("true", "", "true 0"),
            ("1", "", "true 0"),
            ("yes", two, "true 2"),
            ("false", "", "false 0"),
            ("0", "", "false 0"),
            ("maybe", "", "error"),
            ("off", "whsec_!", "error"),
        ];
        let exe = std::env::current_exe().unwrap();
        for (deny, secrets, expected) in cases {
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
                .env("IMGCHKR_NOTIFY_DENY_PRIVATE", deny)
                .env("IMGCHKR_TEST_EXPECT", expected);
            if !secrets.is_empty() {
                child.env("IMGCHKR_WEBHOOK_SECRET", secrets);
            }
            let status = child.status().unwrap();
            assert!(
                status.success(),
                "{deny:?} {secrets:?} should give {expected:?}"
            );
        }
    }
}
