//! Random-access and sequential reading of blobs.

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::sync::Arc;
use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};

use bytes::Bytes;
use hydra_dag::{Bucket, Cid, Codec, DagError};

use crate::blob::{Blob, BlobStats};
use crate::error::{ChunkError, ChunkResult};
use crate::nodes::NodeCache;
use crate::tree::{Link, Node};

/// Leaves fetched ahead of a sequential reader.
const PREFETCH_AHEAD: usize = 8;
/// Most chunks a sequential `read_at` of large ranges warms ahead.
const PREFETCH_MAX: usize = 64;
/// Without read-ahead (a client that caches what it reads, like the
/// kernel), whole chunks of blobs at least this large skip the block cache.
const UNCACHED_BLOB_MIN: u64 = 16 << 20;

/// Writes a read's bytes over a vector from a position on, growing it only
/// past its end, so a reused buffer is neither cleared nor zeroed again.
struct Cursor<'a> {
    buf: &'a mut Vec<u8>,
    at: usize,
}

impl Cursor<'_> {
    /// Writes `data` next.
    fn put(&mut self, data: &[u8]) {
        let end = self.at + data.len();
        let over = data.len().min(self.buf.len().saturating_sub(self.at));
        self.buf[self.at..self.at + over].copy_from_slice(&data[..over]);
        self.buf.extend_from_slice(&data[over..]);
        self.at = end;
    }

    /// The next `len` bytes, to be filled in place.
    fn next(&mut self, len: usize) -> &mut [u8] {
        let end = self.at + len;
        if end > self.buf.len() {
            self.buf.resize(end, 0);
        }
        let start = std::mem::replace(&mut self.at, end);
        &mut self.buf[start..end]
    }
}

/// Reads a blob at any offset in O(depth) block fetches.
///
/// Decoded tree nodes are kept for the reader's life (a 1 GiB blob has
/// about 130 of them), so repeated reads cost a leaf fetch from the block
/// cache and a copy.
#[derive(Debug)]
pub struct BlobReader {
    bucket: Bucket,
    blob: Blob,
    nodes: HashMap<Cid, Arc<Node>>,
    /// Nodes kept beyond this reader's life, when given.
    shared: Option<NodeCache>,
    last_leaf: Option<(Cid, Bytes)>,
    pos: u64,
    prefetch: Option<SyncSender<Cid>>,
    /// Where the last `read_at` ended: a read starting there is sequential.
    read_end: Option<u64>,
    /// Chunks to warm ahead of the current read.
    ahead_limit: usize,
    /// Whether sequential reads warm the chunks after them.
    read_ahead: bool,
}

impl BlobReader {
    /// A reader of `blob` from `bucket`.
    pub fn new(bucket: Bucket, blob: Blob) -> Self {
        BlobReader {
            bucket,
            blob,
            nodes: HashMap::new(),
            shared: None,
            last_leaf: None,
            pos: 0,
            prefetch: None,
            read_end: None,
            ahead_limit: PREFETCH_AHEAD,
            read_ahead: true,
        }
    }

    /// Whether sequential reads warm the chunks after them (on by default;
    /// off for callers whose client reads ahead itself, like the kernel).
    pub fn set_read_ahead(&mut self, on: bool) {
        self.read_ahead = on;
    }

    /// A reader of the blob rooted at `root` (a raw chunk or a tree node).
    pub fn open(bucket: Bucket, root: Cid) -> ChunkResult<Self> {
        let data = bucket.require(&root)?;
        let size = match root.codec() {
            Codec::RAW => data.len() as u64,
            Codec::DAG_CBOR => Node::decode(&root, &data)?.size(),
            other => {
                return Err(ChunkError::Malformed {
                    cid: root,
                    reason: format!("codec {} is not a blob root", other.name()),
                });
            }
        };
        Ok(BlobReader::new(bucket, Blob::Stored { root, size }))
    }

    /// Where the last `read_at` ended: a read from here continues it.
    pub fn next_offset(&self) -> Option<u64> {
        self.read_end
    }

    /// The blob's size.
    pub fn size(&self) -> u64 {
        self.blob.size()
    }

    /// The blob read.
    pub(crate) fn blob(&self) -> &Blob {
        &self.blob
    }

    /// Takes and keeps decoded tree nodes in `cache` too, beyond this
    /// reader's life.
    pub fn with_nodes(mut self, cache: NodeCache) -> Self {
        self.shared = Some(cache);
        self
    }

