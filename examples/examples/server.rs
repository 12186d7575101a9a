//! The smallest program running the imgchkr HTTP service from the library crates (not the
//! `imgchkr` binary): the configuration is built in code with `ServeArgs` (the `imgchkr serve`
//! flags as a struct), the image directory is the current directory, and
//! `imgchkr_http::service::Service` serves the API with in-process workers until Ctrl-C
//! (SIGINT) or SIGTERM, then drains its jobs and returns.
//!
//! `ServeArgs::from_env()` starts from the documented defaults plus the `IMGCHKR_*`
//! environment variables (e.g. `IMGCHKR_WEBHOOK_SECRET=whsec_…` to sign webhooks);
//! `ServeArgs::default()` ignores the environment. Logs are JSON lines on stderr.
//!
//! Run it from the workspace root (the address defaults to 127.0.0.1:8080):
//!
//! ```text
//! cargo run --example server -- 127.0.0.1:8080
//! ```

use std::process::ExitCode;

use imgchkr_http::cli::ServeArgs;
use imgchkr_http::service::Service;

#[tokio::main]
async fn main() -> ExitCode {
    let mut args = match ServeArgs::from_env() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("server: {e}");
            return ExitCode::from(2);
        }
    };
    let listen = std::env::args().nth(1);
    args.listen = match listen.as_deref().unwrap_or("127.0.0.1:8080").parse() {
        Ok(addr) => addr,
        Err(e) => {
            eprintln!("server: invalid address: {e}");
            return ExitCode::from(2);
        }
    };
    args.image_dir = ".".into();
    // Any other setting can be changed the same way, e.g. the limits:
    args.limits.max_bytes = 10 * 1024 * 1024;
    imgchkr_http::logging::init(args.log_format);

    match Service::new(args).run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("server: {e}");
            ExitCode::from(2)
        }
    }
}
