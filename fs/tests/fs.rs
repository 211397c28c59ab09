//! API-level tests of the filesystem core.

use hydra_dag::Bucket;
use hydra_fs::{Caller, Fs, Ino, Kind, OpenFlags, RenameMode, Seek, SetAttr, TimeSet};

mod support;
use support::*;

fn read_file(fs: &Fs, ino: Ino) -> Vec<u8> {
    let fh = fs.open_file(ino, OpenFlags::READ, &root()).expect("open");
    let size = fs.getattr(ino).expect("getattr").size as usize;
    let data = fs.read(fh, 0, size + 10).expect("read");
    fs.release(fh).expect("release");
    data
}

fn path(fs: &Fs, p: &str) -> Ino {
    let mut ino = Ino::ROOT;
    for part in p.split('/').filter(|s| !s.is_empty()) {
        ino = fs.lookup(ino, part.as_bytes(), &root()).expect(p).ino;
    }
    ino
}

#[test]
fn files_and_dirs_survive_commit_and_reopen() {
    let bucket = Bucket::in_memory();
    let fs = Fs::open(bucket.clone(), "t", &root(), opts()).expect("open");
    let d = fs
        .mkdir(Ino::ROOT, b"dir", 0o755, &root())
        .expect("mkdir")
        .ino;
    let sub = fs.mkdir(d, b"sub", 0o700, &root()).expect("mkdir").ino;
    let small = write_file(&fs, d, "small", b"tiny");
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    write_file(&fs, sub, "big", &big);
    fs.symlink(d, b"link", b"../dir/small", &root())
        .expect("symlink");
    fs.mknod(d, b"fifo", libc::S_IFIFO | 0o600, 0, &root())
        .expect("mknod");
    fs.mknod(d, b"null", libc::S_IFCHR | 0o666, 0x0103, &root())
        .expect("mknod dev");
    fs.setxattr(small, b"user.color", b"blue", 0, &root())
        .expect("xattr");
    assert_eq!(fs.getattr(d).expect("attr").nlink, 3);
    assert!(fs.commit("one").expect("commit").is_some());
    assert!(
        fs.commit("noop").expect("commit").is_none(),
        "nothing changed"
    );

    let again = Fs::open(bucket, "t", &root(), opts()).expect("reopen");
    assert_eq!(read_file(&again, path(&again, "dir/small")), b"tiny");
    assert_eq!(read_file(&again, path(&again, "dir/sub/big")), big);
    assert_eq!(
        again.readlink(path(&again, "dir/link")).expect("readlink"),
        b"../dir/small"
    );
    let fifo = again.getattr(path(&again, "dir/fifo")).expect("attr");
    assert_eq!((fifo.kind, fifo.perm), (Kind::Fifo, 0o600));
    let dev = again.getattr(path(&again, "dir/null")).expect("attr");
    assert_eq!((dev.kind, dev.rdev), (Kind::CharDev, 0x0103));
    assert_eq!(
        again
            .getxattr(path(&again, "dir/small"), b"user.color", &root())
            .expect("xattr"),
        b"blue"
    );
    assert_eq!(
        again.getattr(path(&again, "dir/sub")).expect("attr").perm,
        0o700
    );
    assert_eq!(again.getattr(path(&again, "dir")).expect("attr").nlink, 3);
}

#[test]
fn readdir_cookies_survive_changes() {
    let fs = Fs::open(Bucket::in_memory(), "t", &root(), opts()).expect("open");
    for i in 0..20 {
        write_file(&fs, Ino::ROOT, &format!("f{i:02}"), b"x");
    }
    let first = fs.readdir(Ino::ROOT, 0, &root()).expect("readdir");
    assert_eq!(first.len(), 22);
    assert_eq!(first[0].name, b".");
    assert_eq!(first[1].name, b"..");
    let cookie = first[11].cookie; // after f09
    fs.unlink(Ino::ROOT, b"f05", &root()).expect("unlink");
    fs.unlink(Ino::ROOT, b"f10", &root()).expect("unlink");
    write_file(&fs, Ino::ROOT, "a-new", b"y");
    let rest: Vec<String> = fs
        .readdir(Ino::ROOT, cookie, &root())
        .expect("readdir")
        .into_iter()
        .map(|e| String::from_utf8(e.name).expect("utf-8"))
        .collect();
    assert_eq!(
        rest[..9],
        [
            "f11", "f12", "f13", "f14", "f15", "f16", "f17", "f18", "f19"
        ]
    );
    assert_eq!(rest.last().map(String::as_str), Some("a-new"));
}

