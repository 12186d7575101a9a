//! The smallest program running the imgchkr HTTP service from the library crates (not the
//! `imgchkr` binary): the configuration is built in code, the image directory is the current
//! directory, and `imgchkr_http::service::run` (role `Serve`: HTTP API and in-process workers)
//! serves until Ctrl-C (SIGINT) or SIGTERM, then drains its jobs and returns.
//!
//! Every other setting keeps its default (and its `IMGCHKR_*` environment variable, e.g.
//! `IMGCHKR_WEBHOOK_SECRET=whsec_…` to sign webhooks). Logs are JSON lines on stderr.
//!
//! Run it from the workspace root (the address defaults to 127.0.0.1:8080):
//!
//! ```text
//! cargo run --example server -- 127.0.0.1:8080
//! ```

use std::process::ExitCode;

use clap::Parser;
use imgchkr_http::cli::{Cli, Command};

fn main() -> ExitCode {
    let listen = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8080".to_owned());
    // `ServeArgs` is a clap `Args`: parsing a fixed argument list fills every other field
    // with its documented default.
    let cli = Cli::parse_from(["server", "--listen", &listen, "--image-dir", "."]);
    let Command::Serve(args) = cli.into_command() else {
        return ExitCode::from(2);
    };
    imgchkr_http::logging::init(args.log_format);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("server: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    ExitCode::from(runtime.block_on(imgchkr_http::service::run(
        *args,
        imgchkr_http::service::Role::Serve,
    )))
}
