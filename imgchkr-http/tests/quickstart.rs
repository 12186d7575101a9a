//! The README's quick start, run as written: its commands are read from the README (between
//! the `quickstart:begin` and `quickstart:end` marks), the server started from the workspace
//! root with the README's arguments, the example webhook receiver started with its
//! arguments, and the `curl` commands run by `sh`. Only what cannot be literal here changes:
//! `cargo run …` is the binary cargo already built, and the ports are free ones (the server
//! binds `IMGCHKR_LISTEN=127.0.0.1:0`, the README's addresses are rewritten to the real ones).
//! The receiver must print what the README says, and the looked-up job must be the failure.
//!
//! Needs `curl` and the `webhook_receiver` example (built by `cargo test --workspace`, or
//! `cargo build --example webhook_receiver`).

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Server, wait_within};
use serde_json::Value;

const README_SERVER: &str = "localhost:8080";
const README_RECEIVER: &str = "127.0.0.1:9000";

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// The quick start's commands: each indented block of the marked part of the README, its
/// lines joined (a `curl -d '{` spans several).
fn commands() -> (Vec<String>, Vec<String>) {
    let readme = std::fs::read_to_string(workspace().join("README.md")).unwrap();
    let begin = readme
        .find("<!-- quickstart:begin")
        .expect("quickstart:begin mark");
    let end = readme
        .find("<!-- quickstart:end")
        .expect("quickstart:end mark");
    let mut blocks: Vec<Vec<&str>> = vec![];
    let mut in_block = false;
    for line in readme[begin..end].lines() {
        match line.strip_prefix("    ") {
            Some(code) => {
                if !in_block {
                    blocks.push(vec![]);
                }
                blocks.last_mut().unwrap().push(code);
                in_block = true;
            }
            None => in_block = !line.trim().is_empty() && in_block,
        }
    }
    // Blocks of commands, and the receiver's expected output (lines beginning `/print/`).
    let mut commands = vec![];
    let mut printed = vec![];
    for block in blocks {
        if block[0].starts_with("/print/") {
            printed.extend(block.iter().map(|l| l.to_string()));
            continue;
        }
        let mut current = String::new();
        for line in block {
            if !current.is_empty() {
                current.push('\n');
            }
            current.push_str(line);
            // A command ends where its quotes are balanced.
            if current.matches('\'').count().is_multiple_of(2) {
                commands.push(std::mem::take(&mut current));
            }
        }
        assert!(current.is_empty(), "an unterminated command: {current}");
    }
    (commands, printed)
}

/// The arguments of `cargo run … -- <args>`.
fn args_after_dashes(command: &str) -> Vec<String> {
    command
        .split_once(" -- ")
        .map(|(_, args)| args.split_whitespace().map(str::to_owned).collect())
        .unwrap_or_default()
}

/// The example webhook receiver, its stdout kept line by line.
struct ExampleReceiver {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Drop for ExampleReceiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_receiver(args: &[String], addr: SocketAddr) -> ExampleReceiver {
    let exe = std::env::current_exe().unwrap();
    let path = exe
        .parent()
        .and_then(Path::parent)
        .unwrap()
        .join("examples/webhook_receiver");
    assert!(
        path.is_file(),
        "{} is missing: cargo build --example webhook_receiver (cargo test --workspace builds it)",
        path.display()
    );
    let args: Vec<String> = args
        .iter()
        .map(|a| a.replace(README_RECEIVER, &addr.to_string()))
        .collect();
    let mut child = Command::new(path)
        .args(&args)
        .current_dir(workspace())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = lines.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            sink.lock().unwrap().push(line);
        }
    });
    let receiver = ExampleReceiver { child, lines };
    wait_within("the receiver", Duration::from_secs(10), || {
        let lines = receiver.lines.lock().unwrap();
        lines
            .iter()
            .any(|l| l.starts_with("listening on "))
            .then_some(())
    });
    receiver
}

/// Runs a README `curl` command with `sh`, the addresses rewritten; its output.
fn curl(command: &str, server: SocketAddr, receiver: SocketAddr) -> String {
    let command = command
        .replace(README_SERVER, &server.to_string())
        .replace(README_RECEIVER, &receiver.to_string());
    let out = Command::new("sh")
        .args(["-c", &command])
        .output()
        .expect("sh");
    assert!(
        out.status.success(),
        "`{command}` failed ({}): is curl installed? {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn the_readme_quick_start_shows_a_success_then_a_failure() {
    let (commands, printed) = commands();
    let server_cmd = commands
        .iter()
        .find(|c| c.starts_with("cargo run --release -p imgchkr-http"))
        .expect("the server command");
    let receiver_cmd = commands
        .iter()
        .find(|c| c.starts_with("cargo run --example webhook_receiver"))
        .expect("the receiver command");
    let curls: Vec<&String> = commands.iter().filter(|c| c.starts_with("curl")).collect();
    assert_eq!(curls.len(), 3, "two submissions and a look-up: {curls:?}");
    assert_eq!(printed.len(), 4, "{printed:?}");

    // The server as the README starts it, from the workspace root.
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_imgchkr"));
    cmd.args(args_after_dashes(server_cmd))
        .current_dir(workspace())
        .env("IMGCHKR_LISTEN", "127.0.0.1:0")
        .env("IMGCHKR_STORE", "memory:")
        .env("RUST_LOG", "info");
    for var in ["IMGCHKR_IMAGE_DIR", "IMGCHKR_REDIS", "IMGCHKR_QUEUE"] {
        cmd.env_remove(var);
    }
    let server = Server::spawn(cmd, tempfile::tempdir().unwrap(), None);
    let receiver_addr: SocketAddr = format!("127.0.0.1:{}", common::closed_port())
        .parse()
        .unwrap();
    let receiver = start_receiver(&args_after_dashes(receiver_cmd), receiver_addr);

    let started = Instant::now();
    let ids: Vec<String> = curls[..2]
        .iter()
        .map(|c| {
            let out = curl(c, server.addr, receiver_addr);
            assert!(out.starts_with("HTTP/1.1 202"), "{out}");
            assert!(
                out.to_ascii_lowercase()
                    .contains("\nlocation: /assets/image/"),
                "{out}"
            );
            let body: Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
            assert_eq!(body["state"], "queued");
            body["id"].as_str().unwrap().to_owned()
        })
        .collect();
    // What the README says the receiver prints, with the real ids.
    let mut want: Vec<String> = printed
        .iter()
        .map(|l| {
            l.replace("<small id>", &ids[0])
                .replace("<large id>", &ids[1])
        })
        .collect();
    want.sort();
    let got = wait_within("the receiver's four lines", Duration::from_secs(10), || {
        let lines = receiver.lines.lock().unwrap();
        let mut events: Vec<String> = lines
            .iter()
            .filter(|l| l.starts_with("/print/"))
            .cloned()
            .collect();
        events.sort();
        (events.len() >= 4).then_some(events)
    });
    eprintln!(
        "the four events printed {:?} after the first submission",
        started.elapsed()
    );
    assert_eq!(got, want);

    let look_up = curls[2].replace("<large id>", &ids[1]);
    let job: Value = serde_json::from_str(&curl(&look_up, server.addr, receiver_addr)).unwrap();
    assert_eq!(job["state"], "failed");
    assert_eq!(
        job["errors"]["image"][1],
        "Image height exceeds maximum (1200/1000)"
    );
    assert_eq!(job["notifications"][1]["status"], "delivered", "{job}");
}
