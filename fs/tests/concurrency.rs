//! Concurrency: many threads on one `Fs` (it is `Clone + Send + Sync`),
//! with commits and snapshot readers running beside them.

// `FsError` is the API's own error type; the helpers here pass it through.
#![allow(clippy::result_large_err)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hydra_dag::Bucket;
use hydra_fs::{Fs, FsError, FsOptions, Ino, Kind, RenameMode};

mod support;
use support::*;

const THREADS: usize = 8;
const ITERATIONS: usize = 300;
const SHARED_NAMES: usize = 4;

/// Self-describing content: a header naming writer, iteration and length,
/// then bytes derived from them. Any torn or mixed-up file fails `valid`.
fn content(t: usize, i: usize) -> Vec<u8> {
    let len = [0, 100, 1_500, 40_000, 300_000][(t * 3 + i) % 5];
    let mut out = format!("{t}:{i}:{len}:").into_bytes();
    out.extend(bytes((t * 1_000 + i) as u64, len));
    out
}

/// Whether `data` is exactly some `content(t, i)`.
fn valid(data: &[u8]) -> bool {
    let text: Vec<&[u8]> = data.splitn(4, |b| *b == b':').collect();
    let parse = |b: &[u8]| std::str::from_utf8(b).ok()?.parse::<usize>().ok();
    match text.as_slice() {
        [t, i, _, _] => match (parse(t), parse(i)) {
            (Some(t), Some(i)) => content(t, i) == data,
            _ => false,
        },
        _ => false,
    }
}

fn read_all(fs: &Fs, ino: Ino) -> Result<Vec<u8>, FsError> {
    let fh = fs.open_file(ino, ro(), &root())?;
    let mut out = Vec::new();
    let result = loop {
        match fs.read(fh, out.len() as u64, 1 << 20) {
            Ok(piece) if piece.is_empty() => break Ok(()),
            Ok(piece) => out.extend_from_slice(&piece),
            Err(e) => break Err(e),
        }
    };
    fs.release(fh)?;
    result.map(|()| out)
}

/// Writes `data` in one call, so that any committed state holds either the
/// empty new file or all of it.
fn put(fs: &Fs, dir: Ino, name: &str, data: &[u8]) -> Result<Ino, FsError> {
    let (attr, fh) = fs.create(dir, name.as_bytes(), 0o644, rw(), &root())?;
    let written = fs.write(fh, 0, data, &root());
    fs.flush(fh)?;
    fs.release(fh)?;
    written?;
    Ok(attr.ino)
}

fn listing(fs: &Fs, dir: Ino) -> BTreeMap<String, Vec<u8>> {
    fs.readdir(dir, 0, &root())
        .expect("readdir")
        .into_iter()
        .skip(2)
        .map(|e| {
            assert_eq!(e.kind, Kind::File);
            let name = String::from_utf8(e.name).expect("utf-8");
            let data = read_all(fs, e.ino).expect("read");
            (name, data)
        })
        .collect()
}

/// Unexpected errors, with what was being done.
type Errors = Arc<Mutex<Vec<String>>>;

fn report(errors: &Errors, what: String) {
    errors.lock().unwrap_or_else(|e| e.into_inner()).push(what);
}