#[test]
fn a_listing_through_a_handle_leaves_out_names_made_after_it_began() {
    let fs = Fs::open(Bucket::in_memory(), "t", &root(), opts()).expect("open");
    for i in 0..200 {
        write_file(&fs, Ino::ROOT, &format!("f{i:03}"), b"x");
    }
    let fh = fs.open_file(Ino::ROOT, ro(), &root()).expect("opendir");
    // A page of 10 at a time, renaming every name listed to a later one
    // (as `for f in dir: rename(f, "z" + f)` does): the listing ends, and
    // names each original once.
    let (mut seen, mut cookie) = (Vec::new(), 0);
    loop {
        let mut page = Vec::new();
        fs.readdir_open(fh, cookie, &root(), |e, ()| {
            page.push(e);
            page.len() < 10
        })
        .expect("readdir");
        let Some(last) = page.last() else { break };
        cookie = last.cookie;
        for e in page {
            if e.name != b"." && e.name != b".." {
                let mut to = b"z".to_vec();
                to.extend_from_slice(&e.name);
                fs.rename(
                    Ino::ROOT,
                    &e.name,
                    Ino::ROOT,
                    &to,
                    RenameMode::Replace,
                    &root(),
                )
                .expect("rename");
                seen.push(e.name);
            }
        }
        assert!(seen.len() <= 200, "listed renamed names again");
    }
    assert_eq!(seen.len(), 200);
    seen.dedup();
    assert_eq!(seen.len(), 200);
    // Beginning again lists the directory as it is now.
    let mut again = Vec::new();
    fs.readdir_open(fh, 0, &root(), |e, ()| {
        again.push(e.name);
        true
    })
    .expect("readdir");
    assert_eq!(again.len(), 202);
    assert!(again[2..].iter().all(|n| n.starts_with(b"zf")));
    fs.release(fh).expect("release");
}

#[test]
fn a_whiteout_rename_leaves_a_0_0_character_device() {
    let fs = Fs::open(Bucket::in_memory(), "t", &root(), opts()).expect("open");
    write_file(&fs, Ino::ROOT, "a", b"x");
    write_file(&fs, Ino::ROOT, "b", b"y");
    let user = Caller::user(1000, 1000);
    assert_eq!(
        fs.rename(
            Ino::ROOT,
            b"a",
            Ino::ROOT,
            b"c",
            RenameMode::Whiteout,
            &user
        )
        .map_err(errno),
        Err(libc::EPERM)
    );
    assert_eq!(
        fs.rename(
            Ino::ROOT,
            b"a",
            Ino::ROOT,
            b"b",
            RenameMode::WhiteoutNoReplace,
            &root()
        )
        .map_err(errno),
        Err(libc::EEXIST)
    );
    fs.rename(
        Ino::ROOT,
        b"a",
        Ino::ROOT,
        b"b",
        RenameMode::Whiteout,
        &root(),
    )
    .expect("rename");
    let mark = fs.getattr(path(&fs, "a")).expect("whiteout");
    assert_eq!((mark.kind, mark.perm, mark.rdev), (Kind::CharDev, 0, 0));
    let fh = fs.open_file(path(&fs, "b"), ro(), &root()).expect("open");
    assert_eq!(fs.read(fh, 0, 10).expect("read"), b"x");
}

