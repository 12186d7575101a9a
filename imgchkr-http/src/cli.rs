//! The command line: `imgchkr [serve] [FLAGS]`, `imgchkr api|worker --store URL [FLAGS]` and
//! `imgchkr check [--json] PATH...`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, FromArgMatches, Parser, Subcommand, ValueEnum};
use imgchkr_core::Policy;
use imgchkr_core::duration::parse_duration;

/// Header-only image validation: an HTTP service with webhooks, and a local checker.
#[derive(Debug, Parser)]
#[command(name = "imgchkr", version, args_conflicts_with_subcommands = true)]
pub struct Cli {
    /// What to do; `serve` when omitted.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Flags of `serve`, accepted without the subcommand.
    #[command(flatten)]
    pub serve: ServeArgs,
}

impl Cli {
    /// The command to run, `serve` by default.
    pub fn into_command(self) -> Command {
        self.command.unwrap_or(Command::Serve(Box::new(self.serve)))
    }
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP service and its workers (the default).
    Serve(Box<ServeArgs>),
    /// Run only the HTTP API; jobs go to a shared store for `imgchkr worker` processes
    /// (needs a shared --store: redis:// or postgres://).
    Api(Box<ServeArgs>),
    /// Run only workers taking jobs from a shared store; no HTTP listener (needs a shared
    /// --store: redis:// or postgres://).
    Worker(Box<ServeArgs>),
    /// Validate local files with the service's rules and texts; exit 0 if all are valid,
    /// 1 if any is invalid, 2 on a usage error.
    Check(CheckArgs),
    /// Print a new random bearer token and its `token_sha256 = ["…"]` line for a tenants
    /// file.
    Token,
}

/// The validation limits, shared by `serve` and `check`.
#[derive(Debug, Clone, Args)]
pub struct LimitArgs {
    /// Largest allowed file size in bytes, inclusive.
    #[arg(long, env = "IMGCHKR_MAX_BYTES", default_value_t = imgchkr_core::policy::DEFAULT_MAX_BYTES)]
    pub max_bytes: u64,
    /// Largest allowed width in pixels, inclusive.
    #[arg(long, env = "IMGCHKR_MAX_WIDTH", default_value_t = imgchkr_core::policy::DEFAULT_MAX_DIMENSION)]
    pub max_width: u32,
    /// Largest allowed height in pixels, inclusive.
    #[arg(long, env = "IMGCHKR_MAX_HEIGHT", default_value_t = imgchkr_core::policy::DEFAULT_MAX_DIMENSION)]
    pub max_height: u32,
    /// Allowed formats, comma-separated: jpeg, png, gif, webp, bmp. A file in another format
    /// fails with `Not a JPEG (<found>)` under the default, `Format not allowed (<found>);
    /// allowed: …` otherwise.
    #[arg(long, env = "IMGCHKR_FORMATS", default_value = "jpeg")]
    pub formats: imgchkr_core::Formats,
    /// How deep to check: `header` (dimensions from the headers only, the default) or
    /// `decode` (after the header checks pass, decode the whole image and fail corrupt data
    /// with `Corrupt image data: <reason>`).
    #[arg(long, env = "IMGCHKR_VERIFY", default_value = "header", value_parser = ["header", "decode"])]
    pub verify: String,
    /// JPEG: refuse extraneous bytes between marker segments as ITU-T T.81 does, instead of
    /// skipping them as libjpeg does with a warning.
    #[arg(long, env = "IMGCHKR_STRICT")]
    pub strict: bool,
}

impl LimitArgs {
    /// The policy these limits make.
    pub fn policy(&self) -> Policy {
        let mut policy = Policy::default();
        policy.max_bytes = self.max_bytes;
        policy.max_width = self.max_width;
        policy.max_height = self.max_height;
        policy.formats = self.formats;
        if self.verify == "decode" {
            policy.verify = imgchkr_core::Verify::Decode;
        }
        policy.strict = self.strict;
        policy
    }
}

/// `imgchkr check`.
#[derive(Debug, Clone, Args)]
pub struct CheckArgs {
    /// Print one JSON object per path, one per line.
    #[arg(long)]
    pub json: bool,
    /// The limits to check against.
    #[command(flatten)]
    pub limits: LimitArgs,
    /// The files to check.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One JSON object per line.
    Json,
    /// Human-readable text.
    Text,
}

