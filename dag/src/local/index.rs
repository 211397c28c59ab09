//! The SQLite index of the embedded volume: block locations, refs, changelog.

use std::path::Path;

use rusqlite::{Connection, OpenFlags, OptionalExtension, Transaction, params};

use crate::cid::Cid;
use crate::error::{DagError, DagResult};
use crate::identity::Signature;
use crate::local::pack::PackId;
use crate::refs::{LogEntry, RefName};

/// Schema version written into `meta`. Version 2 keeps mostly-zero blocks
/// inline, trimmed (`offset` zeros, the stored bytes, zeros up to `len`);
/// a version 1 index reads the same under that rule, so it is only marked.
const SCHEMA_VERSION: i64 = 2;

/// The changelog's `signature` is the signer's public key then the ed25519
/// signature (96 bytes), or NULL for an unsigned entry.
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
-- pack 0 means the bytes are inline, in inline_blocks: `offset` zeros,
-- the stored bytes, then zeros up to `len`.
CREATE TABLE IF NOT EXISTS blocks(
    cid BLOB PRIMARY KEY,
    pack INTEGER NOT NULL,
    offset INTEGER NOT NULL,
    len INTEGER NOT NULL,
    stored_ms INTEGER NOT NULL
) WITHOUT ROWID;
-- With len, a pack's blocks in order come from the index alone (compaction,
-- locations looked up ahead of a sequential reader).
CREATE INDEX IF NOT EXISTS blocks_in_pack_order ON blocks(pack, offset, len);
DROP INDEX IF EXISTS blocks_by_pack;
CREATE TABLE IF NOT EXISTS inline_blocks(cid BLOB PRIMARY KEY, data BLOB NOT NULL);
-- size: bytes of the pack up to the end of its last committed record.
CREATE TABLE IF NOT EXISTS packs(id INTEGER PRIMARY KEY, size INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS refs(name TEXT PRIMARY KEY, cid BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS changelog(
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    old BLOB,
    new BLOB,
    time_ns INTEGER NOT NULL,
    author TEXT NOT NULL,
    message TEXT NOT NULL,
    signature BLOB
);
CREATE INDEX IF NOT EXISTS changelog_by_name ON changelog(name, id);
";

/// Where a block's bytes are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Location {
    /// In the `inline_blocks` table, trimmed of zeros: `lead` zeros, the
    /// stored bytes, then zeros up to `len`.
    Inline {
        /// Zeros before the stored bytes.
        lead: u64,
        /// Length of the whole block.
        len: u64,
    },
    /// In a pack, `len` bytes at `offset`.
    Packed {
        /// The pack.
        pack: PackId,
        /// Offset of the data (past the record header).
        offset: u64,
        /// Length of the data.
        len: u64,
    },
}

/// Opens the index database, creating its schema when writable.
pub fn open(path: &Path, read_only: bool) -> DagResult<Connection> {
    let flags = if read_only {
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX
    } else {
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
    };
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    if !read_only {
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.execute_batch(SCHEMA)?;
        // Changelogs from before signing gain the column.
        let signed: i64 = conn.query_row(
            "SELECT COUNT(*) FROM pragma_table_info('changelog') WHERE name = 'signature'",
            [],
            |r| r.get(0),
        )?;
        if signed == 0 {
            conn.execute_batch("ALTER TABLE changelog ADD COLUMN signature BLOB")?;
        }
        let version: Option<String> = conn
            .query_row("SELECT value FROM meta WHERE key='schema'", [], |r| {
                r.get(0)
            })
            .optional()?;
        match version {
            None => {
                conn.execute(
                    "INSERT INTO meta(key, value) VALUES('schema', ?1)",
                    [SCHEMA_VERSION.to_string()],
                )?;
            }
            Some(v) if v == SCHEMA_VERSION.to_string() => {}
            Some(v) if v == "1" => {
                conn.execute(
                    "UPDATE meta SET value = ?1 WHERE key = 'schema'",
                    [SCHEMA_VERSION.to_string()],
                )?;
            }
            Some(v) => {
                return Err(DagError::Unsupported(format!(
                    "index schema version {v}; this hydra reads version {SCHEMA_VERSION}"
                )));
            }
        }
    }
    // FULL: a commit (a ref update, a batch of blocks) is durable when it
    // returns, which is what fsync and "acknowledged" promise callers.
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "cache_size", -16384)?;
    Ok(conn)
}

fn cid_from_sql(bytes: Vec<u8>) -> rusqlite::Result<Cid> {
    Cid::from_bytes(&bytes).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Blob, Box::new(e))
    })
}

fn opt_cid(bytes: Option<Vec<u8>>) -> rusqlite::Result<Option<Cid>> {
    bytes.map(cid_from_sql).transpose()
}

