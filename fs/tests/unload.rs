//! Unloading directories nobody uses: what leaves memory comes back with
//! the same inode numbers, readdir cookies, link counts and bytes, and what
//! is open, changed or held by a front end stays.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use hydra_dag::Bucket;
use hydra_fs::{Attr, Fs, FsOptions, Holds, Ino};

mod support;
use support::*;

/// A front end holding the inodes in its set.
#[derive(Default)]
struct Held(Mutex<Vec<Ino>>);

impl Holds for Held {
    fn held(&self, ino: Ino) -> bool {
        self.0.lock().expect("lock").contains(&ino)
    }
    fn ended(&self) -> u64 {
        0
    }
}

fn open(bucket: &Bucket, max_inodes: usize) -> Fs {
    let options = FsOptions {
        max_inodes,
        refresh_interval: None,
        ..opts()
    };
    Fs::open(bucket.clone(), "t", &root(), options).expect("open")
}

fn mkdir(fs: &Fs, parent: Ino, name: &str) -> Ino {
    fs.mkdir(parent, name.as_bytes(), 0o755, &root())
        .expect("mkdir")
        .ino
}

fn lookup(fs: &Fs, parent: Ino, name: &str) -> Attr {
    fs.lookup(parent, name.as_bytes(), &root()).expect(name)
}

fn read(fs: &Fs, ino: Ino) -> Vec<u8> {
    let fh = fs.open_file(ino, ro(), &root()).expect("open");
    let data = fs.read(fh, 0, 1 << 20).expect("read");
    fs.release(fh).expect("release");
    data
}

/// Every path below `dir` with its inode, link count and readdir cookie.
fn tree(fs: &Fs, dir: Ino, path: &str, out: &mut BTreeMap<String, (u64, u32, u64)>) {
    for e in fs.readdir(dir, 0, &root()).expect("readdir") {
        if e.name == b"." || e.name == b".." {
            continue;
        }
        let name = format!("{path}/{}", String::from_utf8_lossy(&e.name));
        let attr = fs.getattr(e.ino).expect("getattr");
        out.insert(name.clone(), (e.ino.0, attr.nlink, e.cookie));
        if attr.kind == hydra_fs::Kind::Dir {
            tree(fs, e.ino, &name, out);
        }
    }
}

/// Four directories of three files and a subdirectory of three files.
fn build(fs: &Fs) -> Vec<Ino> {
    let mut dirs = Vec::new();
    for d in 1..=4 {
        let dir = mkdir(fs, Ino::ROOT, &format!("d{d}"));
        for f in 1..=3 {
            write_file(
                fs,
                dir,
                &format!("f{f}"),
                &bytes(d * 10 + f, 100 * f as usize),
            );
        }
        let sub = mkdir(fs, dir, &format!("s{d}"));
        for f in 1..=3 {
            write_file(fs, sub, &format!("g{f}"), &bytes(d * 100 + f, 5000));
        }
        dirs.push(dir);
    }
    fs.commit("tree").expect("commit");
    dirs
}

