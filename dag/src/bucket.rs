//! Buckets: named sets of blocks over one or more volumes, with a policy.
//!
//! The bucket is the one wrapper above the backends that callers use: it
//! computes CIDs on write, reads through verified (and usually cached)
//! volumes, keeps the pins that protect in-flight writes from GC, and
//! routes refs to the primary volume.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;

use crate::block::Block;
use crate::cid::{Cid, Codec};
use crate::error::{DagError, DagResult};
use crate::refs::{LogEntry, RefName, RefNote};
use crate::transform::Transforms;
use crate::volume::{Volume, VolumeStats};

/// How a bucket places, reads and cuts its blocks.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BucketPolicy {
    /// How many of the bucket's volumes receive every block (the first N).
    pub replication: usize,
    /// How files written into the bucket are cut into chunks.
    #[serde(default)]
    pub chunking: ChunkingPolicy,
    /// What is done to bytes before they are stored (compression,
    /// encryption).
    #[serde(default, skip_serializing_if = "Transforms::is_none")]
    pub transforms: Transforms,
}

impl Default for BucketPolicy {
    fn default() -> Self {
        BucketPolicy {
            replication: 1,
            chunking: ChunkingPolicy::default(),
            transforms: Transforms::default(),
        }
    }
}

/// Content-defined chunk size bounds, in bytes (FastCDC min/avg/max).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ChunkingPolicy {
    /// No chunk but a blob's last is shorter.
    pub min_size: u32,
    /// The size chunks cluster around (a power of two).
    pub avg_size: u32,
    /// No chunk is longer.
    pub max_size: u32,
}

impl Default for ChunkingPolicy {
    fn default() -> Self {
        ChunkingPolicy {
            min_size: 16 * 1024,
            avg_size: 64 * 1024,
            max_size: 256 * 1024,
        }
    }
}

/// A named set of blocks over one or more volumes. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Bucket {
    inner: Arc<BucketInner>,
}

#[derive(Debug)]
struct BucketInner {
    name: String,
    policy: BucketPolicy,
    volumes: Vec<Arc<dyn Volume>>,
    pins: Mutex<PinState>,
    pub(crate) gc_lock: Mutex<()>,
    io: IoCounters,
    /// Signs changelog entries made through this bucket.
    identity: std::sync::OnceLock<crate::identity::Identity>,
}

/// Block traffic through a bucket since it was opened.
#[derive(Debug, Default)]
struct IoCounters {
    reads: std::sync::atomic::AtomicU64,
    read_bytes: std::sync::atomic::AtomicU64,
    writes: std::sync::atomic::AtomicU64,
    written_bytes: std::sync::atomic::AtomicU64,
}

/// Block reads and writes through a bucket since it was opened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct IoStats {
    /// Blocks read.
    pub reads: u64,
    /// Bytes of the blocks read.
    pub read_bytes: u64,
    /// Blocks written (counting each replica once).
    pub writes: u64,
    /// Bytes of the blocks written.
    pub written_bytes: u64,
}

/// Blocks that GC must keep although no ref reaches them (yet).
#[derive(Debug, Default)]
pub(crate) struct PinState {
    next_session: u64,
    /// CIDs written through each live [`WriteSession`].
    pub(crate) sessions: HashMap<u64, HashSet<Cid>>,
    /// While a GC runs: every CID written since it started.
    pub(crate) written_during_gc: Option<HashSet<Cid>>,
}

impl PinState {
    /// Whether GC must keep `cid` right now.
    pub(crate) fn protects(&self, cid: &Cid) -> bool {
        self.written_during_gc
            .as_ref()
            .is_some_and(|w| w.contains(cid))
            || self.sessions.values().any(|s| s.contains(cid))
    }
}

impl Bucket {
    /// A bucket over `volumes` (already decorated: verified, cached).
    pub fn new(
        name: impl Into<String>,
        policy: BucketPolicy,
        volumes: Vec<Arc<dyn Volume>>,
    ) -> DagResult<Bucket> {
        let name = name.into();
        if volumes.is_empty() {
            return Err(DagError::Other(format!("bucket {name} has no volumes")));
        }
        if policy.replication == 0 || policy.replication > volumes.len() {
            return Err(DagError::Other(format!(
                "bucket {name}: replication {} needs between 1 and {} volumes",
                policy.replication,
                volumes.len()
            )));
        }
        Ok(Bucket {
            inner: Arc::new(BucketInner {
                name,
                policy,
                volumes,
                pins: Mutex::new(PinState::default()),
                gc_lock: Mutex::new(()),
                io: IoCounters::default(),
                identity: std::sync::OnceLock::new(),
            }),
        })
    }

