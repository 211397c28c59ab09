//! The error type of `hydra-dag`.

use std::path::PathBuf;

use crate::cid::Cid;

/// Result alias for fallible `hydra-dag` operations.
pub type DagResult<T> = Result<T, DagError>;

/// Everything that can go wrong in the block layer.
#[derive(Debug, thiserror::Error)]
pub enum DagError {
    /// A CID string or byte sequence could not be parsed.
    #[error("invalid CID {input:?}: {reason}")]
    InvalidCid {
        /// What was given (truncated for display).
        input: String,
        /// Why it was refused.
        reason: String,
    },
    /// Stored bytes do not hash to the CID they were stored under.
    #[error("integrity error: block {cid} does not match its content hash")]
    Integrity {
        /// The CID whose bytes failed verification.
        cid: Cid,
    },
    /// A changelog entry whose signature does not match it.
    #[error("changelog entry {id} ({name}) does not match its signature by {signer}")]
    BadSignature {
        /// The entry's id.
        id: u64,
        /// The ref it moved.
        name: String,
        /// Who it claims signed it.
        signer: String,
    },
    /// A block that must exist is absent.
    #[error("block {cid} not found")]
    NotFound {
        /// The missing block.
        cid: Cid,
    },
    /// A block is larger than the 1 MiB limit.
    #[error("block of {size} bytes exceeds the {max}-byte block limit")]
    BlockTooLarge {
        /// Size of the offending block.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// A compare-and-swap on a ref found another value than expected.
    #[error("ref {name} changed concurrently: expected {}, found {}", show(.expected), show(.actual))]
    RefConflict {
        /// The ref.
        name: String,
        /// The value the caller expected.
        expected: Option<Cid>,
        /// The value the ref holds.
        actual: Option<Cid>,
    },
    /// A ref name that is not allowed.
    #[error("invalid ref name {name:?}: {reason}")]
    InvalidRefName {
        /// The rejected name.
        name: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// Bytes that are not valid DAG-CBOR.
    #[error("invalid DAG-CBOR at byte {offset}: {reason}")]
    Cbor {
        /// Offset of the problem within the block.
        offset: usize,
        /// What is wrong.
        reason: String,
    },
    /// A malformed CAR stream.
    #[error("invalid CAR file at byte {offset}: {reason}")]
    Car {
        /// Offset of the problem within the file.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// A problem with the store directory or its configuration.
    #[error("store {path}: {reason}")]
    Store {
        /// The store directory.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Another process holds the store's writer lock.
    #[error("store {path} is locked by another writer{}", .holder.as_ref().map(|h| format!(" ({h})")).unwrap_or_default())]
    Locked {
        /// The store directory.
        path: PathBuf,
        /// Who holds it, when known.
        holder: Option<String>,
    },
    /// A pack file does not hold what the index says.
    #[error("corrupt pack {path} at offset {offset}: {reason}")]
    CorruptPack {
        /// The pack file.
        path: PathBuf,
        /// Where the problem is.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// An I/O error on a named file.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// An I/O error on a stream (stdin, a pipe).
    #[error("I/O error: {0}")]
    Stream(#[from] std::io::Error),
    /// An error from the SQLite index.
    #[error("SQLite index: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The operation is not supported by this backend.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// Anything else.
    #[error("{0}")]
    Other(String),
}

fn show(cid: &Option<Cid>) -> String {
    cid.map_or_else(|| "nothing".to_string(), |c| c.to_string())
}

impl DagError {
    /// Whether the store ran out of space (a full disk or a quota).
    pub fn is_no_space(&self) -> bool {
        use std::io::ErrorKind::{QuotaExceeded, StorageFull};
        match self {
            DagError::Io { source, .. } | DagError::Stream(source) => {
                matches!(source.kind(), StorageFull | QuotaExceeded)
            }
            DagError::Sqlite(e) => e.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull),
            _ => false,
        }
    }

    /// Wraps an I/O error with the path it happened on.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        DagError::Io {
            path: path.into(),
            source,
        }
    }
}
