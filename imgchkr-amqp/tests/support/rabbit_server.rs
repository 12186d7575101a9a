//! A throwaway RabbitMQ node for tests: Debian's `rabbitmq-server` (3.10) run from
//! `/usr/lib/rabbitmq/bin` with a node name of its own (`imgchkr-test-<random>@localhost`),
//! its own epmd on a free loopback port (started here, killed with the node), AMQP and
//! distribution ports free on loopback, and its data, logs, config and Erlang cookie in a
//! temp dir; no plugins. Started in ~5–10 s, so a test binary shares one
//! (`RabbitServer::shared`, stopped once the binary has exited) and gives each test queue
//! names of its own (a prefix). A machine without it fails the test loudly
//! (`apt-get install -y rabbitmq-server`).
#![allow(dead_code)] // each test file uses a different part

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const BIN: &str = "/usr/lib/rabbitmq/bin";

/// A loopback port free now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Queue names no other test of this process uses.
pub fn fresh_prefix() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "t{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    )
}

fn bin(program: &str) -> PathBuf {
    let path = Path::new(BIN).join(program);
    assert!(
        path.exists(),
        "{} is needed for these tests: apt-get install -y rabbitmq-server",
        path.display()
    );
    path
}

/// A running node; stopped (and its epmd killed, its files removed) on drop.
pub struct RabbitServer {
    dir: PathBuf,
    node: String,
    /// The AMQP port on 127.0.0.1.
    pub port: u16,
    dist_port: u16,
    epmd_port: u16,
    epmd: Option<Child>,
    server: Option<Child>,
    /// Whether the directory is removed on drop (not for the shared node: its watcher does).
    owned: bool,
}

