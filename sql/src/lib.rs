//! `hydra-sql`: SQLite whose pages live in the block DAG.
//!
//! A database `NAME` is the ref `sql/NAME`: a prolly tree of the database
//! file's 4 KiB units, each a raw block, so a commit stores only the pages
//! it changed and every commit is a version to open again. SQLite itself
//! (the bundled engine, all of it) runs over the [`vfs`] that maps its file
//! operations onto that tree; each transaction's commit is one logged
//! compare-and-swap of the ref. Every session also has the table-valued
//! functions `hydra_files('FS')`, `hydra_kv('NAME')` and
//! `hydra_quads('NAME')`.
//!
//! ```
//! use hydra_dag::Bucket;
//! use hydra_sql::Database;
//!
//! let bucket = Bucket::in_memory();
//! let db = Database::open(&bucket, "demo")?;
//! db.conn().execute_batch("CREATE TABLE t(x); INSERT INTO t VALUES (42);")?;
//! let x: i64 = db.conn().query_row("SELECT x FROM t", [], |r| r.get(0))?;
//! assert_eq!(x, 42);
//! # Ok::<(), hydra_sql::SqlError>(())
//! ```

mod complete;
mod error;
pub mod pages;
pub mod vfs;
mod vtab;

use std::sync::{Arc, Mutex};

use hydra_dag::{Bucket, Cid, LogEntry, RefName};
pub use rusqlite;
use rusqlite::{Connection, OpenFlags};

pub use complete::is_complete;
pub use error::{SqlError, SqlResult};
use pages::Source;
use vfs::Target;

/// An open database: a SQLite connection over the store.
#[derive(Debug)]
pub struct Database {
    conn: Connection,
    target: Arc<Target>,
    path: String,
}

/// The ref that holds database `name`.
pub fn ref_name(name: &str) -> SqlResult<RefName> {
    Ok(RefName::new(format!("sql/{name}"))?)
}

/// The commits of database `name`, newest first.
pub fn log(bucket: &Bucket, name: &str, limit: usize) -> SqlResult<Vec<LogEntry>> {
    Ok(bucket.log(Some(&ref_name(name)?), limit)?)
}

impl Database {
    /// Opens database `name` for reading and writing (empty until its
    /// first commit).
    pub fn open(bucket: &Bucket, name: &str) -> SqlResult<Database> {
        let source = Source::Live(ref_name(name)?);
        Database::with_source(bucket, source, OpenFlags::SQLITE_OPEN_READ_WRITE)
    }

    /// Opens the version of a database whose root is `root`, read-only.
    pub fn open_at(bucket: &Bucket, root: Option<Cid>) -> SqlResult<Database> {
        Database::with_source(bucket, Source::At(root), OpenFlags::SQLITE_OPEN_READ_ONLY)
    }

    fn with_source(bucket: &Bucket, source: Source, flags: OpenFlags) -> SqlResult<Database> {
        vfs::register().map_err(|rc| {
            SqlError::Sqlite(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rc),
                None,
            ))
        })?;
        let target = Arc::new(Target {
            bucket: bucket.clone(),
            source,
            message: Mutex::new("sql".to_string()),
            last_error: Mutex::new(None),
        });
        let path = vfs::add_target(target.clone());
        let flags = flags | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_EXRESCODE;
        let opened = Connection::open_with_flags_and_vfs(&path, flags, "hydra").and_then(|conn| {
            // The journal never needs to outlive the connection: until a
            // commit the store holds the previous version whole.
            conn.pragma_update(None, "journal_mode", "MEMORY")?;
            conn.pragma_update(None, "synchronous", "FULL")?;
            conn.busy_timeout(std::time::Duration::from_secs(5))?;
            vtab::register(&conn, bucket)?;
            Ok(conn)
        });
        match opened {
            Ok(conn) => Ok(Database { conn, target, path }),
            Err(e) => {
                vfs::remove_target(&path);
                Err(
                    match target.last_error.lock().ok().and_then(|mut l| l.take()) {
                        Some(detail) => SqlError::Corrupt {
                            name: path,
                            reason: format!("{e}: {detail}"),
                        },
                        None => e.into(),
                    },
                )
            }
        }
    }

    /// The SQLite connection.
    pub fn conn(&self) -> &Connection {
        &self.conn
    }

    /// Runs `sql` (any number of statements) and hands each statement's
    /// result to `out`. Until the script itself begins, commits or rolls
    /// back a transaction, its statements run in one transaction, so a
    /// failing statement leaves the database as it was before the script.
    pub fn run_script(&self, sql: &str, out: &mut dyn FnMut(ResultSet)) -> SqlResult<()> {
        let conn = &self.conn;
        let mut wrapped = conn.is_autocommit();
        if wrapped {
            conn.execute_batch("BEGIN")?;
        }
        let result = (|| -> SqlResult<()> {
            let mut batch = rusqlite::Batch::new(conn, sql);
            while let Some(mut stmt) = batch.next()? {
                let text = stmt.expanded_sql().unwrap_or_default();
                if wrapped && controls_transactions(&text) {
                    // The script manages its own transactions from here.
                    conn.execute_batch("COMMIT")?;
                    wrapped = false;
                }
                let columns: Vec<String> =
                    stmt.column_names().iter().map(|c| c.to_string()).collect();
                let width = columns.len();
                let mut rows = Vec::new();
                let mut query = stmt.query([])?;
                while let Some(row) = query.next()? {
                    let mut values = Vec::with_capacity(width);
                    for i in 0..width {
                        values.push(row.get::<_, rusqlite::types::Value>(i)?);
                    }
                    rows.push(values);
                }
                if width > 0 {
                    out(ResultSet { columns, rows });
                }
            }
            Ok(())
        })();
        match result {
            Ok(()) if wrapped => {
                conn.execute_batch("COMMIT")?;
                Ok(())
            }
            Ok(()) => Ok(()),
            Err(e) => {
                if !conn.is_autocommit() {
                    let _ = conn.execute_batch("ROLLBACK");
                }
                Err(e)
            }
        }
    }

    /// Sets the changelog message of the commits that follow.
    pub fn set_message(&self, message: &str) {
        if let Ok(mut m) = self.target.message.lock() {
            *m = message.to_string();
        }
    }

    /// What the store said when SQLite last reported an I/O error.
    pub fn take_storage_error(&self) -> Option<String> {
        self.target
            .last_error
            .lock()
            .ok()
            .and_then(|mut l| l.take())
    }
}

/// The rows one statement returned.
#[derive(Debug, Clone, PartialEq)]
pub struct ResultSet {
    /// Column names.
    pub columns: Vec<String>,
    /// The rows, each as wide as `columns`.
    pub rows: Vec<Vec<rusqlite::types::Value>>,
}

/// Whether a statement begins, ends or marks a transaction.
fn controls_transactions(sql: &str) -> bool {
    let mut rest = sql.trim_start();
    loop {
        if let Some(after) = rest.strip_prefix("--") {
            rest = after.split_once('\n').map_or("", |(_, r)| r).trim_start();
        } else if let Some(after) = rest.strip_prefix("/*") {
            rest = after.split_once("*/").map_or("", |(_, r)| r).trim_start();
        } else {
            break;
        }
    }
    let first = rest
        .split(|c: char| !c.is_ascii_alphabetic())
        .next()
        .unwrap_or("")
        .to_ascii_uppercase();
    matches!(
        first.as_str(),
        "BEGIN" | "COMMIT" | "END" | "ROLLBACK" | "SAVEPOINT" | "RELEASE"
    )
}

impl Drop for Database {
    fn drop(&mut self) {
        vfs::remove_target(&self.path);
    }
}
