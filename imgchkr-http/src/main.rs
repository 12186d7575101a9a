//! The `imgchkr` binary: parse the command line, then serve (all, API only, workers only) or
//! check.

use std::process::ExitCode;

use clap::Parser;
use imgchkr_http::cli::{Cli, Command};
use imgchkr_http::service::Role;

/// Many small, short-lived allocations on several threads (requests, job records, webhook
/// bodies): mimalloc's per-thread heaps serve them with less contention and work than glibc's
/// arenas. The binary's choice only; the library crates leave the allocator to the program.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let (role, args) = match Cli::parse().into_command() {
        Command::Check(args) => {
            return match imgchkr_http::check::run(&args, &mut std::io::stdout().lock()) {
                Ok(status) => ExitCode::from(status),
                Err(e) => {
                    eprintln!("imgchkr check: {e}");
                    ExitCode::from(2)
                }
            };
        }
        Command::Token => {
            let (token, line) = imgchkr_http::token::new_token();
            println!("token: {token}");
            println!("token_sha256 = [\"{line}\"]");
            return ExitCode::SUCCESS;
        }
        Command::Serve(args) => (Role::Serve, args),
        Command::Api(args) => (Role::Api, args),
        Command::Worker(args) => (Role::Worker, args),
    };
    imgchkr_http::logging::init(args.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("imgchkr: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    ExitCode::from(runtime.block_on(imgchkr_http::service::run(*args, role)))
}
