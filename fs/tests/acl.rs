//! POSIX ACLs through `Fs`, whoever the front end: access checked against
//! them, chmod keeping them in step, default ACLs handed down.

use hydra_dag::Bucket;
use hydra_fs::{Caller, Fs, Ino, SetAttr};

mod support;
use support::*;

const ACCESS: &[u8] = b"system.posix_acl_access";
const DEFAULT: &[u8] = b"system.posix_acl_default";

/// An ACL in the kernel's attribute form from (tag, perm, id) entries.
fn acl(entries: &[(u16, u16, u32)]) -> Vec<u8> {
    let mut out = 2u32.to_le_bytes().to_vec();
    for (tag, perm, id) in entries {
        out.extend_from_slice(&tag.to_le_bytes());
        out.extend_from_slice(&perm.to_le_bytes());
        out.extend_from_slice(&id.to_le_bytes());
    }
    out
}

#[test]
fn acls_are_enforced_follow_chmod_and_are_inherited() {
    let fs = Fs::open(Bucket::in_memory(), "t", &root(), opts()).expect("open");
    let (a, fh) = fs
        .create(Ino::ROOT, b"f", 0o600, rw(), &root())
        .expect("create");
    fs.release(fh).expect("release");
    let (bob, eve) = (Caller::user(1000, 1000), Caller::user(1001, 1001));
    assert_eq!(
        errno(fs.access(a.ino, 4, &bob).expect_err("mode")),
        libc::EACCES
    );
    // user::rw- user:1000:r-- group::--- mask::r-- other::---
    let list = acl(&[
        (1, 6, 0),
        (2, 4, 1000),
        (4, 0, 0),
        (0x10, 4, 0),
        (0x20, 0, 0),
    ]);
    fs.setxattr(a.ino, ACCESS, &list, 0, &root())
        .expect("set ACL");
    assert_eq!(fs.getattr(a.ino).expect("attr").perm, 0o640);
    fs.access(a.ino, 4, &bob).expect("granted by the ACL");
    assert_eq!(
        errno(fs.access(a.ino, 2, &bob).expect_err("mask")),
        libc::EACCES
    );
    assert_eq!(
        errno(fs.access(a.ino, 4, &eve).expect_err("no entry")),
        libc::EACCES
    );
    // chmod sets the mask (the group class); the named entry still
    // grants only what it says.
    let chmod = SetAttr {
        mode: Some(0o660),
        ..SetAttr::default()
    };
    fs.setattr(a.ino, &chmod, None, &root()).expect("chmod");
    fs.access(a.ino, 4, &bob).expect("still granted");
    assert_eq!(
        errno(fs.access(a.ino, 2, &bob).expect_err("entry")),
        libc::EACCES
    );
    let stored = fs.getxattr(a.ino, ACCESS, &root()).expect("ACL kept");
    assert_eq!(
        stored,
        acl(&[
            (1, 6, 0),
            (2, 4, 1000),
            (4, 0, 0),
            (0x10, 6, 0),
            (0x20, 0, 0)
        ])
    );
    // Default ACLs only on directories.
    assert_eq!(
        errno(
            fs.setxattr(a.ino, DEFAULT, &list, 0, &root())
                .expect_err("file")
        ),
        libc::EACCES
    );

    let d = fs
        .mkdir(Ino::ROOT, b"d", 0o755, &root())
        .expect("mkdir")
        .ino;
    let default = acl(&[
        (1, 7, 0),
        (2, 7, 1000),
        (4, 5, 0),
        (0x10, 7, 0),
        (0x20, 0, 0),
    ]);
    fs.setxattr(d, DEFAULT, &default, 0, &root())
        .expect("default ACL");
    let umask = Caller {
        umask: 0o022,
        ..root()
    };
    // The default decides, not the umask: group class rw- from mode 0666.
    let (f, fh) = fs.create(d, b"f", 0o666, rw(), &umask).expect("create");
    fs.release(fh).expect("release");
    assert_eq!(f.perm, 0o660);
    fs.access(f.ino, 6, &bob).expect("inherited entry");
    let sub = fs.mkdir(d, b"sub", 0o777, &umask).expect("mkdir");
    assert_eq!(sub.perm, 0o770);
    assert_eq!(
        fs.getxattr(sub.ino, DEFAULT, &root()).expect("default"),
        default
    );
    // Without a default ACL the umask applies.
    let (plain, fh) = fs
        .create(Ino::ROOT, b"plain", 0o666, rw(), &umask)
        .expect("create");
    fs.release(fh).expect("release");
    assert_eq!(plain.perm, 0o644);
}
