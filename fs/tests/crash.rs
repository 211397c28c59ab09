//! Crash consistency and failed commits.
//!
//! `killed_writers_leave_a_synced_state` re-runs this test binary as a
//! child (`crash_child`) that writes into an on-disk store and fsyncs now
//! and then, reporting each fsync that returned on stdout; the parent
//! kills it with SIGKILL and checks that the reopened filesystem is
//! exactly the last reported state, or the next one (a commit in flight).
//! The other tests make commits fail, through a volume that refuses
//! writes on demand or through a node too large for a block, and check
//! that nothing is lost or left dangling once commits work again.

// `FsError` is the API's own error type; the helpers here pass it through.
#![allow(clippy::result_large_err)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hydra_dag::{
    Block, Bucket, BucketPolicy, Cid, DagError, DagResult, LogEntry, MemoryVolume, OpenMode,
    RefName, RefNote, Store, StoreOptions, Volume, VolumeStats,
};
use hydra_fs::{Fs, FsError, Ino, Kind, OpenFlags};

mod support;
use support::*;

const CHILD_ENV: &str = "HYDRA_FS_CRASH_DIR";

fn lookup(fs: &Fs, path: &str) -> Result<Ino, FsError> {
    let mut ino = Ino::ROOT;
    for part in path.split('/').filter(|s| !s.is_empty()) {
        ino = fs.lookup(ino, part.as_bytes(), &root())?.ino;
    }
    Ok(ino)
}

fn split(path: &str) -> (&str, &str) {
    match path.rfind('/') {
        Some(i) => (&path[..i], &path[i + 1..]),
        None => ("", path),
    }
}

fn read_all(fs: &Fs, ino: Ino) -> Vec<u8> {
    let fh = fs.open_file(ino, OpenFlags::READ, &root()).expect("open");
    let mut out = Vec::new();
    loop {
        let piece = fs.read(fh, out.len() as u64, 1 << 20).expect("read");
        if piece.is_empty() {
            break;
        }
        out.extend_from_slice(&piece);
    }
    fs.release(fh).expect("release");
    out
}