#[test]
fn hard_links_share_one_inode() {
    let bucket = Bucket::in_memory();
    let fs = Fs::open(bucket.clone(), "t", &root(), opts()).expect("open");
    let a = write_file(&fs, Ino::ROOT, "a", b"shared");
    let d = fs
        .mkdir(Ino::ROOT, b"d", 0o755, &root())
        .expect("mkdir")
        .ino;
    let attr = fs.link(a, d, b"b", &root()).expect("link");
    assert_eq!((attr.ino, attr.nlink), (a, 2));
    let fh = fs.open_file(a, rw(), &root()).expect("open");
    fs.write(fh, 0, b"SHARED", &root()).expect("write");
    fs.release(fh).expect("release");
    assert_eq!(read_file(&fs, path(&fs, "d/b")), b"SHARED");
    fs.commit("links").expect("commit");

    let again = Fs::open(bucket, "t", &root(), opts()).expect("reopen");
    let a2 = path(&again, "a");
    assert_eq!(a2, path(&again, "d/b"), "one inode behind both names");
    assert_eq!(again.getattr(a2).expect("attr").nlink, 2);
    again.unlink(Ino::ROOT, b"a", &root()).expect("unlink");
    assert_eq!(again.getattr(a2).expect("attr").nlink, 1);
    assert_eq!(read_file(&again, path(&again, "d/b")), b"SHARED");
    assert_eq!(
        errno(
            again
                .link(path(&again, "d"), Ino::ROOT, b"x", &root())
                .expect_err("dir link")
        ),
        libc::EPERM
    );
}

#[test]
fn rename_cases() {
    let fs = Fs::open(Bucket::in_memory(), "t", &root(), opts()).expect("open");
    let a = fs
        .mkdir(Ino::ROOT, b"a", 0o755, &root())
        .expect("mkdir")
        .ino;
    let b = fs
        .mkdir(Ino::ROOT, b"b", 0o755, &root())
        .expect("mkdir")
        .ino;
    write_file(&fs, a, "f", b"1");
    write_file(&fs, b, "g", b"2");
    // Over an existing file.
    fs.rename(a, b"f", b, b"g", RenameMode::Replace, &root())
        .expect("rename");
    assert_eq!(read_file(&fs, path(&fs, "b/g")), b"1");
    assert_eq!(
        errno(fs.lookup(a, b"f", &root()).expect_err("gone")),
        libc::ENOENT
    );
    // NOREPLACE and EXCHANGE.
    write_file(&fs, a, "h", b"3");
    assert_eq!(
        errno(
            fs.rename(a, b"h", b, b"g", RenameMode::NoReplace, &root())
                .expect_err("exists")
        ),
        libc::EEXIST
    );
    fs.rename(a, b"h", b, b"g", RenameMode::Exchange, &root())
        .expect("exchange");
    assert_eq!(read_file(&fs, path(&fs, "a/h")), b"1");
    assert_eq!(read_file(&fs, path(&fs, "b/g")), b"3");
    // Directories: into itself, over a non-empty one, over an empty one.
    let inner = fs.mkdir(a, b"inner", 0o755, &root()).expect("mkdir").ino;
    assert_eq!(
        errno(
            fs.rename(Ino::ROOT, b"a", inner, b"x", RenameMode::Replace, &root())
                .expect_err("into itself")
        ),
        libc::EINVAL
    );
    assert_eq!(
        errno(
            fs.rename(
                Ino::ROOT,
                b"a",
                Ino::ROOT,
                b"b",
                RenameMode::Replace,
                &root()
            )
            .expect_err("non-empty")
        ),
        libc::ENOTEMPTY
    );
    fs.mkdir(Ino::ROOT, b"empty", 0o755, &root())
        .expect("mkdir");
    fs.rename(
        Ino::ROOT,
        b"a",
        Ino::ROOT,
        b"empty",
        RenameMode::Replace,
        &root(),
    )
    .expect("over empty dir");
    assert_eq!(read_file(&fs, path(&fs, "empty/h")), b"1");
    assert_eq!(
        fs.getattr(Ino::ROOT).expect("attr").nlink,
        4,
        "root has b and empty"
    );
    // Moving a directory keeps its subtree and fixes '..'.
    fs.rename(
        Ino::ROOT,
        b"empty",
        b,
        b"moved",
        RenameMode::Replace,
        &root(),
    )
    .expect("move dir");
    let moved = path(&fs, "b/moved");
    assert_eq!(fs.lookup(moved, b"..", &root()).expect("dotdot").ino, b);
    assert_eq!(read_file(&fs, path(&fs, "b/moved/inner/../h")), b"1");
}

