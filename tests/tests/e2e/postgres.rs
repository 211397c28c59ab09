//! PostgreSQL in the FUSE mount: a real database's fsyncs, checksummed
//! pages and crash recovery, with the daemon killed under its load.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use hydra_tests::{TestStore, eventually, sh};

/// The newest installed PostgreSQL's `bin` directory.
fn pg_bin() -> PathBuf {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|dir| dir.flatten().map(|e| e.path().join("bin")).collect())
        .unwrap_or_default();
    found.retain(|bin| bin.join("postgres").exists());
    found.sort_by_key(|bin| {
        bin.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
    });
    found
        .pop()
        .expect("PostgreSQL missing: scripts/test.sh installs postgresql")
}

/// A PostgreSQL cluster whose data directory is in the mount, listening
/// only on a unix socket beside it; killed when dropped.
struct Cluster {
    bin: PathBuf,
    data: PathBuf,
    socket: PathBuf,
    log: PathBuf,
}

impl Cluster {
    /// `pg_ctl start`, waiting until it takes connections (and so until
    /// crash recovery has run).
    fn start(&self) {
        let options = format!("-k {} -c listen_addresses=''", self.socket.display());
        self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data.display().to_string(),
                "-l",
                &self.log.display().to_string(),
                "-w",
                "-t",
                "120",
                "-o",
                &options,
                "start",
            ],
        );
    }

    /// A client program of the cluster as the user postgres.
    fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--"])
            .arg(self.bin.join(program))
            .env("PGHOST", &self.socket)
            .env("PGDATABASE", "postgres")
            .stdin(Stdio::null());
        cmd
    }

    /// Runs `program ARGS` and asserts it succeeds; returns its stdout.
    fn run(&self, program: &str, args: &[&str]) -> String {
        let out = self.command(program).args(args).output().expect("run");
        assert!(
            out.status.success(),
            "{program} {args:?}: {}{}\nserver log:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(&self.log).unwrap_or_default()
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// One query's unaligned result.
    fn query(&self, sql: &str) -> String {
        self.run("psql", &["-X", "-At", "-v", "ON_ERROR_STOP=1", "-c", sql])
    }

    /// The postmaster's pid, from the lock file beside its socket.
    fn postmaster(&self) -> Option<u32> {
        let lock = std::fs::read_to_string(self.socket.join(".s.PGSQL.5432.lock")).ok()?;
        lock.lines().next()?.trim().parse().ok()
    }

    /// Kills the postmaster and every process it started at once, as a
    /// crash would, and waits for them to be gone.
    fn kill(&self) {
        let Some(pid) = self.postmaster() else {
            return;
        };
        // It may have died already: a failed fsync is a PANIC to postgres.
        for (program, args) in [("pkill", ["-9", "-P"]), ("kill", ["-9", "--"])] {
            let _ = Command::new(program)
                .args(args)
                .arg(pid.to_string())
                .stderr(Stdio::null())
                .status();
        }
        eventually("the postmaster is gone", || {
            !Path::new(&format!("/proc/{pid}")).exists()
        });
        let _ = std::fs::remove_file(self.socket.join(".s.PGSQL.5432.lock"));
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Counts the commits psql reports as it runs a script of one-row inserts.
fn count_acknowledged(child: &mut Child) -> (Arc<AtomicUsize>, std::thread::JoinHandle<()>) {
    let acked = Arc::new(AtomicUsize::new(0));
    let out = child.stdout.take().expect("psql stdout");
    let count = acked.clone();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            match line {
                Ok(l) if l.starts_with("INSERT 0 1") => {
                    count.fetch_add(1, Ordering::SeqCst);
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
    });
    (acked, reader)
}

#[test]
fn postgres_recovers_every_acknowledged_commit_after_the_daemon_is_killed() {
    let bin = pg_bin();
    let s = TestStore::new();
    // Everything postgres touches must be reachable by its user.
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let point = d.join("m");
    let socket = d.join("socket");
    std::fs::create_dir_all(&point).expect("mkdir");
    std::fs::create_dir_all(&socket).expect("mkdir");
    sh(
        &format!(
            "chmod 0755 {d} && chown postgres {sock}",
            d = d.display(),
            sock = socket.display()
        ),
        d,
    );
    // Commits come only from fsyncs (and the unmount): the timer is off.
    let mount = |s: &TestStore| {
        s.ok(&[
            "mount",
            "pg",
            point.to_str().expect("utf-8"),
            "--allow-other",
            "--commit-interval",
            "3600",
        ])
    };
    mount(&s);
    let _unmount = hydra_tests::Unmount(&s, point.clone());
    let data = point.join("data");
    std::fs::create_dir(&data).expect("mkdir data");
    sh(
        &format!("chown postgres {0} && chmod 0700 {0}", data.display()),
        d,
    );
    let pg = Cluster {
        bin,
        data,
        socket: socket.clone(),
        log: socket.join("server.log"),
    };
    // Page checksums: a torn or stale page fails the reads below.
    pg.run(
        "initdb",
        &[
            "-k",
            "-A",
            "trust",
            "-U",
            "postgres",
            "-D",
            &pg.data.display().to_string(),
        ],
    );
    pg.start();
    pg.run("pgbench", &["-i", "-q", "-s", "2"]);
    pg.query("CREATE TABLE acked (n integer PRIMARY KEY)");

    // One client commits numbered rows one at a time, four pgbench clients
    // run transfers beside it; the daemon dies in the middle of it all.
    let script = d.join("inserts.sql");
    let inserts: String = (1..=1_000_000)
        .map(|n| format!("INSERT INTO acked VALUES ({n});\n"))
        .collect();
    std::fs::write(&script, inserts).expect("write script");
    sh(&format!("chmod 0644 {}", script.display()), d);
    let mut psql = pg
        .command("psql")
        .args(["-X", "-f"])
        .arg(&script)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn psql");
    let (acked, reader) = count_acknowledged(&mut psql);
    let mut bench = pg
        .command("pgbench")
        .args(["-c", "4", "-T", "600", "-n"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn pgbench");
    eventually("100 commits acknowledged", || {
        acked.load(Ordering::SeqCst) >= 100
    });
    let status: serde_json::Value =
        serde_json::from_str(&s.ok(&["--json", "status"])).expect("json");
    let daemon = status[0]["pid"].as_u64().expect("daemon pid");
    Command::new("kill")
        .args(["-9", &daemon.to_string()])
        .status()
        .expect("kill the daemon");
    eventually("the daemon is gone", || {
        !Path::new(&format!("/proc/{daemon}")).exists()
    });
    pg.kill();
    let _ = bench.kill();
    let _ = bench.wait();
    let _ = psql.kill();
    let _ = psql.wait();
    reader.join().expect("reader");
    let acked = acked.load(Ordering::SeqCst);
    let _ = Command::new("umount").arg("-l").arg(&point).status();

    // The store's last commit is the state of the last fsync: postgres's
    // own recovery replays its WAL from there.
    mount(&s);
    pg.start();
    let present = pg.query(&format!("SELECT count(*) FROM acked WHERE n <= {acked}"));
    assert_eq!(
        present,
        acked.to_string(),
        "every commit psql saw acknowledged is there"
    );
    let balanced = pg.query(
        "SELECT (SELECT sum(abalance) FROM pgbench_accounts) = (SELECT sum(bbalance) FROM pgbench_branches)
            AND (SELECT sum(tbalance) FROM pgbench_tellers) = (SELECT sum(bbalance) FROM pgbench_branches)
            AND (SELECT coalesce(sum(delta), 0) FROM pgbench_history) = (SELECT sum(bbalance) FROM pgbench_branches)",
    );
    assert_eq!(balanced, "t", "pgbench's transfers balance");
    pg.run(
        "pg_amcheck",
        &["--install-missing", "--heapallindexed", "postgres"],
    );
    pg.run(
        "pg_ctl",
        &["-D", &pg.data.display().to_string(), "-m", "fast", "stop"],
    );
    s.ok(&["umount", point.to_str().expect("utf-8")]);
}
