//! Operation counters of the front ends (FUSE, 9P), for `/metrics`.

use std::sync::atomic::{AtomicU64, Ordering};

/// How often each operation of one front end was served.
#[derive(Debug)]
pub struct OpCounts {
    names: &'static [&'static str],
    counts: Vec<AtomicU64>,
}

impl OpCounts {
    /// Counters for the operations `names`.
    pub fn new(names: &'static [&'static str]) -> OpCounts {
        OpCounts {
            names,
            counts: names.iter().map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// Counts one operation, by its index in the names (see [`op_index`]).
    pub fn hit(&self, op: usize) {
        if let Some(c) = self.counts.get(op) {
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
    "forget",
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
    "releasedir",
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
    "copy_file_range",
    "lseek",
];

/// Where `op` stands in `names`, found once at compile time when called in
/// a `const` block (an unknown name fails the build there).
pub const fn op_index(names: &[&str], op: &str) -> usize {
    let mut i = 0;
    while i < names.len() {
        let (a, b) = (names[i].as_bytes(), op.as_bytes());
        if a.len() == b.len() {
            let mut j = 0;
            while j < a.len() && a[j] == b[j] {
                j += 1;
            }
            if j == a.len() {
                return i;
            }
        }
        i += 1;
    }
    panic!("not an operation of this list");
}