#[test]
fn permissions_for_ordinary_users() {
    let fs = Fs::open(Bucket::in_memory(), "t", &root(), opts()).expect("open");
    let alice = Caller::user(1000, 1000);
    let bob = Caller::user(1001, 1001);
    let shared = fs
        .mkdir(Ino::ROOT, b"shared", 0o1777, &root())
        .expect("mkdir")
        .ino;
    assert_eq!(
        errno(
            fs.mkdir(Ino::ROOT, b"nope", 0o755, &alice)
                .expect_err("root dir is 0755")
        ),
        libc::EACCES
    );
    let (f, fh) = fs
        .create(shared, b"alice.txt", 0o600, rw(), &alice)
        .expect("create");
    fs.release(fh).expect("release");
    assert_eq!((f.uid, f.gid), (1000, 1000));
    assert_eq!(
        errno(
            fs.open_file(f.ino, OpenFlags::READ, &bob)
                .expect_err("0600")
        ),
        libc::EACCES
    );
    // Sticky: bob may not remove alice's file.
    assert_eq!(
        errno(fs.unlink(shared, b"alice.txt", &bob).expect_err("sticky")),
        libc::EPERM
    );
    // chmod and chown rules.
    let set_mode = SetAttr {
        mode: Some(0o644),
        ..SetAttr::default()
    };
    assert_eq!(
        errno(
            fs.setattr(f.ino, &set_mode, None, &bob)
                .expect_err("not owner")
        ),
        libc::EPERM
    );
    fs.setattr(f.ino, &set_mode, None, &alice)
        .expect("owner chmod");
    let give = SetAttr {
        uid: Some(1001),
        ..SetAttr::default()
    };
    assert_eq!(
        errno(fs.setattr(f.ino, &give, None, &alice).expect_err("chown")),
        libc::EPERM
    );
    fs.setattr(f.ino, &give, None, &root()).expect("root chown");
    // Explicit times need ownership; "now" needs write permission.
    let times = SetAttr {
        mtime: Some(TimeSet::At(5)),
        ..SetAttr::default()
    };
    assert_eq!(
        errno(
            fs.setattr(f.ino, &times, None, &alice)
                .expect_err("not owner")
        ),
        libc::EPERM
    );
    // setgid directories hand down their group.
    let sg = fs
        .mkdir(Ino::ROOT, b"sg", 0o2777, &root())
        .expect("mkdir")
        .ino;
    fs.setattr(
        sg,
        &SetAttr {
            gid: Some(50),
            mode: Some(0o2777),
            ..SetAttr::default()
        },
        None,
        &root(),
    )
    .expect("chgrp");
    let sub = fs.mkdir(sg, b"sub", 0o755, &alice).expect("mkdir");
    assert_eq!(sub.gid, 50);
    assert_ne!(sub.perm & libc::S_ISGID, 0, "subdirectories inherit setgid");
    // Only root makes devices.
    assert_eq!(
        errno(
            fs.mknod(shared, b"dev", libc::S_IFBLK | 0o600, 1, &alice)
                .expect_err("mknod")
        ),
        libc::EPERM
    );
    // A write by a non-root user clears setuid.
    let (x, fh) = fs
        .create(shared, b"prog", 0o4755, rw(), &alice)
        .expect("create");
    fs.write(fh, 0, b"#!", &alice).expect("write");
    fs.release(fh).expect("release");
    assert_eq!(fs.getattr(x.ino).expect("attr").perm & libc::S_ISUID, 0);
}

#[test]
fn unlinked_open_files_stay_usable() {
    let fs = Fs::open(Bucket::in_memory(), "t", &root(), opts()).expect("open");
    let (attr, fh) = fs
        .create(Ino::ROOT, b"tmp", 0o600, rw(), &root())
        .expect("create");
    fs.write(fh, 0, b"before", &root()).expect("write");
    fs.unlink(Ino::ROOT, b"tmp", &root()).expect("unlink");
    fs.write(fh, 6, b" after", &root())
        .expect("write after unlink");
    assert_eq!(fs.read(fh, 0, 100).expect("read"), b"before after");
    assert_eq!(fs.getattr(attr.ino).expect("attr").nlink, 0);
    fs.commit("c").expect("commit");
    fs.release(fh).expect("release");
    assert_eq!(errno(fs.getattr(attr.ino).expect_err("gone")), libc::ENOENT);
}