#[test]
fn unloaded_directories_come_back_with_the_same_numbers_cookies_and_bytes() {
    let bucket = Bucket::in_memory();
    let fs = open(&bucket, 1 << 20);
    let dirs = build(&fs);
    // Cookies out of name order: a name removed, two added after load.
    fs.unlink(dirs[0], b"f2", &root()).expect("unlink");
    write_file(&fs, dirs[0], "a0", b"new first");
    write_file(&fs, dirs[0], "zz", b"new last");
    let link = lookup(&fs, dirs[1], "f1").ino;
    fs.link(link, dirs[2], b"hard", &root()).expect("link");
    fs.commit("changes").expect("commit");
    let mut before = BTreeMap::new();
    tree(&fs, Ino::ROOT, "", &mut before);
    let s4 = lookup(&fs, dirs[3], "s4").ino;
    let g2 = lookup(&fs, s4, "g2").ino;

    let gone = fs.unload_unused();
    let (loaded, unloaded) = fs.inode_counts();
    assert!(gone >= 30, "{gone} inodes unloaded");
    assert_eq!(unloaded, gone);
    assert!(
        loaded <= 2,
        "{loaded} inodes still loaded (root and the hard link)"
    );

    // A number held from before works without a lookup, through two
    // unloaded directories.
    assert_eq!(read(&fs, g2), bytes(402, 5000));
    assert_eq!(fs.getattr(s4).expect("s4").nlink, 2);
    let mut after = BTreeMap::new();
    tree(&fs, Ino::ROOT, "", &mut after);
    assert_eq!(after, before);

    // A listing continued after its directory was unloaded goes on where
    // it stopped.
    let all = fs.readdir(dirs[0], 0, &root()).expect("readdir");
    let first: Vec<_> = all[..4].to_vec();
    fs.unload_unused();
    assert!(fs.inode_counts().1 > 0);
    let rest = fs
        .readdir(dirs[0], first[3].cookie, &root())
        .expect("readdir");
    let names = |v: &[hydra_fs::DirEntry]| v.iter().map(|e| e.name.clone()).collect::<Vec<_>>();
    assert_eq!([names(&first), names(&rest)].concat(), names(&all));

    // The hard link's two names are still one inode, with its count.
    let a = lookup(&fs, dirs[1], "f1");
    let b = lookup(&fs, dirs[2], "hard");
    assert_eq!((a.ino, a.nlink), (b.ino, 2));
    assert_eq!(read(&fs, b.ino), bytes(21, 100));
}

#[test]
fn open_changed_and_held_inodes_stay_loaded() {
    let bucket = Bucket::in_memory();
    let fs = open(&bucket, 1 << 20);
    let held = Arc::new(Held::default());
    fs.set_holds(held.clone());
    let dirs = build(&fs);
    // d1: a file open; d2: a change not committed; d3: a file held.
    let open_fh = fs
        .open_file(lookup(&fs, dirs[0], "f1").ino, ro(), &root())
        .expect("open");
    write_file(&fs, dirs[1], "new", b"changed");
    held.0
        .lock()
        .expect("lock")
        .push(lookup(&fs, dirs[2], "f3").ino);

    fs.unload_unused();
    // Loaded: the root, d1..d4, and the children of d1, d2 and d3 (s1..s3
    // gave their files back, d4 and s4 everything).
    assert_eq!(fs.inode_counts(), (18, 16));
    assert_eq!(read(&fs, lookup(&fs, dirs[1], "new").ino), b"changed");
    fs.release(open_fh).expect("release");

    // Once committed, closed and forgotten, everything but the root's
    // entries goes.
    held.0.lock().expect("lock").clear();
    fs.commit("all").expect("commit");
    fs.unload_unused();
    assert_eq!(fs.inode_counts(), (1, 33));
    let again = open(&bucket, 1 << 20);
    let mut a = BTreeMap::new();
    let mut b = BTreeMap::new();
    tree(&fs, Ino::ROOT, "", &mut a);
    tree(&again, Ino::ROOT, "", &mut b);
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
}

#[test]
fn a_small_budget_keeps_memory_small_while_everything_stays_reachable() {
    let bucket = Bucket::in_memory();
    let fs = open(&bucket, 16);
    let dirs = build(&fs);
    for d in 0..20 {
        let dir = mkdir(&fs, Ino::ROOT, &format!("more{d}"));
        for f in 0..10 {
            write_file(&fs, dir, &format!("f{f}"), &bytes(d, 10));
        }
    }
    fs.commit("more").expect("commit");
    let mut want = BTreeMap::new();
    tree(&fs, Ino::ROOT, "", &mut want);
    assert_eq!(want.len(), 32 + 220);
    // Walking everything again keeps memory near the budget: the root's
    // 24 directories, the directories of this round and the one before,
    // and half the budget again before the next unloading.
    for _ in 0..3 {
        let mut got = BTreeMap::new();
        tree(&fs, Ino::ROOT, "", &mut got);
        assert_eq!(got, want);
        let bound = 1 + 24 + 2 * 11 + 16 + 16 / 2;
        assert!(fs.inode_counts().0 <= bound, "{:?}", fs.inode_counts());
    }
    // Removing an unloaded tree forgets what was kept of it.
    let s4 = lookup(&fs, dirs[3], "s4").ino;
    fs.unload_unused();
    for f in ["g1", "g2", "g3"] {
        fs.unlink(s4, f.as_bytes(), &root()).expect("unlink");
    }
    fs.rmdir(dirs[3], b"s4", &root()).expect("rmdir");
    fs.commit("gone").expect("commit");
    assert_eq!(errno(fs.getattr(s4).expect_err("removed")), libc::ENOENT);
    fs.unload_unused();
    assert_eq!(fs.inode_counts(), (1, 28 + 220));
}

