//! The error type of `hydra-sql`.

use hydra_dag::DagError;
use hydra_kv::KvError;

/// Result alias for SQL view operations.
pub type SqlResult<T> = Result<T, SqlError>;

/// Everything opening or committing a database can fail with.
#[derive(Debug, thiserror::Error)]
pub enum SqlError {
    /// SQLite's own error, with its message (and nothing after it).
    #[error("{0}")]
    Sqlite(rusqlite::Error),
    /// Another writer committed to the database first.
    #[error("database {name} was changed by another writer")]
    Conflict {
        /// The database.
        name: String,
    },
    /// A page map that is not one this view wrote.
    #[error("corrupt database {name}: {reason}")]
    Corrupt {
        /// The database.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// The tree of pages failed.
    #[error(transparent)]
    Kv(Box<KvError>),
    /// The block layer failed.
    #[error(transparent)]
    Dag(Box<DagError>),
}

impl From<rusqlite::Error> for SqlError {
    fn from(e: rusqlite::Error) -> Self {
        SqlError::Sqlite(e)
    }
}

impl From<KvError> for SqlError {
    fn from(e: KvError) -> Self {
        SqlError::Kv(Box::new(e))
    }
}

impl From<DagError> for SqlError {
    fn from(e: DagError) -> Self {
        SqlError::Dag(Box::new(e))
    }
}
