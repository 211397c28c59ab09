//! Integration tests of `hydra-dag`, run against its public API only.
//!
//! - `conformance::<behaviour>::<backend>`: the `Volume` contract, one
//!   function per behaviour, run against every backend and decorator stack.
//! - `model::*`: random operation sequences on a `LocalVolume`, checked
//!   against a `BTreeMap` after every step, with reopens and compaction.
//! - Persistence, torn pack tails, corruption and `kill -9`: what survives a
//!   reopen, a crash mid-append and a flipped byte.
//! - `gc_racing_*`: collection racing writers and readers in one process.
//! - `car_*`, `truncated_car_*`: CAR round trips and truncated files.
//! - Regression tests for races the suite found: a read racing a delete
//!   through the cache, the grace period of a re-stored block, reads during
//!   back-to-back compactions.
//!
//! Some tests edit the SQLite index behind the store's back with the
//! `sqlite3` command-line tool; they fail (not skip) when it is missing.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use hydra_dag::local::pack::{MAGIC, TARGET_SIZE, record_header_len};
use hydra_dag::local::{INLINE_MAX, SPARSE_MAX};
use hydra_dag::{
    Block, Bucket, CachedVolume, Cid, Codec, DagError, EncryptionSpec, GcOptions, Ipld,
    LocalVolume, MAX_BLOCK_SIZE, MemoryVolume, OpenMode, RedisVolume, RefName, RefNote, Secret,
    Store, StoreConfig, StoreOptions, TransformVolume, Transforms, VerifiedVolume, Volume,
    VolumeSpec, VolumeStats, now_ns,
};
use tempfile::TempDir;

mod support {
    // Shared with the end-to-end tests, which use all of it.
    #[allow(dead_code)]
    #[path = "redis.rs"]
    pub mod redis;
}

// ---------------------------------------------------------------------------
// Shared helpers
// ---------------------------------------------------------------------------

/// `len` pseudo-random bytes, a pure function of `(seed, len)`.
fn bytes_for(seed: u64, len: usize) -> Vec<u8> {
    let mut hasher = blake3::Hasher::new();
    hasher.update(&seed.to_le_bytes());
    hasher.update(&(len as u64).to_le_bytes());
    let mut out = vec![0u8; len];
    hasher.finalize_xof().fill(&mut out);
    out
}

fn block(codec: Codec, seed: u64, len: usize) -> Block {
    Block::new(codec, bytes_for(seed, len)).expect("test blocks are within the size limit")
}

/// `len` zeros but for `island` pseudo-random bytes at `at`, as a write
/// into a hole leaves a chunk.
fn sparse_block(seed: u64, len: usize, at: usize, island: usize) -> Block {
    let mut data = vec![0u8; len];
    data[at..at + island].copy_from_slice(&bytes_for(seed, island));
    Block::new(Codec::RAW, data).expect("test blocks are within the size limit")
}

/// Mostly-zero blocks of every kind the embedded volume trims, and some
/// just past what it trims.
fn sparse_blocks() -> Vec<Block> {
    let k = 256 << 10;
    vec![
        sparse_block(1, k, 0, 0),
        sparse_block(2, MAX_BLOCK_SIZE, 0, 0),
        sparse_block(3, k, 100_000, 512),
        sparse_block(4, k, 0, 700),
        sparse_block(5, k, k - 700, 700),
        sparse_block(6, k, 0, k / 8),
        sparse_block(7, k, 5, SPARSE_MAX),
        sparse_block(8, k, 5, SPARSE_MAX + 1),
        sparse_block(9, 40_000, 1, 10_000),
        sparse_block(10, 40_000, 1, 10_001),
        sparse_block(11, INLINE_MAX + 1, 3, 1),
    ]
}

/// A CID that no test ever stores.
fn absent_cid(n: u64) -> Cid {
    Cid::hash(Codec::RAW, format!("never stored {n}").as_bytes())
}

fn name(s: &str) -> RefName {
    RefName::new(s).expect("valid ref name")
}

fn note(message: &str) -> RefNote {
    RefNote {
        author: "tests".into(),
        message: message.into(),
        ..RefNote::default()
    }
}

/// Describes a read result without dumping megabytes into a failure message.
fn describe(got: &Option<Bytes>) -> String {
    match got {
        None => "absent".into(),
        Some(b) => format!("{} bytes, blake3 {}", b.len(), blake3::hash(b).to_hex()),
    }
}

/// Asserts that `volume` returns exactly `expected` for `cid`.
fn assert_reads(volume: &dyn Volume, cid: &Cid, expected: &[u8], context: &str) {
    let got = volume
        .get(cid)
        .unwrap_or_else(|e| panic!("{context}: get {cid} failed: {e}"));
    assert!(
        got.as_deref() == Some(expected),
        "{context}: get {cid} returned {}, expected {} bytes, blake3 {}",
        describe(&got),
        expected.len(),
        blake3::hash(expected).to_hex()
    );
    // The same bytes through `get_into`, and a buffer of another length
    // left untouched.
    let mut exact = vec![0xA5; expected.len()];
    let found = volume
        .get_into(cid, &mut exact)
        .unwrap_or_else(|e| panic!("{context}: get_into {cid} failed: {e}"));
    assert_eq!(found, Some(expected.len()), "{context}: get_into length");
    assert!(exact == expected, "{context}: get_into filled other bytes");
    let mut longer = vec![0xA5; expected.len() + 1];
    let found = volume
        .get_into(cid, &mut longer)
        .unwrap_or_else(|e| panic!("{context}: get_into {cid} failed: {e}"));
    assert_eq!(found, Some(expected.len()), "{context}: get_into length");
    assert!(
        longer.iter().all(|&b| b == 0xA5),
        "{context}: get_into wrote into a buffer of another length"
    );
}

/// Every block a volume lists, with its size; fails on a duplicate listing.
fn listed(volume: &dyn Volume) -> BTreeMap<Cid, u64> {
    let mut out = BTreeMap::new();
    let mut duplicates = Vec::new();
    volume
        .for_each_block(&mut |info| {
            if out.insert(info.cid, info.size).is_some() {
                duplicates.push(info.cid);
            }
        })
        .expect("for_each_block");
    assert!(
        duplicates.is_empty(),
        "for_each_block listed {duplicates:?} more than once"
    );
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Runs one SQL script on `db` with the `sqlite3` command-line tool and
/// returns its standard output. Panics when the tool is missing: the tests
/// that need it must not pass without checking anything.
fn sqlite3(db: &Path, args: &[&str], sql: &str) -> String {
    let output = Command::new("sqlite3")
        .args(args)
        .arg(db)
        .arg(sql)
        .output()
        .unwrap_or_else(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                panic!(
                    "this test edits the SQLite index with the `sqlite3` command-line tool, \
                     which is not on PATH; install it (e.g. `apt-get install sqlite3`)"
                )
            }
            panic!("could not run sqlite3: {e}")
        });
    assert!(
        output.status.success(),
        "sqlite3 {} {sql:?} failed ({}): {}",
        db.display(),
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("sqlite3 prints UTF-8")
}

fn pack_path(dir: &Path, id: u32) -> PathBuf {
    dir.join("packs").join(format!("{id:08}.pack"))
}

fn pack_files(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir.join("packs"))
        .expect("read packs dir")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "pack"))
        .collect();
    out.sort();
    out
}

/// Committed pack sizes as the index records them: (id, size).
fn committed_packs(dir: &Path) -> Vec<(u32, u64)> {
    sqlite3(
        &dir.join("index.sqlite"),
        &["-readonly"],
        "SELECT id || ' ' || size FROM packs ORDER BY id;",
    )
    .lines()
    .map(|line| {
        let (id, size) = line.split_once(' ').expect("id size");
        (
            id.parse().expect("pack id"),
            size.parse().expect("pack size"),
        )
    })
    .collect()
}

/// Makes the volume in `dir` (closed) look as if its current pack had
/// reached the 1 GiB target size, so the next open starts a new pack and
/// the old one becomes eligible for compaction. The pack is extended with a
/// sparse hole; nothing indexed points into the hole.
fn simulate_full_pack(dir: &Path) {
    let db = dir.join("index.sqlite");
    let id: u32 = sqlite3(&db, &[], "SELECT max(id) FROM packs;")
        .trim()
        .parse()
        .expect("the volume has a pack");
    let file = OpenOptions::new()
        .write(true)
        .open(pack_path(dir, id))
        .expect("open current pack");
    file.set_len(TARGET_SIZE).expect("extend pack sparsely");
    drop(file);
    let changed = sqlite3(
        &db,
        &[],
        &format!("UPDATE packs SET size = {TARGET_SIZE} WHERE id = {id}; SELECT changes();"),
    );
    assert_eq!(changed.trim(), "1", "marking pack {id} full changed no row");
}

fn local_volume(dir: &Path) -> LocalVolume {
    LocalVolume::open(dir, false)
        .unwrap_or_else(|e| panic!("open LocalVolume in {}: {e}", dir.display()))
}

fn tempdir() -> TempDir {
    tempfile::tempdir().expect("tempdir")
}

fn small_cache() -> StoreOptions {
    StoreOptions {
        cache_bytes: 1 << 20,
        ..StoreOptions::default()
    }
}

/// Stats without `stored_bytes`, which counts SQLite's own files.
fn counters(stats: &VolumeStats) -> (u64, u64, u64, u64) {
    (
        stats.blocks,
        stats.block_bytes,
        stats.refs,
        stats.log_entries,
    )
}

// ---------------------------------------------------------------------------
// 1. Conformance: the Volume contract on every backend and stack
// ---------------------------------------------------------------------------

mod conformance {
    use super::*;

    /// A volume under test and what keeps its storage alive.
    struct Fixture {
        volume: Arc<dyn Volume>,
        _dir: Option<TempDir>,
        _redis: Option<support::redis::Redis>,
    }

    /// The stack a store with both transforms builds (the cache aside).
    fn transformed_local() -> Fixture {
        let Fixture { volume, _dir, .. } = local();
        let secret = Secret::Passphrase("correct horse".into());
        let transforms = Transforms {
            zstd_level: Some(3),
            encryption: Some(EncryptionSpec::new(&secret).expect("spec")),
        };
        let sealed: Arc<dyn Volume> =
            Arc::new(TransformVolume::new(volume, &transforms, Some(&secret)).expect("open"));
        Fixture {
            volume: Arc::new(VerifiedVolume::new(sealed)),
            _dir,
            _redis: None,
        }
    }

    fn redis_single() -> Fixture {
        let redis = support::redis::Redis::single();
        let volume = RedisVolume::open(redis.nodes.clone(), "t", 1).expect("connect");
        Fixture {
            volume: Arc::new(volume),
            _dir: None,
            _redis: Some(redis),
        }
    }

    fn redis_cluster() -> Fixture {
        let redis = support::redis::Redis::cluster(3, 0);
        let volume = RedisVolume::open(vec![redis.nodes[1].clone()], "t", 1).expect("connect");
        Fixture {
            volume: Arc::new(volume),
            _dir: None,
            _redis: Some(redis),
        }
    }

    /// Small enough that blocks above 32 KiB bypass the cache and others
    /// get evicted, so both cache paths run.
    const CACHE_BYTES: usize = 256 << 10;

    fn memory() -> Fixture {
        Fixture {
            volume: Arc::new(MemoryVolume::new()),
            _dir: None,
            _redis: None,
        }
    }

    fn local() -> Fixture {
        let dir = tempdir();
        Fixture {
            volume: Arc::new(local_volume(dir.path())),
            _dir: Some(dir),
            _redis: None,
        }
    }

    fn verified_cached_local() -> Fixture {
        let Fixture { volume, _dir, .. } = local();
        let cached: Arc<dyn Volume> = Arc::new(CachedVolume::new(volume, CACHE_BYTES));
        Fixture {
            volume: Arc::new(VerifiedVolume::new(cached)),
            _dir,
            _redis: None,
        }
    }

    /// The stack `Store` builds.
    fn cached_verified_local() -> Fixture {
        let Fixture { volume, _dir, .. } = local();
        let verified: Arc<dyn Volume> = Arc::new(VerifiedVolume::new(volume));
        Fixture {
            volume: Arc::new(CachedVolume::new(verified, CACHE_BYTES)),
            _dir,
            _redis: None,
        }
    }