    /// A bucket over one fresh in-memory volume (for tests and scratch work).
    pub fn in_memory() -> Bucket {
        let volume: Arc<dyn Volume> = Arc::new(crate::VerifiedVolume::new(Arc::new(
            crate::MemoryVolume::new(),
        )));
        Bucket::new("memory", BucketPolicy::default(), vec![volume])
            .unwrap_or_else(|_| unreachable!("one volume satisfies replication 1"))
    }

    /// The identity of this bucket's shared state: equal for handles
    /// cloned from one another, distinct for buckets opened apart.
    pub fn id(&self) -> usize {
        Arc::as_ptr(&self.inner) as usize
    }

    /// Block reads and writes since the bucket was opened.
    pub fn io_stats(&self) -> IoStats {
        let io = &self.inner.io;
        let load = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
        IoStats {
            reads: load(&io.reads),
            read_bytes: load(&io.read_bytes),
            writes: load(&io.writes),
            written_bytes: load(&io.written_bytes),
        }
    }

    /// Hits and misses of the block caches in front of the volumes.
    pub fn cache_stats(&self) -> crate::cache::CacheStats {
        let mut total = crate::cache::CacheStats::default();
        for v in &self.inner.volumes {
            if let Some(c) = v.cache_stats() {
                total.blocks += c.blocks;
                total.bytes += c.bytes;
                total.hits += c.hits;
                total.misses += c.misses;
            }
        }
        total
    }

    /// The bucket's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The bucket's policy.
    pub fn policy(&self) -> &BucketPolicy {
        &self.inner.policy
    }

    /// The volumes, primary first.
    pub fn volumes(&self) -> &[Arc<dyn Volume>] {
        &self.inner.volumes
    }

    /// The volume that holds refs and the changelog.
    pub fn primary(&self) -> &Arc<dyn Volume> {
        &self.inner.volumes[0]
    }

    pub(crate) fn pins(&self) -> MutexGuard<'_, PinState> {
        self.inner.pins.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn gc_lock(&self) -> MutexGuard<'_, ()> {
        self.inner.gc_lock.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts a write session: blocks written through it are kept by GC
    /// until the session is dropped (by then a ref should reach them).
    pub fn session(&self) -> WriteSession {
        let mut pins = self.pins();
        pins.next_session += 1;
        let id = pins.next_session;
        pins.sessions.insert(id, HashSet::new());
        WriteSession {
            inner: Arc::new(SessionInner {
                bucket: self.clone(),
                id,
            }),
        }
    }

    fn store(&self, session: Option<u64>, blocks: &[Block]) -> DagResult<()> {
        self.pin_written(session, blocks);
        for volume in &self.inner.volumes[..self.inner.policy.replication] {
            volume.put_many(blocks)?;
        }
        self.count_written(blocks);
        Ok(())
    }

    /// Stores `blocks` as [`Bucket::store`] does, then moves `name` as
    /// [`Bucket::cas_ref`] does, in one durable write where the primary
    /// volume can (after the replicas hold the blocks).
    fn store_and_cas_ref(
        &self,
        session: Option<u64>,
        blocks: &[Block],
        name: &RefName,
        expected: Option<&Cid>,
        new: Option<&Cid>,
        note: &RefNote,
    ) -> DagResult<LogEntry> {
        self.pin_written(session, blocks);
        for volume in &self.inner.volumes[1..self.inner.policy.replication] {
            volume.put_many(blocks)?;
        }
        let note = self.signed(name, expected, new, note);
        let entry = self
            .primary()
            .put_many_and_cas_ref(blocks, name, expected, new, &note);
        if matches!(entry, Ok(_) | Err(DagError::RefConflict { .. })) {
            self.count_written(blocks);
        }
        entry
    }

