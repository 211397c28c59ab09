//! Table-valued functions over the store, in every session:
//! `hydra_files('FS')`, `hydra_kv('NAME')`, `hydra_quads('NAME')` and
//! `hydra_git_commits('NAME')`.
//!
//! Each reads the newest commit of what it names when its query starts.
//! `unsafe` is forced by rusqlite's virtual table traits (the structs are
//! `repr(C)` with SQLite's base struct first, as those traits require).

#![allow(unsafe_code)]

use std::ops::Bound;
use std::os::raw::c_int;

use hydra_chunker::Blob;
use hydra_dag::{Bucket, Cid, RefName};
use hydra_fs::Kind;
use hydra_fs::node::{Record, Stored};
use hydra_git::{Oid, Repo};
use hydra_kv::graph::{Graph, matches};
use hydra_kv::{Item, Kv};
use rusqlite::types::Value;
use rusqlite::vtab::{
    Context, IndexConstraintOp, IndexInfo, VTab, VTabConfig, VTabConnection, VTabCursor, Values,
    eponymous_only_module,
};
use rusqlite::{Connection, Error, Result, ffi};

/// Which function a table is.
#[derive(Debug, Clone, Copy)]
enum Source {
    Files,
    Kv,
    Quads,
    GitCommits,
}

impl Source {
    fn columns(self) -> &'static [&'static str] {
        match self {
            Source::Files => &["path", "kind", "size", "mode", "uid", "gid", "mtime", "cid"],
            Source::Kv => &["key", "value"],
            Source::Quads => &["s", "p", "o", "g"],
            Source::GitCommits => &[
                "id",
                "tree",
                "parents",
                "author",
                "author_email",
                "author_time",
                "committer",
                "committer_email",
                "commit_time",
                "summary",
                "message",
            ],
        }
    }

    fn function(self) -> &'static str {
        match self {
            Source::Files => "hydra_files",
            Source::Kv => "hydra_kv",
            Source::Quads => "hydra_quads",
            Source::GitCommits => "hydra_git_commits",
        }
    }
}

/// Registers the functions on `conn`, reading from `bucket`.
pub fn register(conn: &Connection, bucket: &Bucket) -> Result<()> {
    for source in [Source::Files, Source::Kv, Source::Quads, Source::GitCommits] {
        conn.create_module(
            source.function(),
            eponymous_only_module::<StoreTab>(),
            Some((bucket.clone(), source)),
        )?;
    }
    Ok(())
}

#[repr(C)]
struct StoreTab {
    base: ffi::sqlite3_vtab,
    bucket: Bucket,
    source: Source,
}

// SAFETY: `StoreTab` is repr(C) with `sqlite3_vtab` first, as the trait
// requires; it holds no pointers into SQLite.
unsafe impl<'vtab> VTab<'vtab> for StoreTab {
    type Aux = (Bucket, Source);
    type Cursor = StoreCursor;

    fn connect(
        db: &mut VTabConnection,
        aux: Option<&(Bucket, Source)>,
        _args: &[&[u8]],
    ) -> Result<(String, StoreTab)> {
        let Some((bucket, source)) = aux else {
            return Err(Error::ModuleError("no store behind the table".into()));
        };
        db.config(VTabConfig::Innocuous)?;
        let schema = format!(
            "CREATE TABLE x({}, name HIDDEN)",
            source.columns().join(", ")
        );
        Ok((
            schema,
            StoreTab {
                base: ffi::sqlite3_vtab::default(),
                bucket: bucket.clone(),
                source: *source,
            },
        ))
    }

    fn best_index(&self, info: &mut IndexInfo) -> Result<()> {
        let hidden = self.source.columns().len() as c_int;
        let mut found = None;
        let mut unusable = false;
        for (i, c) in info.constraints().enumerate() {
            if c.column() == hidden && c.operator() == IndexConstraintOp::SQLITE_INDEX_CONSTRAINT_EQ
            {
                if c.is_usable() {
                    found = Some(i);
                } else {
                    unusable = true;
                }
            }
        }
        match found {
            Some(i) => {
                let mut usage = info.constraint_usage(i);
                usage.set_argv_index(1);
                usage.set_omit(true);
                info.set_estimated_cost(1000.0);
                info.set_idx_num(1);
            }
            // The argument comes from a join: ask for another order.
            None if unusable => {
                return Err(Error::SqliteFailure(
                    ffi::Error::new(ffi::SQLITE_CONSTRAINT),
                    None,
                ));
            }
            None => {
                info.set_estimated_cost(f64::MAX);
                info.set_idx_num(0);
            }
        }
        Ok(())
    }

    fn open(&'vtab mut self) -> Result<StoreCursor> {
        Ok(StoreCursor {
            base: ffi::sqlite3_vtab_cursor::default(),
            bucket: self.bucket.clone(),
            source: self.source,
            rows: Vec::new(),
            at: 0,
        })
    }
}

#[repr(C)]
struct StoreCursor {
    base: ffi::sqlite3_vtab_cursor,
    bucket: Bucket,
    source: Source,
    rows: Vec<Vec<Value>>,
    at: usize,
}

fn fail(e: impl std::fmt::Display) -> Error {
    Error::ModuleError(e.to_string())
}

fn text_or_blob(b: &[u8]) -> Value {
    match std::str::from_utf8(b) {
        Ok(s) => Value::Text(s.to_string()),
        Err(_) => Value::Blob(b.to_vec()),
    }
}

fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::File => "file",
        Kind::Dir => "dir",
        Kind::Symlink => "symlink",
        Kind::Fifo => "fifo",
        Kind::CharDev => "char",
        Kind::BlockDev => "block",
        Kind::Socket => "socket",
    }
}

fn file_row(path: &[u8], r: &Record) -> Vec<Value> {
    let (size, cid): (u64, Option<Cid>) = match &r.content {
        Stored::File(blob) => (
            blob.size(),
            match blob {
                Blob::Stored { root, .. } => Some(*root),
                Blob::Inline(_) => None,
            },
        ),
        Stored::Dir(list) => (0, *list),
        Stored::Symlink(target) => (target.len() as u64, None),
        Stored::Special => (0, None),
    };
    vec![
        text_or_blob(path),
        Value::Text(kind_name(r.kind).into()),
        Value::Integer(size as i64),
        Value::Integer(i64::from(r.kind.type_bits() | r.meta.perm)),
        Value::Integer(i64::from(r.meta.uid)),
        Value::Integer(i64::from(r.meta.gid)),
        Value::Integer(r.meta.mtime.div_euclid(1_000_000_000)),
        cid.map_or(Value::Null, |c| Value::Text(c.to_string())),
    ]
}

impl StoreCursor {
    fn load(&mut self, name: &str) -> std::result::Result<Vec<Vec<Value>>, String> {
        let mut rows = Vec::new();
        match self.source {
            Source::Files => {
                let refname = RefName::new(format!("fs/{name}")).map_err(|e| e.to_string())?;
                let root = self
                    .bucket
                    .get_ref(&refname)
                    .map_err(|e| e.to_string())?
                    .ok_or_else(|| format!("no filesystem {name}"))?;
                hydra_fs::walk(&self.bucket, &root, &mut |path, record| {
                    rows.push(file_row(path, record));
                    Ok(true)
                })
                .map_err(|e| e.to_string())?;
            }
            Source::Kv => {
                let tree = Kv::open(self.bucket.clone(), name)
                    .and_then(|kv| kv.tree())
                    .map_err(|e| e.to_string())?;
                tree.scan(Bound::Unbounded, Bound::Unbounded, false, &mut |k, item| {
                    let value = match item {
                        Item::Value(v) => text_or_blob(v),
                        other => text_or_blob(&tree.value(other)?),
                    };
                    rows.push(vec![text_or_blob(k), value]);
                    Ok(true)
                })
                .map_err(|e| e.to_string())?;
            }
            Source::Quads => {
                let tree = Graph::open(self.bucket.clone(), name)
                    .and_then(|g| g.tree())
                    .map_err(|e| e.to_string())?;
                let all = matches(&tree, &[None, None, None, None], usize::MAX)
                    .map_err(|e| e.to_string())?;
                for q in all {
                    rows.push(vec![
                        Value::Text(q.s),
                        Value::Text(q.p),
                        Value::Text(q.o),
                        Value::Text(q.g),
                    ]);
                }
            }
            Source::GitCommits => {
                let repo = Repo::open_existing(&self.bucket, name).map_err(|e| e.to_string())?;
                // Every commit a ref reaches, newest first, as git log --all.
                let starts: Vec<Oid> = repo
                    .refs()
                    .keys()
                    .filter_map(|r| repo.ref_target(r))
                    .filter(|oid| repo.commit_object(oid).is_ok())
                    .collect();
                let commits = repo.log(&starts, usize::MAX).map_err(|e| e.to_string())?;
                for (oid, c) in commits {
                    let parents: Vec<String> = c.parents.iter().map(Oid::to_string).collect();
                    rows.push(vec![
                        Value::Text(oid.to_string()),
                        Value::Text(c.tree.to_string()),
                        Value::Text(parents.join(" ")),
                        Value::Text(c.author.name.clone()),
                        Value::Text(c.author.email.clone()),
                        Value::Integer(c.author.time),
                        Value::Text(c.committer.name.clone()),
                        Value::Text(c.committer.email.clone()),
                        Value::Integer(c.committer.time),
                        Value::Text(c.summary().to_string()),
                        Value::Text(c.message.clone()),
                    ]);
                }
            }
        }
        Ok(rows)
    }
}

// SAFETY: `StoreCursor` is repr(C) with `sqlite3_vtab_cursor` first, as
// the trait requires; it holds no pointers into SQLite.
unsafe impl VTabCursor for StoreCursor {
    fn filter(&mut self, idx_num: c_int, _idx_str: Option<&str>, args: &Values<'_>) -> Result<()> {
        let function = self.source.function();
        if idx_num != 1 || args.len() != 1 {
            return Err(fail(format!(
                "{function}(NAME) needs the name of what to read"
            )));
        }
        let name: String = args
            .get(0)
            .map_err(|_| fail(format!("{function}(NAME): the name must be text")))?;
        self.rows = self
            .load(&name)
            .map_err(|e| fail(format!("{function}('{name}'): {e}")))?;
        self.at = 0;
        Ok(())
    }

    fn next(&mut self) -> Result<()> {
        self.at += 1;
        Ok(())
    }

    fn eof(&self) -> bool {
        self.at >= self.rows.len()
    }

    fn column(&self, ctx: &mut Context, i: c_int) -> Result<()> {
        let value = usize::try_from(i)
            .ok()
            .and_then(|i| self.rows.get(self.at)?.get(i))
            .cloned()
            .unwrap_or(Value::Null);
        ctx.set_result(&value)
    }

    fn rowid(&self) -> Result<i64> {
        Ok(self.at as i64 + 1)
    }
}