    /// One test per (behaviour, backend): `conformance::<behaviour>::<backend>`.
    macro_rules! suite {
        ($($behaviour:ident),* $(,)?) => {$(
            mod $behaviour {
                #[test]
                fn memory() {
                    super::$behaviour(&*super::memory().volume);
                }
                #[test]
                fn local() {
                    super::$behaviour(&*super::local().volume);
                }
                #[test]
                fn verified_cached_local() {
                    super::$behaviour(&*super::verified_cached_local().volume);
                }
                #[test]
                fn cached_verified_local() {
                    super::$behaviour(&*super::cached_verified_local().volume);
                }
                #[test]
                fn transformed_local() {
                    super::$behaviour(&*super::transformed_local().volume);
                }
                #[test]
                fn redis_single() {
                    super::$behaviour(&*super::redis_single().volume);
                }
                #[test]
                fn redis_cluster() {
                    super::$behaviour(&*super::redis_cluster().volume);
                }
            }
        )*};
    }

    suite!(
        round_trip_across_sizes,
        put_many_is_idempotent_and_dedups_a_batch,
        delete_many_counts_present_blocks,
        for_each_block_lists_exactly_the_stored_set,
        cas_ref_semantics,
        put_many_and_cas_ref_keeps_the_blocks_when_the_ref_conflicts,
        list_refs_is_sorted_by_name,
        log_is_newest_first_filtered_and_limited,
        stats_count_blocks_refs_and_log,
        compact_keeps_every_live_block,
        log_keeps_time_and_signature_as_given,
    );

    /// An entry copied from another store keeps its time and signature,
    /// and still verifies when read back.
    fn log_keeps_time_and_signature_as_given(v: &dyn Volume) {
        let id = hydra_dag::Identity::generate().expect("identity");
        let r = name("fs/signed");
        let root = absent_cid(7);
        let payload = hydra_dag::entry_payload(&r, None, Some(&root), 12_345, "tests", "copied");
        let signed = RefNote {
            time_ns: Some(12_345),
            signature: Some(id.sign(&payload)),
            ..note("copied")
        };
        let made = v.cas_ref(&r, None, Some(&root), &signed).expect("cas");
        v.cas_ref(&r, Some(&root), None, &note("unsigned"))
            .expect("cas");
        let log = v.log(Some(&r), 10).expect("log");
        assert_eq!(log.len(), 2);
        assert_eq!(log[1], made);
        assert_eq!(log[1].time_ns, 12_345);
        assert_eq!(log[1].verify(), hydra_dag::Verdict::Valid(id.signer()));
        assert_eq!(log[0].verify(), hydra_dag::Verdict::Unsigned);
    }

    fn round_trip_across_sizes(v: &dyn Volume) {
        let sizes = [
            0,
            1,
            INLINE_MAX - 1,
            INLINE_MAX,
            INLINE_MAX + 1,
            64 << 10,
            MAX_BLOCK_SIZE,
        ];
        // The same bytes under two codecs are two blocks.
        let mut blocks: Vec<Block> = sizes
            .iter()
            .enumerate()
            .flat_map(|(i, &len)| [Codec::RAW, Codec::DAG_CBOR].map(|c| block(c, i as u64, len)))
            .collect();
        blocks.extend(sparse_blocks());
        for b in &blocks {
            let cid = b.cid();
            assert_eq!(
                v.get(cid).expect("get").as_deref(),
                None,
                "{cid} present before put"
            );
            assert!(!v.has(cid).expect("has"), "{cid} has() before put");
            let mut out = vec![0; b.len()];
            assert_eq!(v.get_into(cid, &mut out).expect("get_into"), None);
        }
        for b in &blocks {
            v.put(b)
                .unwrap_or_else(|e| panic!("put {} bytes: {e}", b.len()));
        }
        for round in ["first read", "second read"] {
            for b in &blocks {
                assert_reads(
                    v,
                    b.cid(),
                    b.data(),
                    &format!("{round} of {} bytes", b.len()),
                );
                assert!(
                    v.has(b.cid()).expect("has"),
                    "{} bytes: has() false after put",
                    b.len()
                );
            }
        }
        let mut cids: Vec<Cid> = blocks.iter().map(|b| *b.cid()).collect();
        cids.insert(3, absent_cid(1));
        let many = v.get_many(&cids).expect("get_many");
        assert_eq!(many.len(), cids.len(), "get_many answers once per CID");
        for (i, (cid, got)) in cids.iter().zip(&many).enumerate() {
            let expected = blocks
                .iter()
                .find(|b| b.cid() == cid)
                .map(|b| b.data().clone());
            assert!(
                *got == expected,
                "get_many[{i}] for {cid}: {} but expected {}",
                describe(got),
                describe(&expected)
            );
        }
        let err = Block::new(Codec::RAW, vec![0u8; MAX_BLOCK_SIZE + 1]).expect_err("too large");
        assert!(matches!(err, DagError::BlockTooLarge { .. }), "{err}");
    }

    fn put_many_is_idempotent_and_dedups_a_batch(v: &dyn Volume) {
        let a = block(Codec::RAW, 1, 10);
        let b = block(Codec::RAW, 2, 5000);
        let c = block(Codec::RAW, 3, 0);
        let batch = [
            a.clone(),
            b.clone(),
            a.clone(),
            c.clone(),
            b.clone(),
            c.clone(),
        ];
        v.put_many(&batch).expect("put_many");
        let expected = BTreeMap::from([(*a.cid(), 10), (*b.cid(), 5000), (*c.cid(), 0)]);
        assert_eq!(
            listed(v),
            expected,
            "a batch with duplicates stores each block once"
        );
        let stats = v.stats().expect("stats");
        assert_eq!((stats.blocks, stats.block_bytes), (3, 5010), "{stats:?}");

        let mut infos = Vec::new();
        v.for_each_block(&mut |i| infos.push(i)).expect("list");
        v.put_many(&batch).expect("put_many again");
        v.put(&b).expect("put again");
        let again = v.stats().expect("stats");
        assert_eq!(
            (again.blocks, again.block_bytes),
            (stats.blocks, stats.block_bytes),
            "putting stored blocks again stores nothing new"
        );
        let mut infos_again = Vec::new();
        v.for_each_block(&mut |i| infos_again.push(i))
            .expect("list");
        infos.sort_by_key(|i| i.cid);
        infos_again.sort_by_key(|i| i.cid);
        for (first, second) in infos.iter().zip(&infos_again) {
            assert_eq!((first.cid, first.size), (second.cid, second.size));
            assert!(
                second.stored_ms >= first.stored_ms,
                "a repeated put refreshes stored_ms (GC grace), never moves it back"
            );
        }

        let d = block(Codec::RAW, 4, 3000);
        v.put_many(&[a.clone(), d.clone(), b.clone()])
            .expect("mixed batch");
        assert_eq!(
            v.stats().expect("stats").blocks,
            4,
            "only the new block is added"
        );
        for x in [&a, &b, &c, &d] {
            assert_reads(v, x.cid(), x.data(), "after repeated puts");
        }
    }

    fn delete_many_counts_present_blocks(v: &dyn Volume) {
        let a = block(Codec::RAW, 10, 100);
        let b = block(Codec::RAW, 11, 9000);
        let c = block(Codec::DAG_CBOR, 12, 9000);
        let d = block(Codec::RAW, 13, INLINE_MAX);
        v.put_many(&[a.clone(), b.clone(), c.clone(), d.clone()])
            .expect("put_many");

        assert_eq!(v.delete_many(&[]).expect("delete nothing"), 0);
        let n = v
            .delete_many(&[*a.cid(), absent_cid(2), *b.cid()])
            .expect("delete");
        assert_eq!(n, 2, "two of the three CIDs were stored");
        assert_eq!(
            v.delete_many(&[*a.cid(), *b.cid()]).expect("delete"),
            0,
            "already gone"
        );
        for gone in [&a, &b] {
            assert_eq!(
                v.get(gone.cid()).expect("get"),
                None,
                "{} still readable",
                gone.cid()
            );
            assert!(
                !v.has(gone.cid()).expect("has"),
                "{} still has()",
                gone.cid()
            );
        }
        for kept in [&c, &d] {
            assert_reads(v, kept.cid(), kept.data(), "neighbour of a deleted block");
        }
        assert_eq!(
            listed(v),
            BTreeMap::from([(*c.cid(), 9000), (*d.cid(), INLINE_MAX as u64)])
        );

        v.put(&b).expect("put a deleted block again");
        assert_reads(v, b.cid(), b.data(), "deleted then stored again");
        let n = v
            .delete_many(&[*c.cid(), *d.cid(), *b.cid()])
            .expect("delete all");
        assert_eq!(n, 3);
        let stats = v.stats().expect("stats");
        assert_eq!((stats.blocks, stats.block_bytes), (0, 0), "{stats:?}");
        assert!(listed(v).is_empty());
    }

    fn for_each_block_lists_exactly_the_stored_set(v: &dyn Volume) {
        let before_ms = now_ns() / 1_000_000;
        let sizes = [0, 1, 17, 2048, 2049, 4000, 70_000];
        let blocks: Vec<Block> = (0..40u64)
            .map(|i| block(Codec::RAW, 100 + i, sizes[i as usize % sizes.len()]))
            .collect();
        for chunk in blocks.chunks(7) {
            v.put_many(chunk).expect("put_many");
        }
        let doomed: Vec<Cid> = blocks.iter().step_by(3).map(|b| *b.cid()).collect();
        v.delete_many(&doomed).expect("delete");
        let after_ms = now_ns() / 1_000_000;

        let expected: BTreeMap<Cid, u64> = blocks
            .iter()
            .filter(|b| !doomed.contains(b.cid()))
            .map(|b| (*b.cid(), b.len() as u64))
            .collect();
        assert_eq!(listed(v), expected, "listing after puts and deletes");
        v.for_each_block(&mut |info| {
            assert!(
                (before_ms..=after_ms).contains(&info.stored_ms),
                "{}: stored_ms {} outside the test's window {before_ms}..={after_ms}",
                info.cid,
                info.stored_ms
            );
        })
        .expect("list");
    }

    fn put_many_and_cas_ref_keeps_the_blocks_when_the_ref_conflicts(v: &dyn Volume) {
        let r = name("fs/both");
        let (a, b) = (block(Codec::RAW, 1, 9000), block(Codec::RAW, 2, 100));
        let e = v
            .put_many_and_cas_ref(
                &[a.clone(), b.clone()],
                &r,
                None,
                Some(a.cid()),
                &note("new"),
            )
            .expect("store and create");
        assert_eq!((e.old, e.new), (None, Some(*a.cid())));
        assert_reads(v, a.cid(), a.data(), "stored with the ref");
        assert_reads(v, b.cid(), b.data(), "stored with the ref");
        assert_eq!(v.get_ref(&r).expect("get_ref"), Some(*a.cid()));
        let c = block(Codec::RAW, 3, 70_000);
        let err = v
            .put_many_and_cas_ref(
                std::slice::from_ref(&c),
                &r,
                None,
                Some(c.cid()),
                &note("late"),
            )
            .expect_err("conflict");
        assert!(
            matches!(err, DagError::RefConflict { actual: Some(x), .. } if x == *a.cid()),
            "{err}"
        );
        assert_reads(v, c.cid(), c.data(), "stored though the ref conflicted");
        assert_eq!(v.get_ref(&r).expect("get_ref"), Some(*a.cid()));
        assert_eq!(
            v.log(Some(&r), 10).expect("log").len(),
            1,
            "conflict logged"
        );
        v.put_many_and_cas_ref(&[], &r, Some(a.cid()), Some(c.cid()), &note("move"))
            .expect("move with no blocks");
        assert_eq!(v.get_ref(&r).expect("get_ref"), Some(*c.cid()));
    }