/// Every path below the root: directories map to `None`, files to their bytes.
fn tree(fs: &Fs) -> BTreeMap<String, Option<Vec<u8>>> {
    fn walk(fs: &Fs, dir: Ino, rel: &str, out: &mut BTreeMap<String, Option<Vec<u8>>>) {
        for e in fs
            .readdir(dir, 0, &root())
            .expect("readdir")
            .into_iter()
            .skip(2)
        {
            let name = String::from_utf8(e.name).expect("utf-8");
            let path = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            match e.kind {
                Kind::Dir => {
                    out.insert(path.clone(), None);
                    walk(fs, e.ino, &path, out);
                }
                Kind::File => {
                    out.insert(path, Some(read_all(fs, e.ino)));
                }
                other => panic!("unexpected {other:?} at {path}"),
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(fs, Ino::ROOT, "", &mut out);
    out
}

// ---------------------------------------------------------------------------
// The crash plan: what the child does in round `r`, and what that leaves.

#[derive(Debug)]
enum Step {
    /// Create (or replace) a file with `bytes(seed, len)`, in pieces.
    Put(String, u64, usize),
    Unlink(String),
    Rename(String, String),
    Mkdir(String),
}

const SIZES: [usize; 6] = [0, 100, 5_000, 70_000, 400_000, 1_300_000];

fn plan(r: u64) -> Vec<Step> {
    let mut steps = Vec::new();
    if r % 3 == 1 {
        steps.push(Step::Mkdir(format!("dir{r}")));
    }
    let dir = format!("dir{}", r - (r - 1) % 3);
    for k in 0..4u64 {
        let len = SIZES[((r * 7 + k * 3) % SIZES.len() as u64) as usize];
        steps.push(Step::Put(format!("{dir}/r{r}-{k}"), r * 100 + k, len));
    }
    if r % 3 == 2 {
        // Large enough for Fs::flush to store it before the commit.
        steps.push(Step::Put(format!("{dir}/big{r}"), r * 100 + 99, 9 << 20));
    }
    if r > 1 {
        // Rewrite an earlier file with different content and size.
        let prev = format!("dir{}", (r - 1) - (r - 2) % 3);
        let len = SIZES[(r % SIZES.len() as u64) as usize] + 17;
        steps.push(Step::Put(format!("{prev}/r{}-0", r - 1), r * 100 + 50, len));
    }
    if r > 2 {
        let old = format!("dir{}", (r - 2) - (r - 3) % 3);
        steps.push(Step::Unlink(format!("{old}/r{}-1", r - 2)));
        steps.push(Step::Rename(
            format!("{old}/r{}-2", r - 2),
            format!("{dir}/moved{r}"),
        ));
    }
    steps
}

/// The tree after rounds `1..=rounds`.
fn expected(rounds: u64) -> BTreeMap<String, Option<Vec<u8>>> {
    let mut out = BTreeMap::new();
    for r in 1..=rounds {
        for step in plan(r) {
            match step {
                Step::Put(path, seed, len) => {
                    out.insert(path, Some(bytes(seed, len)));
                }
                Step::Unlink(path) => {
                    out.remove(&path).expect("plan unlinks an existing file");
                }
                Step::Rename(from, to) => {
                    let v = out.remove(&from).expect("plan renames an existing file");
                    out.insert(to, v);
                }
                Step::Mkdir(path) => {
                    out.insert(path, None);
                }
            }
        }
    }
    out
}

fn run_step(fs: &Fs, step: &Step) -> Result<(), FsError> {
    match step {
        Step::Put(path, seed, len) => {
            let (p, leaf) = split(path);
            let dir = lookup(fs, p)?;
            let fh = match fs.lookup(dir, leaf.as_bytes(), &root()) {
                Ok(attr) => fs.open_file(
                    attr.ino,
                    OpenFlags {
                        write: true,
                        truncate: true,
                        ..OpenFlags::default()
                    },
                    &root(),
                )?,
                Err(_) => fs.create(dir, leaf.as_bytes(), 0o644, rw(), &root())?.1,
            };
            let data = bytes(*seed, *len);
            for (i, piece) in data.chunks(64 << 10).enumerate() {
                fs.write(fh, (i * (64 << 10)) as u64, piece, &root())?;
            }
            fs.flush(fh)?;
            fs.release(fh)
        }
        Step::Unlink(path) => {
            let (p, leaf) = split(path);
            fs.unlink(lookup(fs, p)?, leaf.as_bytes(), &root())
        }
        Step::Rename(from, to) => {
            let ((fp, fl), (tp, tl)) = (split(from), split(to));
            fs.rename(
                lookup(fs, fp)?,
                fl.as_bytes(),
                lookup(fs, tp)?,
                tl.as_bytes(),
                hydra_fs::RenameMode::Replace,
                &root(),
            )
        }
        Step::Mkdir(path) => {
            let (p, leaf) = split(path);
            fs.mkdir(lookup(fs, p)?, leaf.as_bytes(), 0o755, &root())
                .map(|_| ())
        }
    }
}

const MAX_ROUNDS: u64 = 40;

/// The child: runs rounds, fsyncing after each and saying so. Does nothing
/// unless the parent set `HYDRA_FS_CRASH_DIR`.
#[test]
fn crash_child() {
    let Some(dir) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let (store, _) = Store::init(Path::new(&dir), &StoreOptions::default()).expect("init store");
    let fs = Fs::open(store.bucket().clone(), "crash", &root(), opts()).expect("open fs");
    let mut out = std::io::stdout().lock();
    for r in 1..=MAX_ROUNDS {
        for step in plan(r) {
            run_step(&fs, &step).unwrap_or_else(|e| panic!("round {r} {step:?}: {e}"));
        }
        writeln!(out, "committing {r}").expect("stdout");
        out.flush().expect("flush");
        fs.fsync(None).expect("fsync");
        writeln!(out, "synced {r}").expect("stdout");
        out.flush().expect("flush");
    }
    writeln!(out, "done").expect("stdout");
    out.flush().expect("flush");
}

/// When to kill the child.
#[derive(Clone, Copy, Debug)]
enum KillAt {
    /// After it reported fsync `k`, plus this fraction of the time its last
    /// round took (so the kill lands somewhere in the next round's writes).
    AfterSync(u64, f64),
    /// This many microseconds after it said it starts fsync `k`: inside
    /// the commit.
    InCommit(u64, u64),
}

/// Runs the child until the kill point, kills it with SIGKILL; returns the
/// last fsync it reported.
fn run_child_and_kill(dir: &Path, at: KillAt) -> u64 {
    let exe = std::env::current_exe().expect("current exe");
    let mut child = Command::new(exe)
        .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let mut synced = 0;
    let start = Instant::now();
    let mut last_sync = start;
    let mut wait = None;
    for line in lines.by_ref() {
        let line = line.expect("child stdout");
        assert!(line != "done", "the child finished before the kill point");
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the child is too slow"
        );
        if let Some(n) = line.strip_prefix("synced ") {
            synced = n.parse().expect("round number");
            let round = last_sync.elapsed();
            last_sync = Instant::now();
            if let KillAt::AfterSync(k, fraction) = at
                && synced >= k
            {
                wait = Some(round.mul_f64(fraction));
                break;
            }
        }
        if let Some(n) = line.strip_prefix("committing ")
            && let KillAt::InCommit(k, micros) = at
            && n.parse::<u64>().expect("round number") >= k
        {
            wait = Some(Duration::from_micros(micros));
            break;
        }
    }
    let wait = wait.expect("the child stopped before the kill point");
    std::thread::sleep(wait);
    child.kill().expect("SIGKILL");
    // Whatever it reported before dying counts too.
    for line in lines {
        let Ok(line) = line else { break };
        if let Some(n) = line.strip_prefix("synced ") {
            synced = n.parse().expect("round number");
        }
    }
    let status = child.wait().expect("wait");
    assert!(!status.success(), "the child was killed, not finished");
    synced
}

#[test]
fn killed_writers_leave_a_synced_state() {
    for at in [
        KillAt::AfterSync(2, 0.0),
        KillAt::AfterSync(4, 0.5),
        KillAt::InCommit(8, 1500),
    ] {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("store");
        let synced = run_child_and_kill(&dir, at);
        let store = Store::open(&dir, OpenMode::ReadWrite, &StoreOptions::default())
            .expect("reopen the store after SIGKILL");
        let fs = Fs::open(store.bucket().clone(), "crash", &root(), opts()).expect("open fs");
        let got = tree(&fs);
        let (at_sync, in_flight) = (expected(synced), expected(synced + 1));
        eprintln!(
            "killed at {at:?}, last reported fsync {synced}: {}",
            if got == at_sync {
                "the synced state"
            } else {
                "the state of the commit in flight"
            }
        );
        if got != at_sync && got != in_flight {
            let show = |t: &BTreeMap<String, Option<Vec<u8>>>| {
                t.iter()
                    .map(|(p, c)| format!("{p}:{}", c.as_ref().map_or(-1, |c| c.len() as i64)))
                    .collect::<Vec<_>>()
                    .join(" ")
            };
            panic!(
                "killed at {at:?}, last reported fsync {synced}: the filesystem is \
                 neither state {synced} nor {}\n got: {}\nwant: {}",
                synced + 1,
                show(&got),
                show(&at_sync)
            );
        }
        // The reopened filesystem takes new commits.
        let (_, fh) = fs
            .create(Ino::ROOT, b"after", 0o644, rw(), &root())
            .expect("create");
        fs.release(fh).expect("release");
        fs.commit("after the crash").expect("commit");
    }
}

// ---------------------------------------------------------------------------
// Failed commits.

/// A volume over memory that refuses to store blocks while `fail` is set.
#[derive(Debug)]
struct Flaky {
    inner: MemoryVolume,
    fail: AtomicBool,
}

impl Flaky {
    fn refuse(&self) -> DagResult<()> {
        if self.fail.load(Ordering::SeqCst) {
            Err(DagError::Other("injected write failure".into()))
        } else {
            Ok(())
        }
    }
}

impl Volume for Flaky {
    fn name(&self) -> &'static str {
        "flaky"
    }
    fn get(&self, cid: &Cid) -> DagResult<Option<Bytes>> {
        self.inner.get(cid)
    }
    fn has(&self, cid: &Cid) -> DagResult<bool> {
        self.inner.has(cid)
    }
    fn put_many(&self, blocks: &[Block]) -> DagResult<()> {
        self.refuse()?;
        self.inner.put_many(blocks)
    }
    fn delete_many(&self, cids: &[Cid]) -> DagResult<u64> {
        self.inner.delete_many(cids)
    }
    fn for_each_block(&self, f: &mut dyn FnMut(hydra_dag::BlockInfo)) -> DagResult<()> {
        self.inner.for_each_block(f)
    }
    fn get_ref(&self, name: &RefName) -> DagResult<Option<Cid>> {
        self.inner.get_ref(name)
    }
    fn cas_ref(
        &self,
        name: &RefName,
        expected: Option<&Cid>,
        new: Option<&Cid>,
        note: &RefNote,
    ) -> DagResult<LogEntry> {
        self.refuse()?;
        self.inner.cas_ref(name, expected, new, note)
    }
    fn list_refs(&self) -> DagResult<Vec<(RefName, Cid)>> {
        self.inner.list_refs()
    }
    fn log(&self, name: Option<&RefName>, limit: usize) -> DagResult<Vec<LogEntry>> {
        self.inner.log(name, limit)
    }
    fn stats(&self) -> DagResult<VolumeStats> {
        self.inner.stats()
    }
}

fn flaky_bucket() -> (Bucket, Arc<Flaky>) {
    let flaky = Arc::new(Flaky {
        inner: MemoryVolume::new(),
        fail: AtomicBool::new(false),
    });
    let volume: Arc<dyn Volume> = flaky.clone();
    let bucket = Bucket::new("flaky", BucketPolicy::default(), vec![volume]).expect("bucket");
    (bucket, flaky)
}

fn put(fs: &Fs, parent: Ino, name: &str, data: &[u8]) -> Result<(), FsError> {
    let (_, fh) = fs.create(parent, name.as_bytes(), 0o644, rw(), &root())?;
    let r = fs.write(fh, 0, data, &root()).map(|_| ());
    fs.release(fh)?;
    r
}

/// A base commit, then changes that a commit failing at its end (storing
/// the directory nodes) was asked to store: `d/f` and `d/e/g`, small
/// enough to be inline, so no block is written before that point.
fn failed_commit() -> (Bucket, Fs) {
    let (bucket, flaky) = flaky_bucket();
    let fs = Fs::open(bucket.clone(), "t", &root(), opts()).expect("open");
    put(&fs, Ino::ROOT, "base", b"base").expect("put");
    fs.commit("base").expect("commit");
    let d = fs
        .mkdir(Ino::ROOT, b"d", 0o755, &root())
        .expect("mkdir")
        .ino;
    put(&fs, d, "f", b"small").expect("put");
    let e = fs.mkdir(d, b"e", 0o755, &root()).expect("mkdir").ino;
    put(&fs, e, "g", b"smaller").expect("put");
    flaky.fail.store(true, Ordering::SeqCst);
    let err = fs.commit("fails").expect_err("the volume refuses writes");
    assert_eq!(errno(err), libc::EIO);
    flaky.fail.store(false, Ordering::SeqCst);
    (bucket, fs)
}

fn check_failed_commit_content(fs: &Fs) {
    let f = lookup(fs, "d/f").map_err(errno);
    assert!(f.is_ok(), "d/f: errno {f:?}");
    assert_eq!(read_all(fs, f.expect("checked")), b"small");
    let g = lookup(fs, "d/e/g").map_err(errno);
    assert!(g.is_ok(), "d/e/g: errno {g:?}");
    assert_eq!(read_all(fs, g.expect("checked")), b"smaller");
}

#[test]
fn a_failed_commit_is_retried() {
    let (bucket, fs) = failed_commit();
    check_failed_commit_content(&fs);
    let retry = fs.commit("retry").expect("commit works again");
    assert!(retry.is_some(), "the retry found nothing to store");
    let again = Fs::open(bucket, "t", &root(), opts()).expect("reopen");
    check_failed_commit_content(&again);
}

#[test]
fn a_failed_commit_leaves_no_dangling_directory() {
    let (bucket, fs) = failed_commit();
    put(&fs, Ino::ROOT, "later", b"another change").expect("put");
    fs.commit("later").expect("commit");
    let again = Fs::open(bucket, "t", &root(), opts()).expect("reopen");
    check_failed_commit_content(&again);
}

#[test]
fn a_failed_commit_keeps_file_content() {
    let (bucket, flaky) = flaky_bucket();
    let fs = Fs::open(bucket.clone(), "t", &root(), opts()).expect("open");
    let big = bytes(1, 300_000);
    put(&fs, Ino::ROOT, "big", &big).expect("put");
    flaky.fail.store(true, Ordering::SeqCst);
    assert_eq!(errno(fs.commit("fails").expect_err("refused")), libc::EIO);
    flaky.fail.store(false, Ordering::SeqCst);
    let ino = lookup(&fs, "big").expect("big");
    let fh = fs.open_file(ino, OpenFlags::READ, &root()).expect("open");
    let got = fs.read(fh, 0, big.len() + 1).map_err(errno);
    assert!(
        got.is_ok(),
        "read after the failed commit: errno {:?}",
        got.err()
    );
    assert!(
        got.expect("checked") == big,
        "content changed by the failed commit"
    );
    fs.release(fh).expect("release");
    fs.commit("retry").expect("commit");
    let again = Fs::open(bucket, "t", &root(), opts()).expect("reopen");
    assert!(read_all(&again, lookup(&again, "big").expect("big")) == big);
}

#[test]
fn fsync_after_a_conflict_does_not_report_success() {
    let bucket = Bucket::in_memory();
    let a = Fs::open(bucket.clone(), "t", &root(), opts()).expect("open");
    a.commit("create").expect("commit");
    let b = Fs::open(bucket.clone(), "t", &root(), opts()).expect("open");
    put(&a, Ino::ROOT, "from-a", b"a").expect("put");
    put(&a, Ino::ROOT, "both", b"a").expect("put");
    a.commit("a").expect("commit");
    // Another writer's commit merges in; the same name written by both
    // does not.
    put(&b, Ino::ROOT, "from-b", b"b").expect("put");
    put(&b, Ino::ROOT, "both", b"b").expect("put");
    assert_eq!(errno(b.commit("b").expect_err("conflict")), libc::EBUSY);
    let durable = b.fsync(None);
    let again = Fs::open(bucket.clone(), "t", &root(), opts()).expect("reopen");
    let stored = again.lookup(Ino::ROOT, b"from-b", &root()).is_ok();
    assert!(
        durable.is_err() || stored,
        "fsync returned Ok but from-b is not in the filesystem"
    );
    // Without the clash, b's fsync merges and lands.
    let c = Fs::open(bucket.clone(), "t", &root(), opts()).expect("open");
    put(&a, Ino::ROOT, "later-a", b"a").expect("put");
    a.commit("a2").expect("commit");
    put(&c, Ino::ROOT, "from-c", b"c").expect("put");
    c.fsync(None).expect("merged");
    let again = Fs::open(bucket, "t", &root(), opts()).expect("reopen");
    for name in ["from-a", "later-a", "from-c"] {
        assert!(
            again.lookup(Ino::ROOT, name.as_bytes(), &root()).is_ok(),
            "{name}"
        );
    }
}

/// Sets up to 20 attributes of 60 KB on `b/g`; returns how many were taken.
fn many_xattrs(fs: &Fs) -> usize {
    let a = fs
        .mkdir(Ino::ROOT, b"a", 0o755, &root())
        .expect("mkdir")
        .ino;
    put(fs, a, "f", b"in a").expect("put");
    let b = fs
        .mkdir(Ino::ROOT, b"b", 0o755, &root())
        .expect("mkdir")
        .ino;
    put(fs, b, "g", b"in b").expect("put");
    let g = lookup(fs, "b/g").expect("b/g");
    let value = bytes(9, 60_000);
    for i in 0..20 {
        if let Err(e) = fs.setxattr(g, format!("user.k{i}").as_bytes(), &value, 0, &root()) {
            // Refusing is fine (ext4 says ENOSPC, others E2BIG).
            let e = errno(e);
            assert!(
                matches!(e, libc::ENOSPC | libc::E2BIG),
                "unexpected setxattr errno {e}"
            );
            return i;
        }
    }
    20
}

#[test]
fn xattrs_beyond_a_block_are_refused_or_committed() {
    let bucket = Bucket::in_memory();
    let fs = Fs::open(bucket.clone(), "t", &root(), opts()).expect("open");
    let set = many_xattrs(&fs);
    let commit = fs.commit("with attributes").map_err(errno);
    assert!(
        commit.is_ok(),
        "{set} attributes of 60 KB were accepted, then the commit failed: errno {commit:?}"
    );
    let again = Fs::open(bucket, "t", &root(), opts()).expect("reopen");
    let g = lookup(&again, "b/g").expect("b/g");
    assert_eq!(again.listxattr(g, &root()).expect("list").len(), set);
}

#[test]
fn a_commit_failing_midway_leaves_no_dangling_directory() {
    let bucket = Bucket::in_memory();
    let fs = Fs::open(bucket.clone(), "t", &root(), opts()).expect("open");
    fs.commit("empty").expect("commit");
    let set = many_xattrs(&fs);
    let _ = fs.commit("may fail");
    let g = lookup(&fs, "b/g").expect("b/g");
    for i in 0..set {
        fs.removexattr(g, format!("user.k{i}").as_bytes(), &root())
            .expect("removexattr");
    }
    fs.commit("without").expect("commit");
    let again = Fs::open(bucket, "t", &root(), opts()).expect("reopen");
    let f = lookup(&again, "a/f").map_err(errno);
    assert!(f.is_ok(), "a/f after reopen: errno {f:?}");
    assert_eq!(read_all(&again, f.expect("checked")), b"in a");
}

#[test]
fn a_failed_commit_of_random_writes_leaves_later_commits_whole() {
    // The nodes a failed commit's edit made stay decoded for later edits,
    // though never stored: only stored blobs are edited, and they name
    // only stored nodes. A fresh open, which keeps no node, reads every
    // byte back from the store.
    let (bucket, flaky) = flaky_bucket();
    let fs = Fs::open(bucket.clone(), "t", &root(), opts()).expect("open");
    let mut model = bytes(3, 24 << 20);
    put(&fs, Ino::ROOT, "db", &model).expect("put");
    fs.commit("base").expect("commit");
    let ino = lookup(&fs, "db").expect("db");
    let rw = OpenFlags {
        read: true,
        write: true,
        ..OpenFlags::default()
    };
    let fh = fs.open_file(ino, rw, &root()).expect("open");
    let write = |fs: &Fs, model: &mut Vec<u8>, at: usize, len: usize, seed: u64| {
        let page = bytes(seed, len);
        fs.write(fh, at as u64, &page, &root()).expect("write");
        model[at..at + len].copy_from_slice(&page);
    };
    // A few pages (kept for the commit's batch) and then many (stored by
    // the edit itself), each time with a commit that fails.
    for (round, pages) in [(0u64, 3usize), (1, 40)] {
        for k in 0..pages {
            let at = (k * 577_351 + round as usize * 99_991) % (model.len() - 8192);
            write(&fs, &mut model, at, 8192, round * 100 + k as u64);
        }
        flaky.fail.store(true, Ordering::SeqCst);
        assert_eq!(errno(fs.commit("fails").expect_err("refused")), libc::EIO);
        flaky.fail.store(false, Ordering::SeqCst);
        for k in 0..pages {
            let at = (k * 311_111 + 7) % (model.len() - 4096);
            write(&fs, &mut model, at, 4096, 1_000 + round * 100 + k as u64);
        }
        fs.commit("works").expect("commit");
    }
    fs.release(fh).expect("release");
    let again = Fs::open(bucket, "t", &root(), opts()).expect("reopen");
    let db = lookup(&again, "db").expect("db");
    assert!(
        read_all(&again, db) == model,
        "content after reopen differs"
    );
}
