//! Between `Fs` attributes and 9P's: qids, Rgetattr, Tsetattr.

use hydra_fs::{Attr, Kind, SetAttr, TimeSet};

use crate::ninep::wire::{Qid, SetattrArgs, Stat, getattr, qid_type, setattr};

/// The qid of an inode: its number, its type and a version that changes
/// with its content.
pub(super) fn qid(attr: &Attr) -> Qid {
    Qid {
        kind: qid_kind(attr.kind),
        version: (attr.mtime as u64 ^ (attr.size << 8)) as u32,
        path: attr.ino.0,
    }
}

/// The qid type of a kind.
pub(super) fn qid_kind(kind: Kind) -> u8 {
    match kind {
        Kind::Dir => qid_type::DIR,
        Kind::Symlink => qid_type::SYMLINK,
        _ => qid_type::FILE,
    }
}

/// The dirent type of a kind.
pub(super) fn dt(kind: Kind) -> u8 {
    match kind {
        Kind::File => libc::DT_REG,
        Kind::Dir => libc::DT_DIR,
        Kind::Symlink => libc::DT_LNK,
        Kind::Fifo => libc::DT_FIFO,
        Kind::CharDev => libc::DT_CHR,
        Kind::BlockDev => libc::DT_BLK,
        Kind::Socket => libc::DT_SOCK,
    }
}

/// Seconds and nanoseconds of a time in nanoseconds.
fn split_ns(ns: i64) -> (u64, u64) {
    (
        ns.div_euclid(1_000_000_000) as u64,
        ns.rem_euclid(1_000_000_000) as u64,
    )
}

/// The Rgetattr of attributes.
pub(super) fn stat(attr: &Attr) -> Stat {
    Stat {
        valid: getattr::BASIC,
        qid: qid(attr),
        mode: attr.mode(),
        uid: attr.uid,
        gid: attr.gid,
        nlink: u64::from(attr.nlink),
        rdev: attr.rdev,
        size: attr.size,
        blksize: 128 << 10,
        blocks: attr.blocks,
        atime: split_ns(attr.atime),
        mtime: split_ns(attr.mtime),
        ctime: split_ns(attr.ctime),
    }
}

/// A time to set, from Tsetattr's valid bits.
fn time_set(valid: u32, now_bit: u32, set_bit: u32, sec: u64, nsec: u64) -> Option<TimeSet> {
    if valid & now_bit == 0 {
        return None;
    }
    if valid & set_bit == 0 {
        return Some(TimeSet::Now);
    }
    Some(TimeSet::At(
        (sec as i64)
            .saturating_mul(1_000_000_000)
            .saturating_add(nsec as i64),
    ))
}

/// The change a Tsetattr asks for.
pub(super) fn set_attr(a: &SetattrArgs) -> SetAttr {
    let has = |bit: u32| a.valid & bit != 0;
    SetAttr {
        mode: has(setattr::MODE).then_some(a.mode & 0o7777),
        uid: has(setattr::UID).then_some(a.uid),
        gid: has(setattr::GID).then_some(a.gid),
        size: has(setattr::SIZE).then_some(a.size),
        atime: time_set(
            a.valid,
            setattr::ATIME,
            setattr::ATIME_SET,
            a.atime_sec,
            a.atime_nsec,
        ),
        mtime: time_set(
            a.valid,
            setattr::MTIME,
            setattr::MTIME_SET,
            a.mtime_sec,
            a.mtime_nsec,
        ),
        ctime: None,
    }
}