    fn cas_ref_semantics(v: &dyn Volume) {
        let r = name("fs/home");
        let (c1, c2, c3) = (absent_cid(10), absent_cid(11), absent_cid(12));
        assert_eq!(v.get_ref(&r).expect("get_ref"), None);

        let e = v
            .cas_ref(&r, None, Some(&c1), &note("create"))
            .expect("create");
        assert_eq!((e.name.clone(), e.old, e.new), (r.clone(), None, Some(c1)));
        assert_eq!((e.author.as_str(), e.message.as_str()), ("tests", "create"));
        assert_eq!(v.get_ref(&r).expect("get_ref"), Some(c1));

        let conflicts: [(Option<&Cid>, &str); 2] = [
            (None, "create over an existing ref"),
            (Some(&c2), "wrong expected value"),
        ];
        for (expected, what) in conflicts {
            let err = v
                .cas_ref(&r, expected, Some(&c3), &note("must fail"))
                .expect_err(what);
            match err {
                DagError::RefConflict {
                    name,
                    expected: e,
                    actual,
                } => {
                    assert_eq!(name, "fs/home", "{what}");
                    assert_eq!(e, expected.copied(), "{what}: reported expected");
                    assert_eq!(actual, Some(c1), "{what}: reported actual");
                }
                other => panic!("{what}: expected RefConflict, got {other}"),
            }
            assert_eq!(
                v.get_ref(&r).expect("get_ref"),
                Some(c1),
                "{what} changed the ref"
            );
            assert_eq!(
                v.log(None, usize::MAX).expect("log").len(),
                1,
                "{what} was logged"
            );
        }

        let e = v
            .cas_ref(&r, Some(&c1), Some(&c2), &note("move"))
            .expect("move");
        assert_eq!((e.old, e.new), (Some(c1), Some(c2)));
        // A ref may name a block the volume does not hold: refs are just CIDs.
        assert_eq!(v.get_ref(&r).expect("get_ref"), Some(c2));

        let e = v
            .cas_ref(&r, Some(&c2), None, &note("delete"))
            .expect("delete");
        assert_eq!((e.old, e.new), (Some(c2), None));
        assert_eq!(v.get_ref(&r).expect("get_ref"), None);
        assert!(
            v.list_refs().expect("list").is_empty(),
            "deleted ref still listed"
        );
        let err = v
            .cas_ref(&r, Some(&c2), None, &note("x"))
            .expect_err("gone");
        assert!(
            matches!(err, DagError::RefConflict { actual: None, .. }),
            "deleting a deleted ref: {err}"
        );
        v.cas_ref(&r, None, Some(&c3), &note("recreate"))
            .expect("recreate after delete");
        assert_eq!(v.get_ref(&r).expect("get_ref"), Some(c3));
        assert_eq!(
            v.log(None, usize::MAX).expect("log").len(),
            4,
            "four successful updates"
        );
    }

    fn list_refs_is_sorted_by_name(v: &dyn Volume) {
        let names = [
            "zeta", "alpha/b", "alpha", "alpha.b", "alpha-b", "m/x/y", "B", "a", "alpha+",
        ];
        for (i, n) in names.iter().enumerate() {
            v.cas_ref(&name(n), None, Some(&absent_cid(i as u64)), &note(n))
                .expect("create");
        }
        let mut expected: Vec<(RefName, Cid)> = names
            .iter()
            .enumerate()
            .map(|(i, n)| (name(n), absent_cid(i as u64)))
            .collect();
        expected.sort_by(|x, y| x.0.as_str().as_bytes().cmp(y.0.as_str().as_bytes()));
        assert_eq!(
            v.list_refs().expect("list"),
            expected,
            "refs sorted by name bytes"
        );

        v.cas_ref(&name("alpha.b"), Some(&absent_cid(3)), None, &note("rm"))
            .expect("delete");
        expected.retain(|(n, _)| n.as_str() != "alpha.b");
        assert_eq!(v.list_refs().expect("list"), expected, "after deleting one");
    }

    fn log_is_newest_first_filtered_and_limited(v: &dyn Volume) {
        let (r1, r2) = (name("kv/one"), name("kv/two"));
        let c: Vec<Cid> = (20..25).map(absent_cid).collect();
        let ops: [(&RefName, Option<Cid>, Option<Cid>); 5] = [
            (&r1, None, Some(c[1])),
            (&r2, None, Some(c[2])),
            (&r1, Some(c[1]), Some(c[3])),
            (&r2, Some(c[2]), None),
            (&r1, Some(c[3]), Some(c[4])),
        ];
        for (i, (r, old, new)) in ops.iter().enumerate() {
            v.cas_ref(r, old.as_ref(), new.as_ref(), &note(&format!("op {i}")))
                .expect("cas");
            // A failed CAS in between must leave no log entry.
            let _ = v
                .cas_ref(r, Some(&c[0]), None, &note("conflict"))
                .expect_err("conflict");
        }
        let full = v.log(None, usize::MAX).expect("log");
        assert_eq!(full.len(), 5, "one entry per successful update: {full:#?}");
        for (entry, (i, (r, old, new))) in full.iter().zip(ops.iter().enumerate().rev()) {
            assert_eq!(
                (&entry.name, entry.old, entry.new, entry.message.as_str()),
                (*r, *old, *new, format!("op {i}").as_str()),
                "log entry for op {i} (newest first)"
            );
            assert_eq!(entry.author, "tests");
            assert!(entry.time_ns > 0, "entry {} has no time", entry.id);
        }
        assert!(
            full.windows(2).all(|w| w[0].id > w[1].id),
            "ids must decrease newest first: {:?}",
            full.iter().map(|e| e.id).collect::<Vec<_>>()
        );

        let only_r1 = v.log(Some(&r1), usize::MAX).expect("log r1");
        let expected_r1: Vec<_> = full.iter().filter(|e| e.name == r1).cloned().collect();
        assert_eq!(only_r1, expected_r1, "per-ref filter");
        assert_eq!(v.log(Some(&r2), usize::MAX).expect("log r2").len(), 2);
        assert_eq!(
            v.log(None, 2).expect("log 2"),
            full[..2].to_vec(),
            "limit keeps the newest"
        );
        assert_eq!(
            v.log(Some(&r1), 1).expect("log r1 1"),
            expected_r1[..1].to_vec()
        );
        assert!(v.log(None, 0).expect("log 0").is_empty(), "limit 0");
        assert!(
            v.log(Some(&name("kv/none")), 10).expect("log").is_empty(),
            "unknown ref"
        );
    }

    fn stats_count_blocks_refs_and_log(v: &dyn Volume) {
        let empty = v.stats().expect("stats");
        assert_eq!(counters(&empty), (0, 0, 0, 0), "fresh volume: {empty:?}");

        let blocks = [
            block(Codec::RAW, 30, 0),
            block(Codec::RAW, 31, 100),
            block(Codec::RAW, 32, 3000),
        ];
        v.put_many(&blocks).expect("put");
        let (r1, r2) = (name("a"), name("b"));
        v.cas_ref(&r1, None, Some(blocks[1].cid()), &note("1"))
            .expect("cas");
        v.cas_ref(&r2, None, Some(blocks[2].cid()), &note("2"))
            .expect("cas");
        v.cas_ref(
            &r1,
            Some(blocks[1].cid()),
            Some(blocks[0].cid()),
            &note("3"),
        )
        .expect("cas");
        v.cas_ref(&r2, Some(blocks[2].cid()), None, &note("4"))
            .expect("cas");
        let stats = v.stats().expect("stats");
        assert_eq!(counters(&stats), (3, 3100, 1, 4), "{stats:?}");
        assert!(
            stats.stored_bytes >= 3100,
            "stored_bytes below block bytes: {stats:?}"
        );

        v.delete_many(&[*blocks[2].cid()]).expect("delete");
        assert_eq!(counters(&v.stats().expect("stats")), (2, 100, 1, 4));
    }

    fn compact_keeps_every_live_block(v: &dyn Volume) {
        let blocks: Vec<Block> = (0..30u64)
            .map(|i| block(Codec::RAW, 40 + i, [100, 3000, 20_000][i as usize % 3]))
            .collect();
        v.put_many(&blocks).expect("put");
        let dead: Vec<Cid> = blocks.iter().step_by(2).map(|b| *b.cid()).collect();
        v.delete_many(&dead).expect("delete");
        for min_live in [0.5, 1.0, 1.0] {
            v.compact(min_live)
                .unwrap_or_else(|e| panic!("compact({min_live}): {e}"));
            for b in &blocks {
                if dead.contains(b.cid()) {
                    assert_eq!(
                        v.get(b.cid()).expect("get"),
                        None,
                        "deleted block came back"
                    );
                } else {
                    assert_reads(v, b.cid(), b.data(), &format!("after compact({min_live})"));
                }
            }
            assert_eq!(listed(v).len(), 15, "after compact({min_live})");
        }
        let late = block(Codec::RAW, 99, 7000);
        v.put(&late).expect("put after compaction");
        assert_reads(v, late.cid(), late.data(), "written after compaction");
    }
}

// ---------------------------------------------------------------------------
// 2. Model-based test of LocalVolume
// ---------------------------------------------------------------------------

mod model {
    use super::*;
    use proptest::prelude::*;

    #[derive(Clone, Debug)]
    enum Op {
        /// `put_many` of fresh blocks `(seed, len)`, the first repeated if asked.
        Put(Vec<(u8, usize)>, bool),
        /// Puts a stored block again.
        RePut(usize),
        /// Puts a deleted block again.
        PutDeleted(usize),
        /// Deletes stored blocks, plus an absent one if asked.
        Delete(Vec<usize>, bool),
        /// Reads one stored block, or an absent one when none is stored.
        Get(usize),
        /// Drops the volume and opens it again.
        Reopen,
        /// Compacts packs whose live fraction is below the value.
        Compact(f64),
        /// Makes the current pack look full and reopens (a new pack starts).
        Rotate,
    }

