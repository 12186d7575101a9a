//! A throwaway Postgres cluster for `loadgen --start-postgres`: `initdb` into a temp dir (as
//! the `postgres` user when run as root: the server refuses root), the server on a free
//! loopback port with Postgres' default durability (`fsync`, `synchronous_commit = on`) and
//! `pg_stat_statements` loaded, so a run can count statements per job. Stopped and removed
//! by [`Cluster::stop`].

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running cluster.
pub struct Cluster {
    dir: PathBuf,
    bin: PathBuf,
    child: Child,
    /// Its loopback port.
    pub port: u16,
}

/// The newest `/usr/lib/postgresql/<version>/bin` (Debian's `postgresql` package).
fn bin_dir() -> PathBuf {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .filter(|(_, bin)| bin.join("initdb").exists())
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin).expect(
        "Postgres server binaries under /usr/lib/postgresql/*/bin (apt-get install -y postgresql)",
    )
}

fn postgres_user() -> Option<(u32, u32)> {
    let me = Command::new("id").arg("-u").output().ok()?;
    if String::from_utf8_lossy(&me.stdout).trim() != "0" {
        return None;
    }
    let id = |flag: &str| -> Option<u32> {
        let out = Command::new("id").args([flag, "postgres"]).output().ok()?;
        String::from_utf8_lossy(&out.stdout).trim().parse().ok()
    };
    Some((id("-u")?, id("-g")?))
}

impl Cluster {
    /// Creates and starts a cluster on `port`, with extra server `settings` (`name=value`).
    pub fn start(port: u16, settings: &[String]) -> Cluster {
        let bin = bin_dir();
        let dir = std::env::temp_dir().join(format!("loadgen-pg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create the cluster dir");
        let user = postgres_user();
        let command = |program: &str| {
            let mut cmd = Command::new(bin.join(program));
            if let Some((uid, gid)) = user {
                cmd.uid(uid).gid(gid);
            }
            cmd.current_dir(&dir);
            cmd
        };
        if let Some((uid, gid)) = user {
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid)).expect("chown the cluster dir");
        }
        let out = command("initdb")
            .arg("-D")
            .arg(dir.join("data"))
            .args([
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-locale",
            ])
            .output()
            .expect("run initdb");
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut postgres = command("postgres");
        for setting in settings {
            postgres.args(["-c", setting]);
        }
        let child = postgres
            .arg("-D")
            .arg(dir.join("data"))
            .args(["-p", &port.to_string(), "-k"])
            .arg(&dir)
            .args([
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "max_connections=200",
                "-c",
                "shared_preload_libraries=pg_stat_statements",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start postgres");
        let cluster = Cluster {
            dir,
            bin,
            child,
            port,
        };
        let until = Instant::now() + Duration::from_secs(30);
        while !Command::new(cluster.bin.join("pg_isready"))
            .args(["-q", "-h", "127.0.0.1", "-p", &port.to_string()])
            .status()
            .is_ok_and(|s| s.success())
        {
            assert!(Instant::now() < until, "postgres did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        cluster.psql("CREATE EXTENSION pg_stat_statements");
        cluster
    }

    /// The store URL of its `postgres` database.
    pub fn url(&self) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{}/postgres?sslmode=disable",
            self.port
        )
    }

    /// Runs `sql` with `psql`; its output (unaligned, tuples only).
    pub fn psql(&self, sql: &str) -> String {
        let out = Command::new(self.bin.join("psql"))
            .args(["-X", "-q", "-A", "-t", "-h", "127.0.0.1", "-U", "postgres"])
            .args(["-p", &self.port.to_string(), "-d", "postgres", "-c", sql])
            .output()
            .expect("run psql");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// Top-level statements run so far that call functions of schema `imgchkr` (the engine's
    /// calls).
    pub fn engine_statements(&self) -> Option<u64> {
        self.psql("SELECT sum(calls) FROM pg_stat_statements WHERE query LIKE '%\"imgchkr\".%'")
            .parse()
            .ok()
    }

    /// The statements that took the most time (with `pg_stat_statements.track=all`, also
    /// those the engine's functions run inside): `calls | total ms | mean ms | query`.
    pub fn top_statements(&self, n: usize) -> String {
        self.psql(&format!(
            "SELECT calls || ' | ' || round(total_exec_time::numeric, 1) || ' | ' || \
             round(mean_exec_time::numeric, 3) || ' | ' || \
             regexp_replace(left(query, 70), '\\s+', ' ', 'g') \
             FROM pg_stat_statements ORDER BY total_exec_time DESC LIMIT {n}"
        ))
    }

    /// The postmaster's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// CPU time (user + system) of the server: the postmaster, every live process it started
    /// (backends, background workers), and those it has reaped.
    pub fn cpu_time(&self) -> Option<Duration> {
        let ticks = |stat: &str, fields: &[usize]| -> Option<(u32, u64)> {
            let rest = &stat[stat.rfind(')')? + 1..];
            let f: Vec<&str> = rest.split_whitespace().collect();
            let ppid = f.get(1)?.parse().ok()?;
            let mut sum = 0;
            for i in fields {
                sum += f.get(*i)?.parse::<u64>().ok()?;
            }
            Some((ppid, sum))
        };
        let me = self.pid();
        let own = std::fs::read_to_string(format!("/proc/{me}/stat")).ok()?;
        // utime, stime, cutime, cstime (fields 14–17 of proc(5), after the name).
        let mut total = ticks(&own, &[11, 12, 13, 14])?.1;
        for entry in std::fs::read_dir("/proc").ok()?.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            if let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat"))
                && let Some((ppid, t)) = ticks(&stat, &[11, 12])
                && ppid == me
            {
                total += t;
            }
        }
        Some(Duration::from_millis(total * 10))
    }

    /// Stops the server and removes its files.
    pub fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let until = Instant::now() + Duration::from_secs(30);
        while !matches!(self.child.try_wait(), Ok(Some(_))) && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }

    /// Where its files are.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}
