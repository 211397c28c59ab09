//! `MOUNTPOINT/.snapshots/<id>/`: every snapshot of the mounted filesystem,
//! read-only, by changelog id. The root's readdir does not list it.
//!
//! Inode numbers of snapshot views carry the view in their high bits:
//! `(id + 1) << VIEW_SHIFT | inode`, the live filesystem keeps view 0, and
//! the `.snapshots` directory itself has a number no filesystem reaches.

use std::collections::HashMap;
use std::sync::Mutex;

use hydra_dag::{Bucket, RefName};
use hydra_fs::{Attr, Fs, FsError, FsResult, Ino, Kind};

/// Bits of an inode number that belong to the view.
const VIEW_SHIFT: u32 = 40;
const INNER_MASK: u64 = (1 << VIEW_SHIFT) - 1;
/// The `.snapshots` directory.
pub const SNAPSHOTS_INO: u64 = INNER_MASK - 1;
/// The `.git-views` directory.
pub const GIT_VIEWS_INO: u64 = INNER_MASK - 2;
/// Repository `k` of `.git-views` is `GIT_REPO_INO - k`.
const GIT_REPO_INO: u64 = INNER_MASK - 3;
/// How many repositories `.git-views` can number.
const GIT_REPOS: u64 = 1 << 20;
/// Views from this number up are git views (below: snapshot ids).
pub const GIT_VIEW_BASE: u64 = 1 << 23;
/// Its name in the root.
pub const SNAPSHOTS_NAME: &[u8] = b".snapshots";

/// Where an inode number points.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// The live filesystem.
    Live(Ino),
    /// The `.snapshots` directory.
    Dir,
    /// An inode of the snapshot with this changelog id.
    Snapshot(u64, Ino),
    /// The `.git-views` directory.
    GitDir,
    /// The directory of the repository with this index in `.git-views`.
    GitRepo(u64),
    /// An inode of the git view with this index.
    GitView(u64, Ino),
}

/// The kernel number of repository `k`'s directory in `.git-views`.
pub fn git_repo_ino(k: u64) -> u64 {
    GIT_REPO_INO - k
}

/// Splits a kernel inode (or handle) number.
pub fn place(n: u64) -> Place {
    if n == SNAPSHOTS_INO {
        return Place::Dir;
    }
    if n == GIT_VIEWS_INO {
        return Place::GitDir;
    }
    if n <= GIT_REPO_INO && n > GIT_REPO_INO - GIT_REPOS {
        return Place::GitRepo(GIT_REPO_INO - n);
    }
    match n >> VIEW_SHIFT {
        0 => Place::Live(Ino(n)),
        view if view > GIT_VIEW_BASE => {
            Place::GitView(view - 1 - GIT_VIEW_BASE, Ino(n & INNER_MASK))
        }
        view => Place::Snapshot(view - 1, Ino(n & INNER_MASK)),
    }
}

/// The kernel number of inode (or handle) `n` of snapshot `id`.
pub fn join(id: u64, n: u64) -> u64 {
    ((id + 1) << VIEW_SHIFT) | (n & INNER_MASK)
}

/// The snapshots of one filesystem, opened on first use.
#[derive(Debug)]
pub struct Snapshots {
    bucket: Bucket,
    name: RefName,
    views: Mutex<HashMap<u64, Fs>>,
}

impl Snapshots {
    /// The snapshots of `fs/<name>` in `bucket`.
    pub fn new(bucket: Bucket, name: &str) -> FsResult<Snapshots> {
        Ok(Snapshots {
            bucket,
            name: RefName::new(format!("fs/{name}"))?,
            views: Mutex::new(HashMap::new()),
        })
    }

    /// Changelog ids of every snapshot (every commit), oldest first.
    pub fn ids(&self) -> FsResult<Vec<u64>> {
        let mut ids: Vec<u64> = self
            .bucket
            .log(Some(&self.name), usize::MAX)?
            .into_iter()
            .filter(|e| e.new.is_some())
            .map(|e| e.id)
            .collect();
        ids.reverse();
        Ok(ids)
    }

    /// The read-only view of snapshot `id`.
    pub fn view(&self, id: u64) -> FsResult<Fs> {
        let mut views = self.views.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(fs) = views.get(&id) {
            return Ok(fs.clone());
        }
        let entry = self
            .bucket
            .log(Some(&self.name), usize::MAX)?
            .into_iter()
            .find(|e| e.id == id)
            .ok_or(FsError::NotFound)?;
        let root = entry.new.ok_or(FsError::NotFound)?;
        let fs = Fs::open_snapshot(self.bucket.clone(), root)?;
        views.insert(id, fs.clone());
        Ok(fs)
    }

    /// The id a directory entry name in `.snapshots` stands for.
    pub fn id_of(&self, name: &[u8]) -> FsResult<u64> {
        let id: u64 = std::str::from_utf8(name)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or(FsError::NotFound)?;
        if id >= GIT_VIEW_BASE {
            return Err(FsError::NotFound);
        }
        Ok(id)
    }

    /// Attributes of the `.snapshots` directory (those of the root, read-only).
    pub fn dir_attr(&self, root: &Attr) -> Attr {
        synthetic_dir_attr(root, SNAPSHOTS_INO)
    }
}

/// Attributes of a directory the mount makes up, numbered `ino`: those of
/// the root, read-only.
pub fn synthetic_dir_attr(root: &Attr, ino: u64) -> Attr {
    Attr {
        ino: Ino(ino),
        kind: Kind::Dir,
        perm: 0o555,
        nlink: 2,
        size: 4096,
        blocks: 8,
        ..root.clone()
    }
}

/// An attribute of snapshot `id` with its inode number made global.
pub fn attr_in(id: u64, mut attr: Attr) -> Attr {
    attr.ino = Ino(join(id, attr.ino.0));
    attr
}
