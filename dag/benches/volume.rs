//! Default-volume throughput beside its floor and a naive design.
//!
//! For 64 KiB blocks in 16 MiB batches, on tmpfs (`/dev/shm`) and on the
//! disk (`$TMPDIR`), side by side in one run:
//! - put: hydra's `LocalVolume` (pack append + fsync + SQLite index commit)
//!   vs a plain sequential write of the same bytes to one file with one
//!   fsync (the floor) vs rusqlite inserting the same rows (naive design);
//! - get: `LocalVolume` cold (bytes in the page cache, no block cache),
//!   the same through the verifying decorator, through a warm block cache,
//!   vs plain sequential file reads and rusqlite selects.
//!
//! Also: block-cache hits of small blocks per second. At the end a summary
//! prints medians and ratios. Run: `cargo bench -p hydra-dag --bench volume`.
#![allow(missing_docs)] // criterion's macros generate undocumented items

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use hydra_dag::{Block, CachedVolume, Cid, Codec, LocalVolume, VerifiedVolume, Volume};

const BLOCK: usize = 64 * 1024;
const TOTAL: usize = 256 << 20;
const BATCH: usize = 256; // blocks per put_many: 16 MiB

/// One way of putting the blocks into a directory; returns the time taken.
type PutFn = fn(&Path, &[Block]) -> Duration;

static MEDIANS: Mutex<BTreeMap<String, Vec<Duration>>> = Mutex::new(BTreeMap::new());

fn record(name: &str, d: Duration) {
    MEDIANS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry(name.to_string())
        .or_default()
        .push(d);
}

fn blocks() -> Vec<Block> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..TOTAL / BLOCK)
        .map(|_| {
            let data: Vec<u8> = (0..BLOCK / 8)
                .flat_map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x.to_le_bytes()
                })
                .collect();
            Block::new(Codec::RAW, data).expect("64 KiB block")
        })
        .collect()
}

fn places() -> Vec<(&'static str, PathBuf)> {
    let mut out = Vec::new();
    if Path::new("/dev/shm").is_dir() {
        out.push(("tmpfs", PathBuf::from("/dev/shm")));
    }
    out.push(("disk", std::env::temp_dir()));
    out
}

fn plain_write(dir: &Path, blocks: &[Block]) -> Duration {
    let path = dir.join("plain.bin");
    let start = Instant::now();
    let mut f = File::create(&path).expect("create");
    for b in blocks {
        f.write_all(b.data()).expect("write");
    }
    f.sync_data().expect("fsync");
    start.elapsed()
}

fn sqlite_open(path: &Path) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open(path).expect("open");
    conn.pragma_update(None, "journal_mode", "WAL")
        .expect("wal");
    conn.pragma_update(None, "synchronous", "FULL")
        .expect("sync");
    conn.execute_batch("CREATE TABLE IF NOT EXISTS b(cid BLOB PRIMARY KEY, data BLOB NOT NULL)")
        .expect("schema");
    conn
}

fn sqlite_put(dir: &Path, blocks: &[Block]) -> Duration {
    let mut conn = sqlite_open(&dir.join("naive.sqlite"));
    let start = Instant::now();
    for batch in blocks.chunks(BATCH) {
        let tx = conn.transaction().expect("tx");
        for b in batch {
            tx.prepare_cached("INSERT OR IGNORE INTO b(cid, data) VALUES(?1, ?2)")
                .expect("prepare")
                .execute(rusqlite::params![b.cid().to_bytes(), b.data().as_ref()])
                .expect("insert");
        }
        tx.commit().expect("commit");
    }
    start.elapsed()
}

fn hydra_put(dir: &Path, blocks: &[Block]) -> Duration {
    let vol = LocalVolume::open(dir, false).expect("open");
    let start = Instant::now();
    for batch in blocks.chunks(BATCH) {
        vol.put_many(batch).expect("put");
    }
    start.elapsed()
}

fn fresh_dir(base: &Path) -> tempfile::TempDir {
    tempfile::tempdir_in(base).expect("tempdir")
}

fn bench_put(c: &mut Criterion, blocks: &[Block]) {
    for (place, base) in places() {
        let mut group = c.benchmark_group(format!("put-64k/{place}"));
        group
            .sample_size(10)
            .throughput(Throughput::Bytes(TOTAL as u64));
        let cases: [(&str, PutFn); 3] = [
            ("plain-file", plain_write),
            ("hydra-local", hydra_put),
            ("rusqlite-rows", sqlite_put),
        ];
        for (name, run) in cases {
            let key = format!("put/{place}/{name}");
            group.bench_function(BenchmarkId::from_parameter(name), |b| {
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let dir = fresh_dir(&base);
                        let d = run(dir.path(), blocks);
                        record(&key, d);
                        total += d;
                    }
                    total
                })
            });
        }
        group.finish();
    }
}