/// One worker: in its own directory, files come and go deterministically;
/// in the shared one, it races the others. Returns what its own directory
/// should hold at the end.
fn worker(fs: &Fs, t: usize, own: Ino, shared: Ino, errors: &Errors) -> BTreeMap<String, Vec<u8>> {
    let mut expect = BTreeMap::new();
    let fail = |what: String| report(errors, format!("thread {t}: {what}"));
    for i in 0..ITERATIONS {
        let data = content(t, i);
        // Own directory: create, read back, rename, link, drop an old one.
        let f = format!("f{i}");
        let ino = match put(fs, own, &f, &data) {
            Ok(ino) => ino,
            Err(e) => {
                fail(format!("create {f}: {e}"));
                continue;
            }
        };
        match read_all(fs, ino) {
            Ok(back) if back == data => {}
            Ok(back) => fail(format!(
                "{f} read back {} bytes, wrote {}",
                back.len(),
                data.len()
            )),
            Err(e) => fail(format!("read {f}: {e}")),
        }
        let g = format!("g{i}");
        if let Err(e) = fs.rename(
            own,
            f.as_bytes(),
            own,
            g.as_bytes(),
            RenameMode::Replace,
            &root(),
        ) {
            fail(format!("rename {f} -> {g}: {e}"));
        }
        expect.insert(g.clone(), data.clone());
        if i % 5 == 0 {
            let h = format!("h{i}");
            match fs.link(ino, own, h.as_bytes(), &root()) {
                Ok(attr) if attr.nlink == 2 => {}
                Ok(attr) => fail(format!("link {h}: nlink {}", attr.nlink)),
                Err(e) => fail(format!("link {h}: {e}")),
            }
            expect.insert(h, data.clone());
        }
        if i >= 3 && i % 2 == 1 {
            let old = format!("g{}", i - 3);
            if let Err(e) = fs.unlink(own, old.as_bytes(), &root()) {
                fail(format!("unlink {old}: {e}"));
            }
            expect.remove(&old);
        }
        // Shared directory: publish under a contended name, remove another.
        let mine = format!("s{t}-{i}");
        if let Err(e) = put(fs, shared, &mine, &data) {
            fail(format!("create shared {mine}: {e}"));
            continue;
        }
        let common = format!("common{}", i % SHARED_NAMES);
        if let Err(e) = fs.rename(
            shared,
            mine.as_bytes(),
            shared,
            common.as_bytes(),
            RenameMode::Replace,
            &root(),
        ) {
            fail(format!("rename {mine} -> {common}: {e}"));
        }
        let other = format!("common{}", (i + t) % SHARED_NAMES);
        if (i + t).is_multiple_of(3) {
            match fs.unlink(shared, other.as_bytes(), &root()) {
                Ok(()) => {}
                Err(e) if errno(&e) == libc::ENOENT => {} // another thread got there first
                Err(e) => fail(format!("unlink {other}: {e}")),
            }
        }
        // Read whatever a contended name holds now: whole, or gone.
        match fs.lookup(shared, other.as_bytes(), &root()) {
            Ok(attr) => match read_all(fs, attr.ino) {
                Ok(data) if valid(&data) => {}
                Ok(data) => fail(format!("{other} holds {} invalid bytes", data.len())),
                // Unlinked (and forgotten) between lookup and open.
                Err(e) if errno(&e) == libc::ENOENT => {}
                Err(e) => fail(format!("read {other}: {e}")),
            },
            Err(e) if errno(&e) == libc::ENOENT => {}
            Err(e) => fail(format!("lookup {other}: {e}")),
        }
    }
    expect
}

/// Checks every file of a committed snapshot: each one is empty (created,
/// not yet written when the commit ran) or exactly some `content`.
fn check_snapshot(bucket: &Bucket, fs: &Fs, errors: &Errors) {
    let Some(root_cid) = fs.base() else { return };
    let snap = match Fs::open_snapshot(bucket.clone(), root_cid) {
        Ok(snap) => snap,
        Err(e) => return report(errors, format!("open snapshot: {e}")),
    };
    let mut stack = vec![Ino::ROOT];
    while let Some(dir) = stack.pop() {
        let entries = match snap.readdir(dir, 0, &root()) {
            Ok(entries) => entries,
            Err(e) => return report(errors, format!("snapshot readdir: {e}")),
        };
        for e in entries.into_iter().skip(2) {
            match e.kind {
                Kind::Dir => stack.push(e.ino),
                Kind::File => match read_all(&snap, e.ino) {
                    Ok(data) if data.is_empty() || valid(&data) => {}
                    Ok(data) => report(
                        errors,
                        format!(
                            "snapshot file {} holds {} invalid bytes",
                            String::from_utf8_lossy(&e.name),
                            data.len()
                        ),
                    ),
                    Err(err) => report(errors, format!("snapshot read: {err}")),
                },
                other => report(errors, format!("snapshot holds a {other:?}")),
            }
        }
    }
}

