//! Helpers shared by the filesystem test binaries (each includes this
//! module; not every binary uses every helper).
#![allow(dead_code)]

use std::borrow::Borrow;

use hydra_fs::{Caller, Fs, FsError, FsOptions, Ino, OpenFlags};

/// Options with no background commits: tests commit when they mean to.
pub fn opts() -> FsOptions {
    FsOptions {
        commit_interval: None,
        ..FsOptions::default()
    }
}

/// Creates `name` in `parent` holding `data`, as root; returns its inode.
pub fn write_file(fs: &Fs, parent: Ino, name: &str, data: &[u8]) -> Ino {
    let (attr, fh) = fs
        .create(parent, name.as_bytes(), 0o644, rw(), &root())
        .expect("create");
    fs.write(fh, 0, data, &root()).expect("write");
    fs.release(fh).expect("release");
    attr.ino
}

/// The superuser.
pub fn root() -> Caller {
    Caller::root()
}

/// Open for reading and writing.
pub fn rw() -> OpenFlags {
    OpenFlags {
        read: true,
        write: true,
        ..OpenFlags::default()
    }
}

/// Open for reading.
pub fn ro() -> OpenFlags {
    OpenFlags::READ
}

/// The errno an error maps to.
pub fn errno(e: impl Borrow<FsError>) -> i32 {
    e.borrow().errno().0
}

/// Deterministic bytes: `len` bytes from `seed`.
pub fn bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}