/// `imgchkr serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on; port 0 picks a free port (the bound address is logged).
    #[arg(long, env = "IMGCHKR_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Directory that `local` asset paths are resolved in and confined to.
    #[arg(long, env = "IMGCHKR_IMAGE_DIR", default_value = ".")]
    pub image_dir: PathBuf,
    /// Image headers read at once [default: available cores]: `url`/`s3` fetches, and
    /// `local` reads when they run on threads (--blocking-local-reads).
    #[arg(long, env = "IMGCHKR_WORKERS")]
    pub workers: Option<usize>,
    /// Read `local` headers on a blocking thread pool (at most --workers threads) instead of
    /// inline on the async workers. The inline read (open, ≤ 3 reads of 1 KiB, close) costs
    /// less than handing it to a thread when the image directory is on a local disk; set this
    /// when it is on a network filesystem, where one read can stall for seconds.
    #[arg(long, env = "IMGCHKR_BLOCKING_LOCAL_READS")]
    pub blocking_local_reads: bool,
    /// Jobs in flight at once (each mostly waits on its webhooks).
    #[arg(long, env = "IMGCHKR_MAX_CONCURRENT_JOBS", default_value_t = 1024)]
    pub max_concurrent_jobs: usize,
    /// Jobs waiting for a worker, overall; past it submissions get 503.
    #[arg(long, env = "IMGCHKR_QUEUE_CAPACITY", default_value_t = 10_000)]
    pub queue_capacity: usize,
    /// Jobs one tenant may have waiting [default: queue capacity / number of tenants].
    #[arg(long, env = "IMGCHKR_TENANT_QUEUE_SHARE")]
    pub tenant_queue_share: Option<usize>,
    /// The validation limits.
    #[command(flatten)]
    pub limits: LimitArgs,
    /// The longest `Prefer: wait=N` a submission may ask for: it is answered 200 with the
    /// job once its verdict is in, within that time, else 202 as usual.
    #[arg(long, env = "IMGCHKR_MAX_WAIT", default_value = "30s", value_parser = parse_duration)]
    pub max_wait: Duration,
    /// Largest accepted request body in bytes; larger gets 413.
    #[arg(long, env = "IMGCHKR_MAX_BODY_BYTES", default_value_t = 64 * 1024)]
    pub max_body_bytes: usize,
    /// How long a finished job stays readable (e.g. 90s, 30m, 1h, 2d).
    #[arg(long, env = "IMGCHKR_JOB_RETENTION", default_value = "1h", value_parser = parse_duration)]
    pub job_retention: Duration,
    /// How many jobs are kept per tenant; past it that tenant's oldest finished jobs are
    /// forgotten (never another tenant's).
    #[arg(long, env = "IMGCHKR_MAX_JOBS", default_value_t = 100_000)]
    pub max_jobs: u64,
    /// Tenants in TOML (tokens by SHA-256, notify_allow, locations, image_subdir,
    /// rate_limit, max_queued, request_secret); read again on SIGHUP. Beside any
    /// --auth-token. With neither, /assets is open.
    #[arg(long, env = "IMGCHKR_TENANTS", value_name = "FILE")]
    pub tenants: Option<PathBuf>,
    /// Jobs one tenant may have in flight at once, across every worker [default: with
    /// several tenants configured, --max-concurrent-jobs divided among them; else no cap].
    #[arg(long, env = "IMGCHKR_TENANT_MAX_IN_FLIGHT", value_parser = clap::value_parser!(u64).range(1..))]
    pub tenant_max_in_flight: Option<u64>,
    /// Serve HTTPS on --listen with this PEM certificate chain (with --tls-key); read again
    /// on SIGHUP.
    #[arg(
        long,
        env = "IMGCHKR_TLS_CERT",
        value_name = "FILE",
        requires = "tls_key"
    )]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(
        long,
        env = "IMGCHKR_TLS_KEY",
        value_name = "FILE",
        requires = "tls_cert"
    )]
    pub tls_key: Option<PathBuf>,
    /// A tenant and its bearer token, TENANT:TOKEN; repeatable. With none, /assets is open.
    #[arg(long = "auth-token", env = "IMGCHKR_AUTH_TOKENS", hide_env_values = true, value_delimiter = ',', value_parser = parse_token)]
    pub auth_tokens: Vec<(String, String)>,
    /// The operator token of the dashboard (`/ui`) and its JSON (`/admin/*`): sent as
    /// `Authorization: Bearer <token>`, or as the password of Basic credentials (browsers).
    /// Without it they are open, unless tenants authenticate: then they answer 401.
    #[arg(
        long,
        env = "IMGCHKR_ADMIN_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub admin_token: Option<String>,
    /// On SIGINT/SIGTERM, how long to finish jobs and their webhooks before exiting.
    #[arg(long, env = "IMGCHKR_DRAIN_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub drain_timeout: Duration,
    /// Connections served at once [default: half the process's file descriptor limit, at
    /// most 10000]; past it only health checks are answered.
    #[arg(long, env = "IMGCHKR_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// How long a client may take to send a request's headers.
    #[arg(long, env = "IMGCHKR_HEADER_READ_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub header_read_timeout: Duration,
    /// How long a client may take to send a request's body.
    #[arg(long, env = "IMGCHKR_BODY_READ_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub body_read_timeout: Duration,
    /// Log line format (filter with RUST_LOG, default info).
    #[arg(long, env = "IMGCHKR_LOG_FORMAT", value_enum, default_value_t = LogFormat::Json)]
    pub log_format: LogFormat,
    /// Where job records live: `sqlite:PATH` (the embedded durable default, relative to the
    /// working directory or absolute), `memory:` (lost on exit), `redis://…`/`rediss://…` or
    /// `postgres://…` (shared by `api` and `worker` processes), or a comma-separated list of
    /// `redis://…` (or of `postgres://…`) URLs: shards, each tenant on one of them.
    #[arg(
        long,
        env = "IMGCHKR_STORE",
        hide_env_values = true,
        value_name = "URL",
        conflicts_with = "redis"
    )]
    pub store: Option<String>,
    /// How waiting jobs reach workers: any store URL, or `amqp://…` (RabbitMQ, beside a
    /// shared store) [default: the store].
    #[arg(
        long,
        env = "IMGCHKR_QUEUE",
        hide_env_values = true,
        value_name = "URL"
    )]
    pub queue: Option<String>,
    /// A synonym of `--store` with a `redis://` URL.
    #[arg(
        long,
        env = "IMGCHKR_REDIS",
        hide_env_values = true,
        value_name = "URL"
    )]
    pub redis: Option<String>,
    /// A job whose worker has sent no heartbeat for this long is taken over by another
    /// worker (a worker killed mid-job costs this much delay).
    #[arg(long, alias = "redis-reclaim-idle", env = "IMGCHKR_LEASE_IDLE", default_value = "60s", value_parser = parse_duration)]
    pub lease_idle: Duration,
    /// How often a worker pushes back the leases of the jobs it holds; must be under
    /// --lease-idle.
    #[arg(long, alias = "redis-heartbeat", env = "IMGCHKR_HEARTBEAT", default_value = "15s", value_parser = parse_duration)]
    pub heartbeat: Duration,
    /// A job handed out more than this many times without finishing (its workers keep
    /// dying) is parked as failed, with its onFailure sent.
    #[arg(long, alias = "redis-max-deliveries", env = "IMGCHKR_MAX_DELIVERIES", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_deliveries: u32,
    /// Also serve /healthz, /readyz and /metrics (and nothing else) on this address: the way
    /// to probe and scrape `imgchkr worker`, which has no API listener.
    #[arg(long, env = "IMGCHKR_METRICS_LISTEN", value_name = "ADDR")]
    pub metrics_listen: Option<SocketAddr>,
    /// Webhook delivery settings.
    #[command(flatten)]
    pub webhooks: imgchkr_notify::WebhookArgs,
    /// Accepted locations and remote fetch settings.
    #[command(flatten)]
    pub remote: imgchkr_fetch::RemoteArgs,
}

