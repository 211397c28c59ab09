//! An in-memory volume: for tests, caches of scratch data, and as a model.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, RwLock};

use bytes::Bytes;

use crate::block::Block;
use crate::cid::Cid;
use crate::error::{DagError, DagResult};
use crate::refs::{LogEntry, RefName, RefNote, now_ns};
use crate::volume::{BlockInfo, Volume, VolumeStats};

/// A volume that keeps everything in process memory.
#[derive(Debug, Default)]
pub struct MemoryVolume {
    blocks: RwLock<HashMap<Cid, (Bytes, i64)>>,
    refs: Mutex<RefState>,
}

#[derive(Debug, Default)]
struct RefState {
    refs: BTreeMap<RefName, Cid>,
    log: Vec<LogEntry>,
}

impl MemoryVolume {
    /// An empty volume.
    pub fn new() -> Self {
        Self::default()
    }

    /// Replaces the stored bytes of `cid` without any check: lets tests
    /// simulate corruption on the medium.
    pub fn corrupt(&self, cid: &Cid, data: Bytes) {
        let mut blocks = self.blocks.write().unwrap_or_else(|e| e.into_inner());
        if let Some(entry) = blocks.get_mut(cid) {
            entry.0 = data;
        }
    }
}

impl Volume for MemoryVolume {
    fn name(&self) -> &'static str {
        "memory"
    }

    fn get(&self, cid: &Cid) -> DagResult<Option<Bytes>> {
        let blocks = self.blocks.read().unwrap_or_else(|e| e.into_inner());
        Ok(blocks.get(cid).map(|(b, _)| b.clone()))
    }

    fn has(&self, cid: &Cid) -> DagResult<bool> {
        let blocks = self.blocks.read().unwrap_or_else(|e| e.into_inner());
        Ok(blocks.contains_key(cid))
    }

    fn put_many(&self, new: &[Block]) -> DagResult<()> {
        let now = now_ns() / 1_000_000;
        let mut blocks = self.blocks.write().unwrap_or_else(|e| e.into_inner());
        for block in new {
            // A block stored again counts as young again for GC's grace period.
            blocks
                .entry(*block.cid())
                .and_modify(|(_, stored)| *stored = now)
                // A copy: a block's bytes may be a slice of a writer's
                // pooled buffer of megabytes, which a kept slice would pin.
                .or_insert_with(|| (Bytes::copy_from_slice(block.data()), now));
        }
        Ok(())
    }

    fn delete_many(&self, cids: &[Cid]) -> DagResult<u64> {
        let mut blocks = self.blocks.write().unwrap_or_else(|e| e.into_inner());
        Ok(cids.iter().filter(|c| blocks.remove(c).is_some()).count() as u64)
    }

    fn for_each_block(&self, f: &mut dyn FnMut(BlockInfo)) -> DagResult<()> {
        let infos: Vec<BlockInfo> = {
            let blocks = self.blocks.read().unwrap_or_else(|e| e.into_inner());
            blocks
                .iter()
                .map(|(cid, (data, stored_ms))| BlockInfo {
                    cid: *cid,
                    size: data.len() as u64,
                    stored_ms: *stored_ms,
                })
                .collect()
        };
        infos.into_iter().for_each(f);
        Ok(())
    }

    fn get_ref(&self, name: &RefName) -> DagResult<Option<Cid>> {
        let state = self.refs.lock().unwrap_or_else(|e| e.into_inner());
        Ok(state.refs.get(name).copied())
    }

    fn cas_ref(
        &self,
        name: &RefName,
        expected: Option<&Cid>,
        new: Option<&Cid>,
        note: &RefNote,
    ) -> DagResult<LogEntry> {
        let mut state = self.refs.lock().unwrap_or_else(|e| e.into_inner());
        let actual = state.refs.get(name).copied();
        if actual.as_ref() != expected {
            return Err(DagError::RefConflict {
                name: name.to_string(),
                expected: expected.copied(),
                actual,
            });
        }
        match new {
            Some(cid) => state.refs.insert(name.clone(), *cid),
            None => state.refs.remove(name),
        };
        let entry =
            LogEntry::from_note(state.log.len() as u64 + 1, name, actual, new.copied(), note);
        state.log.push(entry.clone());
        Ok(entry)
    }

    fn list_refs(&self) -> DagResult<Vec<(RefName, Cid)>> {
        let state = self.refs.lock().unwrap_or_else(|e| e.into_inner());
        Ok(state.refs.iter().map(|(n, c)| (n.clone(), *c)).collect())
    }

    fn log(&self, name: Option<&RefName>, limit: usize) -> DagResult<Vec<LogEntry>> {
        let state = self.refs.lock().unwrap_or_else(|e| e.into_inner());
        Ok(state
            .log
            .iter()
            .rev()
            .filter(|e| name.is_none_or(|n| &e.name == n))
            .take(limit)
            .cloned()
            .collect())
    }

    fn stats(&self) -> DagResult<VolumeStats> {
        let blocks = self.blocks.read().unwrap_or_else(|e| e.into_inner());
        let state = self.refs.lock().unwrap_or_else(|e| e.into_inner());
        let block_bytes: u64 = blocks.values().map(|(b, _)| b.len() as u64).sum();
        Ok(VolumeStats {
            blocks: blocks.len() as u64,
            block_bytes,
            stored_bytes: block_bytes,
            refs: state.refs.len() as u64,
            log_entries: state.log.len() as u64,
        })
    }
}
