//! Paths inside a filesystem: resolving, creating parents, splitting.
//!
//! Paths are byte strings with `/` separators, relative to the root
//! whether or not they start with `/`. Symlinks are never followed: a path
//! through one fails with ENOTDIR, so nothing resolves outside the tree.

use crate::attr::Ino;
use crate::error::{FsError, FsResult};
use crate::fs::Fs;
use crate::node::Kind;
use crate::perm::Caller;

/// Longest path accepted.
pub const PATH_MAX: usize = 4096;

/// The components of `path`, without empty and `.` ones.
pub fn components(path: &[u8]) -> FsResult<Vec<&[u8]>> {
    if path.len() > PATH_MAX {
        return Err(FsError::NameTooLong);
    }
    Ok(path
        .split(|&b| b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
        .collect())
}

impl Fs {
    /// The inode at `path` below `from` (`..` allowed, symlinks not followed).
    pub fn resolve_from(&self, from: Ino, path: &[u8], c: &Caller) -> FsResult<Ino> {
        let mut ino = from;
        for part in components(path)? {
            ino = self.lookup(ino, part, c)?.ino;
        }
        Ok(ino)
    }

    /// The inode at `path` from the root.
    pub fn resolve(&self, path: &[u8], c: &Caller) -> FsResult<Ino> {
        self.resolve_from(Ino::ROOT, path, c)
    }

    /// The directory at `path`, created with its parents (mode 0755) as
    /// needed. A non-directory on the way is ENOTDIR.
    pub fn mkdir_p(&self, from: Ino, path: &[u8], c: &Caller) -> FsResult<Ino> {
        let mut ino = from;
        for part in components(path)? {
            ino = match self.lookup(ino, part, c) {
                Ok(attr) if attr.kind == Kind::Dir => attr.ino,
                Ok(_) => return Err(FsError::NotDir),
                Err(FsError::NotFound) => self.mkdir(ino, part, 0o755, c)?.ino,
                Err(e) => return Err(e),
            };
        }
        Ok(ino)
    }
}

/// Splits `path` into its parent path and last component.
pub fn split_last(path: &[u8]) -> FsResult<(Vec<u8>, Vec<u8>)> {
    let parts = components(path)?;
    let Some((last, parent)) = parts.split_last() else {
        return Err(FsError::Invalid("path names the root"));
    };
    Ok((parent.join(&b'/'), last.to_vec()))
}
