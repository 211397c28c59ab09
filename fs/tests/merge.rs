//! Two writers of one filesystem: commits merge three ways, refreshes take
//! in the other's commits in place, and no update is lost.

#![allow(clippy::result_large_err)]

use std::sync::{Arc, Mutex};

use hydra_dag::{Bucket, RefName};
use hydra_fs::{Changed, Fs, FsError, FsOptions, Ino, OnConflict, SetAttr};

mod support;
use support::*;

fn open(bucket: &Bucket, on_conflict: OnConflict) -> Fs {
    let options = FsOptions {
        refresh_interval: None,
        on_conflict,
        ..opts()
    };
    Fs::open(bucket.clone(), "shared", &root(), options).expect("open")
}

fn put(fs: &Fs, path: &str, data: &[u8]) {
    let (dir, name) = walk_parent(fs, path);
    let ino = match fs.lookup(dir, name.as_bytes(), &root()) {
        Ok(attr) => {
            let set = SetAttr {
                size: Some(0),
                ..SetAttr::default()
            };
            fs.setattr(attr.ino, &set, None, &root()).expect("truncate");
            attr.ino
        }
        Err(_) => {
            let (attr, fh) = fs
                .create(dir, name.as_bytes(), 0o644, rw(), &root())
                .expect("create");
            fs.release(fh).expect("release");
            attr.ino
        }
    };
    let fh = fs.open_file(ino, rw(), &root()).expect("open");
    fs.write(fh, 0, data, &root()).expect("write");
    fs.release(fh).expect("release");
}

fn walk_parent<'p>(fs: &Fs, path: &'p str) -> (Ino, &'p str) {
    let (dirs, name) = path
        .trim_start_matches('/')
        .rsplit_once('/')
        .unwrap_or(("", path.trim_start_matches('/')));
    let mut at = Ino::ROOT;
    for part in dirs.split('/').filter(|p| !p.is_empty()) {
        at = fs.lookup(at, part.as_bytes(), &root()).expect("dir").ino;
    }
    (at, name)
}

fn ino_of(fs: &Fs, path: &str) -> Result<Ino, FsError> {
    let mut at = Ino::ROOT;
    for part in path.split('/').filter(|p| !p.is_empty()) {
        at = fs.lookup(at, part.as_bytes(), &root())?.ino;
    }
    Ok(at)
}

fn get(fs: &Fs, path: &str) -> Result<Vec<u8>, FsError> {
    let ino = ino_of(fs, path)?;
    let fh = fs.open_file(ino, ro(), &root())?;
    let data = fs.read(fh, 0, 1 << 20);
    fs.release(fh)?;
    data
}

/// A fresh view of what the ref names now.
fn committed(bucket: &Bucket) -> Fs {
    open(bucket, OnConflict::Refuse)
}

fn commits(bucket: &Bucket) -> usize {
    let name = RefName::new("fs/shared").expect("name");
    bucket.log(Some(&name), usize::MAX).expect("log").len()
}

#[test]
fn disjoint_changes_of_two_writers_both_land() {
    let bucket = Bucket::in_memory();
    let a = open(&bucket, OnConflict::Refuse);
    a.mkdir(Ino::ROOT, b"d", 0o755, &root()).expect("mkdir");
    put(&a, "/d/base.txt", b"base");
    a.commit("base").expect("commit");
    let b = open(&bucket, OnConflict::Refuse);
    let d_in_a = ino_of(&a, "/d").expect("d");

    put(&a, "/d/a.txt", b"from a");
    put(&b, "/d/b.txt", b"from b");
    put(&b, "/top.txt", b"top from b");
    a.commit("a").expect("a commits");
    b.commit("b").expect("b merges and commits");
    assert_eq!(commits(&bucket), 3);

    // b holds the merge; a takes it in by a refresh, keeping its inodes.
    assert_eq!(get(&b, "/d/a.txt").expect("a's file in b"), b"from a");
    assert!(a.refresh().expect("refresh"));
    assert_eq!(ino_of(&a, "/d").expect("d"), d_in_a);
    assert_eq!(get(&a, "/d/b.txt").expect("b's file in a"), b"from b");
    assert_eq!(get(&a, "/top.txt").expect("top"), b"top from b");
    assert!(!a.refresh().expect("nothing new"));

    let now = committed(&bucket);
    for (path, data) in [
        ("/d/base.txt", &b"base"[..]),
        ("/d/a.txt", b"from a"),
        ("/d/b.txt", b"from b"),
        ("/top.txt", b"top from b"),
    ] {
        assert_eq!(get(&now, path).expect(path), data, "{path}");
    }
}