#[test]
fn threads_share_one_filesystem() {
    let bucket = Bucket::in_memory();
    // Few inodes kept: directories unload and come back between the
    // workers' operations while the committer makes them clean.
    let options = FsOptions {
        max_inodes: 256,
        ..opts()
    };
    let fs = Fs::open(bucket.clone(), "c", &root(), options).expect("open");
    let shared = fs
        .mkdir(Ino::ROOT, b"shared", 0o777, &root())
        .expect("mkdir")
        .ino;
    let own: Vec<Ino> = (0..THREADS)
        .map(|t| {
            fs.mkdir(Ino::ROOT, format!("t{t}").as_bytes(), 0o755, &root())
                .expect("mkdir")
                .ino
        })
        .collect();
    let errors: Errors = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let commits = Arc::new(AtomicUsize::new(0));

    let committer = {
        let (fs, bucket, errors, stop, commits) = (
            fs.clone(),
            bucket.clone(),
            errors.clone(),
            stop.clone(),
            commits.clone(),
        );
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(3));
                match fs.commit("periodic") {
                    Ok(Some(_)) => {
                        let n = commits.fetch_add(1, Ordering::SeqCst);
                        if n % 8 == 0 {
                            check_snapshot(&bucket, &fs, &errors);
                        }
                    }
                    Ok(None) => {}
                    Err(e) => report(&errors, format!("commit: {e}")),
                }
            }
        })
    };
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let (fs, errors, own) = (fs.clone(), errors.clone(), own[t]);
            std::thread::spawn(move || worker(&fs, t, own, shared, &errors))
        })
        .collect();
    let expected: Vec<BTreeMap<String, Vec<u8>>> = workers
        .into_iter()
        .map(|w| w.join().expect("worker panicked"))
        .collect();
    stop.store(true, Ordering::SeqCst);
    committer.join().expect("committer panicked");
    assert!(fs.unloads() > 0, "nothing was unloaded on the way");

    let errors = errors.lock().unwrap_or_else(|e| e.into_inner()).clone();
    assert!(
        errors.is_empty(),
        "{} unexpected errors: {errors:#?}",
        errors.len()
    );
    assert!(
        commits.load(Ordering::SeqCst) > 0,
        "no commit ran beside the workers"
    );

    // The live filesystem, then a reopened one, hold exactly what the
    // workers report.
    fs.commit("final").expect("commit");
    let again = Fs::open(bucket, "c", &root(), opts()).expect("reopen");
    for fs in [&fs, &again] {
        for (t, want) in expected.iter().enumerate() {
            let dir = fs
                .lookup(Ino::ROOT, format!("t{t}").as_bytes(), &root())
                .expect("own dir")
                .ino;
            let got = listing(fs, dir);
            assert_eq!(
                got.keys().collect::<Vec<_>>(),
                want.keys().collect::<Vec<_>>(),
                "thread {t}'s directory"
            );
            assert!(got == *want, "thread {t}'s files differ in content");
            for name in want.keys().filter(|n| n.starts_with('h')) {
                let attr = fs.lookup(dir, name.as_bytes(), &root()).expect("lookup");
                let twin = format!("g{}", &name[1..]);
                match want.get(&twin) {
                    Some(_) => {
                        let other = fs.lookup(dir, twin.as_bytes(), &root()).expect("lookup");
                        assert_eq!(other.ino, attr.ino, "{name} and {twin} share an inode");
                        assert_eq!(attr.nlink, 2, "{name} and {twin}");
                    }
                    None => assert_eq!(attr.nlink, 1, "{twin} was removed"),
                }
            }
        }
        let shared = fs
            .lookup(Ino::ROOT, b"shared", &root())
            .expect("shared")
            .ino;
        for (name, data) in listing(fs, shared) {
            assert!(name.starts_with("common"), "shared holds {name}");
            assert!(
                valid(&data),
                "shared/{name} holds {} invalid bytes",
                data.len()
            );
        }
        let root_attr = fs.getattr(Ino::ROOT).expect("root");
        assert_eq!(root_attr.nlink as usize, 2 + THREADS + 1);
    }
}

