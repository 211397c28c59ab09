//! Times, kinds and attributes as `fuser` wants them.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{FileAttr, FileType, INodeNo};
use hydra_fs::{Attr, Kind};

/// The time `ns` nanoseconds from the epoch (before it when negative).
fn time(ns: i64) -> SystemTime {
    if ns >= 0 {
        UNIX_EPOCH + Duration::from_nanos(ns as u64)
    } else {
        UNIX_EPOCH - Duration::from_nanos(ns.unsigned_abs())
    }
}

/// Nanoseconds since the epoch of a time the kernel sent through `fuser`.
/// The kernel sends seconds and a nanosecond part that counts forward
/// even before the epoch (-1.25 s is -2 s + 750,000,000 ns), and `fuser`
/// 0.18 subtracts both parts, handing over -2.75 s: undone here, as
/// `tests/posix.py` checks.
pub(super) fn kernel_ns(t: SystemTime) -> i64 {
    const GIGA: i128 = 1_000_000_000;
    let ns = match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_nanos() as i128,
        Err(e) => {
            let d = e.duration();
            -i128::from(d.as_secs()) * GIGA + i128::from(d.subsec_nanos())
        }
    };
    ns.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
}

/// The kernel's file type of `kind`.
pub(super) fn file_type(kind: Kind) -> FileType {
    match kind {
        Kind::File => FileType::RegularFile,
        Kind::Dir => FileType::Directory,
        Kind::Symlink => FileType::Symlink,
        Kind::Fifo => FileType::NamedPipe,
        Kind::CharDev => FileType::CharDevice,
        Kind::BlockDev => FileType::BlockDevice,
        Kind::Socket => FileType::Socket,
    }
}

/// The kernel's attributes of `a`.
pub(super) fn file_attr(a: &Attr) -> FileAttr {
    FileAttr {
        ino: INodeNo(a.ino.0),
        size: a.size,
        blocks: a.blocks,
        atime: time(a.atime),
        mtime: time(a.mtime),
        ctime: time(a.ctime),
        crtime: time(a.ctime),
        kind: file_type(a.kind),
        perm: a.perm as u16,
        nlink: a.nlink,
        uid: a.uid,
        gid: a.gid,
        rdev: a.rdev as u32,
        blksize: 64 * 1024,
        flags: 0,
    }
}