/// Where `cid` is stored, if it is.
pub fn locate(conn: &Connection, cid: &Cid) -> DagResult<Option<Location>> {
    let mut stmt = conn.prepare_cached("SELECT pack, offset, len FROM blocks WHERE cid = ?1")?;
    let row = stmt
        .query_row([cid.to_bytes()], |r| {
            Ok((
                r.get::<_, u32>(0)?,
                r.get::<_, u64>(1)?,
                r.get::<_, u64>(2)?,
            ))
        })
        .optional()?;
    Ok(row.map(|(pack, offset, len)| {
        if pack == 0 {
            Location::Inline { lead: offset, len }
        } else {
            Location::Packed {
                pack: PackId(pack),
                offset,
                len,
            }
        }
    }))
}

/// The bytes of an inline block.
pub fn inline_data(conn: &Connection, cid: &Cid) -> DagResult<Option<Vec<u8>>> {
    let mut stmt = conn.prepare_cached("SELECT data FROM inline_blocks WHERE cid = ?1")?;
    Ok(stmt.query_row([cid.to_bytes()], |r| r.get(0)).optional()?)
}

/// Whether `cid` is indexed.
pub fn contains(conn: &Connection, cid: &Cid) -> DagResult<bool> {
    let mut stmt = conn.prepare_cached("SELECT 1 FROM blocks WHERE cid = ?1")?;
    Ok(stmt.exists([cid.to_bytes()])?)
}

/// Records a block's location.
pub fn insert(
    tx: &Transaction<'_>,
    cid: &Cid,
    loc: Location,
    len: u64,
    stored_ms: i64,
) -> DagResult<()> {
    let (pack, offset) = match loc {
        Location::Inline { lead, .. } => (0, lead),
        Location::Packed { pack, offset, .. } => (pack.0, offset),
    };
    let mut stmt = tx.prepare_cached(
        "INSERT OR IGNORE INTO blocks(cid, pack, offset, len, stored_ms) VALUES(?1, ?2, ?3, ?4, ?5)",
    )?;
    stmt.execute(params![cid.to_bytes(), pack, offset, len, stored_ms])?;
    Ok(())
}

/// Marks an existing block as stored again now (for GC's grace period).
pub fn touch(tx: &Transaction<'_>, cid: &Cid, stored_ms: i64) -> DagResult<()> {
    tx.prepare_cached("UPDATE blocks SET stored_ms = ?2 WHERE cid = ?1")?
        .execute(params![cid.to_bytes(), stored_ms])?;
    Ok(())
}

/// Stores an inline block's bytes.
pub fn insert_inline(tx: &Transaction<'_>, cid: &Cid, data: &[u8]) -> DagResult<()> {
    let mut stmt =
        tx.prepare_cached("INSERT OR IGNORE INTO inline_blocks(cid, data) VALUES(?1, ?2)")?;
    stmt.execute(params![cid.to_bytes(), data])?;
    Ok(())
}

/// Removes a block; returns whether it was there.
pub fn delete(tx: &Transaction<'_>, cid: &Cid) -> DagResult<bool> {
    let key = cid.to_bytes();
    let n = tx
        .prepare_cached("DELETE FROM blocks WHERE cid = ?1")?
        .execute([&key])?;
    tx.prepare_cached("DELETE FROM inline_blocks WHERE cid = ?1")?
        .execute([&key])?;
    Ok(n > 0)
}

/// Sets a pack's committed size (creating its row).
pub fn set_pack_size(tx: &Transaction<'_>, pack: PackId, size: u64) -> DagResult<()> {
    tx.prepare_cached("INSERT OR REPLACE INTO packs(id, size) VALUES(?1, ?2)")?
        .execute(params![pack.0, size])?;
    Ok(())
}

/// Moves a pack's committed size up to `size` (never down: batches
/// written side by side may commit out of order).
pub fn grow_pack(tx: &Transaction<'_>, pack: PackId, size: u64) -> DagResult<()> {
    tx.prepare_cached("UPDATE packs SET size = MAX(size, ?2) WHERE id = ?1")?
        .execute(params![pack.0, size])?;
    Ok(())
}