    fn size() -> impl Strategy<Value = usize> {
        prop_oneof![
            3 => 0usize..=16,
            3 => (INLINE_MAX - 8)..=(INLINE_MAX + 8),
            4 => (INLINE_MAX + 1)..=80_000,
            1 => Just(MAX_BLOCK_SIZE),
        ]
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => (prop::collection::vec((0u8..32, size()), 1..4), any::<bool>())
                .prop_map(|(b, dup)| Op::Put(b, dup)),
            1 => any::<usize>().prop_map(Op::RePut),
            1 => any::<usize>().prop_map(Op::PutDeleted),
            3 => (prop::collection::vec(any::<usize>(), 1..4), any::<bool>())
                .prop_map(|(i, absent)| Op::Delete(i, absent)),
            1 => any::<usize>().prop_map(Op::Get),
            2 => Just(Op::Reopen),
            2 => (0.5f64..1.0).prop_map(Op::Compact),
            1 => Just(Op::Rotate),
        ]
    }

    #[derive(Default)]
    struct Model {
        live: BTreeMap<Cid, Bytes>,
        deleted: BTreeMap<Cid, Bytes>,
    }

    impl Model {
        fn stored(&mut self, block: &Block) {
            self.deleted.remove(block.cid());
            self.live.insert(*block.cid(), block.data().clone());
        }

        /// The entry at `i` modulo the map's size, if any.
        fn pick(map: &BTreeMap<Cid, Bytes>, i: &usize) -> Option<(Cid, Bytes)> {
            (!map.is_empty()).then(|| {
                let (c, d) = map.iter().nth(i % map.len()).expect("index in range");
                (*c, d.clone())
            })
        }
    }

    fn check(v: &dyn Volume, model: &Model, context: &str) {
        let expected: BTreeMap<Cid, u64> = model
            .live
            .iter()
            .map(|(c, d)| (*c, d.len() as u64))
            .collect();
        assert_eq!(
            listed(v),
            expected,
            "{context}: for_each_block disagrees with the model"
        );
        for (cid, data) in &model.live {
            assert_reads(v, cid, data, context);
            assert!(v.has(cid).expect("has"), "{context}: has({cid}) is false");
        }
        for cid in model.deleted.keys() {
            let got = v.get(cid).expect("get");
            assert!(
                got.is_none(),
                "{context}: deleted {cid} reads back {}",
                describe(&got)
            );
            assert!(!v.has(cid).expect("has"), "{context}: deleted {cid} has()");
        }
        let stats = v.stats().expect("stats");
        let bytes: u64 = expected.values().sum();
        assert_eq!(
            (stats.blocks, stats.block_bytes),
            (model.live.len() as u64, bytes),
            "{context}: stats"
        );
    }

    fn run(ops: &[Op]) {
        let dir = tempdir();
        let path = dir.path();
        let mut v = local_volume(path);
        let mut model = Model::default();
        let mut rotated = false;
        for (step, op) in ops.iter().enumerate() {
            let context = format!("step {step} ({op:?})");
            match op {
                Op::Put(specs, dup) => {
                    let mut blocks: Vec<Block> = specs
                        .iter()
                        .map(|&(seed, len)| {
                            let seed = u64::from(seed);
                            if seed % 3 == 0 && len > 0 {
                                // Mostly zeros: islands around the size
                                // the volume keeps inline, trimmed.
                                let island = (seed as usize * 997 % (SPARSE_MAX + 64)).min(len);
                                sparse_block(seed, len, (len - island) / 2, island)
                            } else {
                                block(Codec::RAW, seed, len)
                            }
                        })
                        .collect();
                    if *dup {
                        blocks.push(blocks[0].clone());
                    }
                    v.put_many(&blocks)
                        .unwrap_or_else(|e| panic!("{context}: {e}"));
                    blocks.iter().for_each(|b| model.stored(b));
                }
                Op::RePut(i) | Op::PutDeleted(i) => {
                    let from = match op {
                        Op::RePut(_) => &model.live,
                        _ => &model.deleted,
                    };
                    if let Some((cid, data)) = Model::pick(from, i) {
                        let b = Block::trusted(cid, data);
                        v.put(&b).unwrap_or_else(|e| panic!("{context}: {e}"));
                        model.stored(&b);
                    }
                }
                Op::Delete(picks, absent) => {
                    let mut cids: BTreeSet<Cid> = picks
                        .iter()
                        .filter_map(|i| Model::pick(&model.live, i).map(|(c, _)| c))
                        .collect();
                    let present = cids.len() as u64;
                    if *absent {
                        cids.insert(absent_cid(step as u64));
                    }
                    let cids: Vec<Cid> = cids.into_iter().collect();
                    let n = v
                        .delete_many(&cids)
                        .unwrap_or_else(|e| panic!("{context}: {e}"));
                    assert_eq!(n, present, "{context}: delete_many count");
                    for cid in &cids {
                        if let Some(data) = model.live.remove(cid) {
                            model.deleted.insert(*cid, data);
                        }
                    }
                }
                Op::Get(i) => match Model::pick(&model.live, i) {
                    Some((cid, data)) => assert_reads(&v, &cid, &data, &context),
                    None => assert_eq!(v.get(&absent_cid(0)).expect("get"), None),
                },
                Op::Reopen => {
                    drop(v);
                    v = local_volume(path);
                }
                Op::Compact(min_live) => {
                    let stats = v
                        .compact(*min_live)
                        .unwrap_or_else(|e| panic!("{context}: {e}"));
                    if rotated {
                        // Every non-current pack is ~1 GiB of hole: nearly empty.
                        assert!(
                            stats.packs_rewritten >= 1,
                            "{context}: nothing compacted: {stats:?}"
                        );
                    }
                    let packs = pack_files(path);
                    assert_eq!(
                        packs.len(),
                        1,
                        "{context}: only the current pack remains: {packs:?}"
                    );
                    rotated = false;
                }
                Op::Rotate => {
                    drop(v);
                    simulate_full_pack(path);
                    v = local_volume(path);
                    rotated = true;
                }
            }
            check(&v, &model, &context);
        }
        // A concurrent read-only handle sees the same contents.
        let reader = LocalVolume::open(path, true).expect("open read-only beside the writer");
        check(&reader, &model, "read-only handle at the end");
        drop(reader);
        drop(v);
        check(&local_volume(path), &model, "final reopen");
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: 32,
            max_shrink_time: 120_000,
            ..ProptestConfig::default()
        })]

        #[test]
        fn local_volume_agrees_with_a_btreemap(ops in prop::collection::vec(op(), 1..=50)) {
            run(&ops);
        }
    }

    /// A fixed sequence that certainly rotates and compacts, whatever the
    /// random cases happen to draw.
    #[test]
    fn compaction_moves_live_blocks_and_drops_dead_ones() {
        use Op::*;
        run(&[
            Put(
                vec![(1, 5000), (2, 100), (3, 70_000), (4, MAX_BLOCK_SIZE)],
                false,
            ),
            Put(vec![(5, 3000), (6, 3000)], true),
            Delete(vec![0, 3], false),
            Rotate,
            Put(vec![(7, 9000)], false),
            Rotate,
            Compact(0.5),
            Put(vec![(8, 4000)], false),
            PutDeleted(0),
            Reopen,
            Rotate,
            Compact(0.99),
        ]);
    }
}

// ---------------------------------------------------------------------------
// 3. Persistence through a Store
// ---------------------------------------------------------------------------

#[test]
fn store_reopens_with_blocks_refs_and_log_intact() {
    let dir = tempdir();
    let path = dir.path().join("store");
    let sizes = [0, 1, 100, INLINE_MAX, INLINE_MAX + 1, 10_000, 200_000];
    let blocks: Vec<Block> = (0..210u64)
        .map(|i| block(Codec::RAW, 1000 + i, sizes[i as usize % sizes.len()]))
        .collect();
    let (before_refs, before_log, before_stats) = {
        let (store, created) = Store::init(&path, &small_cache()).expect("init");
        assert!(created, "a fresh directory is a new store");
        let bucket = store.bucket();
        for chunk in blocks.chunks(30) {
            bucket.put_blocks(chunk).expect("put_blocks");
        }
        let cid = |i: usize| *blocks[i].cid();
        for (i, n) in ["fs/home", "kv/settings", "git/repo", "sql/db"]
            .iter()
            .enumerate()
        {
            bucket
                .set_ref(&name(n), Some(&cid(i)), &note(&format!("create {n}")))
                .expect("set");
        }
        bucket
            .cas_ref(
                &name("fs/home"),
                Some(&cid(0)),
                Some(&cid(10)),
                &note("move"),
            )
            .expect("cas");
        bucket
            .cas_ref(&name("git/repo"), Some(&cid(2)), None, &note("delete"))
            .expect("cas");
        (
            bucket.list_refs().expect("refs"),
            bucket.log(None, usize::MAX).expect("log"),
            bucket.stats().expect("stats"),
        )
    };
    assert_eq!(before_refs.len(), 3);
    assert_eq!(before_log.len(), 6);

    for mode in [OpenMode::ReadWrite, OpenMode::ReadOnly] {
        let store = Store::open(&path, mode, &small_cache())
            .unwrap_or_else(|e| panic!("reopen {mode:?}: {e}"));
        let bucket = store.bucket();
        for b in &blocks {
            let got = bucket
                .require(b.cid())
                .unwrap_or_else(|e| panic!("{mode:?}: block of {} bytes: {e}", b.len()));
            assert!(
                got == b.data(),
                "{mode:?}: {} reads back other bytes",
                b.cid()
            );
        }
        assert_eq!(
            bucket.list_refs().expect("refs"),
            before_refs,
            "{mode:?}: refs"
        );
        assert_eq!(
            bucket.log(None, usize::MAX).expect("log"),
            before_log,
            "{mode:?}: changelog"
        );
        let stats = bucket.stats().expect("stats");
        assert_eq!(
            counters(&stats[0]),
            counters(&before_stats[0]),
            "{mode:?}: stats"
        );
        if mode == OpenMode::ReadOnly {
            assert!(
                bucket.put(Codec::RAW, &b"nope"[..]).is_err(),
                "read-only store accepted a put"
            );
        }
    }
    let (store, created) = Store::init(&path, &small_cache()).expect("init an existing store");
    assert!(!created, "init of an existing store opens it");
    assert_eq!(store.bucket().list_refs().expect("refs"), before_refs);
}

#[test]
fn mostly_zero_blocks_stay_out_of_the_packs_and_read_back_whole() {
    let dir = tempdir();
    let path = dir.path();
    let pack_bytes = || -> u64 {
        pack_files(path)
            .iter()
            .map(|p| std::fs::metadata(p).expect("pack metadata").len())
            .sum()
    };
    // What 200 writes of 512 bytes into a hole leave: maximum chunks of
    // zeros around them, and the chunk of nothing but zeros.
    let islands: Vec<Block> = (0..200u64)
        .map(|i| sparse_block(100 + i, 256 << 10, (i as usize * 1297) % (255 << 10), 512))
        .chain([sparse_block(1, MAX_BLOCK_SIZE, 0, 0)])
        .collect();
    {
        let v = local_volume(path);
        v.put_many(&islands).expect("put");
        for b in &islands {
            assert_reads(&v, b.cid(), b.data(), "just stored");
        }
    }
    let before = pack_bytes();
    assert!(
        before <= 4096,
        "{before} bytes of packs for 200 islands of 512 bytes"
    );
    // An index from before trimming (schema 1) is taken and marked 2.
    let db = path.join("index.sqlite");
    sqlite3(
        &db,
        &[],
        "UPDATE meta SET value = '1' WHERE key = 'schema';",
    );
    let v = local_volume(path);
    assert_eq!(
        sqlite3(
            &db,
            &["-readonly"],
            "SELECT value FROM meta WHERE key = 'schema';"
        )
        .trim(),
        "2"
    );
    for b in &islands {
        assert_reads(&v, b.cid(), b.data(), "after reopening");
    }
    let stats = v.stats().expect("stats");
    assert_eq!(stats.blocks, islands.len() as u64);
    assert_eq!(
        stats.block_bytes,
        islands.iter().map(|b| b.len() as u64).sum::<u64>(),
        "block bytes count whole blocks"
    );
    // Dense bytes of the same size go into a pack.
    let dense = block(Codec::RAW, 7, 256 << 10);
    v.put(&dense).expect("put dense");
    assert!(pack_bytes() >= before + (256 << 10));
    assert_reads(&v, dense.cid(), dense.data(), "dense");
    assert_eq!(v.delete_many(&[*islands[0].cid()]).expect("delete"), 1);
    assert_eq!(v.get(islands[0].cid()).expect("get").as_deref(), None);
    // An entry whose kept bytes run past its length is an error, not bytes.
    let key = hex(&islands[1].cid().to_bytes());
    sqlite3(
        &db,
        &[],
        &format!("UPDATE blocks SET offset = 262000 WHERE cid = X'{key}';"),
    );
    let err = v.get(islands[1].cid()).expect_err("a damaged entry reads");
    assert!(matches!(err, DagError::Integrity { .. }), "{err}");
    let mut out = vec![0; 256 << 10];
    assert!(v.get_into(islands[1].cid(), &mut out).is_err());
    assert_reads(
        &v,
        islands[2].cid(),
        islands[2].data(),
        "an undamaged neighbour",
    );
}

// ---------------------------------------------------------------------------
// 4. Torn pack tails
// ---------------------------------------------------------------------------

#[test]
fn torn_pack_tail_is_cut_on_writable_open() {
    let dir = tempdir();
    let path = dir.path();
    let sizes = [10, 5000, 70_000, INLINE_MAX + 1, 2];
    let mut blocks: Vec<Block> = (0..15u64)
        .map(|i| block(Codec::RAW, 2000 + i, sizes[i as usize % sizes.len()]))
        .collect();
    {
        let v = local_volume(path);
        for chunk in blocks.chunks(5) {
            v.put_many(chunk).expect("put_many");
        }
    }
    let pack = pack_path(path, 1);
    let committed_len = std::fs::metadata(&pack).expect("pack").len();
    assert_eq!(
        committed_packs(path),
        vec![(1, committed_len)],
        "clean close"
    );

    // What a crash mid-append leaves: a plausible record header for a block
    // that never got indexed, its data cut short, then junk.
    let ghost = block(Codec::RAW, 2999, 6000);
    let mut tail = Vec::new();
    tail.extend_from_slice(&(ghost.len() as u32).to_le_bytes());
    let cid_bytes = ghost.cid().to_bytes();
    tail.push(cid_bytes.len() as u8);
    tail.extend_from_slice(&cid_bytes);
    tail.extend_from_slice(&ghost.data()[..1234]);
    tail.extend_from_slice(&[0xAB; 777]);
    OpenOptions::new()
        .append(true)
        .open(&pack)
        .and_then(|mut f| f.write_all(&tail))
        .expect("append garbage");
    // And a pack that was created but never committed to the index.
    let stray = pack_path(path, 2);
    std::fs::write(&stray, [&MAGIC[..], b"junk"].concat()).expect("stray pack");
    let torn_len = committed_len + tail.len() as u64;

    {
        let reader = LocalVolume::open(path, true).expect("read-only open over a torn tail");
        for b in &blocks {
            assert_reads(&reader, b.cid(), b.data(), "read-only over a torn tail");
        }
        assert!(
            !reader.has(ghost.cid()).expect("has"),
            "the torn record is not a block"
        );
    }
    assert_eq!(
        std::fs::metadata(&pack).expect("pack").len(),
        torn_len,
        "a read-only open must not modify packs"
    );
    assert!(stray.exists(), "a read-only open must not remove packs");

    let v = local_volume(path);
    assert_eq!(
        std::fs::metadata(&pack).expect("pack").len(),
        committed_len,
        "writable open cuts the pack back to its committed length"
    );
    assert!(
        !stray.exists(),
        "writable open removes the uncommitted pack {}",
        stray.display()
    );
    for b in &blocks {
        assert_reads(&v, b.cid(), b.data(), "after the tail was cut");
    }
    assert_eq!(
        v.get(ghost.cid()).expect("get"),
        None,
        "torn record must not appear"
    );

    let fresh = [
        block(Codec::RAW, 3000, 8000),
        block(Codec::RAW, 3001, 33),
        block(Codec::DAG_CBOR, 3002, 100_000),
    ];
    v.put_many(&fresh).expect("put after recovery");
    let appended: u64 = fresh
        .iter()
        .filter(|b| b.len() > INLINE_MAX)
        .map(|b| record_header_len(b.cid()) + b.len() as u64)
        .sum();
    assert_eq!(
        std::fs::metadata(&pack).expect("pack").len(),
        committed_len + appended,
        "new records start where the committed data ended"
    );
    blocks.extend(fresh);
    for b in &blocks {
        assert_reads(&v, b.cid(), b.data(), "after writing past the cut");
    }
    drop(v);
    let v = local_volume(path);
    for b in &blocks {
        assert_reads(&v, b.cid(), b.data(), "after another reopen");
    }
    assert_eq!(listed(&v).len(), blocks.len());
}

