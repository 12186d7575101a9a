//! A throwaway Postgres cluster for tests: `initdb` into a temp dir (as the `postgres` user
//! when the tests run as root: the server refuses root), `postgres` on a free loopback port
//! with its socket in the same temp dir, trust authentication for the `postgres` role.
//! Stopped (immediately) and removed on drop. The binaries are looked up under
//! `/usr/lib/postgresql/<version>/bin` (Debian's `postgresql` package), then on `PATH`; a
//! machine without them fails the test loudly (`apt-get install -y postgresql`).
#![allow(dead_code)] // each test file uses a different part

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A loopback port free now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The directory of the Postgres server binaries (`initdb`, `postgres`, `pg_ctl`, `psql`).
pub fn bin_dir() -> PathBuf {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return bin;
    }
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .find(|dir| dir.join("initdb").exists() && dir.join("postgres").exists());
    on_path.unwrap_or_else(|| {
        panic!(
            "the Postgres server binaries (initdb, postgres) are needed for these tests and \
             were found neither under /usr/lib/postgresql/*/bin nor on PATH: \
             apt-get install -y postgresql"
        )
    })
}

/// The uid and gid of the `postgres` user, when the tests run as root (the server refuses
/// to run as root); `None` otherwise (the cluster runs as the current user).
pub fn run_as() -> Option<(u32, u32)> {
    let me = Command::new("id").arg("-u").output().ok()?;
    if String::from_utf8_lossy(&me.stdout).trim() != "0" {
        return None;
    }
    let id = |flag: &str| -> u32 {
        let out = Command::new("id")
            .args([flag, "postgres"])
            .output()
            .expect("id(1)");
        assert!(
            out.status.success(),
            "running as root, the cluster needs a `postgres` user (apt-get install -y postgresql creates it)"
        );
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
    };
    Some((id("-u"), id("-g")))
}

/// A running throwaway cluster.
pub struct PgCluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    as_user: Option<(u32, u32)>,
    child: Option<Child>,
    /// The loopback port it listens on.
    pub port: u16,
    extra: Vec<String>,
}

impl PgCluster {
    /// A new cluster on a free port.
    pub fn start() -> PgCluster {
        PgCluster::start_with(&[])
    }

    /// A new cluster with extra server settings (`name=value`, as `-c` takes them).
    pub fn start_with(settings: &[&str]) -> PgCluster {
        let bin = bin_dir();
        let dir = tempfile::Builder::new()
            .prefix("imgchkr-pg-")
            .tempdir()
            .unwrap();
        let as_user = run_as();
        if let Some((uid, gid)) = as_user {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).unwrap();
        }
        let mut cluster = PgCluster {
            dir,
            bin,
            as_user,
            child: None,
            port: free_port(),
            extra: settings.iter().map(|s| s.to_string()).collect(),
        };
        let status = cluster
            .command("initdb")
            .args(["-D"])
            .arg(cluster.data())
            .args([
                "-U",
                "postgres",
                "--auth=trust",
                "--no-sync",
                "-E",
                "UTF8",
                "--no-locale",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        assert!(
            status.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&status.stderr)
        );
        cluster.restart();
        cluster
    }

    /// Where the cluster's files are (a `data` directory, the socket, the log).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(self.bin.join(program));
        if let Some((uid, gid)) = self.as_user {
            cmd.uid(uid).gid(gid);
        }
        cmd.current_dir(self.dir.path());
        cmd
    }

    /// Starts the server (again, after a stop) on the same port and data, and waits until it
    /// accepts connections.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "postgres is running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("postgres.log"))
            .unwrap();
        if let Some((uid, gid)) = self.as_user {
            std::os::unix::fs::chown(self.dir.path().join("postgres.log"), Some(uid), Some(gid))
                .unwrap();
        }
        let mut cmd = self.command("postgres");
        cmd.arg("-D")
            .arg(self.data())
            .args(["-p", &self.port.to_string(), "-k"])
            .arg(self.dir.path())
            .args([
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "max_connections=300",
                "-c",
                "shared_buffers=64MB",
            ]);
        for setting in &self.extra {
            cmd.args(["-c", setting]);
        }
        let child = cmd
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start postgres");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.ready() {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!("postgres exited at start ({status}): {}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "postgres did not start: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Whether it accepts connections now.
    pub fn ready(&self) -> bool {
        Command::new(self.bin.join("pg_isready"))
            .args([
                "-q",
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-t",
                "2",
            ])
            .status()
            .is_ok_and(|s| s.success())
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("postgres.log")).unwrap_or_default()
    }

    /// A URL of database `db` for the `postgres` role (no TLS).
    pub fn url(&self, db: &str) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{}/{db}?sslmode=disable",
            self.port
        )
    }

    /// Runs `sql` with `psql` in database `db`; panics on an error. Returns its output
    /// (unaligned, tuples only).
    pub fn psql(&self, db: &str, sql: &str) -> String {
        psql(&self.bin, self.port, db, sql)
    }

    /// A fresh, empty database; returns its name.
    pub fn create_database(&self) -> String {
        create_database(&self.bin, self.port)
    }

    /// Stops the server at once (`pg_ctl stop -m immediate`: no checkpoint, what is
    /// committed is only in the write-ahead log), and waits for it to exit.
    pub fn stop_immediate(&mut self) {
        self.stop("immediate");
    }

    /// Stops the server after its clients disconnect (`-m fast`).
    pub fn stop_fast(&mut self) {
        self.stop("fast");
    }

    fn stop(&mut self, mode: &str) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .args(["stop", "-m", mode, "-w", "-t", "30"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(_)) = child.try_wait() {
                break;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        self.stop_immediate();
    }
}