#[test]
fn an_open_file_keeps_its_bytes_across_commits_and_lets_go_on_close() {
    let bucket = Bucket::in_memory();
    let fs = Fs::open(bucket.clone(), "t", &root(), opts()).expect("open");
    let (attr, fh) = fs
        .create(Ino::ROOT, b"log", 0o600, rw(), &root())
        .expect("create");
    let mut model = bytes(7, 3 << 20);
    fs.write(fh, 0, &model, &root()).expect("write");
    fs.commit("first").expect("commit");
    for i in 0..5u64 {
        let at = i * 600_000 + 17;
        let patch = bytes(100 + i, 5000);
        let reads = bucket.io_stats().reads;
        fs.write(fh, at, &patch, &root()).expect("write");
        // The write edits the bytes kept since the commit: nothing is read.
        assert_eq!(bucket.io_stats().reads, reads, "write {i} read back");
        model[at as usize..at as usize + patch.len()].copy_from_slice(&patch);
        let written = bucket.io_stats().written_bytes;
        fs.fsync(Some(fh)).expect("fsync");
        // Only the chunks around the write (and the last) are cut again.
        let stored = bucket.io_stats().written_bytes - written;
        assert!(stored < 1 << 20, "write {i}: {stored} bytes stored");
        assert_eq!(fs.read(fh, 0, 4 << 20).expect("read"), model, "{i}");
    }
    fs.release(fh).expect("release");
    // Closed, it lets go of them: the next write reads the blob back.
    let fh = fs.open_file(attr.ino, rw(), &root()).expect("reopen");
    let reads = bucket.io_stats().reads;
    fs.write(fh, 1, b"x", &root()).expect("write");
    assert!(bucket.io_stats().reads > reads, "kept after close");
    model[1] = b'x';
    fs.release(fh).expect("release");
    fs.commit("last").expect("commit");
    let again = Fs::open(bucket, "t", &root(), opts()).expect("reopen");
    assert_eq!(read_file(&again, path(&again, "log")), model);
}

#[test]
fn bad_names_get_the_right_errno() {
    let fs = Fs::open(Bucket::in_memory(), "t", &root(), opts()).expect("open");
    let long = vec![b'x'; 256];
    assert_eq!(
        errno(
            fs.mkdir(Ino::ROOT, &long, 0o755, &root())
                .expect_err("long")
        ),
        libc::ENAMETOOLONG
    );
    assert_eq!(
        errno(
            fs.mkdir(Ino::ROOT, b"a/b", 0o755, &root())
                .expect_err("slash")
        ),
        libc::EINVAL
    );
    assert_eq!(
        errno(
            fs.mkdir(Ino::ROOT, b"a\0b", 0o755, &root())
                .expect_err("nul")
        ),
        libc::EINVAL
    );
    assert_eq!(
        errno(fs.mkdir(Ino::ROOT, b".", 0o755, &root()).expect_err("dot")),
        libc::EEXIST
    );
    assert!(
        fs.mkdir(Ino::ROOT, &vec![b'y'; 255], 0o755, &root())
            .is_ok()
    );
    write_file(&fs, Ino::ROOT, "f", b"");
    let f = path(&fs, "f");
    assert_eq!(
        errno(fs.mkdir(f, b"x", 0o755, &root()).expect_err("notdir")),
        libc::ENOTDIR
    );
    assert_eq!(
        errno(fs.rmdir(Ino::ROOT, b"f", &root()).expect_err("rmdir file")),
        libc::ENOTDIR
    );
    assert_eq!(
        errno(
            fs.unlink(Ino::ROOT, &vec![b'y'; 255], &root())
                .expect_err("unlink dir")
        ),
        libc::EISDIR
    );
}