    /// Pins blocks about to be written for their session (and a GC running).
    fn pin_written(&self, session: Option<u64>, blocks: &[Block]) {
        {
            // Pin before writing: a GC deleting under this same lock either
            // ran before (and the write below stores the block again) or
            // sees the pin.
            let mut pins = self.pins();
            let PinState {
                sessions,
                written_during_gc,
                ..
            } = &mut *pins;
            let session = session.and_then(|id| sessions.get_mut(&id));
            if let Some(set) = session {
                set.extend(blocks.iter().map(|b| *b.cid()));
            }
            if let Some(set) = written_during_gc {
                set.extend(blocks.iter().map(|b| *b.cid()));
            }
        }
    }

    /// Counts blocks written.
    fn count_written(&self, blocks: &[Block]) {
        let io = &self.inner.io;
        io.writes
            .fetch_add(blocks.len() as u64, std::sync::atomic::Ordering::Relaxed);
        io.written_bytes.fetch_add(
            blocks.iter().map(|b| b.len() as u64).sum(),
            std::sync::atomic::Ordering::Relaxed,
        );
    }

    /// Stores `data` under `codec`; returns its CID. Unpinned: see [`Bucket::session`].
    pub fn put(&self, codec: Codec, data: impl Into<Bytes>) -> DagResult<Cid> {
        let block = Block::new(codec, data)?;
        self.store(None, std::slice::from_ref(&block))?;
        Ok(*block.cid())
    }

    /// Stores blocks whose CIDs the caller computed or verified.
    pub fn put_blocks(&self, blocks: &[Block]) -> DagResult<()> {
        self.store(None, blocks)
    }

    /// The verified bytes of `cid`, or `None` when no volume has it.
    ///
    /// Volumes are tried in order; a replica that fails (corrupt, I/O) is
    /// skipped when another has good bytes, else its error is returned.
    pub fn get(&self, cid: &Cid) -> DagResult<Option<Bytes>> {
        self.first_found(|volume| volume.get(cid), Bytes::len)
    }

    /// Fills `out` with the verified bytes of `cid`, bypassing the block
    /// cache on a miss (for a stream larger than the cache); returns the
    /// block's length, or `None` when absent. `out` holds the block only when
    /// the length returned equals `out.len()`. Volumes are tried as by `get`.
    pub fn get_into(&self, cid: &Cid, out: &mut [u8]) -> DagResult<Option<usize>> {
        self.first_found(|volume| volume.get_into(cid, out), |len| *len)
    }

