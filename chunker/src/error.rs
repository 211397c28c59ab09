//! The error type of `hydra-chunker`.

use hydra_dag::{Cid, DagError};

/// Result alias for chunker operations.
pub type ChunkResult<T> = Result<T, ChunkError>;

/// Everything that can go wrong while writing, reading or editing blobs.
#[derive(Debug, thiserror::Error)]
pub enum ChunkError {
    /// The block layer failed (missing or corrupt block, I/O).
    #[error(transparent)]
    Dag(#[from] DagError),
    /// Reading the input stream failed.
    #[error("reading input: {0}")]
    Input(#[source] std::io::Error),
    /// A blob tree node that does not decode as one.
    #[error("blob node {cid} is malformed: {reason}")]
    Malformed {
        /// The node.
        cid: Cid,
        /// What is wrong.
        reason: String,
    },
    /// Chunk size bounds that FastCDC cannot use.
    #[error("invalid chunking parameters: {0}")]
    Params(String),
    /// A read or edit outside the blob.
    #[error("offset {offset} is beyond the end of a {size}-byte blob")]
    OutOfRange {
        /// The offset asked for.
        offset: u64,
        /// The blob's size.
        size: u64,
    },
    /// The background hashing thread died.
    #[error("chunk hashing thread failed: {0}")]
    Worker(String),
}

impl ChunkError {
    /// Whether the store ran out of space (a full disk or a quota).
    pub fn is_no_space(&self) -> bool {
        matches!(self, ChunkError::Dag(e) if e.is_no_space())
    }
}

impl From<ChunkError> for std::io::Error {
    fn from(e: ChunkError) -> Self {
        match e {
            ChunkError::Input(io) => io,
            other => std::io::Error::other(other),
        }
    }
}
