//! The `Volume` trait: the storage seam every backend implements.
//!
//! The trait is synchronous. Its backends are SQLite plus `pread` (the
//! embedded store) and in-memory maps, both of which block anyway; a cache
//! hit costs ~100 ns, while a hop through an async runtime costs several
//! microseconds, so making the seam async would tax the hot path of every
//! FUSE and 9P read to serve backends that do not exist yet. Network
//! backends (Redis Cluster, S3) batch through `get_many`/`put_many` and say
//! how much parallelism they like via `preferred_concurrency`; the daemon's
//! async edge calls volumes from blocking threads.

use bytes::Bytes;

use crate::block::Block;
use crate::cid::Cid;
use crate::error::DagResult;
use crate::refs::{LogEntry, RefName, RefNote};

/// What a volume knows of one stored block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockInfo {
    /// The block.
    pub cid: Cid,
    /// Its size in bytes.
    pub size: u64,
    /// When it was first stored, in milliseconds since the Unix epoch.
    pub stored_ms: i64,
}

/// Counters describing a volume.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct VolumeStats {
    /// Number of blocks.
    pub blocks: u64,
    /// Sum of block sizes.
    pub block_bytes: u64,
    /// Bytes the volume occupies on its medium (packs, index), if known.
    pub stored_bytes: u64,
    /// Number of refs.
    pub refs: u64,
    /// Number of changelog entries.
    pub log_entries: u64,
}

/// What a compaction reclaimed.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct CompactStats {
    /// Pack files rewritten or removed.
    pub packs_rewritten: u64,
    /// Live bytes copied into new packs.
    pub bytes_copied: u64,
    /// Bytes of storage given back.
    pub bytes_reclaimed: u64,
}

/// Copies `data` into `out` when the lengths match (else leaves `out` as
/// it is) and returns `data`'s length: how `get_into` answers from bytes
/// already in memory.
pub(crate) fn copy_if_fits(data: &[u8], out: &mut [u8]) -> usize {
    if data.len() == out.len() {
        out.copy_from_slice(data);
    }
    data.len()
}

/// A place that stores blocks and refs.
///
/// Contract for every backend:
/// - Blocks are immutable; `put_many` is idempotent and a block is durable
///   and visible to `get` once `put_many` returns.
/// - `get` returns the bytes as stored, unverified: verification is the job
///   of the [`crate::VerifiedVolume`] decorator that sits above backends.
/// - `cas_ref` changes a ref only if it holds `expected`, and appends the
///   change to the changelog atomically with it.
pub trait Volume: Send + Sync + std::fmt::Debug + 'static {
    /// The backend's registry name (recorded when a store is created).
    fn name(&self) -> &'static str;

    /// The bytes of `cid`, or `None` when absent.
    fn get(&self, cid: &Cid) -> DagResult<Option<Bytes>>;

    /// The bytes of `cid` as the medium holds them now, past any cache
    /// (what a consistency check must read).
    fn get_uncached(&self, cid: &Cid) -> DagResult<Option<Bytes>> {
        self.get(cid)
    }

    /// Fills `out` with the bytes of `cid` if they are exactly `out.len()`
    /// long, past any cache (for streams a cache could not hold); returns the
    /// block's length, or `None` when absent. `out` is untouched on a length
    /// mismatch.
    fn get_into(&self, cid: &Cid, out: &mut [u8]) -> DagResult<Option<usize>> {
        Ok(self.get(cid)?.map(|data| copy_if_fits(&data, out)))
    }

    /// The bytes of each CID, in order.
    fn get_many(&self, cids: &[Cid]) -> DagResult<Vec<Option<Bytes>>> {
        cids.iter().map(|c| self.get(c)).collect()
    }

    /// Whether `cid` is stored.
    fn has(&self, cid: &Cid) -> DagResult<bool>;

    /// Stores every block; blocks already present are left as they are.
    fn put_many(&self, blocks: &[Block]) -> DagResult<()>;

    /// Stores one block.
    fn put(&self, block: &Block) -> DagResult<()> {
        self.put_many(std::slice::from_ref(block))
    }

    /// Removes the blocks; returns how many were present.
    fn delete_many(&self, cids: &[Cid]) -> DagResult<u64>;

    /// Calls `f` once for every stored block, in no particular order.
    fn for_each_block(&self, f: &mut dyn FnMut(BlockInfo)) -> DagResult<()>;

    /// The root a ref names, or `None`.
    fn get_ref(&self, name: &RefName) -> DagResult<Option<Cid>>;

    /// Moves `name` from `expected` to `new` (`None` = absent) and logs it.
    ///
    /// Fails with [`crate::DagError::RefConflict`] and changes nothing when
    /// the ref does not hold `expected`.
    fn cas_ref(
        &self,
        name: &RefName,
        expected: Option<&Cid>,
        new: Option<&Cid>,
        note: &RefNote,
    ) -> DagResult<LogEntry>;

    /// Stores `blocks`, then moves `name` as [`Volume::cas_ref`] does: in
    /// one durable write where the volume can. The blocks stay stored when
    /// the ref conflicts.
    fn put_many_and_cas_ref(
        &self,
        blocks: &[Block],
        name: &RefName,
        expected: Option<&Cid>,
        new: Option<&Cid>,
        note: &RefNote,
    ) -> DagResult<LogEntry> {
        self.put_many(blocks)?;
        self.cas_ref(name, expected, new, note)
    }

    /// Every ref and its root, sorted by name.
    fn list_refs(&self) -> DagResult<Vec<(RefName, Cid)>>;

    /// Changelog entries, newest first, for one ref or all, at most `limit`.
    fn log(&self, name: Option<&RefName>, limit: usize) -> DagResult<Vec<LogEntry>>;

    /// Counters.
    fn stats(&self) -> DagResult<VolumeStats>;

    /// Rewrites storage whose live fraction is below `min_live`, if the
    /// backend has such storage.
    fn compact(&self, _min_live: f64) -> DagResult<CompactStats> {
        Ok(CompactStats::default())
    }

    /// The hit counters of a caching layer, if this is one.
    fn cache_stats(&self) -> Option<crate::cache::CacheStats> {
        None
    }

    /// How many requests in flight this backend serves best.
    fn preferred_concurrency(&self) -> usize {
        1
    }
}