impl Default for ServeArgs {
    /// The documented defaults of every flag, ignoring the `IMGCHKR_*` environment: the
    /// starting point for configuring an embedded service in code.
    fn default() -> ServeArgs {
        let command =
            ServeArgs::augment_args(clap::Command::new("imgchkr")).mut_args(|arg| arg.env(None));
        // Cannot fail: every flag has a default or is optional (`defaults_need_no_input`).
        #[allow(clippy::expect_used)]
        ServeArgs::from_arg_matches(&command.get_matches_from(["imgchkr"]))
            .expect("every serve flag has a default")
    }
}

impl ServeArgs {
    /// The defaults overridden by the `IMGCHKR_*` environment variables, as the binary reads
    /// them (without the command line).
    pub fn from_env() -> Result<ServeArgs, clap::Error> {
        let command = ServeArgs::augment_args(clap::Command::new("imgchkr"));
        ServeArgs::from_arg_matches(&command.try_get_matches_from(["imgchkr"])?)
    }

    /// The store URL: `--store`, `--redis`, or the embedded default.
    pub fn store_url(&self) -> &str {
        self.store
            .as_deref()
            .or(self.redis.as_deref())
            .unwrap_or(DEFAULT_STORE)
    }

    /// The queue URL: `--queue`, or the store's.
    pub fn queue_url(&self) -> &str {
        self.queue.as_deref().unwrap_or_else(|| self.store_url())
    }