#[test]
fn large_files_stream_and_take_random_writes() {
    let bucket = Bucket::in_memory();
    let fs = Fs::open(bucket.clone(), "t", &root(), opts()).expect("open");
    let (attr, fh) = fs
        .create(Ino::ROOT, b"big", 0o644, rw(), &root())
        .expect("create");
    let mut model = Vec::new();
    for i in 0..40u32 {
        let piece: Vec<u8> = (0..500_000u32)
            .map(|j| ((i * 31 + j) % 253) as u8)
            .collect();
        fs.write(fh, model.len() as u64, &piece, &root())
            .expect("write");
        model.extend_from_slice(&piece);
    }
    fs.release(fh).expect("release");
    fs.commit("big").expect("commit");
    let fh = fs.open_file(attr.ino, rw(), &root()).expect("open");
    for (off, data) in [
        (123_456u64, &b"hello"[..]),
        (19_999_990, b"boundary!!!!!"),
        (5, b"x"),
    ] {
        fs.write(fh, off, data, &root()).expect("write");
        let end = off as usize + data.len();
        if model.len() < end {
            model.resize(end, 0);
        }
        model[off as usize..end].copy_from_slice(data);
    }
    assert_eq!(
        fs.read(fh, 123_450, 20).expect("read"),
        &model[123_450..123_470]
    );
    // A punched hole over written and committed bytes reads as zeros, the
    // size stays, and writes into it land; one past the end changes nothing.
    fs.punch_hole(fh, 100_000, 3_000_000, &root())
        .expect("punch");
    model[100_000..3_100_000].fill(0);
    fs.write(fh, 2_000_000, b"into the hole", &root())
        .expect("write");
    model[2_000_000..2_000_013].copy_from_slice(b"into the hole");
    fs.punch_hole(fh, 30_000_000, 10, &root())
        .expect("punch past the end");
    assert_eq!(
        fs.getattr(attr.ino).expect("getattr").size,
        model.len() as u64
    );
    // A zeroed range keeps the size with KEEP_SIZE, else grows the file
    // to its end; past the end with KEEP_SIZE it changes nothing.
    fs.zero_range(fh, 5_000_000, 70_000, true, &root())
        .expect("zero inside");
    model[5_000_000..5_070_000].fill(0);
    let end = model.len() as u64;
    fs.zero_range(fh, end - 1_000, 5_000, true, &root())
        .expect("zero across the end, keeping the size");
    model[end as usize - 1_000..].fill(0);
    fs.zero_range(fh, end + 100, 10, true, &root())
        .expect("zero past the end, keeping the size");
    assert_eq!(fs.getattr(attr.ino).expect("getattr").size, end);
    fs.write(fh, end - 10, b"tail bytes", &root())
        .expect("write");
    model[end as usize - 10..].copy_from_slice(b"tail bytes");
    fs.zero_range(fh, end - 5, 1_000_005, false, &root())
        .expect("zero across the end, growing");
    model[end as usize - 5..].fill(0);
    model.resize(end as usize + 1_000_000, 0);
    assert_eq!(
        fs.getattr(attr.ino).expect("getattr").size,
        model.len() as u64
    );
    assert_eq!(fs.read(fh, 0, model.len()).expect("read"), model);
    fs.setattr(
        attr.ino,
        &SetAttr {
            size: Some(15_000_000),
            ..SetAttr::default()
        },
        Some(fh),
        &root(),
    )
    .expect("truncate");
    model.truncate(15_000_000);
    fs.release(fh).expect("release");
    fs.commit("edits").expect("commit");
    let again = Fs::open(bucket, "t", &root(), opts()).expect("reopen");
    assert_eq!(read_file(&again, path(&again, "big")), model);
}