    /// The decoded tree node `cid`, kept for the reader's life.
    pub(crate) fn node(&mut self, cid: &Cid) -> ChunkResult<Arc<Node>> {
        if let Some(node) = self.nodes.get(cid) {
            return Ok(node.clone());
        }
        let node = match self.shared.as_ref().and_then(|c| c.get(cid)) {
            Some(node) => node,
            None => {
                let data = self.bucket.require(cid)?;
                let node = Arc::new(Node::decode(cid, &data)?);
                if let Some(cache) = &self.shared {
                    cache.insert(*cid, node.clone());
                }
                node
            }
        };
        self.nodes.insert(*cid, node.clone());
        Ok(node)
    }

    fn leaf(&mut self, cid: &Cid, len: u64) -> ChunkResult<Bytes> {
        if let Some((last, data)) = &self.last_leaf
            && last == cid
        {
            return Ok(data.clone());
        }
        let data = self.bucket.require(cid)?;
        if data.len() as u64 != len {
            return Err(ChunkError::Malformed {
                cid: *cid,
                reason: format!("chunk is {} bytes, its link says {len}", data.len()),
            });
        }
        self.last_leaf = Some((*cid, data.clone()));
        Ok(data)
    }

    /// Appends the whole leaf `cid` of `len` bytes, read past the block
    /// cache (the caller's client keeps what it reads, and a blob this large
    /// would only churn the cache).
    fn whole_leaf_uncached(&mut self, cid: &Cid, len: u64, out: &mut Cursor) -> ChunkResult<()> {
        let found = self.bucket.get_into(cid, out.next(len as usize));
        match found {
            Ok(Some(n)) if n as u64 == len => Ok(()),
            Ok(Some(_)) => {
                // A block of another length: the cached path tells whether
                // the block is damaged or the tree is.
                out.at -= len as usize;
                let data = self.leaf(cid, len)?;
                out.put(&data);
                Ok(())
            }
            Ok(None) => Err(DagError::NotFound { cid: *cid }.into()),
            Err(e) => Err(e.into()),
        }
    }

    /// Reads up to `len` bytes at `offset` (fewer at the end of the blob).
    pub fn read_at(&mut self, offset: u64, len: usize) -> ChunkResult<Vec<u8>> {
        let mut out = Vec::new();
        self.read_at_into(offset, len, &mut out)?;
        Ok(out)
    }

    /// Appends up to `len` bytes at `offset` to `out` (fewer at the end of
    /// the blob).
    pub fn read_at_into(&mut self, offset: u64, len: usize, out: &mut Vec<u8>) -> ChunkResult<()> {
        let at = out.len();
        let result = self.read_at_cursor(offset, len, &mut Cursor { buf: out, at });
        if result.is_err() {
            out.truncate(at);
        }
        result.map(drop)
    }

    /// Writes up to `len` bytes at `offset` over the start of `out` and
    /// returns how many; `out` may keep older bytes past them, so a caller
    /// can reuse one buffer for many reads without clearing it.
    pub fn read_at_over(
        &mut self,
        offset: u64,
        len: usize,
        out: &mut Vec<u8>,
    ) -> ChunkResult<usize> {
        self.read_at_cursor(offset, len, &mut Cursor { buf: out, at: 0 })
    }

    fn read_at_cursor(&mut self, offset: u64, len: usize, out: &mut Cursor) -> ChunkResult<usize> {
        let size = self.size();
        if offset > size {
            return Err(ChunkError::OutOfRange { offset, size });
        }
        let end = offset.saturating_add(len as u64).min(size);
        let start = out.at;
        out.buf
            .reserve((start + (end - offset) as usize).saturating_sub(out.buf.len()));
        // A read where the last one ended is sequential: warm the blocks
        // after it while the caller uses these (about two reads' worth).
        let sequential = self.read_end == Some(offset) && offset > 0;
        self.read_end = Some(end);
        match self.blob.clone() {
            Blob::Inline(data) => out.put(&data[offset as usize..end as usize]),
            Blob::Stored { root, size } if sequential && self.read_ahead => {
                self.ahead_limit = (2 * len / (64 << 10)).clamp(PREFETCH_AHEAD, PREFETCH_MAX);
                let mut ahead = Vec::new();
                self.read_range(root, size, offset, end, out, Some(&mut ahead))?;
                self.warm(ahead);
            }
            Blob::Stored { root, size } => self.read_range(root, size, offset, end, out, None)?,
        }
        Ok(out.at - start)
    }