/// Implements the `Volume` methods a decorator passes through unchanged to
/// its `inner` volume: iteration, stats, and everything [`forward_refs`] does.
macro_rules! forward_volume_metadata {
    () => {
        fn for_each_block(
            &self,
            f: &mut dyn FnMut($crate::volume::BlockInfo),
        ) -> $crate::error::DagResult<()> {
            self.inner.for_each_block(f)
        }

        fn stats(&self) -> $crate::error::DagResult<$crate::volume::VolumeStats> {
            self.inner.stats()
        }

        $crate::volume::forward_refs!();
    };
}
pub(crate) use forward_volume_metadata;

/// Implements the `Volume` methods that store blocks by passing the
/// blocks unchanged to the decorator's `inner` volume.
macro_rules! forward_writes {
    () => {
        fn put_many(&self, blocks: &[$crate::block::Block]) -> $crate::error::DagResult<()> {
            self.inner.put_many(blocks)
        }

        fn put_many_and_cas_ref(
            &self,
            blocks: &[$crate::block::Block],
            name: &$crate::refs::RefName,
            expected: Option<&$crate::cid::Cid>,
            new: Option<&$crate::cid::Cid>,
            note: &$crate::refs::RefNote,
        ) -> $crate::error::DagResult<$crate::refs::LogEntry> {
            self.inner
                .put_many_and_cas_ref(blocks, name, expected, new, note)
        }
    };
}
pub(crate) use forward_writes;

/// Implements the `Volume` methods about refs, the changelog and
/// compaction by passing them to the decorator's `inner` volume.
macro_rules! forward_refs {
    () => {
        fn get_ref(
            &self,
            name: &$crate::refs::RefName,
        ) -> $crate::error::DagResult<Option<$crate::cid::Cid>> {
            self.inner.get_ref(name)
        }

        fn cas_ref(
            &self,
            name: &$crate::refs::RefName,
            expected: Option<&$crate::cid::Cid>,
            new: Option<&$crate::cid::Cid>,
            note: &$crate::refs::RefNote,
        ) -> $crate::error::DagResult<$crate::refs::LogEntry> {
            self.inner.cas_ref(name, expected, new, note)
        }

        fn list_refs(
            &self,
        ) -> $crate::error::DagResult<Vec<($crate::refs::RefName, $crate::cid::Cid)>> {
            self.inner.list_refs()
        }

        fn log(
            &self,
            name: Option<&$crate::refs::RefName>,
            limit: usize,
        ) -> $crate::error::DagResult<Vec<$crate::refs::LogEntry>> {
            self.inner.log(name, limit)
        }

        fn compact(&self, min_live: f64) -> $crate::error::DagResult<$crate::volume::CompactStats> {
            self.inner.compact(min_live)
        }

        fn preferred_concurrency(&self) -> usize {
            self.inner.preferred_concurrency()
        }
    };
}
pub(crate) use forward_refs;