/// A cluster for the whole test process, started on first use: statics are never dropped,
/// so a watcher shell started with it stops it (immediately) and removes its directory once
/// this process has exited.
pub struct SharedCluster {
    bin: PathBuf,
    dir: PathBuf,
    /// The loopback port it listens on.
    pub port: u16,
}

impl SharedCluster {
    /// The process's cluster.
    pub fn get() -> &'static SharedCluster {
        static SHARED: std::sync::OnceLock<SharedCluster> = std::sync::OnceLock::new();
        SHARED.get_or_init(SharedCluster::start)
    }

    fn start() -> SharedCluster {
        // initdb as a PgCluster would, then hand the directory to the watcher.
        let mut cluster = PgCluster::start();
        cluster.stop_fast();
        let bin = cluster.bin.clone();
        let port = cluster.port;
        let as_user = cluster.as_user;
        let extra = std::mem::take(&mut cluster.extra);
        let dir = std::mem::replace(&mut cluster.dir, tempfile::tempdir().unwrap()).keep();
        drop(cluster);
        let mut settings = String::new();
        for setting in extra {
            settings.push_str(&format!(" -c '{setting}'"));
        }
        let script = format!(
            r#""$1/postgres" -D "$2/data" -p {port} -k "$2" -c listen_addresses=127.0.0.1 \
                 -c max_connections=300 -c shared_buffers=64MB{settings} 2>>"$2/postgres.log" &
               pg=$!
               while [ -d /proc/{owner} ] && kill -0 $pg 2>/dev/null; do sleep 0.5; done
               kill -QUIT $pg 2>/dev/null; wait $pg; rm -rf "$2""#,
            owner = std::process::id()
        );
        let mut cmd = Command::new("sh");
        cmd.args(["-c", &script, "watcher"])
            .arg(&bin)
            .arg(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some((uid, gid)) = as_user {
            cmd.uid(uid).gid(gid);
        }
        // Not waited for: it outlives this process on purpose (it cleans up after it).
        #[allow(clippy::zombie_processes)]
        let _watcher = cmd.spawn().expect("start the postgres watcher");
        let shared = SharedCluster { bin, dir, port };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !ready(&shared.bin, port) {
            assert!(
                Instant::now() < deadline,
                "the shared postgres did not start: {}",
                std::fs::read_to_string(shared.dir.join("postgres.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        shared
    }

    /// A URL of database `db` for the `postgres` role (no TLS).
    pub fn url(&self, db: &str) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{}/{db}?sslmode=disable",
            self.port
        )
    }

    /// Runs `sql` with `psql` in database `db` (see [`PgCluster::psql`]).
    pub fn psql(&self, db: &str, sql: &str) -> String {
        psql(&self.bin, self.port, db, sql)
    }

    /// A fresh, empty database; returns its name.
    pub fn create_database(&self) -> String {
        create_database(&self.bin, self.port)
    }
}

fn ready(bin: &Path, port: u16) -> bool {
    Command::new(bin.join("pg_isready"))
        .args(["-q", "-h", "127.0.0.1", "-p", &port.to_string(), "-t", "2"])
        .status()
        .is_ok_and(|s| s.success())
}

fn psql(bin: &Path, port: u16, db: &str, sql: &str) -> String {
    let out = Command::new(bin.join("psql"))
        .args([
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            "127.0.0.1",
        ])
        .args([
            "-p",
            &port.to_string(),
            "-U",
            "postgres",
            "-d",
            db,
            "-c",
            sql,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "psql {sql:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn create_database(bin: &Path, port: u16) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let name = format!(
        "t{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    );
    psql(bin, port, "postgres", &format!("CREATE DATABASE {name}"));
    name
}
