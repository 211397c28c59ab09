//! Named key/value stores: a prolly tree whose root is the ref
//! `kv/<name>`, changed by transactions that commit with a logged
//! compare-and-swap (every commit is a changelog entry: the history).

use std::collections::BTreeMap;

use bytes::Bytes;
use hydra_dag::{Bucket, Cid, DagError, LogEntry, RefName, RefNote};

use crate::diff::diff_each;
use crate::error::{KvError, KvResult};
use crate::tree::{Edit, Tree, check_key};

/// A named key/value store.
#[derive(Debug, Clone)]
pub struct Kv {
    bucket: Bucket,
    name: RefName,
}

/// Changes to a store, applied together or not at all by [`Txn::commit`].
#[derive(Debug)]
pub struct Txn {
    kv: Kv,
    base: Tree,
    edits: BTreeMap<Bytes, Edit>,
}

impl Kv {
    /// The store `name` (empty until its first commit).
    pub fn open(bucket: Bucket, name: &str) -> KvResult<Kv> {
        Kv::at_ref(bucket, RefName::new(format!("kv/{name}"))?)
    }

    /// A tree named by any ref (the graph view keeps its own, `graph/…`).
    pub fn at_ref(bucket: Bucket, name: RefName) -> KvResult<Kv> {
        Ok(Kv { bucket, name })
    }

    /// The ref that names the store.
    pub fn ref_name(&self) -> &RefName {
        &self.name
    }

    /// The bucket the store lives in.
    pub fn bucket(&self) -> &Bucket {
        &self.bucket
    }

    /// The tree as last committed.
    pub fn tree(&self) -> KvResult<Tree> {
        Ok(Tree::new(
            self.bucket.clone(),
            self.bucket.get_ref(&self.name)?,
        ))
    }

    /// The tree at `root` (a snapshot).
    pub fn at(&self, root: Option<Cid>) -> Tree {
        Tree::new(self.bucket.clone(), root)
    }

    /// The store's commits, newest first.
    pub fn log(&self, limit: usize) -> KvResult<Vec<LogEntry>> {
        Ok(self.bucket.log(Some(&self.name), limit)?)
    }

    /// Starts a transaction on the current tree.
    pub fn begin(&self) -> KvResult<Txn> {
        Ok(Txn {
            kv: self.clone(),
            base: self.tree()?,
            edits: BTreeMap::new(),
        })
    }
}

impl Txn {
    /// Applies a change: a value, or `None` to delete.
    pub fn edit(&mut self, key: Bytes, edit: Edit) -> KvResult<()> {
        check_key(&key)?;
        self.edits.insert(key, edit);
        Ok(())
    }

    /// Sets `key` to `value`.
    pub fn put(&mut self, key: &[u8], value: &[u8]) -> KvResult<()> {
        check_key(key)?;
        self.edits.insert(
            Bytes::copy_from_slice(key),
            Some(Bytes::copy_from_slice(value)),
        );
        Ok(())
    }

    /// Deletes `key` (nothing happens if it is absent).
    pub fn delete(&mut self, key: &[u8]) -> KvResult<()> {
        check_key(key)?;
        self.edits.insert(Bytes::copy_from_slice(key), None);
        Ok(())
    }

    /// The value of `key` as this transaction sees it.
    pub fn get(&self, key: &[u8]) -> KvResult<Option<Bytes>> {
        match self.edits.get(key) {
            Some(edit) => Ok(edit.clone()),
            None => self.base.get(key),
        }
    }

    /// Changes buffered so far.
    pub fn len(&self) -> usize {
        self.edits.len()
    }

    /// Whether nothing was changed.
    pub fn is_empty(&self) -> bool {
        self.edits.is_empty()
    }

    /// Stores the changes and moves the ref. When another writer committed
    /// since this transaction began (another process, or another machine
    /// on a shared volume), the changes are replayed on its tree if none of
    /// the keys it changed are keys changed here; otherwise this fails with
    /// [`KvError::Conflict`], storing nothing visible.
    pub fn commit(self, message: &str) -> KvResult<Tree> {
        let session = self.kv.bucket.session();
        let note = RefNote::by_current_user(message);
        let mut base = self.base;
        loop {
            let new = base.apply(&session, self.edits.clone())?;
            match self.kv.bucket.cas_ref(
                &self.kv.name,
                base.root().as_ref(),
                new.root().as_ref(),
                &note,
            ) {
                Ok(_) => return Ok(new),
                Err(DagError::RefConflict { .. }) => {}
                Err(e) => return Err(e.into()),
            }
            let current = self.kv.tree()?;
            let mut overlap = false;
            diff_each(&base, &current, &mut |change| {
                overlap = self.edits.contains_key(change.key());
                Ok(!overlap)
            })?;
            if overlap {
                return Err(KvError::Conflict {
                    name: self.kv.name.to_string(),
                });
            }
            base = current;
        }
    }
}