#[test]
fn pack_shorter_than_committed_is_refused_not_ignored() {
    let dir = tempdir();
    let path = dir.path();
    let big = block(Codec::RAW, 4000, 50_000);
    let small = block(Codec::RAW, 4001, 5_000);
    {
        let v = local_volume(path);
        v.put(&small).expect("put");
        v.put(&big).expect("put");
    }
    let pack = pack_path(path, 1);
    let len = std::fs::metadata(&pack).expect("pack").len();
    OpenOptions::new()
        .write(true)
        .open(&pack)
        .and_then(|f| f.set_len(len - 100))
        .expect("truncate pack");

    let err = LocalVolume::open(path, false).expect_err("a pack lost committed bytes");
    assert!(
        matches!(err, DagError::CorruptPack { .. }),
        "expected CorruptPack, got {err}"
    );

    let reader = LocalVolume::open(path, true).expect("read-only open");
    assert_reads(
        &reader,
        small.cid(),
        small.data(),
        "block before the damage",
    );
    match reader.get(big.cid()) {
        Err(DagError::CorruptPack { .. }) => {}
        other => panic!(
            "a record running past the end must be CorruptPack, got {:?}",
            other.map(|d| describe(&d))
        ),
    }
}

// ---------------------------------------------------------------------------
// 5. Corruption is an error, never wrong bytes
// ---------------------------------------------------------------------------

fn assert_integrity_error(bucket: &Bucket, cid: &Cid, len: usize, context: &str) {
    for attempt in 0..2 {
        let mut out = vec![0; len];
        match bucket.get_into(cid, &mut out) {
            Err(DagError::Integrity { cid: named }) => assert_eq!(named, *cid),
            other => panic!("{context} (get_into {attempt}): expected Integrity, got {other:?}"),
        }
        match bucket.get(cid) {
            Err(DagError::Integrity { cid: named }) => {
                assert_eq!(named, *cid, "{context}: the error names another CID");
            }
            Err(other) => panic!("{context} (read {attempt}): expected Integrity, got {other}"),
            Ok(got) => panic!(
                "{context} (read {attempt}): corrupt block read as {}",
                describe(&got)
            ),
        }
    }
    match bucket.require(cid) {
        Err(DagError::Integrity { cid: named }) => assert_eq!(named, *cid),
        other => panic!(
            "{context}: require: expected Integrity, got {:?}",
            other.map(|b| b.len())
        ),
    }
}

#[test]
fn flipped_byte_in_a_pack_is_an_integrity_error() {
    let dir = tempdir();
    let path = dir.path().join("store");
    let victim = bytes_for(5000, 40_000);
    let neighbour = bytes_for(5001, 40_000);
    let (victim_cid, neighbour_cid) = {
        let (store, _) = Store::init(&path, &small_cache()).expect("init");
        let b = store.bucket();
        let cids = (
            b.put(Codec::RAW, victim.clone()).expect("put"),
            b.put(Codec::RAW, neighbour.clone()).expect("put"),
        );
        // Read once so a stale cache could only help the test pass wrongly
        // if it survived the reopen.
        assert!(b.get(&cids.0).expect("get").is_some());
        cids
    };
    let pack = pack_path(&path, 1);
    let mut bytes = std::fs::read(&pack).expect("read pack");
    let at = bytes
        .windows(victim.len())
        .position(|w| w == victim.as_slice())
        .expect("the victim's bytes are in the pack");
    bytes[at + victim.len() / 2] ^= 0x01;
    std::fs::write(&pack, &bytes).expect("write pack");

    for mode in [OpenMode::ReadWrite, OpenMode::ReadOnly] {
        let store = Store::open(&path, mode, &small_cache()).expect("reopen");
        assert_integrity_error(
            store.bucket(),
            &victim_cid,
            victim.len(),
            &format!("packed block, {mode:?}"),
        );
        let got = store
            .bucket()
            .require(&neighbour_cid)
            .expect("neighbour intact");
        assert!(got == neighbour, "neighbour reads back other bytes");
    }
}

#[test]
fn edited_inline_row_is_an_integrity_error() {
    let dir = tempdir();
    let path = dir.path().join("store");
    let victim = bytes_for(6000, 300);
    let neighbour = bytes_for(6001, 300);
    let (victim_cid, neighbour_cid) = {
        let (store, _) = Store::init(&path, &small_cache()).expect("init");
        let b = store.bucket();
        (
            b.put(Codec::DAG_CBOR, victim.clone()).expect("put"),
            b.put(Codec::RAW, neighbour.clone()).expect("put"),
        )
    };
    let mut flipped = victim.clone();
    flipped[150] ^= 0x80;
    let changed = sqlite3(
        &path.join("index.sqlite"),
        &[],
        &format!(
            "UPDATE inline_blocks SET data = X'{}' WHERE cid = X'{}'; SELECT changes();",
            hex(&flipped),
            hex(&victim_cid.to_bytes())
        ),
    );
    assert_eq!(
        changed.trim(),
        "1",
        "the inline row of {victim_cid} was not found"
    );

    for mode in [OpenMode::ReadWrite, OpenMode::ReadOnly] {
        let store = Store::open(&path, mode, &small_cache()).expect("reopen");
        assert_integrity_error(
            store.bucket(),
            &victim_cid,
            victim.len(),
            &format!("inline block, {mode:?}"),
        );
        let got = store
            .bucket()
            .require(&neighbour_cid)
            .expect("neighbour intact");
        assert!(got == neighbour, "neighbour reads back other bytes");
    }
}

// ---------------------------------------------------------------------------
// 6. kill -9 during batched writes
// ---------------------------------------------------------------------------

/// Set in the child process: the store to write to.
const CRASH_STORE_ENV: &str = "HYDRA_DAG_CRASH_CHILD_STORE";
/// Set in the child process: which run this is (seeds the content).
const CRASH_RUN_ENV: &str = "HYDRA_DAG_CRASH_CHILD_RUN";
const CRASH_CHILD_TEST: &str = "crash_child_writer";
const CRASH_ACK: &str = "HYDRA-ACK ";
/// The child stops on its own after this many batches (256 MiB).
const CRASH_MAX_BATCHES: u64 = 64;

/// Batch `batch` of crash run `run`: 64 blocks of 64 KiB and 8 inline ones.
fn crash_batch(run: u64, batch: u64) -> Vec<Block> {
    (0..72u64)
        .map(|i| {
            let len = if i < 64 { 64 << 10 } else { 100 };
            block(Codec::RAW, (run << 40) | (batch << 16) | i, len)
        })
        .collect()
}

/// Not a test on its own: the writer the crash test starts and kills.
/// Without the environment variable it does nothing.
#[test]
fn crash_child_writer() {
    let Some(store_path) = std::env::var_os(CRASH_STORE_ENV) else {
        return;
    };
    let run: u64 = std::env::var(CRASH_RUN_ENV)
        .expect("run number")
        .parse()
        .expect("numeric run");
    let store = Store::open(Path::new(&store_path), OpenMode::ReadWrite, &small_cache())
        .expect("child opens the store");
    let stdout = std::io::stdout();
    for batch in 0..CRASH_MAX_BATCHES {
        store
            .bucket()
            .put_blocks(&crash_batch(run, batch))
            .expect("child put_blocks");
        let mut out = stdout.lock();
        writeln!(out, "\n{CRASH_ACK}{batch}")
            .and_then(|()| out.flush())
            .expect("report the acknowledged batch");
    }
}

#[test]
fn kill_9_during_batched_writes_loses_no_acknowledged_block() {
    use std::os::unix::process::ExitStatusExt;

    let dir = tempdir();
    let path = dir.path().join("store");
    drop(Store::init(&path, &small_cache()).expect("init"));
    let exe = std::env::current_exe().expect("current test binary");
    let mut acknowledged: Vec<(u64, u64)> = Vec::new();

    // Pauses after the last awaited acknowledgement spread the kills over
    // the phases of the next batch (generating, appending, fsync, commit).
    let runs = [(5usize, 0u64), (2, 1), (8, 3), (1, 5), (3, 8), (4, 12)];
    let mut torn_runs = 0;
    for (run, (kill_after, pause_ms)) in (0u64..).zip(runs) {
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                CRASH_CHILD_TEST,
                "--nocapture",
                "--test-threads",
                "1",
            ])
            .env(CRASH_STORE_ENV, &path)
            .env(CRASH_RUN_ENV, run.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn child writer");
        let stdout = child.stdout.take().expect("child stdout");
        let mut seen = 0;
        for line in BufReader::new(stdout).lines() {
            let line = line.expect("read child stdout");
            if let Some(at) = line.find(CRASH_ACK) {
                let batch: u64 = line[at + CRASH_ACK.len()..]
                    .trim()
                    .parse()
                    .expect("batch index");
                acknowledged.push((run, batch));
                seen += 1;
                if seen == kill_after {
                    break;
                }
            }
        }
        std::thread::sleep(Duration::from_millis(pause_ms));
        child.kill().expect("SIGKILL the child");
        let status = child.wait().expect("reap child");
        let mut stderr = String::new();
        if let Some(mut e) = child.stderr.take() {
            let _ = e.read_to_string(&mut stderr);
        }
        assert_eq!(
            seen, kill_after,
            "run {run}: the child stopped after {seen} batches ({status}); stderr:\n{stderr}"
        );
        assert_eq!(
            status.signal(),
            Some(9),
            "run {run}: the child must die by SIGKILL mid-write, not {status}; stderr:\n{stderr}"
        );

        let torn = committed_packs(&path)
            .into_iter()
            .any(|(id, size)| std::fs::metadata(pack_path(&path, id)).expect("pack").len() > size);
        torn_runs += usize::from(torn);
        eprintln!("run {run}: killed {pause_ms} ms after batch {seen}; torn pack tail: {torn}");

        let store = Store::open(&path, OpenMode::ReadWrite, &small_cache())
            .unwrap_or_else(|e| panic!("run {run}: reopen after kill -9: {e}"));
        for (path_id, size) in committed_packs(&path) {
            let len = std::fs::metadata(pack_path(&path, path_id))
                .expect("pack")
                .len();
            assert_eq!(
                len, size,
                "run {run}: pack {path_id} not cut to its committed size"
            );
        }
        let bucket = store.bucket();
        for &(r, batch) in &acknowledged {
            for b in crash_batch(r, batch) {
                let got = bucket.get(b.cid()).unwrap_or_else(|e| {
                    panic!("run {run}: acked block of run {r} batch {batch}: {e}")
                });
                assert!(
                    got.as_deref() == Some(b.data().as_ref()),
                    "run {run}: acknowledged block {} of run {r} batch {batch} reads {}",
                    b.cid(),
                    describe(&got)
                );
            }
        }
        let indexed = listed(bucket.primary().as_ref());
        for (cid, size) in &indexed {
            match bucket.get(cid) {
                Ok(Some(data)) => assert_eq!(data.len() as u64, *size, "run {run}: size of {cid}"),
                other => panic!(
                    "run {run}: indexed block {cid} does not read back whole: {:?}",
                    other.map(|d| describe(&d))
                ),
            }
        }
        let acked_blocks = acknowledged.len() * 72;
        assert!(
            indexed.len() >= acked_blocks,
            "run {run}: index lost blocks"
        );
        let probe = bucket
            .put(Codec::RAW, bytes_for(run, 9999))
            .unwrap_or_else(|e| panic!("run {run}: put after recovery: {e}"));
        assert!(bucket.require(&probe).expect("probe") == bytes_for(run, 9999));
    }
    // Not asserted: whether a kill lands inside an append is up to timing.
    eprintln!("{torn_runs} of {} kills left a torn pack tail", runs.len());
}

