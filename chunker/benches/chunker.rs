//! Chunking throughput beside its bounds, and random reads.
//!
//! Over the same 1 GiB of random bytes, in one run: raw BLAKE3 (one call
//! over each 64 KiB-ish piece, as chunk hashing does), raw FastCDC cut
//! points, and hydra's blob writer (cut + hash + store) into the memory
//! volume (from shared bytes without a copy, and through the copying
//! streaming writer) and into the default (embedded, on-disk) volume. The summary
//! prints medians and the writer's speed as a fraction of the
//! single-threaded bound 1/(1/blake3 + 1/fastcdc). Then random 4 KiB reads
//! from the 1 GiB blob with its blocks cached. Run:
//! `cargo bench -p hydra-chunker --bench chunker`.
#![allow(missing_docs)] // criterion's macros generate undocumented items

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use hydra_chunker::{BlobReader, ChunkParams, put_bytes, put_shared};
use hydra_dag::{Bucket, Store, StoreOptions};

const TOTAL: usize = 1 << 30;
const READS: usize = 100_000;

static TIMES: Mutex<BTreeMap<&'static str, Vec<Duration>>> = Mutex::new(BTreeMap::new());

fn record(name: &'static str, d: Duration) {
    TIMES
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry(name)
        .or_default()
        .push(d);
}

fn noise(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out
}

fn timed(c: &mut Criterion, group: &str, name: &'static str, bytes: u64, mut f: impl FnMut()) {
    let mut g = c.benchmark_group(group);
    g.sample_size(10).throughput(Throughput::Bytes(bytes));
    g.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let start = Instant::now();
                f();
                let d = start.elapsed();
                record(name, d);
                total += d;
            }
            total
        })
    });
    g.finish();
}

fn all(c: &mut Criterion) {
    let data = noise(TOTAL);
    let params = ChunkParams::default();
    let mut cuts = Vec::new();
    params.split(&data, true, &mut cuts);

    timed(c, "bounds", "blake3", TOTAL as u64, || {
        for &(o, l) in &cuts {
            std::hint::black_box(blake3::hash(&data[o..o + l]));
        }
    });
    timed(c, "bounds", "fastcdc", TOTAL as u64, || {
        let mut out = Vec::with_capacity(cuts.len());
        params.split(&data, true, &mut out);
        std::hint::black_box(out);
    });
    let shared = bytes::Bytes::from(data.clone());
    timed(c, "blob-put", "memory-volume", TOTAL as u64, || {
        let bucket = Bucket::in_memory();
        std::hint::black_box(put_shared(&bucket.session(), params, shared.clone()).expect("put"));
    });
    timed(c, "blob-put", "memory-volume-copying", TOTAL as u64, || {
        let bucket = Bucket::in_memory();
        std::hint::black_box(put_bytes(&bucket.session(), params, &data).expect("put"));
    });
    // Into a fresh embedded store each time; creating and closing the
    // store stay outside the measured time.
    let mut g = c.benchmark_group("blob-put");
    g.sample_size(10)
        .throughput(Throughput::Bytes(TOTAL as u64));
    g.bench_function("default-volume", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let dir = tempfile::tempdir().expect("tempdir");
                let (store, _) =
                    Store::init(&dir.path().join("s"), &StoreOptions::default()).expect("store");
                let session = store.bucket().session();
                let start = Instant::now();
                std::hint::black_box(put_bytes(&session, params, &data).expect("put"));
                let d = start.elapsed();
                record("default-volume", d);
                total += d;
            }
            total
        })
    });
    g.finish();

    // Random 4 KiB reads: the blob's blocks are all in the block cache.
    let dir = tempfile::tempdir().expect("tempdir");
    let options = StoreOptions {
        cache_bytes: TOTAL * 2,
        ..StoreOptions::default()
    };
    let (store, _) = Store::init(&dir.path().join("s"), &options).expect("store");
    let blob = put_bytes(&store.bucket().session(), params, &data).expect("put");
    let mut reader = BlobReader::new(store.bucket().clone(), blob);
    let mut x: u64 = 42;
    let mut offsets = Vec::with_capacity(READS);
    for _ in 0..READS {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        offsets.push(x % (TOTAL as u64 - 4096));
    }
    for &o in &offsets {
        reader.read_at(o, 4096).expect("warm");
    }
    let mut g = c.benchmark_group("blob-read");
    g.sample_size(10)
        .throughput(Throughput::Elements(READS as u64));
    g.bench_function("random-4k-cached", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let start = Instant::now();
                for &o in &offsets {
                    std::hint::black_box(reader.read_at(o, 4096).expect("read"));
                }
                let d = start.elapsed();
                record("random-4k-cached", d);
                total += d;
            }
            total
        })
    });
    g.finish();
    summary();
}

fn summary() {
    let times = TIMES.lock().unwrap_or_else(|e| e.into_inner());
    let median = |k: &str| -> f64 {
        let mut v = times.get(k).cloned().unwrap_or_default();
        v.sort();
        v.get(v.len() / 2).map_or(f64::NAN, Duration::as_secs_f64)
    };
    let gbps = |k: &str| TOTAL as f64 / median(k) / 1e9;
    let bound = 1.0 / (1.0 / gbps("blake3") + 1.0 / gbps("fastcdc"));
    println!("\n== summary (medians) ==");
    println!("blake3 alone                  {:>6.2} GB/s", gbps("blake3"));
    println!(
        "fastcdc alone                 {:>6.2} GB/s",
        gbps("fastcdc")
    );
    println!("single-thread bound           {bound:>6.2} GB/s");
    for k in ["memory-volume", "memory-volume-copying", "default-volume"] {
        println!(
            "blob put, {k:<19} {:>6.2} GB/s  ({:.0}% of the bound)",
            gbps(k),
            100.0 * gbps(k) / bound
        );
    }
    println!(
        "random 4 KiB reads, cached    {:>6.0} k reads/s",
        READS as f64 / median("random-4k-cached") / 1e3
    );
}

criterion_group!(benches, all);
criterion_main!(benches);
