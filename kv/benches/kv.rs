//! The prolly tree beside redb, in one run (`cargo bench -p hydra-kv`):
//! 1M random puts in batches of 10k (one commit each, both on the disk),
//! 1M random gets (warm: after the puts and a first pass; reopened: a
//! fresh tree over the store opened again with no block cache, and redb
//! opened again, the OS page cache warm for both), 1,000 range scans of
//! 100 keys, and the diff of two 1M-key trees that differ in 100 keys. Medians of RUNS (default 3) and ratios.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hydra_dag::{Store, StoreOptions};
use hydra_kv::{Edit, Tree, diff};
use redb::{Database, TableDefinition};

const N: usize = 1_000_000;
const BATCH: usize = 10_000;
const GETS: usize = 1_000_000;
const SCANS: usize = 1_000;
const TABLE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("t");

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn keys(seed: u64, n: usize) -> Vec<[u8; 16]> {
    let mut r = Rng(seed);
    (0..n)
        .map(|_| {
            let mut k = [0u8; 16];
            k[..8].copy_from_slice(&r.next().to_be_bytes());
            k[8..].copy_from_slice(&r.next().to_be_bytes());
            k
        })
        .collect()
}

fn value(k: &[u8; 16]) -> Vec<u8> {
    k.iter().cycle().take(100).copied().collect()
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
    let all = keys(1, N);
    let mut probe = Rng(99);
    let gets: Vec<[u8; 16]> = (0..GETS).map(|_| all[probe.next() as usize % N]).collect();
    let mut sorted = all.clone();
    sorted.sort();
    let starts: Vec<[u8; 16]> = (0..SCANS)
        .map(|_| sorted[probe.next() as usize % (N - 200)])
        .collect();
    let mut t: BTreeMap<&str, Vec<Duration>> = BTreeMap::new();
    for run in 0..runs {
        let dir = tempfile::tempdir().expect("tempdir");
        // hydra: puts.
        let (store, _) = Store::init(
            &dir.path().join("hydra"),
            &StoreOptions {
                cache_bytes: 1 << 30,
                ..StoreOptions::default()
            },
        )
        .expect("store");
        let bucket = store.bucket().clone();
        let session = bucket.session();
        let mut tree = Tree::with_cache(bucket.clone(), None, 512 << 20);
        let start = Instant::now();
        for chunk in all.chunks(BATCH) {
            let edits: BTreeMap<Bytes, Edit> = chunk
                .iter()
                .map(|k| (Bytes::copy_from_slice(k), Some(Bytes::from(value(k)))))
                .collect();
            tree = tree.apply(&session, edits).expect("apply");
        }
        t.entry("hydra puts").or_default().push(start.elapsed());
        let root = tree.root();
        // hydra: gets, warm cache (a first pass warms it).
        for k in &gets[..GETS / 4] {
            tree.get(k).expect("get");
        }
        let start = Instant::now();
        for k in &gets {
            assert!(tree.get(k).expect("get").is_some());
        }
        t.entry("hydra gets, cached")
            .or_default()
            .push(start.elapsed());
        // hydra: range scans.
        let start = Instant::now();
        for s in &starts {
            let mut n = 0;
            tree.scan(
                Bound::Included(&s[..]),
                Bound::Unbounded,
                false,
                &mut |_, _| {
                    n += 1;
                    Ok(n < 100)
                },
            )
            .expect("scan");
        }
        t.entry("hydra scans of 100")
            .or_default()
            .push(start.elapsed());
        // hydra: diff against a copy with 100 keys changed.
        let edits: BTreeMap<Bytes, Edit> = (0..100)
            .map(|i| {
                (
                    Bytes::copy_from_slice(&all[i * 9973]),
                    Some(Bytes::from_static(b"changed")),
                )
            })
            .collect();
        let other = tree.apply(&session, edits).expect("apply");
        let start = Instant::now();
        let changes = diff(&tree, &other).expect("diff");
        t.entry("hydra diff, 100 of 1M")
            .or_default()
            .push(start.elapsed());
        assert_eq!(changes.len(), 100);
        drop((tree, other, session, bucket, store));
        // hydra: gets with an empty block cache (the OS page cache is warm).
        let store = Store::open(
            &dir.path().join("hydra"),
            hydra_dag::OpenMode::ReadOnly,
            &StoreOptions {
                cache_bytes: 0,
                ..StoreOptions::default()
            },
        )
        .expect("reopen");
        let cold = Tree::new(store.bucket().clone(), root);
        let start = Instant::now();
        for k in &gets {
            assert!(cold.get(k).expect("get").is_some());
        }
        t.entry("hydra gets, cold cache")
            .or_default()
            .push(start.elapsed());
        drop((cold, store));
        // redb: the same puts, gets and scans.
        let db = Database::create(dir.path().join("redb")).expect("redb");
        let start = Instant::now();
        for chunk in all.chunks(BATCH) {
            let tx = db.begin_write().expect("tx");
            {
                let mut table = tx.open_table(TABLE).expect("table");
                for k in chunk {
                    table.insert(&k[..], &value(k)[..]).expect("insert");
                }
            }
            tx.commit().expect("commit");
        }
        t.entry("redb puts").or_default().push(start.elapsed());
        let tx = db.begin_read().expect("read");
        let table = tx.open_table(TABLE).expect("table");
        let start = Instant::now();
        for k in &gets {
            assert!(table.get(&k[..]).expect("get").is_some());
        }
        t.entry("redb gets").or_default().push(start.elapsed());
        let start = Instant::now();
        for s in &starts {
            let mut n = 0;
            for entry in table.range(&s[..]..).expect("range") {
                entry.expect("entry");
                n += 1;
                if n == 100 {
                    break;
                }
            }
        }
        t.entry("redb scans of 100")
            .or_default()
            .push(start.elapsed());
        drop((table, tx, db));
        // redb: gets after reopening (its cache empty, the OS's warm).
        let db = Database::open(dir.path().join("redb")).expect("reopen redb");
        let tx = db.begin_read().expect("read");
        let table = tx.open_table(TABLE).expect("table");
        let start = Instant::now();
        for k in &gets {
            assert!(table.get(&k[..]).expect("get").is_some());
        }
        t.entry("redb gets, reopened")
            .or_default()
            .push(start.elapsed());
        eprintln!("run {} of {runs} done", run + 1);
    }
    let m: BTreeMap<&str, Duration> = t.into_iter().map(|(k, v)| (k, median(v))).collect();
    let rate = |k: &str, n: usize| n as f64 / m[k].as_secs_f64();
    println!("\n== summary (medians of {runs}) ==");
    println!(
        "puts, 1M in batches of 10k   hydra {:>9.0}/s   redb {:>9.0}/s   hydra time / redb time {:.2}x",
        rate("hydra puts", N),
        rate("redb puts", N),
        m["hydra puts"].as_secs_f64() / m["redb puts"].as_secs_f64()
    );
    println!(
        "gets, 1M random, warm        hydra {:>9.0}/s   redb {:>9.0}/s   hydra time / redb time {:.2}x",
        rate("hydra gets, cached", GETS),
        rate("redb gets", GETS),
        m["hydra gets, cached"].as_secs_f64() / m["redb gets"].as_secs_f64(),
    );
    println!(
        "gets, 1M random, reopened    hydra {:>9.0}/s   redb {:>9.0}/s   hydra time / redb time {:.2}x",
        rate("hydra gets, cold cache", GETS),
        rate("redb gets, reopened", GETS),
        m["hydra gets, cold cache"].as_secs_f64() / m["redb gets, reopened"].as_secs_f64()
    );
    println!(
        "scans of 100 keys, 1,000     hydra {:>9.0}/s   redb {:>9.0}/s   {:.2}x redb's time",
        rate("hydra scans of 100", SCANS),
        rate("redb scans of 100", SCANS),
        m["hydra scans of 100"].as_secs_f64() / m["redb scans of 100"].as_secs_f64()
    );
    println!(
        "diff of two 1M-key trees differing in 100 keys: {:.2} ms",
        m["hydra diff, 100 of 1M"].as_secs_f64() * 1e3
    );
}