// ---------------------------------------------------------------------------
// 7. GC racing writers and readers
// ---------------------------------------------------------------------------

/// Every block reachable from `roots`, read through `bucket` (so verified).
fn reachable(bucket: &Bucket, roots: impl IntoIterator<Item = Cid>) -> BTreeSet<Cid> {
    let mut seen = BTreeSet::new();
    let mut stack: Vec<Cid> = roots.into_iter().collect();
    while let Some(cid) = stack.pop() {
        if !seen.insert(cid) {
            continue;
        }
        let data = bucket
            .require(&cid)
            .unwrap_or_else(|e| panic!("reachable block {cid} cannot be read: {e}"));
        if cid.codec() == Codec::DAG_CBOR {
            let links = hydra_dag::cbor::links(&data)
                .unwrap_or_else(|e| panic!("node {cid} does not decode: {e}"));
            stack.extend(links);
        }
    }
    seen
}

/// Sets a flag when dropped, so a panicking writer still stops the others.
struct SetOnDrop<'a>(&'a AtomicUsize);

impl Drop for SetOnDrop<'_> {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

struct Race {
    /// Writer threads, each moving its own ref.
    writers: usize,
    /// Commits per writer.
    commits: usize,
    /// Whether writers also store unreferenced blocks, some of which they
    /// later store again inside a session and link.
    garbage: bool,
}

/// What one writer did.
#[derive(Default)]
struct Written {
    leaves: Vec<(Cid, Vec<u8>)>,
    garbage: Vec<Cid>,
    revived: Vec<Cid>,
}

fn leaf_bytes(writer: usize, i: usize) -> Vec<u8> {
    bytes_for(((writer as u64) << 32) | i as u64, 2100 + (i * 37) % 3000)
}

fn garbage_bytes(writer: usize, i: usize) -> Vec<u8> {
    // Alternate inline and packed garbage.
    let len = if i.is_multiple_of(2) { 600 } else { 4000 };
    bytes_for((1 << 60) | ((writer as u64) << 32) | i as u64, len)
}

fn write_commits(bucket: &Bucket, writer: usize, race: &Race) -> Written {
    let head = name(&format!("race/w{writer}"));
    let mut out = Written::default();
    let mut prev_root: Option<Cid> = None;
    for i in 0..race.commits {
        let session = bucket.session();
        // Every tenth leaf is the content of garbage stored three commits
        // ago: storing it again through the session must protect it even if
        // a collection is about to delete it.
        let revive = race.garbage && i % 10 == 9;
        let data = if revive {
            garbage_bytes(writer, i - 3)
        } else {
            leaf_bytes(writer, i)
        };
        let leaf = session.put(Codec::RAW, data.clone()).expect("put leaf");
        if revive {
            out.revived.push(leaf);
        }
        let mut links = vec![Ipld::Link(leaf)];
        if i >= 7 {
            links.push(Ipld::Link(out.leaves[i - 7].0));
        }
        let node = Ipld::Map(BTreeMap::from([
            ("n".to_string(), Ipld::Integer(i as i128)),
            ("links".to_string(), Ipld::List(links)),
        ]));
        let root = session
            .put(Codec::DAG_CBOR, node.encode())
            .expect("put root");
        bucket
            .cas_ref(&head, prev_root.as_ref(), Some(&root), &note("commit"))
            .expect("the only writer of its ref never conflicts");
        drop(session);
        out.leaves.push((leaf, data));
        prev_root = Some(root);
        if race.garbage {
            out.garbage.push(
                bucket
                    .put(Codec::RAW, garbage_bytes(writer, i))
                    .expect("garbage"),
            );
        }
    }
    out
}

fn gc_race(race: Race) {
    let dir = tempdir();
    let path = dir.path().join("store");
    let now = GcOptions {
        grace: Duration::ZERO,
        min_live: 0.9,
    };
    // A first pack holding a referenced DAG and garbage, made to look full
    // so the collections below compact it while readers walk that DAG.
    let (pre_root, pre_garbage) = {
        let (store, _) = Store::init(&path, &small_cache()).expect("init");
        let b = store.bucket();
        let leaves: Vec<Ipld> = (0..20u64)
            .map(|i| Ipld::Link(b.put(Codec::RAW, bytes_for(7000 + i, 5000)).expect("put")))
            .collect();
        let root = b
            .put(Codec::DAG_CBOR, Ipld::List(leaves).encode())
            .expect("put");
        b.set_ref(&name("pre"), Some(&root), &note("pre"))
            .expect("set");
        let garbage: Vec<Cid> = (0..20u64)
            .map(|i| b.put(Codec::RAW, bytes_for(7100 + i, 5000)).expect("put"))
            .collect();
        (root, garbage)
    };
    simulate_full_pack(&path);

    let store = Store::open(&path, OpenMode::ReadWrite, &small_cache()).expect("open");
    let bucket = store.bucket();
    let finished = AtomicUsize::new(0);
    let all_done = || finished.load(Ordering::SeqCst) == race.writers;
    let collections = AtomicU64::new(0);
    let swept = AtomicU64::new(0);
    let rewritten = AtomicU64::new(0);
    let walks = AtomicU64::new(0);
    let reader_failed = AtomicBool::new(false);
    let written: Vec<Written> = std::thread::scope(|s| {
        let writers: Vec<_> = (0..race.writers)
            .map(|w| {
                let (finished, race) = (&finished, &race);
                s.spawn(move || {
                    let _done = SetOnDrop(finished);
                    write_commits(bucket, w, race)
                })
            })
            .collect();
        s.spawn(|| {
            loop {
                let stop = all_done();
                let report = bucket.gc(&now).expect("gc racing writers must not fail");
                collections.fetch_add(1, Ordering::SeqCst);
                swept.fetch_add(report.swept_blocks, Ordering::SeqCst);
                rewritten.fetch_add(report.compact.packs_rewritten, Ordering::SeqCst);
                if stop {
                    break;
                }
            }
        });
        s.spawn(|| {
            // Whatever a ref names is whole, at every moment.
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                while !all_done() {
                    let roots: Vec<Cid> = bucket
                        .list_refs()
                        .expect("list_refs")
                        .into_iter()
                        .map(|(_, c)| c)
                        .collect();
                    reachable(bucket, roots);
                    walks.fetch_add(1, Ordering::SeqCst);
                }
            }));
            if let Err(panic) = result {
                reader_failed.store(true, Ordering::SeqCst);
                std::panic::resume_unwind(panic);
            }
        });
        writers
            .into_iter()
            .map(|h| h.join().expect("writer thread"))
            .collect()
    });
    assert!(
        !reader_failed.load(Ordering::SeqCst),
        "a reader saw a ref with missing blocks"
    );
    let last = bucket.gc(&now).expect("final gc");
    swept.fetch_add(last.swept_blocks, Ordering::SeqCst);
    eprintln!(
        "gc race: {} collections, {} blocks swept, {} packs compacted, {} reader walks",
        collections.load(Ordering::SeqCst),
        swept.load(Ordering::SeqCst),
        rewritten.load(Ordering::SeqCst) + last.compact.packs_rewritten,
        walks.load(Ordering::SeqCst)
    );
    assert!(
        !pack_path(&path, 1).exists(),
        "the full first pack held mostly garbage and should have been compacted away"
    );
    drop(store);

    // Check from a cold cache: every root ever set and all it reaches.
    let store = Store::open(&path, OpenMode::ReadWrite, &small_cache()).expect("reopen");
    let bucket = store.bucket();
    let log = bucket.log(None, usize::MAX).expect("log");
    assert_eq!(
        log.len(),
        1 + race.writers * race.commits,
        "one log entry per commit"
    );
    let roots: Vec<Cid> = log
        .iter()
        .flat_map(|e| e.old.into_iter().chain(e.new))
        .collect();
    let live = reachable(bucket, roots);
    for (w, written) in written.iter().enumerate() {
        for (i, (leaf, data)) in written.leaves.iter().enumerate() {
            assert!(live.contains(leaf), "writer {w} leaf {i} is not reachable");
            let got = bucket.require(leaf).expect("leaf");
            assert!(
                got == data.as_slice(),
                "writer {w} leaf {i} reads other bytes"
            );
        }
    }
    assert!(live.contains(&pre_root));
    let stored: BTreeSet<Cid> = listed(bucket.primary().as_ref()).into_keys().collect();
    for cid in &live {
        assert!(
            stored.contains(cid),
            "reachable {cid} is not listed by the volume"
        );
    }
    let revived: HashSet<Cid> = written
        .iter()
        .flat_map(|w| w.revived.iter().copied())
        .collect();
    let garbage: Vec<Cid> = written
        .iter()
        .flat_map(|w| w.garbage.iter().copied())
        .chain(pre_garbage)
        .filter(|c| !revived.contains(c))
        .collect();
    let kept: Vec<&Cid> = garbage.iter().filter(|c| stored.contains(*c)).collect();
    assert!(
        kept.is_empty(),
        "{} of {} garbage blocks survived: {kept:?}",
        kept.len(),
        garbage.len()
    );
    let extra: Vec<&Cid> = stored.difference(&live).collect();
    assert!(
        extra.is_empty(),
        "after a quiet collection only reachable blocks remain: {extra:?}"
    );
    if race.garbage {
        assert!(
            !revived.is_empty(),
            "the race revived no garbage: the test is broken"
        );
    }
}

#[test]
fn gc_racing_writers_keeps_every_root_ever_set() {
    gc_race(Race {
        writers: 2,
        commits: 150,
        garbage: false,
    });
}

#[test]
fn gc_racing_writers_collects_garbage_but_not_revived_blocks() {
    gc_race(Race {
        writers: 2,
        commits: 100,
        garbage: true,
    });
}

// ---------------------------------------------------------------------------
// 8. CAR export and import
// ---------------------------------------------------------------------------

/// A DAG with inline, packed and maximum-size leaves, a shared leaf and two
/// levels of nodes; returns its root.
fn sample_dag(bucket: &Bucket) -> Cid {
    let sizes = [
        0,
        1,
        100,
        INLINE_MAX,
        INLINE_MAX + 1,
        10_000,
        200_000,
        MAX_BLOCK_SIZE,
    ];
    let leaves: Vec<Cid> = (0..24u64)
        .map(|i| {
            let len = sizes
                .get(i as usize)
                .copied()
                .unwrap_or(300 + 997 * i as usize);
            bucket
                .put(Codec::RAW, bytes_for(8000 + i, len))
                .expect("put leaf")
        })
        .collect();
    let shared = leaves[5];
    let inner: Vec<Ipld> = leaves
        .chunks(6)
        .enumerate()
        .map(|(i, chunk)| {
            let mut links: Vec<Ipld> = chunk.iter().map(|c| Ipld::Link(*c)).collect();
            links.push(Ipld::Link(shared));
            let node = Ipld::Map(BTreeMap::from([
                ("name".to_string(), Ipld::String(format!("node {i}"))),
                ("links".to_string(), Ipld::List(links)),
                ("salt".to_string(), Ipld::Bytes(vec![i as u8; 3])),
            ]));
            Ipld::Link(
                bucket
                    .put(Codec::DAG_CBOR, node.encode())
                    .expect("put node"),
            )
        })
        .collect();
    let root = Ipld::List(vec![Ipld::List(inner), Ipld::Link(shared), Ipld::Null]);
    bucket
        .put(Codec::DAG_CBOR, root.encode())
        .expect("put root")
}

/// Byte ranges of a CAR's header and sections, each with its length prefix.
fn car_sections(car: &[u8]) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < car.len() {
        let (len, n) = hydra_dag::varint::decode(&car[pos..]).expect("length prefix");
        let end = pos + n + len as usize;
        assert!(end <= car.len(), "section at {pos} runs past the end");
        out.push(pos..end);
        pos = end;
    }
    out
}

