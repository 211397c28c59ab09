//! hydra-sql beside a plain SQLite file on tmpfs, in one run
//! (`cargo bench -p hydra-sql`): a mix modelled on SQLite's speedtest1
//! (bulk inserts with and without an index, range scans, index builds,
//! indexed selects, updates, deletes, and small autocommit transactions),
//! the same statements on both. hydra runs with its store on tmpfs and on
//! the disk; the plain file on the disk is shown too (a durable commit
//! costs fsyncs there as well). Medians of RUNS (default 3) and ratios to
//! the plain file on tmpfs.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use hydra_dag::{Store, StoreOptions};
use hydra_sql::Database;
use hydra_sql::rusqlite::Connection;

const N: i64 = 50_000;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Spells a number in words, as speedtest1 does, for realistic text.
fn words(mut n: u64) -> String {
    const ONES: [&str; 10] = [
        "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
    ];
    let mut out = Vec::new();
    loop {
        out.push(ONES[(n % 10) as usize]);
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    out.join(" ")
}

/// One step of the workload: its name and the statements it runs.
type Step = (&'static str, Box<dyn Fn(&Connection)>);

/// The workload, in order.
fn steps() -> Vec<Step> {
    let tx = |c: &Connection, f: &dyn Fn(&Connection)| {
        c.execute_batch("BEGIN").expect("begin");
        f(c);
        c.execute_batch("COMMIT").expect("commit");
    };
    vec![
        (
            "50k inserts, no index",
            Box::new(move |c: &Connection| {
                c.execute_batch("CREATE TABLE t1(a INTEGER, b INTEGER, c TEXT)")
                    .expect("create");
                tx(c, &|c| {
                    let mut r = Rng(1);
                    let mut s = c
                        .prepare("INSERT INTO t1 VALUES (?1, ?2, ?3)")
                        .expect("prep");
                    for i in 1..=N {
                        let x = r.next() % 1_000_000;
                        s.execute((i, x as i64, words(x))).expect("insert");
                    }
                });
            }),
        ),
        (
            "50k ordered inserts, indexed",
            Box::new(move |c: &Connection| {
                c.execute_batch(
                    "CREATE TABLE t2(a INTEGER PRIMARY KEY, b INTEGER, c TEXT); CREATE INDEX t2c ON t2(c)",
                )
                .expect("create");
                tx(c, &|c| {
                    let mut r = Rng(2);
                    let mut s = c
                        .prepare("INSERT INTO t2 VALUES (?1, ?2, ?3)")
                        .expect("prep");
                    for i in 1..=N {
                        let x = r.next() % 1_000_000;
                        s.execute((i, x as i64, words(x))).expect("insert");
                    }
                });
            }),
        ),
        (
            "50k unordered inserts, indexed",
            Box::new(move |c: &Connection| {
                c.execute_batch(
                    "CREATE TABLE t3(a INTEGER, b INTEGER, c TEXT); CREATE INDEX t3a ON t3(a)",
                )
                .expect("create");
                tx(c, &|c| {
                    let mut r = Rng(3);
                    let mut s = c
                        .prepare("INSERT INTO t3 VALUES (?1, ?2, ?3)")
                        .expect("prep");
                    for _ in 1..=N {
                        let x = r.next() % 1_000_000;
                        s.execute(((r.next() % 10_000_000) as i64, x as i64, words(x)))
                            .expect("insert");
                    }
                });
            }),
        ),
        (
            "50 range scans, no index",
            Box::new(move |c: &Connection| {
                tx(c, &|c| {
                    let mut s = c
                        .prepare("SELECT count(*), avg(b), sum(length(c)) FROM t1 WHERE b BETWEEN ?1 AND ?2")
                        .expect("prep");
                    for i in 0..50i64 {
                        let lo = i * 20_000;
                        s.query_row((lo, lo + 50_000), |_| Ok(())).expect("select");
                    }
                });
            }),
        ),
        (
            "create 2 indexes",
            Box::new(move |c: &Connection| {
                c.execute_batch("CREATE INDEX t1b ON t1(b); CREATE INDEX t1c ON t1(c)")
                    .expect("index");
            }),
        ),
        (
            "10k indexed selects",
            Box::new(move |c: &Connection| {
                tx(c, &|c| {
                    let mut r = Rng(4);
                    let mut s = c
                        .prepare("SELECT count(*), avg(a) FROM t1 WHERE b BETWEEN ?1 AND ?2")
                        .expect("prep");
                    for _ in 0..10_000 {
                        let lo = (r.next() % 1_000_000) as i64;
                        s.query_row((lo, lo + 100), |_| Ok(())).expect("select");
                    }
                });
            }),
        ),
        (
            "10k indexed updates",
            Box::new(move |c: &Connection| {
                tx(c, &|c| {
                    let mut r = Rng(5);
                    let mut s = c
                        .prepare("UPDATE t2 SET b = b * 2, c = ?2 WHERE a = ?1")
                        .expect("prep");
                    for _ in 0..10_000 {
                        let a = (r.next() % N as u64) as i64 + 1;
                        s.execute((a, words(a as u64))).expect("update");
                    }
                });
            }),
        ),
        (
            "delete a third, refill",
            Box::new(move |c: &Connection| {
                tx(c, &|c| {
                    c.execute_batch(
                        "DELETE FROM t3 WHERE a % 3 = 0; INSERT INTO t3 SELECT b, a, c FROM t1 WHERE a % 3 = 0",
                    )
                    .expect("delete");
                });
            }),
        ),
        (
            "500 one-row transactions",
            Box::new(move |c: &Connection| {
                let mut s = c
                    .prepare("UPDATE t2 SET b = ?2 WHERE a = ?1")
                    .expect("prep");
                let mut r = Rng(6);
                for i in 0..500i64 {
                    let a = (r.next() % N as u64) as i64 + 1;
                    s.execute((a, i)).expect("update");
                }
            }),
        ),
        (
            "integrity check",
            Box::new(move |c: &Connection| {
                let ok: String = c
                    .query_row("PRAGMA integrity_check", [], |r| r.get(0))
                    .expect("check");
                assert_eq!(ok, "ok");
            }),
        ),
    ]
}

fn run(conn: &Connection, t: &mut BTreeMap<(usize, &'static str), Vec<Duration>>, who: usize) {
    for (name, step) in steps() {
        let start = Instant::now();
        step(conn);
        t.entry((who, name)).or_default().push(start.elapsed());
    }
}

fn hydra(dir: &Path, t: &mut BTreeMap<(usize, &'static str), Vec<Duration>>, who: usize) {
    let (store, _) = Store::init(dir, &StoreOptions::default()).expect("store");
    let db = Database::open(store.bucket(), "bench").expect("open");
    run(db.conn(), t, who);
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let runs: usize = std::env::var("RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3);
    let names: Vec<&str> = steps().iter().map(|(n, _)| *n).collect();
    let mut t = BTreeMap::new();
    for run_no in 0..runs {
        let shm = tempfile::tempdir_in("/dev/shm").expect("tmpfs");
        let disk = tempfile::tempdir().expect("disk");
        let plain = Connection::open(shm.path().join("plain.db")).expect("sqlite");
        run(&plain, &mut t, 0);
        drop(plain);
        let plain_disk = Connection::open(disk.path().join("plain.db")).expect("sqlite");
        run(&plain_disk, &mut t, 3);
        drop(plain_disk);
        hydra(&disk.path().join("store"), &mut t, 1);
        hydra(&shm.path().join("store"), &mut t, 2);
        eprintln!("run {} of {runs} done", run_no + 1);
    }
    let m: BTreeMap<(usize, &str), Duration> = t.into_iter().map(|(k, v)| (k, median(v))).collect();
    println!("\n== summary (medians of {runs}; ms, and hydra's time / the plain file's) ==");
    println!(
        "{:<32} {:>12} {:>20} {:>20} {:>20}",
        "step", "plain tmpfs", "hydra (tmpfs)", "hydra (disk)", "plain (disk)"
    );
    let mut total = [0.0f64; 4];
    let line = |name: &str, ms: &[f64]| {
        println!(
            "{:<32} {:>12.1} {:>12.1} ({:>4.2}x) {:>12.1} ({:>4.2}x) {:>12.1} ({:>4.2}x)",
            name,
            ms[0],
            ms[2],
            ms[2] / ms[0],
            ms[1],
            ms[1] / ms[0],
            ms[3],
            ms[3] / ms[0]
        );
    };
    for name in names {
        let ms: Vec<f64> = (0..4).map(|w| m[&(w, name)].as_secs_f64() * 1e3).collect();
        for (t, x) in total.iter_mut().zip(&ms) {
            *t += x;
        }
        line(name, &ms);
    }
    line("total", &total);
}
