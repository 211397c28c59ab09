//! Operation counters of the front ends (FUSE, 9P), for `/metrics`.

use std::sync::atomic::{AtomicU64, Ordering};

/// How often each operation of one front end was served.
#[derive(Debug)]
pub struct OpCounts {
    names: &'static [&'static str],
    counts: Vec<AtomicU64>,
}

impl OpCounts {
    /// Counters for the operations `names` (others are counted as the last).
    pub fn new(names: &'static [&'static str]) -> OpCounts {
        OpCounts {
            names,
            counts: names.iter().map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// Counts one `op`.
    pub fn hit(&self, op: &str) {
        let i = self
            .names
            .iter()
            .position(|n| *n == op)
            .unwrap_or(self.names.len().saturating_sub(1));
        if let Some(c) = self.counts.get(i) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Every operation and its count so far.
    pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
        self.names
            .iter()
            .zip(&self.counts)
            .map(|(n, c)| (*n, c.load(Ordering::Relaxed)))
            .collect()
    }
}

/// The FUSE operations counted.
pub const FUSE_OPS: &[&str] = &[
    "lookup",
    "getattr",
    "setattr",
    "readlink",
    "mknod",
    "mkdir",
    "unlink",
    "rmdir",
    "symlink",
    "rename",
    "link",
    "open",
    "read",
    "write",
    "flush",
    "release",
    "fsync",
    "opendir",
    "readdir",
    "readdirplus",
    "fsyncdir",
    "statfs",
    "setxattr",
    "getxattr",
    "listxattr",
    "removexattr",
    "access",
    "create",
    "fallocate",
    "other",
];

/// The 9P requests counted.
pub const NINEP_OPS: &[&str] = &[
    "version",
    "auth",
    "attach",
    "flush",
    "walk",
    "lopen",
    "lcreate",
    "read",
    "write",
    "clunk",
    "remove",
    "getattr",
    "setattr",
    "readdir",
    "fsync",
    "mkdir",
    "symlink",
    "mknod",
    "rename",
    "renameat",
    "unlinkat",
    "readlink",
    "link",
    "xattrwalk",
    "xattrcreate",
    "statfs",
    "lock",
    "getlock",
    "other",
];