/// Checks a CAR with the reference `cid` crate: CIDv1, BLAKE3, digest of data.
fn assert_standard_car(car: &[u8], root: &Cid) {
    let sections = car_sections(car);
    let header = &sections[0];
    let (len, n) = hydra_dag::varint::decode(&car[header.start..]).expect("header length");
    let decoded =
        Ipld::decode(&car[header.start + n..header.start + n + len as usize]).expect("header");
    assert_eq!(decoded.get("version"), Some(&Ipld::Integer(1)));
    assert_eq!(
        decoded.get("roots"),
        Some(&Ipld::List(vec![Ipld::Link(*root)]))
    );
    let mut seen = HashSet::new();
    for section in &sections[1..] {
        let (_, n) = hydra_dag::varint::decode(&car[section.start..]).expect("prefix");
        let body = &car[section.start + n..section.end];
        let theirs = cid::Cid::read_bytes(body).expect("the cid crate parses the section CID");
        let data = &body[theirs.encoded_len()..];
        assert_eq!(theirs.version(), cid::Version::V1);
        assert_eq!(theirs.hash().code(), 0x1e, "BLAKE3 multihash");
        assert_eq!(
            theirs.hash().digest(),
            blake3::hash(data).as_bytes(),
            "digest of the data"
        );
        assert!(seen.insert(theirs), "{theirs} exported twice");
    }
    let first = &car[sections[1].clone()];
    let (_, n) = hydra_dag::varint::decode(first).expect("prefix");
    assert!(
        first[n..].starts_with(&root.to_bytes()),
        "the root is the first block"
    );
}

#[test]
fn car_round_trips_between_stores_byte_for_byte() {
    let dir = tempdir();
    let (a, _) = Store::init(&dir.path().join("a"), &small_cache()).expect("init a");
    let root = sample_dag(a.bucket());
    let car_a = dir.path().join("a.car");
    let out = hydra_dag::car::export_car(a.bucket(), &root, File::create(&car_a).expect("create"))
        .expect("export a");
    let bytes_a = std::fs::read(&car_a).expect("read a.car");
    assert_eq!(
        out.blocks,
        24 + 4 + 1,
        "each block once, the shared leaf too"
    );
    assert_standard_car(&bytes_a, &root);

    let b_path = dir.path().join("b");
    let head = name("car/root");
    {
        let (b, _) = Store::init(&b_path, &small_cache()).expect("init b");
        let session = b.bucket().session();
        let imported = hydra_dag::car::import_car(&session, &car_a).expect("import");
        assert_eq!(imported.roots, vec![root]);
        assert_eq!(
            (imported.blocks, imported.bytes),
            (out.blocks, out.bytes),
            "import summary"
        );
        b.bucket()
            .set_ref(&head, Some(&root), &note("import"))
            .expect("set ref");
        drop(session);
        let report = b
            .bucket()
            .gc(&GcOptions {
                grace: Duration::ZERO,
                min_live: 0.5,
            })
            .expect("gc");
        assert_eq!(
            report.swept_blocks, 0,
            "the imported DAG is complete: {report:?}"
        );
        assert_eq!(report.missing, 0, "{report:?}");
    }
    let b = Store::open(&b_path, OpenMode::ReadOnly, &small_cache()).expect("reopen b");
    assert_eq!(b.bucket().get_ref(&head).expect("ref"), Some(root));
    let mut bytes_b = Vec::new();
    hydra_dag::car::export_car(b.bucket(), &root, &mut bytes_b).expect("export b");
    assert!(
        bytes_a == bytes_b,
        "re-exported CAR differs: {} vs {} bytes",
        bytes_a.len(),
        bytes_b.len()
    );
}

#[test]
fn truncated_car_changes_nothing() {
    let source = Bucket::in_memory();
    let root = sample_dag(&source);
    let mut car = Vec::new();
    hydra_dag::car::export_car(&source, &root, &mut car).expect("export");
    let sections = car_sections(&car);
    // A cut exactly between sections is a valid CAR with fewer blocks; every
    // other cut is a truncated file.
    let boundaries: HashSet<usize> = sections.iter().map(|r| r.end).collect();
    let mut cuts = BTreeSet::from([0, 1]);
    for r in &sections {
        cuts.extend([r.start + 1, r.start + 2, (r.start + r.end) / 2, r.end - 1]);
    }
    cuts.retain(|c| *c < car.len() && !boundaries.contains(c));

    let dir = tempdir();
    let (store, _) = Store::init(&dir.path().join("t"), &small_cache()).expect("init");
    let bucket = store.bucket();
    let existing = bucket.put(Codec::RAW, bytes_for(9000, 5000)).expect("put");
    bucket
        .set_ref(&name("kept"), Some(&existing), &note("before"))
        .expect("set");
    let before = bucket.stats().expect("stats");
    let file = dir.path().join("cut.car");
    for &cut in &cuts {
        std::fs::write(&file, &car[..cut]).expect("write truncated car");
        let session = bucket.session();
        match hydra_dag::car::import_car(&session, &file) {
            Err(DagError::Car { .. }) => {}
            Err(other) => panic!(
                "cut at {cut}/{}: expected a CAR error, got {other}",
                car.len()
            ),
            Ok(summary) => panic!("cut at {cut}/{}: imported {summary:?}", car.len()),
        }
        drop(session);
        let after = bucket.stats().expect("stats");
        assert_eq!(
            after,
            before,
            "cut at {cut}/{}: the store changed",
            car.len()
        );
        assert!(
            !bucket.has(&root).expect("has"),
            "cut at {cut}: the root was stored"
        );
    }
    assert!(cuts.len() > 50, "only {} cut points", cuts.len());
}

// ---------------------------------------------------------------------------
// Regressions: races and contract breaches this suite once found
// ---------------------------------------------------------------------------

/// A memory volume whose `get` of one CID stops after reading, until the
/// test lets it return: makes one interleaving of a read and a delete
/// deterministic.
#[derive(Debug)]
struct PausingVolume {
    inner: MemoryVolume,
    pause_on: Cid,
    read_done: std::sync::Mutex<Option<std::sync::mpsc::Sender<()>>>,
    resume: std::sync::Mutex<Option<std::sync::mpsc::Receiver<()>>>,
}

impl Volume for PausingVolume {
    fn name(&self) -> &'static str {
        "pausing"
    }

    fn get(&self, cid: &Cid) -> hydra_dag::DagResult<Option<Bytes>> {
        let data = self.inner.get(cid)?;
        if *cid == self.pause_on {
            let read_done = self.read_done.lock().expect("lock").take();
            let resume = self.resume.lock().expect("lock").take();
            if let (Some(read_done), Some(resume)) = (read_done, resume) {
                read_done.send(()).expect("test is waiting");
                resume.recv().expect("test resumes the read");
            }
        }
        Ok(data)
    }

    fn has(&self, cid: &Cid) -> hydra_dag::DagResult<bool> {
        self.inner.has(cid)
    }

    fn put_many(&self, blocks: &[Block]) -> hydra_dag::DagResult<()> {
        self.inner.put_many(blocks)
    }

    fn delete_many(&self, cids: &[Cid]) -> hydra_dag::DagResult<u64> {
        self.inner.delete_many(cids)
    }

    fn for_each_block(&self, f: &mut dyn FnMut(hydra_dag::BlockInfo)) -> hydra_dag::DagResult<()> {
        self.inner.for_each_block(f)
    }

    fn get_ref(&self, name: &RefName) -> hydra_dag::DagResult<Option<Cid>> {
        self.inner.get_ref(name)
    }

    fn cas_ref(
        &self,
        name: &RefName,
        expected: Option<&Cid>,
        new: Option<&Cid>,
        note: &RefNote,
    ) -> hydra_dag::DagResult<hydra_dag::LogEntry> {
        self.inner.cas_ref(name, expected, new, note)
    }

    fn list_refs(&self) -> hydra_dag::DagResult<Vec<(RefName, Cid)>> {
        self.inner.list_refs()
    }

    fn log(
        &self,
        name: Option<&RefName>,
        limit: usize,
    ) -> hydra_dag::DagResult<Vec<hydra_dag::LogEntry>> {
        self.inner.log(name, limit)
    }

    fn stats(&self) -> hydra_dag::DagResult<VolumeStats> {
        self.inner.stats()
    }
}

#[test]

fn cache_does_not_resurrect_a_block_deleted_during_a_read() {
    let x = block(Codec::RAW, 9500, 4000);
    let (read_done_tx, read_done_rx) = std::sync::mpsc::channel();
    let (resume_tx, resume_rx) = std::sync::mpsc::channel();
    let backend = Arc::new(PausingVolume {
        inner: MemoryVolume::new(),
        pause_on: *x.cid(),
        read_done: std::sync::Mutex::new(Some(read_done_tx)),
        resume: std::sync::Mutex::new(Some(resume_rx)),
    });
    backend.put(&x).expect("put");
    let cache = CachedVolume::new(backend.clone(), 1 << 20);

    std::thread::scope(|s| {
        let reader = s.spawn(|| cache.get(x.cid()).expect("get"));
        read_done_rx
            .recv()
            .expect("the reader has read the backend");
        // The reader holds the bytes but has not cached them yet; a GC sweep
        // deletes the block now.
        assert_eq!(cache.delete_many(&[*x.cid()]).expect("delete"), 1);
        resume_tx.send(()).expect("resume the reader");
        let got = reader.join().expect("reader");
        // This read began before the delete, so it may see the block.
        assert!(got.is_some());
    });
    assert!(
        !backend.has(x.cid()).expect("has"),
        "the backend deleted the block"
    );
    let got = cache.get(x.cid()).expect("get");
    assert!(
        got.is_none(),
        "a block deleted through the cache is still served afterwards: {}",
        describe(&got)
    );
    assert!(
        !cache.has(x.cid()).expect("has"),
        "has() reports a deleted block"
    );
}

#[test]

fn grace_period_protects_a_block_stored_again_just_now() {
    let dir = tempdir();
    let path = dir.path().join("store");
    let old = bytes_for(9600, 5000);
    let fresh = bytes_for(9601, 5000);
    {
        let (store, _) = Store::init(&path, &small_cache()).expect("init");
        store.bucket().put(Codec::RAW, old.clone()).expect("put");
    }
    // The block became garbage two hours ago.
    let changed = sqlite3(
        &path.join("index.sqlite"),
        &[],
        "UPDATE blocks SET stored_ms = stored_ms - 7200000; SELECT changes();",
    );
    assert_eq!(changed.trim(), "1");

    let store = Store::open(&path, OpenMode::ReadWrite, &small_cache()).expect("open");
    let bucket = store.bucket();
    // An unpinned writer (as `hydra block put` is) stores two blocks now and
    // will point a ref at them; a collection with the default one-hour
    // grace period runs in between.
    let old_cid = bucket
        .put(Codec::RAW, old)
        .expect("store the old content again");
    let fresh_cid = bucket.put(Codec::RAW, fresh).expect("store new content");
    let report = bucket.gc(&GcOptions::default()).expect("gc");
    assert!(
        bucket.has(&fresh_cid).expect("has"),
        "grace kept the new block: {report:?}"
    );
    assert!(
        bucket.has(&old_cid).expect("has"),
        "a block put moments ago was swept despite the 1 h grace period, because it had \
         first been stored 2 h ago: {report:?}"
    );
}

#[test]

fn reads_survive_back_to_back_compactions() {
    let dir = tempdir();
    let v = local_volume(dir.path());
    let live: Vec<Block> = (0..50u64)
        .map(|i| block(Codec::RAW, 9700 + i, 3000 + i as usize))
        .collect();
    v.put_many(&live).expect("put");
    let stop = AtomicBool::new(false);
    let failures = std::sync::Mutex::new(Vec::new());
    let compactions = AtomicU64::new(0);
    std::thread::scope(|s| {
        s.spawn(|| {
            // What a GC loop does to a pack with a little garbage in it.
            let started = std::time::Instant::now();
            let mut i = 0;
            while started.elapsed() < Duration::from_secs(20)
                && failures.lock().expect("lock").is_empty()
            {
                let garbage = block(Codec::RAW, (1 << 50) + i, 3000);
                i += 1;
                v.put(&garbage).expect("put garbage");
                v.delete_many(&[*garbage.cid()]).expect("delete garbage");
                let stats = v.compact(0.99).expect("compact");
                compactions.fetch_add(stats.packs_rewritten, Ordering::SeqCst);
            }
            stop.store(true, Ordering::SeqCst);
        });
        for _ in 0..6 {
            s.spawn(|| {
                while !stop.load(Ordering::SeqCst) {
                    for b in &live {
                        match v.get(b.cid()) {
                            Ok(got) => assert!(
                                got.as_deref() == Some(b.data().as_ref()),
                                "{} read as {}",
                                b.cid(),
                                describe(&got)
                            ),
                            Err(e) => failures.lock().expect("lock").push(e.to_string()),
                        }
                    }
                }
            });
        }
    });
    let failures = failures.into_inner().expect("lock");
    assert!(
        failures.is_empty(),
        "reads of live blocks failed during {} compactions: {failures:#?}",
        compactions.load(Ordering::SeqCst)
    );
}