#[test]
fn the_same_file_changed_by_both_is_refused_and_nothing_moves() {
    let bucket = Bucket::in_memory();
    let a = open(&bucket, OnConflict::Refuse);
    put(&a, "/f", b"base");
    a.commit("base").expect("commit");
    let b = open(&bucket, OnConflict::Refuse);
    put(&a, "/f", b"a's version");
    put(&b, "/f", b"b's version");
    a.commit("a").expect("a commits");
    let ref_name = RefName::new("fs/shared").expect("name");
    let before = bucket.get_ref(&ref_name).expect("ref");
    match b.commit("b") {
        Err(FsError::MergeConflict { paths }) => assert_eq!(paths, vec!["/f".to_string()]),
        other => panic!("expected a merge conflict, got {other:?}"),
    }
    assert_eq!(bucket.get_ref(&ref_name).expect("ref"), before);
    assert_eq!(get(&committed(&bucket), "/f").expect("f"), b"a's version");
    // b's change is still there, and still refused.
    assert_eq!(get(&b, "/f").expect("f"), b"b's version");
    assert!(matches!(
        b.commit("again"),
        Err(FsError::MergeConflict { .. })
    ));
}

#[test]
fn keep_both_keeps_theirs_beside_ours() {
    let bucket = Bucket::in_memory();
    let a = open(&bucket, OnConflict::KeepBoth);
    put(&a, "/f", b"base");
    put(&a, "/gone", b"will be deleted by a, changed by b");
    a.commit("base").expect("commit");
    let b = open(&bucket, OnConflict::KeepBoth);
    put(&a, "/f", b"a's version");
    a.unlink(Ino::ROOT, b"gone", &root()).expect("unlink");
    put(&b, "/f", b"b's version");
    put(&b, "/gone", b"changed by b");
    a.commit("a").expect("a commits");
    b.commit("b").expect("b keeps both");
    let now = committed(&bucket);
    assert_eq!(get(&now, "/f").expect("ours"), b"b's version");
    assert_eq!(get(&now, "/f.conflict-1").expect("theirs"), b"a's version");
    assert_eq!(
        get(&now, "/gone").expect("change beats deletion"),
        b"changed by b"
    );
    // b's memory shows the merge too.
    assert_eq!(
        get(&b, "/f.conflict-1").expect("theirs in b"),
        b"a's version"
    );
}

#[test]
fn directory_metadata_merges_field_by_field() {
    let bucket = Bucket::in_memory();
    let a = open(&bucket, OnConflict::Refuse);
    let d = a.mkdir(Ino::ROOT, b"d", 0o755, &root()).expect("mkdir").ino;
    a.commit("base").expect("commit");
    let b = open(&bucket, OnConflict::Refuse);
    let chmod = SetAttr {
        mode: Some(0o700),
        ..SetAttr::default()
    };
    a.setattr(d, &chmod, None, &root()).expect("chmod");
    put(&b, "/d/new", b"x");
    a.commit("a").expect("a");
    b.commit("b").expect("b");
    let now = committed(&bucket);
    let attr = now.getattr(ino_of(&now, "/d").expect("d")).expect("attr");
    assert_eq!(attr.perm & 0o7777, 0o700);
    assert_eq!(get(&now, "/d/new").expect("new"), b"x");
}

#[test]
fn hard_links_made_on_both_sides_stay_apart() {
    let bucket = Bucket::in_memory();
    let a = open(&bucket, OnConflict::Refuse);
    put(&a, "/p", b"p");
    put(&a, "/q", b"q");
    a.commit("base").expect("commit");
    let b = open(&bucket, OnConflict::Refuse);
    let p = ino_of(&a, "/p").expect("p");
    a.link(p, Ino::ROOT, b"p2", &root()).expect("link p");
    let q = ino_of(&b, "/q").expect("q");
    b.link(q, Ino::ROOT, b"q2", &root()).expect("link q");
    a.commit("a").expect("a");
    b.commit("b").expect("b");
    let now = committed(&bucket);
    assert_eq!(get(&now, "/p2").expect("p2"), b"p");
    assert_eq!(get(&now, "/q2").expect("q2"), b"q");
    for path in ["/p", "/p2", "/q", "/q2"] {
        let attr = now.getattr(ino_of(&now, path).expect(path)).expect("attr");
        assert_eq!(attr.nlink, 2, "{path}");
    }
    assert_eq!(ino_of(&now, "/p").ok(), ino_of(&now, "/p2").ok());
    assert_eq!(ino_of(&now, "/q").ok(), ino_of(&now, "/q2").ok());
    assert_ne!(ino_of(&now, "/p").ok(), ino_of(&now, "/q").ok());
    // Writing through one name shows through the other, and only there.
    put(&now, "/q2", b"q changed");
    now.commit("write").expect("commit");
    let again = committed(&bucket);
    assert_eq!(get(&again, "/q").expect("q"), b"q changed");
    assert_eq!(get(&again, "/p").expect("p"), b"p");
}

