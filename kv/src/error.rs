//! The error type of `hydra-kv`.

use hydra_dag::{Cid, DagError};

/// Result alias for key/value operations.
pub type KvResult<T> = Result<T, KvError>;

/// Everything a key/value operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum KvError {
    /// A key longer than [`crate::MAX_KEY`] bytes.
    #[error("key of {len} bytes is over the {max}-byte limit")]
    KeyTooLong {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A tree node that does not decode as one.
    #[error("corrupt tree node {cid}: {reason}")]
    Corrupt {
        /// The node.
        cid: Cid,
        /// What is wrong.
        reason: String,
    },
    /// A call the tree cannot answer as asked (an inner node's item taken
    /// for a value).
    #[error("invalid request: {0}")]
    Invalid(&'static str),
    /// Another writer committed first (compare-and-swap of the ref failed).
    #[error("{name} was changed by another writer at a key this change also changes")]
    Conflict {
        /// The ref.
        name: String,
    },
    /// The block layer failed (boxed: it is large, and rare).
    #[error(transparent)]
    Dag(Box<DagError>),
    /// A large value's blob failed.
    #[error(transparent)]
    Chunk(Box<hydra_chunker::ChunkError>),
}

impl From<DagError> for KvError {
    fn from(e: DagError) -> Self {
        KvError::Dag(Box::new(e))
    }
}

impl From<hydra_chunker::ChunkError> for KvError {
    fn from(e: hydra_chunker::ChunkError) -> Self {
        KvError::Chunk(Box::new(e))
    }
}