// ---------------------------------------------------------------------------
// Redis: a cluster failing over under load, two clients on one deployment
// ---------------------------------------------------------------------------

mod redis_deployments {
    use super::*;
    use support::redis::Redis;

    fn block(i: u64) -> Block {
        let mut data = vec![0u8; 4096];
        data[..8].copy_from_slice(&i.to_le_bytes());
        data[8..16].copy_from_slice(&now_ns().to_le_bytes());
        Block::new(Codec::RAW, data).expect("block")
    }

    #[test]
    fn a_master_killed_mid_workload_loses_nothing_acknowledged() {
        let mut redis = Redis::cluster(3, 1);
        let volume = Arc::new(RedisVolume::open(redis.nodes.clone(), "f", 1).expect("connect"));
        let name = RefName::new("fs/work").expect("name");
        let stop = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicU64::new(0));
        let worker = {
            let (volume, name, stop, done) =
                (volume.clone(), name.clone(), stop.clone(), done.clone());
            std::thread::spawn(move || {
                let mut acked: Vec<Cid> = Vec::new();
                let mut head: Option<Cid> = None;
                let mut i = 0u64;
                while !stop.load(Ordering::SeqCst) || i < 400 {
                    let b = block(i);
                    volume
                        .put_many(std::slice::from_ref(&b))
                        .expect("put survives the failover");
                    volume
                        .cas_ref(&name, head.as_ref(), Some(b.cid()), &RefNote::default())
                        .expect("cas survives the failover");
                    head = Some(*b.cid());
                    acked.push(*b.cid());
                    i += 1;
                    done.store(i, Ordering::SeqCst);
                }
                acked
            })
        };
        while done.load(Ordering::SeqCst) < 100 {
            std::thread::sleep(Duration::from_millis(10));
        }
        // The master holding the refs and changelog: the hardest one to lose.
        let victim = redis.master_of("{f}:refs");
        redis.kill(&victim);
        std::thread::sleep(Duration::from_millis(200));
        stop.store(true, Ordering::SeqCst);
        let acked = worker.join().expect("worker");
        assert!(acked.len() >= 400);
        // Every acknowledged write is there, read through the new master.
        let reader = RedisVolume::open(
            redis
                .nodes
                .iter()
                .filter(|n| **n != victim)
                .cloned()
                .collect(),
            "f",
            1,
        )
        .expect("connect");
        for cid in &acked {
            assert!(reader.has(cid).expect("has"), "lost block {cid}");
        }
        assert_eq!(reader.get_ref(&name).expect("ref"), acked.last().copied());
        let log = reader.log(Some(&name), usize::MAX).expect("log");
        assert_eq!(log.len(), acked.len(), "every acknowledged move is logged");
        let logged: Vec<Cid> = log.iter().rev().filter_map(|e| e.new).collect();
        assert_eq!(logged, acked);
    }

    #[test]
    fn two_clients_share_one_deployment_and_lose_no_update() {
        let redis = Redis::cluster(3, 0);
        let a = Arc::new(RedisVolume::open(vec![redis.nodes[0].clone()], "s", 1).expect("a"));
        let b = Arc::new(RedisVolume::open(vec![redis.nodes[2].clone()], "s", 1).expect("b"));
        let name = RefName::new("kv/counter").expect("name");
        // What one commits, the other sees at once.
        let first = block(0);
        a.put_many(std::slice::from_ref(&first)).expect("put");
        a.cas_ref(&name, None, Some(first.cid()), &RefNote::default())
            .expect("cas");
        assert_eq!(b.get_ref(&name).expect("ref"), Some(*first.cid()));
        assert!(b.has(first.cid()).expect("has"));
        // Read-modify-write from both at once: conflicts are retried, so
        // the final value names every increment.
        let run = |v: Arc<RedisVolume>, who: u8| {
            let name = name.clone();
            std::thread::spawn(move || {
                let mut conflicts = 0;
                for _ in 0..50 {
                    loop {
                        let head = v.get_ref(&name).expect("ref").expect("set");
                        let mut data = v.get(&head).expect("get").expect("present").to_vec();
                        data.push(who);
                        let next = Block::new(Codec::RAW, data).expect("block");
                        v.put_many(std::slice::from_ref(&next)).expect("put");
                        match v.cas_ref(&name, Some(&head), Some(next.cid()), &RefNote::default()) {
                            Ok(_) => break,
                            Err(DagError::RefConflict { .. }) => conflicts += 1,
                            Err(e) => panic!("{e}"),
                        }
                    }
                }
                conflicts
            })
        };
        let (ta, tb) = (run(a.clone(), 1), run(b.clone(), 2));
        let conflicts = ta.join().expect("a") + tb.join().expect("b");
        let head = a.get_ref(&name).expect("ref").expect("set");
        let data = a.get(&head).expect("get").expect("present");
        let tail = &data[4096..];
        assert_eq!(tail.iter().filter(|&&w| w == 1).count(), 50);
        assert_eq!(tail.iter().filter(|&&w| w == 2).count(), 50);
        assert_eq!(a.log(Some(&name), usize::MAX).expect("log").len(), 101);
        eprintln!("{conflicts} conflicts retried");
    }
}

// ---------------------------------------------------------------------------
// Transforms: compressed and encrypted stores
// ---------------------------------------------------------------------------

mod transforms {
    use super::*;

    fn config(zstd: bool, secret: Option<&Secret>) -> StoreConfig {
        let mut config = StoreConfig::single(VolumeSpec {
            kind: "local".into(),
            settings: [("path".to_string(), ".".to_string())].into(),
        });
        config.buckets[0].policy.transforms = Transforms {
            zstd_level: zstd.then_some(3),
            encryption: secret.map(|s| EncryptionSpec::new(s).expect("spec")),
        };
        config
    }

    fn options(secret: Option<Secret>) -> StoreOptions {
        StoreOptions {
            secret,
            ..StoreOptions::default()
        }
    }

    /// Text that compresses well, different per block.
    fn text(i: usize) -> Vec<u8> {
        (0..2000)
            .map(|j| format!("line {j} of block {i}: the quick brown fox\n"))
            .collect::<String>()
            .into_bytes()
    }

    fn pack_bytes(dir: &Path) -> Vec<u8> {
        let mut all = Vec::new();
        for e in std::fs::read_dir(dir.join("packs")).expect("packs") {
            all.extend(std::fs::read(e.expect("entry").path()).expect("read"));
        }
        all.extend(std::fs::read(dir.join("index.sqlite")).expect("index"));
        all
    }

    #[test]
    fn compressed_and_encrypted_blocks_hide_their_content_and_names() {
        let dir = tempdir();
        let path = dir.path().join("s");
        let secret = Secret::Passphrase("correct horse battery".into());
        let (store, _) = Store::init_with(
            &path,
            config(true, Some(&secret)),
            &options(Some(secret.clone())),
        )
        .expect("init");
        let blocks: Vec<Block> = (0..20)
            .map(|i| Block::new(Codec::RAW, text(i)).expect("block"))
            .collect();
        let plain: usize = blocks.iter().map(Block::len).sum();
        store.bucket().put_blocks(&blocks).expect("put");
        let name = RefName::new("fs/x").expect("name");
        store
            .bucket()
            .cas_ref(&name, None, Some(blocks[0].cid()), &RefNote::default())
            .expect("ref");
        for b in &blocks {
            assert_eq!(store.bucket().require(b.cid()).expect("get"), *b.data());
        }
        drop(store);

        // On disk: smaller than the text, no text, no CID of any block.
        let raw = pack_bytes(&path);
        assert!(raw.len() < plain / 4, "{} stored for {plain}", raw.len());
        assert!(!raw.windows(20).any(|w| w == b"the quick brown fox\n"));
        let inner = local_volume(&path);
        for b in &blocks {
            assert!(
                !inner.has(b.cid()).expect("has"),
                "stored under its own CID"
            );
            let digest = b.cid().digest();
            assert!(
                !raw.windows(32).any(|w| w == digest),
                "a CID digest is visible"
            );
        }

        // The right key reads everything back and GC sees the real CIDs.
        let store =
            Store::open(&path, OpenMode::ReadWrite, &options(Some(secret.clone()))).expect("open");
        let report = store
            .bucket()
            .gc(&GcOptions {
                grace: Duration::ZERO,
                ..GcOptions::default()
            })
            .expect("gc");
        assert_eq!(report.swept_blocks, 19, "{report:?}");
        assert_eq!(
            store.bucket().require(blocks[0].cid()).expect("kept"),
            *blocks[0].data()
        );
        assert!(store.bucket().get(blocks[1].cid()).expect("get").is_none());
        drop(store);

        // A wrong key or none: refused at open, with a clear message.
        let wrong = Store::open(
            &path,
            OpenMode::ReadOnly,
            &options(Some(Secret::Passphrase("wrong".into()))),
        )
        .expect_err("wrong key");
        assert!(wrong.to_string().contains("wrong key"), "{wrong}");
        let none = Store::open(&path, OpenMode::ReadOnly, &options(None)).expect_err("no key");
        assert!(none.to_string().contains("HYDRA_PASSPHRASE"), "{none}");
        let key_file = Secret::KeyFile(vec![7; 32]);
        let other = Store::open(&path, OpenMode::ReadOnly, &options(Some(key_file)))
            .expect_err("key file for a passphrase store");
        assert!(other.to_string().contains("wrong key"), "{other}");
    }

    #[test]
    fn a_tampered_encrypted_block_is_an_integrity_error() {
        let dir = tempdir();
        let path = dir.path().join("s");
        let secret = Secret::KeyFile((0..64).collect());
        let (store, _) = Store::init_with(
            &path,
            config(false, Some(&secret)),
            &options(Some(secret.clone())),
        )
        .expect("init");
        let block = Block::new(Codec::RAW, vec![42u8; 100_000]).expect("block");
        store
            .bucket()
            .put_blocks(std::slice::from_ref(&block))
            .expect("put");
        drop(store);
        let pack = path.join("packs/00000001.pack");
        let mut bytes = std::fs::read(&pack).expect("read");
        let at = bytes.len() - 500;
        bytes[at] ^= 1;
        std::fs::write(&pack, bytes).expect("write");
        let store = Store::open(&path, OpenMode::ReadOnly, &options(Some(secret))).expect("open");
        let err = store.bucket().get(block.cid()).expect_err("tampered");
        assert!(matches!(err, DagError::Integrity { .. }), "{err}");
    }

    #[test]
    fn compression_alone_keeps_names_and_shrinks_text() {
        let dir = tempdir();
        let path = dir.path().join("s");
        let (store, _) = Store::init_with(&path, config(true, None), &options(None)).expect("init");
        let blocks: Vec<Block> = (0..10)
            .map(|i| Block::new(Codec::RAW, text(i)).expect("block"))
            .collect();
        store.bucket().put_blocks(&blocks).expect("put");
        // Incompressible bytes are stored as they are (one flag byte more).
        let noise = Block::new(Codec::RAW, bytes_for(9, 50_000)).expect("block");
        store
            .bucket()
            .put_blocks(std::slice::from_ref(&noise))
            .expect("put");
        drop(store);
        let inner = local_volume(&path);
        for b in &blocks {
            let stored = inner.get(b.cid()).expect("get").expect("under its CID");
            assert!(stored.len() < b.len() / 4);
        }
        assert_eq!(
            inner.get(noise.cid()).expect("get").expect("stored").len(),
            50_001
        );
        let store = Store::open(&path, OpenMode::ReadOnly, &options(None)).expect("open");
        for b in blocks.iter().chain([&noise]) {
            assert_eq!(store.bucket().require(b.cid()).expect("get"), *b.data());
        }
    }
}