/// Every pack and its committed size, by id.
pub fn packs(conn: &Connection) -> DagResult<Vec<(PackId, u64)>> {
    let mut stmt = conn.prepare_cached("SELECT id, size FROM packs ORDER BY id")?;
    let rows = stmt.query_map([], |r| Ok((PackId(r.get(0)?), r.get(1)?)))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// The live blocks of a pack, by offset: (cid, data offset, length).
pub fn blocks_in_pack(conn: &Connection, pack: PackId) -> DagResult<Vec<(Cid, u64, u64)>> {
    let mut stmt =
        conn.prepare_cached("SELECT cid, offset, len FROM blocks WHERE pack = ?1 ORDER BY offset")?;
    let rows = stmt.query_map([pack.0], |r| {
        Ok((cid_from_sql(r.get(0)?)?, r.get(1)?, r.get(2)?))
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Up to `limit` packed blocks of `pack` that start after `offset`, in
/// pack order: (cid, data offset, length).
pub fn blocks_after(
    conn: &Connection,
    pack: PackId,
    offset: u64,
    limit: u32,
) -> DagResult<Vec<(Cid, u64, u64)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT cid, offset, len FROM blocks WHERE pack = ?1 AND offset > ?2 ORDER BY offset LIMIT ?3",
    )?;
    let rows = stmt.query_map(params![pack.0, offset, limit], |r| {
        Ok((cid_from_sql(r.get(0)?)?, r.get(1)?, r.get(2)?))
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// The root a ref names.
pub fn get_ref(conn: &Connection, name: &RefName) -> DagResult<Option<Cid>> {
    let mut stmt = conn.prepare_cached("SELECT cid FROM refs WHERE name = ?1")?;
    let raw: Option<Vec<u8>> = stmt.query_row([name.as_str()], |r| r.get(0)).optional()?;
    Ok(opt_cid(raw)?)
}

/// Sets or removes a ref, without any check.
pub fn write_ref(tx: &Transaction<'_>, name: &RefName, cid: Option<&Cid>) -> DagResult<()> {
    match cid {
        Some(cid) => tx
            .prepare_cached("INSERT OR REPLACE INTO refs(name, cid) VALUES(?1, ?2)")?
            .execute(params![name.as_str(), cid.to_bytes()])?,
        None => tx
            .prepare_cached("DELETE FROM refs WHERE name = ?1")?
            .execute([name.as_str()])?,
    };
    Ok(())
}

/// Appends a changelog entry; returns its id.
pub fn append_log(tx: &Transaction<'_>, entry: &LogEntry) -> DagResult<u64> {
    tx.prepare_cached(
        "INSERT INTO changelog(name, old, new, time_ns, author, message, signature)
         VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        entry.name.as_str(),
        entry.old.map(|c| c.to_bytes()),
        entry.new.map(|c| c.to_bytes()),
        entry.time_ns,
        entry.author,
        entry.message,
        entry.signature.map(|s| s.to_bytes())
    ])?;
    Ok(tx.last_insert_rowid() as u64)
}

/// Every ref, by name.
pub fn list_refs(conn: &Connection) -> DagResult<Vec<(RefName, Cid)>> {
    let mut stmt = conn.prepare_cached("SELECT name, cid FROM refs ORDER BY name")?;
    let rows = stmt.query_map([], |r| {
        Ok((r.get::<_, String>(0)?, cid_from_sql(r.get(1)?)?))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (name, cid) = row?;
        out.push((RefName::new(name)?, cid));
    }
    Ok(out)
}

/// Changelog entries, newest first.
pub fn log(conn: &Connection, name: Option<&RefName>, limit: usize) -> DagResult<Vec<LogEntry>> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let sql = |signature: &str| {
        format!(
            "SELECT id, name, old, new, time_ns, author, message, {signature} FROM changelog
             WHERE ?1 IS NULL OR name = ?1 ORDER BY id DESC LIMIT ?2"
        )
    };
    // A store last written before signing, opened read-only, lacks the column.
    let mut stmt = match conn.prepare_cached(&sql("signature")) {
        Ok(stmt) => stmt,
        Err(_) => conn.prepare_cached(&sql("NULL"))?,
    };
    let rows = stmt.query_map(params![name.map(|n| n.as_str()), limit], |r| {
        Ok((
            (r.get::<_, u64>(0)?, r.get::<_, String>(1)?),
            (opt_cid(r.get(2)?)?, opt_cid(r.get(3)?)?),
            r.get::<_, i64>(4)?,
            (r.get::<_, String>(5)?, r.get::<_, String>(6)?),
            r.get::<_, Option<Vec<u8>>>(7)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let ((id, name), (old, new), time_ns, (author, message), signature) = row?;
        out.push(LogEntry {
            id,
            name: RefName::new(name)?,
            old,
            new,
            time_ns,
            author,
            message,
            signature: signature.as_deref().and_then(Signature::from_bytes),
        });
    }
    Ok(out)
}

/// Calls `f` for every block: (cid, length, stored_ms).
pub fn for_each_block(conn: &Connection, f: &mut dyn FnMut(Cid, u64, i64)) -> DagResult<()> {
    let mut stmt = conn.prepare_cached("SELECT cid, len, stored_ms FROM blocks")?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        f(cid_from_sql(row.get(0)?)?, row.get(1)?, row.get(2)?);
    }
    Ok(())
}

/// (blocks, bytes, refs, changelog entries).
pub fn counts(conn: &Connection) -> DagResult<(u64, u64, u64, u64)> {
    Ok(conn.query_row(
        "SELECT (SELECT COUNT(*) FROM blocks), (SELECT COALESCE(SUM(len), 0) FROM blocks),
                (SELECT COUNT(*) FROM refs), (SELECT COUNT(*) FROM changelog)",
        [],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
    )?)
}