#[test]
fn memory_pressure_counts_held_bytes_not_streamed_ones() {
    let bucket = Bucket::in_memory();
    let options = hydra_fs::FsOptions {
        dirty_limit: 8 << 20,
        commit_on_pressure: true,
        ..opts()
    };
    let fs = Fs::open(bucket, "t", &root(), options).expect("open");
    // 40 MB appended in order: a stream, stored as it comes, so five times
    // the limit passes without a commit; only the first megabytes, buffered
    // before the file turned into a stream, counted as held.
    let (attr, fh) = fs
        .create(Ino::ROOT, b"stream", 0o644, rw(), &root())
        .expect("create");
    let mut model = Vec::new();
    for i in 0..40u64 {
        let piece = bytes(i, 1_000_000);
        fs.write(fh, model.len() as u64, &piece, &root())
            .expect("write");
        model.extend_from_slice(&piece);
    }
    assert_eq!(fs.commit_stats().0, 0, "a stream made pressure commits");
    assert!(fs.pending_bytes() <= 5_000_000, "{}", fs.pending_bytes());
    fs.release(fh).expect("release");
    // Small files are held in memory until stored: they do count, and
    // crossing the limit commits.
    for i in 0..12u64 {
        write_file(
            &fs,
            Ino::ROOT,
            &format!("small{i}"),
            &bytes(100 + i, 1_000_000),
        );
    }
    assert!(
        fs.commit_stats().0 >= 1,
        "held bytes past the limit did not commit"
    );
    assert!(fs.pending_bytes() < 8 << 20);
    assert_eq!(read_file(&fs, attr.ino), model);
    assert_eq!(read_file(&fs, path(&fs, "small11")), bytes(111, 1_000_000));
}

#[test]
fn copies_share_the_source_chunks() {
    let bucket = Bucket::in_memory();
    let fs = Fs::open(bucket.clone(), "t", &root(), opts()).expect("open");
    let stored = || -> u64 {
        bucket
            .stats()
            .expect("stats")
            .iter()
            .map(|v| v.block_bytes)
            .sum()
    };
    let mut model = bytes(90, 20 << 20);
    let src = write_file(&fs, Ino::ROOT, "src", &model);
    fs.commit("src").expect("commit");
    let snapshot_root = fs.base().expect("committed");
    // An uncommitted write to the source is part of what is copied.
    let sfh = fs.open_file(src, rw(), &root()).expect("open");
    fs.write(sfh, 7_000_000, b"not committed yet", &root())
        .expect("write");
    model[7_000_000..7_000_017].copy_from_slice(b"not committed yet");
    // Copies `len` bytes at `from` of `src` in `src_fs` to `at` of `dst`.
    let copy = |src_fs: &Fs, src, dst, at, from, len| {
        let content = src_fs.content(src).expect("content");
        fs.copy_into(dst, at, &content, from, len, &root())
    };
    let before = stored();
    let (copy_attr, cfh) = fs
        .create(Ino::ROOT, b"copy", 0o644, rw(), &root())
        .expect("create");
    let n = copy(&fs, sfh, cfh, 0, 0, u64::MAX).expect("copy");
    assert_eq!(n, 20 << 20);
    assert_eq!(read_file(&fs, copy_attr.ino), model);
    let grown = stored() - before;
    assert!(grown < 1 << 20, "a copy stored {grown} bytes");
    // A range into the middle of a small file, past its end.
    let small = write_file(&fs, Ino::ROOT, "small", b"0123456789");
    let wfh = fs.open_file(small, rw(), &root()).expect("open");
    let n = copy(&fs, sfh, wfh, 20, 6_999_990, 30).expect("copy");
    assert_eq!(n, 30);
    let mut want = b"0123456789".to_vec();
    want.resize(20, 0);
    want.extend_from_slice(&model[6_999_990..7_000_020]);
    assert_eq!(read_file(&fs, small), want);
    // Past the source's end nothing is copied.
    let n = copy(&fs, sfh, wfh, 0, 30 << 20, 10).expect("copy");
    assert_eq!(n, 0);
    assert_eq!(read_file(&fs, small), want);
    // From a snapshot: the committed bytes come back over the changed ones.
    let view = Fs::open_snapshot(bucket.clone(), snapshot_root).expect("view");
    let vino = view.lookup(Ino::ROOT, b"src", &root()).expect("lookup").ino;
    let vfh = view.open_file(vino, ro(), &root()).expect("open");
    let n = copy(&view, vfh, sfh, 0, 0, u64::MAX).expect("restore");
    assert_eq!(n, 20 << 20);
    assert_eq!(read_file(&fs, src), bytes(90, 20 << 20));
    // Handles that cannot take part are refused, and nothing changes.
    let rfh = fs.open_file(copy_attr.ino, ro(), &root()).expect("open");
    let afh = fs
        .open_file(
            copy_attr.ino,
            OpenFlags {
                write: true,
                append: true,
                ..OpenFlags::default()
            },
            &root(),
        )
        .expect("open");
    let wonly = fs
        .open_file(
            src,
            OpenFlags {
                write: true,
                ..OpenFlags::default()
            },
            &root(),
        )
        .expect("open");
    let content = fs.content(sfh).expect("content");
    for (bad, what) in [(rfh, "read-only"), (afh, "append")] {
        let e = fs
            .copy_into(bad, 0, &content, 0, 10, &root())
            .expect_err(what);
        assert_eq!(errno(e), libc::EBADF, "{what}");
    }
    assert_eq!(
        errno(fs.content(wonly).expect_err("write-only")),
        libc::EBADF
    );
    assert_eq!(read_file(&fs, copy_attr.ino), model);
    // Everything survives a commit and a reopen.
    for fh in [sfh, cfh, wfh, rfh, afh, wonly] {
        fs.release(fh).expect("release");
    }
    fs.commit("copies").expect("commit");
    let fs = Fs::open(bucket.clone(), "t", &root(), opts()).expect("reopen");
    assert_eq!(read_file(&fs, path(&fs, "copy")), model);
    assert_eq!(read_file(&fs, path(&fs, "small")), want);
    assert_eq!(read_file(&fs, path(&fs, "src")), bytes(90, 20 << 20));
}

