//! A decorator that keeps recently read blocks in memory, bounded in bytes.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use lru::LruCache;

use crate::cid::Cid;
use crate::error::DagResult;
use crate::volume::{Volume, forward_volume_metadata, forward_writes};

/// An LRU block cache in front of another volume.
///
/// It caches what `inner` returns, so it belongs above the verifying
/// decorator: a hit is then verified bytes, served without hashing again.
#[derive(Debug)]
pub struct CachedVolume {
    inner: Arc<dyn Volume>,
    state: Mutex<CacheState>,
    max_bytes: usize,
    hits: AtomicU64,
    misses: AtomicU64,
}

#[derive(Debug)]
struct CacheState {
    lru: LruCache<Cid, Bytes>,
    bytes: usize,
    /// Bumped by every deletion, so a read that raced one does not put the
    /// deleted bytes back into the cache.
    deletions: u64,
}

/// Hit and size counters of a [`CachedVolume`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Blocks held.
    pub blocks: usize,
    /// Bytes held.
    pub bytes: usize,
    /// Reads answered from the cache.
    pub hits: u64,
    /// Reads that went to the volume below.
    pub misses: u64,
}

impl CachedVolume {
    /// Wraps `inner` with a cache of at most `max_bytes`.
    pub fn new(inner: Arc<dyn Volume>, max_bytes: usize) -> Self {
        CachedVolume {
            inner,
            state: Mutex::new(CacheState {
                lru: LruCache::unbounded(),
                bytes: 0,
                deletions: 0,
            }),
            max_bytes,
            hits: Default::default(),
            misses: Default::default(),
        }
    }

    /// How much the cache holds, and how often it answered.
    pub fn cache_stats(&self) -> CacheStats {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        CacheStats {
            blocks: state.lru.len(),
            bytes: state.bytes,
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
        }
    }

    /// A cached block, or the deletion count to pass to `insert` after a miss.
    fn lookup(&self, cid: &Cid) -> Result<Bytes, u64> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match state.lru.get(cid) {
            Some(hit) => {
                self.hits.fetch_add(1, Ordering::Relaxed);
                Ok(hit.clone())
            }
            None => {
                self.misses.fetch_add(1, Ordering::Relaxed);
                Err(state.deletions)
            }
        }
    }

    fn insert(&self, cid: Cid, data: Bytes, deletions_seen: u64) {
        // One block may take at most an eighth of the cache, so a single
        // large read cannot flush everything else.
        if data.len() > self.max_bytes / 8 {
            return;
        }
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.deletions != deletions_seen {
            return;
        }
        let len = data.len();
        if let Some(old) = state.lru.put(cid, data) {
            state.bytes -= old.len();
        }
        state.bytes += len;
        while state.bytes > self.max_bytes {
            match state.lru.pop_lru() {
                Some((_, evicted)) => state.bytes -= evicted.len(),
                None => break,
            }
        }
    }
}

impl Volume for CachedVolume {
    fn cache_stats(&self) -> Option<CacheStats> {
        Some(CachedVolume::cache_stats(self))
    }

    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn get(&self, cid: &Cid) -> DagResult<Option<Bytes>> {
        let deletions_seen = match self.lookup(cid) {
            Ok(hit) => return Ok(Some(hit)),
            Err(seen) => seen,
        };
        let found = self.inner.get(cid)?;
        if let Some(data) = &found {
            self.insert(*cid, data.clone(), deletions_seen);
        }
        Ok(found)
    }

    fn get_uncached(&self, cid: &Cid) -> DagResult<Option<Bytes>> {
        self.inner.get_uncached(cid)
    }

    fn get_into(&self, cid: &Cid, out: &mut [u8]) -> DagResult<Option<usize>> {
        // A cached copy saves the read; a missed block is not cached: the
        // caller streams more than the cache holds.
        match self.lookup(cid) {
            Ok(hit) => Ok(Some(crate::volume::copy_if_fits(&hit, out))),
            Err(_) => self.inner.get_into(cid, out),
        }
    }

    fn has(&self, cid: &Cid) -> DagResult<bool> {
        let cached = self
            .state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .lru
            .contains(cid);
        Ok(cached || self.inner.has(cid)?)
    }

    forward_writes!();

    fn delete_many(&self, cids: &[Cid]) -> DagResult<u64> {
        // Delete below first, then evict and bump the count: a read that
        // fetched the bytes before the deletion then fails to cache them.
        let result = self.inner.delete_many(cids);
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.deletions += 1;
        for cid in cids {
            if let Some(old) = state.lru.pop(cid) {
                state.bytes -= old.len();
            }
        }
        result
    }

    forward_volume_metadata!();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::Block;
    use crate::cid::Codec;
    use crate::memory::MemoryVolume;

    #[test]
    fn stays_within_its_byte_bound() {
        let inner = Arc::new(MemoryVolume::new());
        let cache = CachedVolume::new(inner, 64 * 1024);
        for i in 0..100u32 {
            let block = Block::new(Codec::RAW, vec![i as u8; 4096]).expect("block");
            cache.put(&block).expect("put");
            assert!(cache.get(block.cid()).expect("get").is_some());
            assert!(cache.cache_stats().bytes <= 64 * 1024);
        }
        assert_eq!(cache.cache_stats().blocks, 16);
    }

    #[test]
    fn delete_evicts() {
        let cache = CachedVolume::new(Arc::new(MemoryVolume::new()), 1 << 20);
        let block = Block::new(Codec::RAW, &b"hello"[..]).expect("block");
        cache.put(&block).expect("put");
        cache.get(block.cid()).expect("get");
        cache.delete_many(&[*block.cid()]).expect("delete");
        assert_eq!(cache.get(block.cid()).expect("get"), None);
    }
}
