//! What writes, truncates and chowns take away (setuid, setgid, file
//! capabilities), as Linux does, whoever the front end.

use hydra_dag::Bucket;
use hydra_fs::{Caller, Fs, Ino, SetAttr};

mod support;
use support::*;

const CAPABILITY: &[u8] = b"security.capability";
/// A `security.capability` value (v2, `cap_net_raw+ep`).
const CAP_NET_RAW: &[u8] =
    b"\x01\x00\x00\x02\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00";

/// A root-owned file of `mode` in group `gid` holding capabilities, with
/// one byte in it.
fn file(fs: &Fs, name: &str, mode: u32, gid: u32) -> Ino {
    let (a, fh) = fs
        .create(Ino::ROOT, name.as_bytes(), 0o644, rw(), &root())
        .expect("create");
    fs.write(fh, 0, b"x", &root()).expect("write");
    fs.release(fh).expect("release");
    let chgrp = SetAttr {
        gid: Some(gid),
        ..SetAttr::default()
    };
    set(fs, a.ino, &root(), chgrp).expect("chgrp");
    // After the chown, which drops setuid and capabilities.
    set(fs, a.ino, &root(), chmod(mode)).expect("chmod");
    fs.setxattr(a.ino, CAPABILITY, CAP_NET_RAW, 0, &root())
        .expect("set caps");
    a.ino
}

/// A mode change to `mode`.
fn chmod(mode: u32) -> SetAttr {
    SetAttr {
        mode: Some(mode),
        ..SetAttr::default()
    }
}

fn set(fs: &Fs, ino: Ino, c: &Caller, s: SetAttr) -> Result<(), i32> {
    fs.setattr(ino, &s, None, c).map(drop).map_err(errno)
}

fn append(fs: &Fs, ino: Ino, c: &Caller) {
    let fh = fs.open_file(ino, rw(), c).expect("open");
    fs.write(fh, 1, b"y", c).expect("write");
    fs.release(fh).expect("release");
}

/// Mode bits and whether the capabilities are still there.
fn left(fs: &Fs, ino: Ino) -> (u32, bool) {
    let perm = fs.getattr(ino).expect("attr").perm;
    (perm, fs.getxattr(ino, CAPABILITY, &root()).is_ok())
}

#[test]
fn writes_drop_setuid_setgid_and_capabilities_like_linux() {
    let fs = Fs::open(Bucket::in_memory(), "t", &root(), opts()).expect("open");
    let alice = Caller::user(1000, 1000);
    let in_group = Caller {
        groups: vec![50].into(),
        ..Caller::user(1001, 1001)
    };

    let f = file(&fs, "suid", 0o4777, 0);
    assert_eq!(left(&fs, f), (0o4777, true));
    append(&fs, f, &alice);
    assert_eq!(left(&fs, f), (0o777, false), "a user's write drops all");

    let f = file(&fs, "root-writes", 0o6777, 0);
    append(&fs, f, &root());
    assert_eq!(
        left(&fs, f),
        (0o6777, false),
        "root keeps the ids, not the capabilities"
    );
    let f = file(&fs, "root-without-fsetid", 0o6777, 50);
    let capless = Caller {
        fsetid: false,
        ..root()
    };
    append(&fs, f, &capless);
    assert_eq!(left(&fs, f).0, 0o777, "root without CAP_FSETID keeps none");

    // Setgid without group execute is kept for a writer in the group only.
    let f = file(&fs, "sgid", 0o2767, 50);
    append(&fs, f, &in_group);
    assert_eq!(left(&fs, f).0, 0o2767);
    append(&fs, f, &alice);
    assert_eq!(left(&fs, f).0, 0o767);
    let f = file(&fs, "sgid-x", 0o2777, 50);
    append(&fs, f, &in_group);
    assert_eq!(left(&fs, f).0, 0o777, "group-executable setgid always goes");

    // Truncates, by size or on open, do the same.
    let f = file(&fs, "truncated", 0o4666, 0);
    set(
        &fs,
        f,
        &alice,
        SetAttr {
            size: Some(0),
            ..SetAttr::default()
        },
    )
    .expect("truncate");
    assert_eq!(left(&fs, f), (0o666, false));
    let f = file(&fs, "o-trunc", 0o4666, 0);
    let flags = hydra_fs::OpenFlags {
        truncate: true,
        ..rw()
    };
    let fh = fs.open_file(f, flags, &alice).expect("open O_TRUNC");
    fs.release(fh).expect("release");
    assert_eq!(left(&fs, f), (0o666, false));

    // A chown drops them whoever makes it.
    let f = file(&fs, "chowned", 0o4755, 0);
    set(
        &fs,
        f,
        &root(),
        SetAttr {
            uid: Some(1000),
            ..SetAttr::default()
        },
    )
    .expect("chown");
    assert_eq!(left(&fs, f), (0o755, false));
}

#[test]
fn a_writer_may_drop_what_its_kernel_drops_and_nothing_more() {
    let fs = Fs::open(Bucket::in_memory(), "t", &root(), opts()).expect("open");
    let alice = Caller::user(1000, 1000);
    // A client kernel that does not leave it to the server (9P) clears
    // setuid with a chmod as the writer, and capabilities with a
    // removexattr as the writer.
    let f = file(&fs, "writable", 0o4777, 0);
    set(&fs, f, &alice, chmod(0o777)).expect("a writer clears setuid");
    fs.removexattr(f, CAPABILITY, &alice)
        .expect("a writer drops capabilities");
    assert_eq!(left(&fs, f), (0o777, false));
    // Any other change stays the owner's.
    assert_eq!(set(&fs, f, &alice, chmod(0o775)), Err(libc::EPERM));
    assert_eq!(set(&fs, f, &alice, chmod(0o4777)), Err(libc::EPERM));
    // Without write permission, nothing.
    let f = file(&fs, "read-only", 0o4755, 0);
    assert_eq!(set(&fs, f, &alice, chmod(0o755)), Err(libc::EPERM));
    assert_eq!(
        fs.removexattr(f, CAPABILITY, &alice).map_err(errno),
        Err(libc::EPERM)
    );
    assert_eq!(left(&fs, f), (0o4755, true));
}
