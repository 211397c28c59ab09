//! The error type of `hydra-fs` and its one mapping to errno.

use hydra_chunker::ChunkError;
use hydra_dag::DagError;

/// Result alias for filesystem operations.
pub type FsResult<T> = Result<T, FsError>;

/// A POSIX error number (Linux values).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Errno(pub i32);

/// Everything a filesystem operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum FsError {
    /// No such file or directory.
    #[error("no such file or directory")]
    NotFound,
    /// The name is taken.
    #[error("file exists")]
    Exists,
    /// A directory was needed.
    #[error("not a directory")]
    NotDir,
    /// A non-directory was needed.
    #[error("is a directory")]
    IsDir,
    /// The directory still has entries.
    #[error("directory not empty")]
    NotEmpty,
    /// Permission bits deny the access.
    #[error("permission denied")]
    Access,
    /// Only the owner or root may do this.
    #[error("operation not permitted")]
    NotPermitted,
    /// A name component longer than 255 bytes, or a path over 4096.
    #[error("file name too long")]
    NameTooLong,
    /// An argument the operation cannot take.
    #[error("invalid argument: {0}")]
    Invalid(&'static str),
    /// The file system is read-only (a snapshot, or a read-only mount).
    #[error("read-only file system")]
    ReadOnly,
    /// An unknown or closed file handle.
    #[error("bad file handle")]
    BadHandle,
    /// The attribute does not exist.
    #[error("no such attribute")]
    NoAttribute,
    /// A buffer too small for the answer.
    #[error("result too large for the buffer")]
    Range,
    /// Too many hard links.
    #[error("too many links")]
    TooManyLinks,
    /// Moving a directory into itself, or similar.
    #[error("invalid move: {0}")]
    InvalidMove(&'static str),
    /// No data (or hole) at or past the offset a seek started from.
    #[error("no data past the offset")]
    NoData,
    /// The operation is not supported here.
    #[error("not supported: {0}")]
    Unsupported(&'static str),
    /// A node that does not decode as a filesystem node.
    #[error("corrupt filesystem node {cid}: {reason}")]
    Corrupt {
        /// The node.
        cid: hydra_dag::Cid,
        /// What is wrong.
        reason: String,
    },
    /// The ref moved under us: another writer committed.
    #[error("filesystem {name} was changed by another writer")]
    Conflict {
        /// The filesystem.
        name: String,
    },
    /// Another writer changed the same things differently; nothing was
    /// committed.
    #[error("another writer changed the same paths differently: {}", paths.join(", "))]
    MergeConflict {
        /// Where both sides changed the same thing.
        paths: Vec<String>,
    },
    /// A file's content was lost by a storage failure.
    #[error("file content lost: {0}")]
    Lost(String),
    /// A file's content was lost because the store ran out of space.
    #[error("file content lost, the store is full: {0}")]
    LostNoSpace(String),
    /// A commit met a file whose content was lost: it names the file.
    #[error("{path}: {source}; remove or truncate it, and the rest commits")]
    LostFile {
        /// The file's path in the filesystem.
        path: String,
        /// How its content was lost.
        source: Box<FsError>,
    },
    /// The inode's extended attributes would not fit its record.
    #[error("no space left for extended attributes")]
    NoSpace,
    /// A malformed or truncated archive.
    #[error("archive: {0}")]
    Archive(String),
    /// The block layer failed (boxed: it is large, and rare).
    #[error(transparent)]
    Dag(Box<DagError>),
    /// Blob reading or writing failed.
    #[error(transparent)]
    Chunk(Box<ChunkError>),
}

impl FsError {
    /// The errno a kernel would return: the one mapping FUSE and 9P share.
    pub fn errno(&self) -> Errno {
        Errno(match self {
            FsError::NotFound => libc::ENOENT,
            FsError::Exists => libc::EEXIST,
            FsError::NotDir => libc::ENOTDIR,
            FsError::IsDir => libc::EISDIR,
            FsError::NotEmpty => libc::ENOTEMPTY,
            FsError::Access => libc::EACCES,
            FsError::NotPermitted => libc::EPERM,
            FsError::NameTooLong => libc::ENAMETOOLONG,
            FsError::Invalid(_) | FsError::InvalidMove(_) | FsError::Archive(_) => libc::EINVAL,
            FsError::ReadOnly => libc::EROFS,
            FsError::BadHandle => libc::EBADF,
            FsError::NoAttribute => libc::ENODATA,
            FsError::Range => libc::ERANGE,
            FsError::TooManyLinks => libc::EMLINK,
            FsError::Unsupported(_) => libc::EOPNOTSUPP,
            FsError::Conflict { .. } | FsError::MergeConflict { .. } => libc::EBUSY,
            FsError::NoSpace | FsError::LostNoSpace(_) => libc::ENOSPC,
            FsError::Dag(e) if e.is_no_space() => libc::ENOSPC,
            FsError::Chunk(e) if e.is_no_space() => libc::ENOSPC,
            FsError::NoData => libc::ENXIO,
            FsError::LostFile { source, .. } => return source.errno(),
            FsError::Corrupt { .. } | FsError::Lost(_) | FsError::Dag(_) | FsError::Chunk(_) => {
                libc::EIO
            }
        })
    }

    /// This error of the entry `name` as its directory reports it: a lost
    /// file's path grows by the name, other errors pass unchanged.
    pub(crate) fn within(self, name: &[u8]) -> FsError {
        let name = String::from_utf8_lossy(name);
        match self {
            FsError::LostFile { path, source } => FsError::LostFile {
                path: format!("/{name}{path}"),
                source,
            },
            lost @ (FsError::Lost(_) | FsError::LostNoSpace(_)) => FsError::LostFile {
                path: format!("/{name}"),
                source: Box::new(lost),
            },
            other => other,
        }
    }
}

impl From<DagError> for FsError {
    fn from(e: DagError) -> Self {
        FsError::Dag(Box::new(e))
    }
}

impl From<hydra_kv::KvError> for FsError {
    fn from(e: hydra_kv::KvError) -> Self {
        use hydra_kv::KvError;
        match e {
            KvError::Dag(e) => FsError::Dag(e),
            KvError::Chunk(e) => FsError::Chunk(e),
            KvError::Corrupt { cid, reason } => FsError::Corrupt { cid, reason },
            // Directory trees are built from names and records the
            // filesystem checked: anything else is its own fault.
            other => FsError::Lost(other.to_string()),
        }
    }
}

impl From<ChunkError> for FsError {
    fn from(e: ChunkError) -> Self {
        FsError::Chunk(Box::new(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lost_file_is_named_by_its_path_and_keeps_its_errno() {
        let lost = FsError::LostNoSpace("disk full".into())
            .within(b"big")
            .within(b"dir");
        assert_eq!(lost.errno(), Errno(libc::ENOSPC));
        assert_eq!(
            lost.to_string(),
            "/dir/big: file content lost, the store is full: disk full; \
             remove or truncate it, and the rest commits"
        );
        let other = FsError::NotFound.within(b"x");
        assert_eq!(other.errno(), Errno(libc::ENOENT));
        assert_eq!(
            FsError::Lost("gone".into()).within(b"f").errno(),
            Errno(libc::EIO)
        );
    }
}