    /// The first volume's answer that finds the block, counted as a read
    /// of `len` bytes; else the first error, else `None`.
    fn first_found<T>(
        &self,
        mut read: impl FnMut(&dyn Volume) -> DagResult<Option<T>>,
        len: impl Fn(&T) -> usize,
    ) -> DagResult<Option<T>> {
        let mut first_error = None;
        for volume in &self.inner.volumes {
            match read(volume.as_ref()) {
                Ok(Some(found)) => {
                    let io = &self.inner.io;
                    io.reads.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    io.read_bytes
                        .fetch_add(len(&found) as u64, std::sync::atomic::Ordering::Relaxed);
                    return Ok(Some(found));
                }
                Ok(None) => {}
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        first_error.map_or(Ok(None), Err)
    }

    /// The verified bytes of `cid`; absence is [`DagError::NotFound`].
    pub fn require(&self, cid: &Cid) -> DagResult<Bytes> {
        self.get(cid)?.ok_or(DagError::NotFound { cid: *cid })
    }

    /// Whether any volume holds `cid`.
    pub fn has(&self, cid: &Cid) -> DagResult<bool> {
        for volume in &self.inner.volumes {
            if volume.has(cid)? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Removes blocks from every volume; returns how many copies were removed.
    pub fn delete_many(&self, cids: &[Cid]) -> DagResult<u64> {
        let mut n = 0;
        for volume in &self.inner.volumes {
            n += volume.delete_many(cids)?;
        }
        Ok(n)
    }

    /// The root `name` points at.
    pub fn get_ref(&self, name: &RefName) -> DagResult<Option<Cid>> {
        self.primary().get_ref(name)
    }

    /// Compare-and-swap of a ref, logged in the changelog; the entry is
    /// signed by the bucket's identity unless `note` carries a signature.
    pub fn cas_ref(
        &self,
        name: &RefName,
        expected: Option<&Cid>,
        new: Option<&Cid>,
        note: &RefNote,
    ) -> DagResult<LogEntry> {
        let note = self.signed(name, expected, new, note);
        self.primary().cas_ref(name, expected, new, &note)
    }

    /// `note`, signed by the bucket's identity when it has one and the
    /// note is not signed yet.
    fn signed<'a>(
        &self,
        name: &RefName,
        expected: Option<&Cid>,
        new: Option<&Cid>,
        note: &'a RefNote,
    ) -> std::borrow::Cow<'a, RefNote> {
        match self.inner.identity.get() {
            Some(identity) if note.signature.is_none() => {
                let time_ns = note.time_ns.unwrap_or_else(crate::refs::now_ns);
                let payload = crate::identity::entry_payload(
                    name,
                    expected,
                    new,
                    time_ns,
                    &note.author,
                    &note.message,
                );
                std::borrow::Cow::Owned(RefNote {
                    time_ns: Some(time_ns),
                    signature: Some(identity.sign(&payload)),
                    ..note.clone()
                })
            }
            _ => std::borrow::Cow::Borrowed(note),
        }
    }

    /// Signs every changelog entry made through this bucket from now on
    /// (set once; later calls are ignored).
    pub fn set_identity(&self, identity: crate::identity::Identity) {
        let _ = self.inner.identity.set(identity);
    }

    /// The identity signing this bucket's changelog entries.
    pub fn identity(&self) -> Option<&crate::identity::Identity> {
        self.inner.identity.get()
    }

    /// Points `name` at `new` whatever it held (still a logged CAS).
    pub fn set_ref(
        &self,
        name: &RefName,
        new: Option<&Cid>,
        note: &RefNote,
    ) -> DagResult<LogEntry> {
        loop {
            let current = self.get_ref(name)?;
            match self.cas_ref(name, current.as_ref(), new, note) {
                Err(DagError::RefConflict { .. }) => continue,
                other => return other,
            }
        }
    }

    /// Every ref, sorted by name.
    pub fn list_refs(&self) -> DagResult<Vec<(RefName, Cid)>> {
        self.primary().list_refs()
    }

    /// Changelog entries, newest first.
    pub fn log(&self, name: Option<&RefName>, limit: usize) -> DagResult<Vec<LogEntry>> {
        self.primary().log(name, limit)
    }

    /// Counters of each volume, primary first.
    pub fn stats(&self) -> DagResult<Vec<VolumeStats>> {
        self.inner.volumes.iter().map(|v| v.stats()).collect()
    }
}

/// A writer's protection against GC: what it writes is kept until the last
/// clone of the session drops. Clones share one pin set.
#[derive(Clone, Debug)]
pub struct WriteSession {
    inner: Arc<SessionInner>,
}

#[derive(Debug)]
struct SessionInner {
    bucket: Bucket,
    id: u64,
}

impl WriteSession {
    /// Stores `data` under `codec`, pinned; returns its CID.
    pub fn put(&self, codec: Codec, data: impl Into<Bytes>) -> DagResult<Cid> {
        let block = Block::new(codec, data)?;
        self.put_blocks(std::slice::from_ref(&block))?;
        Ok(*block.cid())
    }

    /// Stores blocks, pinned.
    pub fn put_blocks(&self, blocks: &[Block]) -> DagResult<()> {
        self.inner.bucket.store(Some(self.inner.id), blocks)
    }

    /// Stores blocks, pinned, then moves `name` from `expected` to `new`
    /// as [`Bucket::cas_ref`] does: in one durable write where the store
    /// can. The blocks stay stored when the ref conflicts.
    pub fn put_blocks_and_cas_ref(
        &self,
        blocks: &[Block],
        name: &RefName,
        expected: Option<&Cid>,
        new: Option<&Cid>,
        note: &RefNote,
    ) -> DagResult<LogEntry> {
        self.inner
            .bucket
            .store_and_cas_ref(Some(self.inner.id), blocks, name, expected, new, note)
    }

    /// Pins a block that already exists (one the writer links to).
    pub fn pin(&self, cid: Cid) {
        if let Some(set) = self.inner.bucket.pins().sessions.get_mut(&self.inner.id) {
            set.insert(cid);
        }
    }

    /// The bucket written to.
    pub fn bucket(&self) -> &Bucket {
        &self.inner.bucket
    }
}

impl Drop for SessionInner {
    fn drop(&mut self) {
        self.bucket.pins().sessions.remove(&self.id);
    }
}