fn bench_get(c: &mut Criterion, blocks: &[Block]) {
    let cids: Vec<Cid> = blocks.iter().map(|b| *b.cid()).collect();
    for (place, base) in places() {
        let dir = fresh_dir(&base);
        plain_write(dir.path(), blocks);
        sqlite_put(dir.path(), blocks);
        let local: Arc<dyn Volume> = Arc::new(LocalVolume::open(dir.path(), false).expect("open"));
        for batch in blocks.chunks(BATCH) {
            local.put_many(batch).expect("put");
        }
        let verified: Arc<dyn Volume> = Arc::new(VerifiedVolume::new(local.clone()));
        let cached = CachedVolume::new(verified.clone(), TOTAL * 2);
        for cid in &cids {
            cached.get(cid).expect("warm");
        }
        let plain = File::open(dir.path().join("plain.bin")).expect("open");
        let conn = sqlite_open(&dir.path().join("naive.sqlite"));

        let mut group = c.benchmark_group(format!("get-64k/{place}"));
        group
            .sample_size(10)
            .throughput(Throughput::Bytes(TOTAL as u64));
        let mut run = |name: &str, f: &dyn Fn()| {
            let key = format!("get/{place}/{name}");
            group.bench_function(BenchmarkId::from_parameter(name), |b| {
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let start = Instant::now();
                        f();
                        let d = start.elapsed();
                        record(&key, d);
                        total += d;
                    }
                    total
                })
            });
        };
        run("plain-file", &|| {
            let mut buf = vec![0u8; BLOCK];
            for i in 0..cids.len() {
                plain
                    .read_exact_at(&mut buf, (i * BLOCK) as u64)
                    .expect("read");
            }
        });
        run("hydra-local-cold", &|| {
            for chunk in cids.chunks(BATCH) {
                for cid in chunk {
                    local.get(cid).expect("get").expect("present");
                }
            }
        });
        run("hydra-verified-cold", &|| {
            for cid in &cids {
                verified.get(cid).expect("get").expect("present");
            }
        });
        run("hydra-cached", &|| {
            for cid in &cids {
                cached.get(cid).expect("get").expect("present");
            }
        });
        run("rusqlite-rows", &|| {
            let mut stmt = conn
                .prepare_cached("SELECT data FROM b WHERE cid = ?1")
                .expect("prepare");
            for cid in &cids {
                let data: Vec<u8> = stmt.query_row([cid.to_bytes()], |r| r.get(0)).expect("row");
                assert_eq!(data.len(), BLOCK);
            }
        });
        group.finish();
    }
}

fn bench_cache_hits(c: &mut Criterion) {
    const N: usize = 10_000;
    let inner: Arc<dyn Volume> = Arc::new(hydra_dag::MemoryVolume::new());
    let cache = CachedVolume::new(inner, 64 << 20);
    let blocks: Vec<Block> = (0..N)
        .map(|i| {
            Block::new(Codec::DAG_CBOR, format!("small block {i:>80}").into_bytes()).expect("block")
        })
        .collect();
    cache.put_many(&blocks).expect("put");
    let cids: Vec<Cid> = blocks.iter().map(|b| *b.cid()).collect();
    for cid in &cids {
        cache.get(cid).expect("warm");
    }
    let mut group = c.benchmark_group("cache-hit-small");
    group.throughput(Throughput::Elements(N as u64));
    group.bench_function("get", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let start = Instant::now();
                for cid in &cids {
                    std::hint::black_box(cache.get(cid).expect("get"));
                }
                let d = start.elapsed();
                record("cache-hit/small", d);
                total += d;
            }
            total
        })
    });
    group.finish();
}

fn summary() {
    let medians = MEDIANS.lock().unwrap_or_else(|e| e.into_inner());
    let median = |key: &str| -> Option<f64> {
        let mut v = medians.get(key)?.clone();
        v.sort();
        Some(v[v.len() / 2].as_secs_f64())
    };
    println!("\n== summary (medians) ==");
    for (place, _) in places() {
        for op in ["put", "get"] {
            let floor = median(&format!("{op}/{place}/plain-file"));
            for (key, _) in medians
                .iter()
                .filter(|(k, _)| k.starts_with(&format!("{op}/{place}/")))
            {
                let Some(t) = median(key) else { continue };
                let mbps = TOTAL as f64 / t / 1e6;
                let ratio = floor.map_or(String::new(), |f| {
                    format!("  {:.2}x the plain-file time", t / f)
                });
                println!("{key:<32} {mbps:>8.0} MB/s{ratio}");
            }
        }
    }
    if let Some(t) = median("cache-hit/small") {
        println!(
            "{:<32} {:>8.2} M gets/s",
            "cache-hit/small",
            10_000.0 / t / 1e6
        );
    }
}

fn all(c: &mut Criterion) {
    let blocks = blocks();
    bench_put(c, &blocks);
    bench_get(c, &blocks);
    bench_cache_hits(c);
    summary();
}

criterion_group!(benches, all);
criterion_main!(benches);