#[test]
fn holes_take_no_blocks_and_seeks_find_them() {
    let bucket = Bucket::in_memory();
    let fs = Fs::open(bucket.clone(), "t", &root(), opts()).expect("open");
    let data = bytes(95, 300_000);
    let ino = write_file(&fs, Ino::ROOT, "sparse", &data);
    let grow = SetAttr {
        size: Some(4 << 30),
        ..SetAttr::default()
    };
    fs.setattr(ino, &grow, None, &root()).expect("grow");
    let wfh = fs
        .open_file(
            ino,
            OpenFlags {
                write: true,
                ..OpenFlags::default()
            },
            &root(),
        )
        .expect("open");
    fs.write(wfh, 3 << 30, b"far out", &root()).expect("write");
    // Before the commit the overlay counts the content under it and the
    // bytes written (the kernel keeps the figure: `cp` must see the holes
    // now); a seek stores it first.
    let before = fs.getattr(ino).expect("attr").blocks;
    assert!(
        ((300_000 + 7) / 512..(2 << 20) / 512).contains(&before),
        "{before} blocks"
    );
    assert_eq!(fs.seek(wfh, 0, Seek::Data).expect("data"), 0);
    fs.commit("sparse").expect("commit");
    let attr = fs.getattr(ino).expect("attr");
    assert_eq!(attr.size, 4 << 30);
    assert!(attr.blocks < (2 << 20) / 512, "{} blocks", attr.blocks);
    let max = 256 << 10;
    let hole = fs.seek(wfh, 0, Seek::Hole).expect("hole");
    assert!((300_000..300_000 + max).contains(&hole), "{hole}");
    assert_eq!(
        fs.seek(wfh, hole + 10, Seek::Hole).expect("hole"),
        hole + 10
    );
    let far = fs.seek(wfh, hole, Seek::Data).expect("data");
    assert!((3 << 30) - max <= far && far <= 3 << 30, "{far}");
    assert!(fs.seek(wfh, far, Seek::Hole).expect("hole") >= (3 << 30) + 7);
    for past in [4 << 30, 5 << 30] {
        assert_eq!(
            errno(fs.seek(wfh, past, Seek::Data).expect_err("past")),
            libc::ENXIO
        );
        assert_eq!(
            errno(fs.seek(wfh, past, Seek::Hole).expect_err("past")),
            libc::ENXIO
        );
    }
    // A file without holes counts every byte.
    let dense = write_file(&fs, Ino::ROOT, "dense", &bytes(96, 3 << 20));
    fs.commit("dense").expect("commit");
    assert_eq!(fs.getattr(dense).expect("attr").blocks, (3u64 << 20) / 512);
    fs.release(wfh).expect("release");
}
