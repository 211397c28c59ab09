//! The error type of `hydra-git`.

use hydra_dag::DagError;

use crate::object::Oid;

/// Result alias for git view operations.
pub type GitResult<T> = Result<T, GitError>;

/// Everything a git view operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    /// No repository of that name in the store.
    #[error("no git repository named {0} in the store")]
    NoRepo(String),
    /// A revision that names nothing.
    #[error("unknown revision {0}")]
    UnknownRevision(String),
    /// An abbreviated id that names more than one object.
    #[error("short object id {0} is ambiguous")]
    Ambiguous(String),
    /// A path that is not in the tree.
    #[error("path {path} does not exist in {rev}")]
    NoPath {
        /// The path.
        path: String,
        /// The revision.
        rev: String,
    },
    /// An object the repository needs but does not have.
    #[error("object {oid} is missing{}", context.as_deref().map(|c| format!(" ({c})")).unwrap_or_default())]
    MissingObject {
        /// The object.
        oid: Oid,
        /// Who needs it.
        context: Option<String>,
    },
    /// An object whose bytes do not hash to its id, or that does not parse.
    #[error("object {oid} is corrupt: {reason}")]
    CorruptObject {
        /// The object.
        oid: Oid,
        /// What is wrong.
        reason: String,
    },
    /// An object of another kind than the one asked for.
    #[error("{oid} is a {found}, not a {wanted}")]
    WrongKind {
        /// The object.
        oid: Oid,
        /// What it is.
        found: &'static str,
        /// What was needed.
        wanted: &'static str,
    },
    /// The source repository cannot be imported as a whole.
    #[error("{0}")]
    Source(String),
    /// A ref name git would refuse.
    #[error("invalid ref name {0:?}")]
    BadRefName(String),
    /// A push that would drop commits.
    #[error("{0} is not a fast-forward (force it to replace)")]
    NotFastForward(String),
    /// Another writer moved the repository's ref first.
    #[error("git/{0} was changed by another writer")]
    Conflict(String),
    /// A stored node of the view that does not decode.
    #[error("corrupt repository node: {0}")]
    Corrupt(String),
    /// libgit2 failed (reading or writing a real repository).
    #[error("git: {0}")]
    Git(#[from] git2::Error),
    /// Reading or writing local files failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// Why it failed.
        source: std::io::Error,
    },
    /// The block layer failed.
    #[error(transparent)]
    Dag(Box<DagError>),
    /// A content blob failed.
    #[error(transparent)]
    Chunk(Box<hydra_chunker::ChunkError>),
    /// The object or ref map failed.
    #[error(transparent)]
    Kv(Box<hydra_kv::KvError>),
    /// The filesystem a checkout writes to failed.
    #[error(transparent)]
    Fs(Box<hydra_fs::FsError>),
}

impl From<DagError> for GitError {
    fn from(e: DagError) -> Self {
        GitError::Dag(Box::new(e))
    }
}

impl From<hydra_chunker::ChunkError> for GitError {
    fn from(e: hydra_chunker::ChunkError) -> Self {
        GitError::Chunk(Box::new(e))
    }
}

impl From<hydra_kv::KvError> for GitError {
    fn from(e: hydra_kv::KvError) -> Self {
        GitError::Kv(Box::new(e))
    }
}

impl From<hydra_fs::FsError> for GitError {
    fn from(e: hydra_fs::FsError) -> Self {
        GitError::Fs(Box::new(e))
    }
}

impl GitError {
    /// An I/O failure with what was being done.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> GitError {
        GitError::Io {
            context: context.into(),
            source,
        }
    }
}