    /// Blocking validation threads: `--workers`, or the available cores.
    pub fn workers(&self) -> usize {
        self.workers
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()))
            .max(1)
    }

    /// How many jobs one tenant may have waiting.
    /// How many jobs one tenant may have waiting, `tenants` being configured.
    pub fn tenant_queue_share(&self, tenants: usize) -> usize {
        self.tenant_queue_share
            .unwrap_or(self.queue_capacity / tenants.max(1))
            .clamp(1, self.queue_capacity.max(1))
    }
}

/// The store when none is given: the embedded durable engine, in the working directory.
pub const DEFAULT_STORE: &str = "sqlite:imgchkr.db";

/// Parses `TENANT:TOKEN`.
pub fn parse_token(s: &str) -> Result<(String, String), String> {
    match s.trim().split_once(':') {
        Some((tenant, token)) if !tenant.is_empty() && !token.is_empty() => {
            Ok((tenant.to_owned(), token.to_owned()))
        }
        _ => Err("expected TENANT:TOKEN".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn defaults_need_no_input() {
        let defaults = ServeArgs::default();
        assert_eq!(defaults.listen, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(defaults.queue_capacity, 10_000);
        assert_eq!(defaults.lease_idle, Duration::from_secs(60));
        assert_eq!(defaults.max_deliveries, 5);
        assert_eq!(defaults.store_url(), DEFAULT_STORE);
        assert_eq!(defaults.queue_url(), DEFAULT_STORE);
        assert!(defaults.redis.is_none() && defaults.metrics_listen.is_none());
        assert_eq!(defaults.limits.policy(), Policy::default());
    }

    /// One grammar for every duration flag, whichever crate declares it: `1.5s` was refused
    /// by the service's own flags, `2d` by the webhook and fetch flags.
    #[test]
    fn every_duration_flag_takes_one_grammar() {
        let command = Cli::command().mut_args(|arg| arg.env(None));
        let matches = command
            .try_get_matches_from([
                "imgchkr",
                "--job-retention",
                "1.5s",
                "--drain-timeout",
                "2d",
                "--webhook-deadline",
                "2d",
                "--fetch-timeout",
                "1h 30m",
            ])
            .unwrap();
        let cli = Cli::from_arg_matches(&matches).unwrap();
        assert_eq!(cli.serve.job_retention, Duration::from_millis(1_500));
        assert_eq!(cli.serve.drain_timeout, Duration::from_secs(172_800));
        assert_eq!(
            cli.serve.webhooks.webhook_deadline,
            Duration::from_secs(172_800)
        );
        assert_eq!(cli.serve.remote.fetch_timeout, Duration::from_secs(5_400));
    }

    #[test]
    fn durations_and_tokens_parse() {
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert!(parse_duration("x").is_err());
        assert_eq!(parse_token("a:b:c"), Ok(("a".into(), "b:c".into())));
        assert!(parse_token("a").is_err());
    }
}