/// Pages through a directory with readdir cookies while another thread
/// adds, removes and renames entries: entries present throughout appear
/// exactly once per pass (POSIX leaves the others unspecified).
#[test]
fn readdir_cookies_hold_under_concurrent_changes() {
    let fs = Fs::open(Bucket::in_memory(), "r", &root(), opts()).expect("open");
    let dir = fs
        .mkdir(Ino::ROOT, b"d", 0o755, &root())
        .expect("mkdir")
        .ino;
    let stable: BTreeSet<String> = (0..400).map(|i| format!("stable{i:03}")).collect();
    for name in &stable {
        put(&fs, dir, name, b"").expect("put");
    }
    let stop = Arc::new(AtomicBool::new(false));
    let churn = {
        let (fs, stop) = (fs.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut i = 0u64;
            while !stop.load(Ordering::SeqCst) {
                let a = format!("tmp{}", i % 50);
                let b = format!("moved{}", i % 50);
                let _ = put(&fs, dir, &a, b"x");
                let _ = fs.rename(
                    dir,
                    a.as_bytes(),
                    dir,
                    b.as_bytes(),
                    RenameMode::Replace,
                    &root(),
                );
                if i.is_multiple_of(3) {
                    let _ = fs.unlink(dir, b.as_bytes(), &root());
                }
                if i.is_multiple_of(40) {
                    let _ = fs.commit("churn");
                }
                i += 1;
            }
            i
        })
    };
    for pass in 0..40 {
        let mut seen = Vec::new();
        let mut cookie = 0;
        loop {
            let page = fs.readdir(dir, cookie, &root()).expect("readdir");
            if page.is_empty() {
                break;
            }
            for e in page.iter().take(23) {
                seen.push(String::from_utf8(e.name.clone()).expect("utf-8"));
                cookie = e.cookie;
            }
        }
        assert_eq!(&seen[..2], [".", ".."]);
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for name in &seen[2..] {
            *counts.entry(name).or_default() += 1;
        }
        for name in &stable {
            assert_eq!(counts.get(name.as_str()), Some(&1), "pass {pass}: {name}");
        }
        // A churned name may show up twice in one pass, but only as two
        // entries: removed, then created again (with a later cookie).
        for (name, n) in counts {
            assert!(
                n == 1 || name.starts_with("tmp") || name.starts_with("moved"),
                "pass {pass}: {name} listed {n} times"
            );
        }
    }
    stop.store(true, Ordering::SeqCst);
    let changes = churn.join().expect("churn panicked");
    assert!(changes > 0);
}

/// Readers of one big file on many threads, while it is rewritten in place
/// and committed: every read returns one whole generation of each block.
#[test]
fn parallel_reads_during_rewrites_see_whole_writes() {
    let bucket = Bucket::in_memory();
    let fs = Fs::open(bucket, "p", &root(), opts()).expect("open");
    const BLOCK: usize = 64 << 10;
    const BLOCKS: usize = 24;
    let gen_block = |generation: u8, n: usize| vec![generation.wrapping_mul(31) ^ n as u8; BLOCK];
    let first: Vec<u8> = (0..BLOCKS).flat_map(|n| gen_block(1, n)).collect();
    let ino = put(&fs, Ino::ROOT, "big", &first).expect("put");
    fs.commit("first").expect("commit");
    let stop = Arc::new(AtomicBool::new(false));
    let errors: Errors = Arc::default();
    let readers: Vec<_> = (0..4)
        .map(|r| {
            let (fs, stop, errors) = (fs.clone(), stop.clone(), errors.clone());
            std::thread::spawn(move || {
                let fh = fs.open_file(ino, ro(), &root()).expect("open");
                let mut k = r;
                while !stop.load(Ordering::SeqCst) {
                    let n = k % BLOCKS;
                    k += 7;
                    match fs.read(fh, (n * BLOCK) as u64, BLOCK) {
                        Ok(data) if data.len() == BLOCK && data.iter().all(|b| *b == data[0]) => {}
                        Ok(data) => report(
                            &errors,
                            format!("block {n}: {} bytes, mixed generations", data.len()),
                        ),
                        Err(e) => report(&errors, format!("read block {n}: {e}")),
                    }
                }
                fs.release(fh).expect("release");
            })
        })
        .collect();
    let fh = fs.open_file(ino, rw(), &root()).expect("open");
    for generation in 2..40u8 {
        for n in (0..BLOCKS).step_by(3) {
            fs.write(fh, (n * BLOCK) as u64, &gen_block(generation, n), &root())
                .expect("write");
        }
        if generation % 4 == 0 {
            fs.commit("rewrite").expect("commit");
        }
    }
    fs.release(fh).expect("release");
    stop.store(true, Ordering::SeqCst);
    for r in readers {
        r.join().expect("reader panicked");
    }
    let errors = errors.lock().unwrap_or_else(|e| e.into_inner()).clone();
    assert!(errors.is_empty(), "{errors:#?}");
}