impl RabbitServer {
    /// A new node, started and ready.
    pub fn start() -> RabbitServer {
        let dir = tempfile::Builder::new()
            .prefix("imgchkr-rabbit-")
            .tempdir()
            .unwrap()
            .keep();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .subsec_nanos();
        let random = (u64::from(std::process::id()) << 32) | u64::from(nanos);
        let mut server = RabbitServer {
            node: format!("imgchkr-test-{random:x}@localhost"),
            port: free_port(),
            dist_port: free_port(),
            epmd_port: free_port(),
            dir,
            epmd: None,
            server: None,
            owned: true,
        };
        std::fs::write(server.dir.join("enabled_plugins"), "[].\n").unwrap();
        std::fs::write(server.dir.join("env.conf"), "").unwrap();
        std::fs::write(
            server.dir.join("rabbitmq.conf"),
            format!(
                "listeners.tcp.default = 127.0.0.1:{}\nlog.console = false\nlog.file.level = warning\n",
                server.port
            ),
        )
        .unwrap();
        let epmd = Command::new("epmd")
            .args([
                "-port",
                &server.epmd_port.to_string(),
                "-address",
                "127.0.0.1",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("epmd (apt-get install -y rabbitmq-server brings it)");
        server.epmd = Some(epmd);
        server.restart();
        server
    }

    /// The URL of the node's default vhost, with queue names starting with `prefix`.
    pub fn url(&self, prefix: &str) -> String {
        format!(
            "amqp://guest:guest@127.0.0.1:{}/%2f?prefix={prefix}",
            self.port
        )
    }

    fn env(&self, cmd: &mut Command) {
        let d = &self.dir;
        cmd.env("HOME", d)
            .env("RABBITMQ_NODENAME", &self.node)
            .env("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1")
            .env("RABBITMQ_NODE_PORT", self.port.to_string())
            .env("RABBITMQ_DIST_PORT", self.dist_port.to_string())
            .env("ERL_EPMD_PORT", self.epmd_port.to_string())
            .env("ERL_EPMD_ADDRESS", "127.0.0.1")
            .env("RABBITMQ_MNESIA_BASE", d.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", d.join("log"))
            .env("RABBITMQ_CONFIG_FILE", d.join("rabbitmq"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", d.join("enabled_plugins"))
            .env("RABBITMQ_CONF_ENV_FILE", d.join("env.conf"))
            .env("RABBITMQ_PID_FILE", d.join("pid"))
            .current_dir(d);
    }

    fn ctl(&self, args: &[&str]) -> std::process::Output {
        let mut cmd = Command::new(bin("rabbitmqctl"));
        self.env(&mut cmd);
        cmd.args(["-n", &self.node])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// Starts the node (again, after a stop or a kill) on the same ports and data, and waits
    /// until it serves.
    pub fn restart(&mut self) {
        assert!(self.server.is_none(), "rabbitmq is running");
        let _ = std::fs::remove_file(self.dir.join("pid"));
        let mut cmd = Command::new(bin("rabbitmq-server"));
        self.env(&mut cmd);
        let out = std::fs::File::create(self.dir.join("server.out")).unwrap();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap();
        self.server = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let waited = self.ctl(&["await_startup", "--timeout", "30"]);
            if waited.status.success() {
                break;
            }
            if let Some(child) = self.server.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!(
                    "rabbitmq-server exited at start ({status}): {}",
                    self.output()
                );
            }
            assert!(
                Instant::now() < deadline,
                "rabbitmq did not start: {}\n{}",
                String::from_utf8_lossy(&waited.stderr),
                self.output()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The process id of the node's Erlang VM, while it runs.
    pub fn beam_pid(&self) -> Option<String> {
        let pid = std::fs::read_to_string(self.dir.join("pid")).ok()?;
        Some(pid.trim().to_owned())
    }

    /// What the server wrote on its console.
    pub fn output(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.out")).unwrap_or_default()
    }

    /// The node's log files, for a failing test to show.
    pub fn logs(&self) -> String {
        let mut all = String::new();
        if let Ok(entries) = std::fs::read_dir(self.dir.join("log")) {
            for entry in entries.flatten() {
                let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
                all.push_str(&format!("== {}\n{text}", entry.path().display()));
            }
        }
        all
    }

    /// Stops the node gracefully (`rabbitmqctl stop`: clients see their connections closed)
    /// and waits for it to exit.
    pub fn stop(&mut self) {
        let Some(mut child) = self.server.take() else {
            return;
        };
        let _ = self.ctl(&["stop"]);
        wait_or_kill(&mut child, Duration::from_secs(30));
    }

    /// Kills the node's VM (SIGKILL: no goodbye to its clients) and waits for it to exit.
    pub fn kill(&mut self) {
        let Some(mut child) = self.server.take() else {
            return;
        };
        if let Ok(pid) = std::fs::read_to_string(self.dir.join("pid")) {
            let _ = Command::new("kill").args(["-KILL", pid.trim()]).status();
        }
        wait_or_kill(&mut child, Duration::from_secs(10));
    }

    /// Every queue whose name starts with `prefix`, with its messages ready and
    /// unacknowledged.
    pub fn queues(&self, prefix: &str) -> Vec<(String, u64, u64)> {
        let out = self.ctl(&[
            "list_queues",
            "-q",
            "--no-table-headers",
            "name",
            "messages_ready",
            "messages_unacknowledged",
        ]);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|line| {
                let mut parts = line.split_whitespace();
                let name = parts.next()?;
                name.starts_with(prefix).then_some(())?;
                let ready = parts.next()?.parse().ok()?;
                let unacked = parts.next()?.parse().ok()?;
                Some((name.to_owned(), ready, unacked))
            })
            .collect()
    }

    /// The node of this test process, started on first use; stopped, with its epmd, and its
    /// directory removed, by a watcher once this process has exited (statics never drop).
    pub fn shared() -> &'static RabbitServer {
        static SHARED: std::sync::OnceLock<RabbitServer> = std::sync::OnceLock::new();
        SHARED.get_or_init(|| {
            let mut server = RabbitServer::start();
            server.owned = false;
            let ctl = bin("rabbitmqctl");
            let epmd = server.epmd.as_ref().map(Child::id).unwrap_or(0);
            let script = format!(
                r#"while [ -d /proc/{owner} ]; do sleep 0.5; done
                   HOME="$1" ERL_EPMD_PORT={epmd_port} RABBITMQ_CONF_ENV_FILE="$1/env.conf" \
                     timeout 30 "{ctl}" -n {node} stop >/dev/null 2>&1
                   kill -KILL $(cat "$1/pid" 2>/dev/null) 2>/dev/null
                   kill {epmd} 2>/dev/null
                   rm -rf "$1""#,
                owner = std::process::id(),
                epmd_port = server.epmd_port,
                ctl = ctl.display(),
                node = server.node,
            );
            // Not waited for: it outlives this process on purpose (it cleans up after it).
            #[allow(clippy::zombie_processes)]
            let _watcher = Command::new("sh")
                .args(["-c", &script, "watcher"])
                .arg(&server.dir)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start the rabbitmq watcher");
            server
        })
    }
}

fn wait_or_kill(child: &mut Child, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl Drop for RabbitServer {
    fn drop(&mut self) {
        if !self.owned {
            return;
        }
        self.kill();
        if let Some(mut epmd) = self.epmd.take() {
            let _ = epmd.kill();
            let _ = epmd.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