#[test]
fn a_refresh_keeps_open_handles_and_tells_what_changed() {
    let bucket = Bucket::in_memory();
    let a = open(&bucket, OnConflict::Refuse);
    put(&a, "/keep", b"kept");
    put(&a, "/other", b"old");
    a.mkdir(Ino::ROOT, b"dir", 0o755, &root()).expect("mkdir");
    put(&a, "/dir/inside", b"inside");
    a.commit("base").expect("commit");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    a.set_watcher(Arc::new(move |changes: Vec<Changed>| {
        sink.lock().expect("lock").extend(changes);
    }));
    let keep = ino_of(&a, "/keep").expect("keep");
    let other = ino_of(&a, "/other").expect("other");
    let dir = ino_of(&a, "/dir").expect("dir");
    let fh = a.open_file(keep, ro(), &root()).expect("open");

    let b = open(&bucket, OnConflict::Refuse);
    put(&b, "/other", b"new");
    b.rmdir(Ino::ROOT, b"dir", &root()).expect_err("not empty");
    b.unlink(ino_of(&b, "/dir").expect("dir"), b"inside", &root())
        .expect("unlink");
    b.rmdir(Ino::ROOT, b"dir", &root()).expect("rmdir");
    b.commit("b").expect("b");

    assert!(a.refresh().expect("refresh"));
    assert_eq!(a.read(fh, 0, 100).expect("read"), b"kept");
    a.release(fh).expect("release");
    assert_eq!(ino_of(&a, "/keep").expect("keep"), keep);
    assert_eq!(ino_of(&a, "/other").expect("other"), other);
    assert_eq!(get(&a, "/other").expect("other"), b"new");
    assert!(matches!(ino_of(&a, "/dir"), Err(FsError::NotFound)));
    let seen = seen.lock().expect("lock").clone();
    assert!(seen.contains(&Changed::Inode(other)), "{seen:?}");
    assert!(
        seen.contains(&Changed::Entry(Ino::ROOT, b"dir".to_vec())),
        "{seen:?}"
    );
    assert!(!seen.contains(&Changed::Inode(keep)), "{seen:?}");
    let _ = dir;
}

#[test]
fn writers_racing_on_one_filesystem_lose_no_update() {
    const WRITERS: usize = 4;
    const COMMITS: usize = 15;
    let bucket = Bucket::in_memory();
    let first = open(&bucket, OnConflict::Refuse);
    for w in 0..WRITERS {
        first
            .mkdir(Ino::ROOT, format!("w{w}").as_bytes(), 0o755, &root())
            .expect("mkdir");
    }
    first.commit("dirs").expect("commit");
    let threads: Vec<_> = (0..WRITERS)
        .map(|w| {
            let bucket = bucket.clone();
            std::thread::spawn(move || {
                let fs = open(&bucket, OnConflict::Refuse);
                for i in 0..COMMITS {
                    put(&fs, &format!("/w{w}/{i}"), format!("{w}:{i}").as_bytes());
                    put(&fs, &format!("/counter-{w}"), format!("{i}").as_bytes());
                    fs.commit(&format!("{w}:{i}")).expect("commit");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("writer");
    }
    let now = committed(&bucket);
    for w in 0..WRITERS {
        for i in 0..COMMITS {
            let path = format!("/w{w}/{i}");
            assert_eq!(
                get(&now, &path).expect(&path),
                format!("{w}:{i}").as_bytes()
            );
        }
    }
    assert_eq!(commits(&bucket), 1 + WRITERS * COMMITS);
}

#[test]
fn a_refresh_tells_of_link_counts_another_writer_changed() {
    let bucket = Bucket::in_memory();
    let a = open(&bucket, OnConflict::Refuse);
    put(&a, "/p", b"p");
    let p = ino_of(&a, "/p").expect("p");
    a.link(p, Ino::ROOT, b"p2", &root()).expect("link");
    a.commit("base").expect("commit");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    a.set_watcher(Arc::new(move |changes: Vec<Changed>| {
        sink.lock().expect("lock").extend(changes);
    }));

    let b = open(&bucket, OnConflict::Refuse);
    let bp = ino_of(&b, "/p").expect("p");
    b.link(bp, Ino::ROOT, b"p3", &root()).expect("link");
    b.commit("b links").expect("b");
    assert!(a.refresh().expect("refresh"));
    assert_eq!(a.getattr(p).expect("attr").nlink, 3);
    assert!(seen.lock().expect("lock").contains(&Changed::Inode(p)));

    seen.lock().expect("lock").clear();
    b.unlink(Ino::ROOT, b"p2", &root()).expect("unlink");
    b.commit("b unlinks").expect("b");
    assert!(a.refresh().expect("refresh"));
    assert_eq!(a.getattr(p).expect("attr").nlink, 2);
    let seen = seen.lock().expect("lock").clone();
    assert!(seen.contains(&Changed::Inode(p)), "{seen:?}");
}