    /// Appends bytes `[from, to)` of the subtree `cid` (of `len` bytes).
    fn read_range(
        &mut self,
        cid: Cid,
        len: u64,
        from: u64,
        to: u64,
        out: &mut Cursor,
        mut ahead: Option<&mut Vec<Cid>>,
    ) -> ChunkResult<()> {
        if from >= to {
            return Ok(());
        }
        if cid.codec() == Codec::RAW {
            if from == 0 && to == len && !self.read_ahead && self.size() >= UNCACHED_BLOB_MIN {
                return self.whole_leaf_uncached(&cid, len, out);
            }
            let data = self.leaf(&cid, len)?;
            out.put(&data[from as usize..to as usize]);
            return Ok(());
        }
        let node = self.node(&cid)?;
        if node.size() != len {
            return Err(ChunkError::Malformed {
                cid,
                reason: format!("node holds {} bytes, its link says {len}", node.size()),
            });
        }
        let first = node.child_at(from);
        for i in first..node.links.len() {
            let start = node.start_of(i);
            if start >= to {
                if let Some(ahead) = ahead.as_deref_mut()
                    && ahead.len() < self.ahead_limit
                {
                    ahead.push(node.links[i].0);
                    continue;
                }
                break;
            }
            let (child, child_len) = node.links[i];
            let lo = from.max(start) - start;
            let hi = to.min(node.ends[i]) - start;
            self.read_range(child, child_len, lo, hi, out, ahead.as_deref_mut())?;
        }
        Ok(())
    }

    /// Walks the whole tree: chunk counts, distinct bytes, nodes, depth.
    pub fn stats(&mut self) -> ChunkResult<BlobStats> {
        let mut stats = BlobStats {
            logical_bytes: self.size(),
            ..BlobStats::default()
        };
        let Blob::Stored { root, size } = self.blob.clone() else {
            return Ok(stats);
        };
        let mut seen = std::collections::HashSet::new();
        let mut stack: Vec<(Link, u32)> = vec![((root, size), 0)];
        while let Some(((cid, len), depth)) = stack.pop() {
            stats.depth = stats.depth.max(depth);
            if cid.codec() == Codec::RAW {
                stats.chunks += 1;
                if seen.insert(cid) {
                    stats.unique_chunks += 1;
                    stats.unique_bytes += len;
                }
                continue;
            }
            stats.nodes += 1;
            let node = self.node(&cid)?;
            stack.extend(node.links.iter().rev().map(|l| (*l, depth + 1)));
        }
        Ok(stats)
    }

    /// Every leaf link in order (loads every tree node).
    pub fn leaves(&mut self) -> ChunkResult<Vec<Link>> {
        let mut out = Vec::new();
        let Blob::Stored { root, size } = self.blob.clone() else {
            return Ok(out);
        };
        let mut stack: Vec<Link> = vec![(root, size)];
        while let Some((cid, len)) = stack.pop() {
            if cid.codec() == Codec::RAW {
                out.push((cid, len));
            } else {
                let node = self.node(&cid)?;
                stack.extend(node.links.iter().rev().copied());
            }
        }
        Ok(out)
    }

    /// Asks the prefetch thread to bring `cids` into the block cache.
    pub(crate) fn warm(&mut self, cids: Vec<Cid>) {
        if let Some(tx) = self.start_prefetcher() {
            for cid in cids {
                if let Err(TrySendError::Disconnected(_)) = tx.try_send(cid) {
                    break;
                }
            }
        }
    }

    fn start_prefetcher(&mut self) -> Option<&SyncSender<Cid>> {
        if self.prefetch.is_none() {
            let (tx, rx) = sync_channel::<Cid>(PREFETCH_MAX * 2);
            let bucket = self.bucket.clone();
            let spawned = std::thread::Builder::new()
                .name("hydra-prefetch".into())
                .spawn(move || {
                    // Warming the block cache is all this does; a failure
                    // here resurfaces when the reader asks for the block.
                    for cid in rx {
                        let _ = bucket.get(&cid);
                    }
                });
            if spawned.is_ok() {
                self.prefetch = Some(tx);
            }
        }
        self.prefetch.as_ref()
    }
}

impl Read for BlobReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let size = self.size();
        if self.pos >= size || buf.is_empty() {
            return Ok(0);
        }
        let end = self.pos.saturating_add(buf.len() as u64).min(size);
        let mut out = Vec::with_capacity((end - self.pos) as usize);
        match self.blob.clone() {
            Blob::Inline(data) => out.extend_from_slice(&data[self.pos as usize..end as usize]),
            Blob::Stored { root, size } => {
                self.ahead_limit = PREFETCH_AHEAD;
                let mut ahead = Vec::new();
                let mut cursor = Cursor {
                    buf: &mut out,
                    at: 0,
                };
                self.read_range(root, size, self.pos, end, &mut cursor, Some(&mut ahead))?;
                self.warm(ahead);
            }
        }
        buf[..out.len()].copy_from_slice(&out);
        self.pos += out.len() as u64;
        Ok(out.len())
    }
}

impl Seek for BlobReader {
    fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
        let target = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(d) => self.size().checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        let target = target.ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "seek before the start of the blob",
            )
        })?;
        self.pos = target;
        Ok(target)
    }
}