#[test]
fn an_unloaded_directory_follows_another_writers_commit() {
    let bucket = Bucket::in_memory();
    let ours = open(&bucket, 1 << 20);
    let dirs = build(&ours);
    let s4 = lookup(&ours, dirs[3], "s4").ino;
    assert_eq!(ours.getattr(dirs[3]).expect("d4").nlink, 3);
    ours.unload_unused();

    let theirs = open(&bucket, 1 << 20);
    let d4 = lookup(&theirs, Ino::ROOT, "d4").ino;
    mkdir(&theirs, d4, "t4");
    theirs.unlink(d4, b"f1", &root()).expect("unlink");
    theirs.commit("theirs").expect("commit");

    assert!(ours.refresh().expect("refresh"));
    assert_eq!(ours.getattr(dirs[3]).expect("d4").nlink, 4);
    assert_eq!(lookup(&ours, dirs[3], "s4").ino, s4);
    assert_eq!(lookup(&ours, dirs[3], "t4").nlink, 2);
    assert_eq!(
        errno(ours.lookup(dirs[3], b"f1", &root()).expect_err("removed")),
        libc::ENOENT
    );
}

#[test]
fn changes_past_the_budget_are_stored_and_unloaded_but_not_committed() {
    let bucket = Bucket::in_memory();
    let fs = open(&bucket, 1 << 20);
    fs.commit("empty").expect("commit");
    let committed = fs.base();
    let fs = open(&bucket, 16);
    let mut files = Vec::new();
    for d in 0..20 {
        let dir = mkdir(&fs, Ino::ROOT, &format!("d{d}"));
        for f in 0..10 {
            let data = bytes(d * 10 + f, 300);
            files.push((write_file(&fs, dir, &format!("f{f}"), &data), data));
        }
        // The root's directories, the one being filled and the one
        // before, and half the budget again before the next unloading.
        let bound = 1 + 20 + 2 * 11 + 16 + 16 / 2;
        assert!(fs.inode_counts().0 <= bound, "{:?}", fs.inode_counts());
    }
    assert!(fs.unloads() > 0);
    // Stored, not committed: the ref has not moved, and changes are pending.
    assert_eq!(fs.base(), committed);
    assert!(fs.is_dirty());
    for (ino, data) in &files {
        assert_eq!(&read(&fs, *ino), data);
    }
    fs.commit("all").expect("commit");
    let again = open(&bucket, 1 << 20);
    let mut seen = BTreeMap::new();
    tree(&again, Ino::ROOT, "", &mut seen);
    assert_eq!(seen.len(), 20 + 200);
}

#[test]
fn a_directory_in_use_larger_than_the_budget_is_not_reloaded_each_time() {
    let bucket = Bucket::in_memory();
    let fs = open(&bucket, 16);
    let dir = mkdir(&fs, Ino::ROOT, "big");
    for f in 0..100 {
        write_file(&fs, dir, &format!("f{f}"), b"x");
    }
    fs.commit("big").expect("commit");
    let before = fs.unloads();
    // 300 lookups in a directory of 100 with 16 inodes kept: reloading it
    // for each would unload 30,000 inodes.
    for i in 0..300 {
        lookup(&fs, dir, &format!("f{}", i % 100));
    }
    let unloads = fs.unloads() - before;
    assert!(unloads <= 200, "{unloads} inodes unloaded");
}
