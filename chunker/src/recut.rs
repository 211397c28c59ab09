//! Re-cutting an edit's bytes until its cuts fall back in step with the
//! old chunks, from where the old tree is reused.

use std::collections::BTreeSet;
use std::sync::Mutex;

use bytes::Bytes;
use hydra_dag::{Block, Cid, Codec};

use crate::cut::{Scanned, WINDOW};
use crate::error::ChunkResult;
use crate::params::ChunkParams;
use crate::tree::{Link, TreeBuilder};
use crate::writer::BatchStore;

/// Zeros are fed in pieces of this size.
const ZERO_PIECE: usize = 1 << 20;
/// A piece of zeros to feed from: never written, so it stays the kernel's
/// shared zero page instead of memory allocated, faulted in and cleared
/// for every piece.
static ZEROS: [u8; ZERO_PIECE] = [0; ZERO_PIECE];
/// New blocks are stored in batches of about this many bytes: one pack
/// write and sync for many chunks, not one per piece fed.
const BATCH: usize = 16 << 20;

/// The chunk that starts every long enough run of zeros, by parameters.
static ZERO_CHUNKS: Mutex<Vec<(ChunkParams, Link, Block)>> = Mutex::new(Vec::new());

/// The chunk that starts every run of zeros at least a maximum chunk long
/// (and so repeats through it), as a link and a block.
pub(crate) fn zero_chunk(params: ChunkParams) -> ChunkResult<(Link, Block)> {
    let mut known = ZERO_CHUNKS.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, link, block)) = known.iter().find(|(p, ..)| *p == params) {
        return Ok((*link, block.clone()));
    }
    let zeros = vec![0u8; params.max()];
    let mut cuts = Vec::new();
    params.split(&zeros, true, &mut cuts);
    let len = cuts.first().map_or(zeros.len(), |&(_, l)| l);
    let block = Block::new(Codec::RAW, Bytes::from(zeros).slice(..len))?;
    let link = (*block.cid(), len as u64);
    known.push((params, link, block.clone()));
    Ok((link, block))
}

/// Feeds `n` zeros to `feed` in pieces.
pub(crate) fn feed_zeros(
    mut n: u64,
    mut feed: impl FnMut(&[u8]) -> ChunkResult<()>,
) -> ChunkResult<()> {
    while n > 0 {
        let k = n.min(ZERO_PIECE as u64) as usize;
        feed(&ZEROS[..k])?;
        n -= k as u64;
    }
    Ok(())
}

/// The re-cutting state of one edit.
pub(crate) struct Recut {
    params: ChunkParams,
    /// The new tree, filled from the left.
    pub tree: TreeBuilder,
    buf: Vec<u8>,
    /// How far the search for the cut ending `buf`'s first chunk got.
    scanned: Scanned,
    /// New-content offset of `buf[0]`, where the next chunk starts.
    new_pos: u64,
    /// Old leaf boundaries (old offsets) where the old chunks may resume.
    old_bounds: BTreeSet<u64>,
    /// Old runs of the zero chunk, `[start, end)`: every multiple of its
    /// length from `start` is a boundary too.
    old_runs: Vec<(u64, u64)>,
    zero: (Link, Block),
    /// New size minus old size.
    delta: i128,
    /// New-content offset just past the inserted bytes.
    edit_end_new: u64,
    /// The old offset from which the old tree is reused, once found.
    pub resumed: Option<u64>,
    /// The old chunk whose last bytes were fed last, `[start, end)`.
    old_leaf: Option<(u64, u64)>,
    /// New blocks not stored yet, and their bytes.
    pending: Vec<Block>,
    pending_bytes: usize,
    /// New chunks' bytes, not stored yet.
    arena: Arena,
    /// Where full batches go: straight to the session until the first
    /// one fills, then to storing threads, so re-cutting goes on while a
    /// batch is written and synced.
    batches: BatchStore,
}

/// New chunks' bytes gathered in pooled buffers: fresh memory for each
/// chunk would be mapped, faulted in and cleared, and unmapped once stored.
struct Arena {
    /// The buffer being filled, and the chunks in it.
    buf: Vec<u8>,
    chunks: Vec<(Cid, std::ops::Range<usize>)>,
    /// Blocks of the buffers filled before, sharing them.
    sealed: Vec<Block>,
    capacity: usize,
}

impl Arena {
    /// Copies in the chunk `cid` of bytes `data`.
    fn push(&mut self, cid: Cid, data: &[u8]) {
        if self.buf.len() + data.len() > self.buf.capacity() {
            self.seal();
            self.buf = crate::pool::take(self.capacity.max(data.len()));
        }
        let at = self.buf.len();
        self.buf.extend_from_slice(data);
        self.chunks.push((cid, at..at + data.len()));
    }

    /// Makes the chunks of the buffer being filled blocks sharing it; the
    /// buffer goes back to the pool once they are all dropped.
    fn seal(&mut self) {
        if self.chunks.is_empty() {
            return;
        }
        let shared = crate::pool::share(std::mem::take(&mut self.buf));
        self.sealed.extend(
            self.chunks
                .drain(..)
                .map(|(cid, range)| Block::trusted(cid, shared.slice(range))),
        );
    }

    /// Every chunk copied in, as blocks.
    fn take(&mut self) -> Vec<Block> {
        self.seal();
        std::mem::take(&mut self.sealed)
    }
}

impl Recut {
    /// Re-cutting state for edits through `session`.
    pub fn new(batches: BatchStore, params: ChunkParams) -> ChunkResult<Recut> {
        Ok(Recut {
            zero: zero_chunk(params)?,
            params,
            tree: TreeBuilder::new(),
            buf: Vec::new(),
            scanned: Scanned::default(),
            new_pos: 0,
            old_bounds: BTreeSet::new(),
            old_runs: Vec::new(),
            delta: 0,
            edit_end_new: u64::MAX,
            resumed: None,
            old_leaf: None,
            pending: Vec::new(),
            pending_bytes: 0,
            arena: Arena {
                buf: Vec::new(),
                chunks: Vec::new(),
                sealed: Vec::new(),
                capacity: crate::writer::segment_capacity(params),
            },
            batches,
        })
    }

    /// Queues new blocks (and the tree's nodes made so far) for storing;
    /// stores the queue once it holds a batch.
    fn store(&mut self, blocks: Vec<Block>) -> ChunkResult<()> {
        self.pending_bytes += blocks.iter().map(Block::len).sum::<usize>();
        self.pending.extend(blocks);
        self.pending.extend(self.tree.take_blocks());
        if self.pending_bytes >= BATCH && !matches!(self.batches, BatchStore::Collect(_)) {
            if let BatchStore::Direct(session) = &self.batches {
                self.batches = BatchStore::threaded(session.clone())?;
            }
            self.ship()?;
        }
        Ok(())
    }

    /// Hands every queued block and every node the tree has made to the
    /// batch store.
    fn ship(&mut self) -> ChunkResult<()> {
        self.pending.extend(self.arena.take());
        self.pending.extend(self.tree.take_blocks());
        if !self.pending.is_empty() {
            self.batches.put(std::mem::take(&mut self.pending))?;
        }
        self.pending_bytes = 0;
        Ok(())
    }

    /// Stores every queued block and every node the tree has made, and
    /// waits for every batch to be stored.
    pub fn flush(&mut self) -> ChunkResult<()> {
        self.ship()?;
        self.batches.close()
    }

    /// The new blocks kept for the caller (when re-cutting collects them).
    pub fn take_kept(&mut self) -> Vec<Block> {
        match &mut self.batches {
            BatchStore::Collect(kept) => std::mem::take(kept),
            _ => Vec::new(),
        }
    }

    /// Starts re-cutting at new offset `start`, a chunk start in both old
    /// and new content (the tree holds everything before it).
    pub fn restart(&mut self, start: u64) {
        self.buf.clear();
        self.scanned = Scanned::default();
        self.old_bounds.clear();
        self.old_runs.clear();
        self.new_pos = start;
        self.edit_end_new = u64::MAX;
        self.resumed = None;
        self.old_leaf = None;
    }

    /// Enters a change whose inserted bytes end at new offset
    /// `edit_end_new`, after which new content is `delta` longer than old.
    pub fn change(&mut self, edit_end_new: u64, delta: i128) {
        self.edit_end_new = edit_end_new;
        self.delta = delta;
        self.old_leaf = None;
    }

    /// Notes an old leaf boundary.
    pub fn bound(&mut self, old: u64) {
        self.old_bounds.insert(old);
    }

    /// Notes that the next bytes fed are the rest of the old chunk
    /// `[start, end)`, unchanged (`end` noted as a boundary).
    pub fn old_chunk(&mut self, start: u64, end: u64) {
        self.old_leaf = Some((start, end));
    }

    /// Notes an old run of zero chunks over `[start, end)`.
    pub fn zero_run(&mut self, start: u64, end: u64) {
        self.old_runs.push((start, end));
    }

    /// The link of the chunk that repeats through runs of zeros.
    pub fn zero_leaf(&self) -> Link {
        self.zero.0
    }

    /// New-content offset where the next chunk starts.
    pub fn chunk_start(&self) -> u64 {
        self.new_pos
    }

    /// The bytes fed since the last cut.
    pub fn waiting(&self) -> &[u8] {
        &self.buf
    }

    /// Drops the bytes waiting: the tree was given the content up to new
    /// offset `to` (a chunk start) another way.
    pub fn skip_to(&mut self, to: u64) {
        self.buf.clear();
        self.scanned = Scanned::default();
        self.new_pos = to;
    }

    /// Whether the next chunk starts in zeros (nothing but zeros waits).
    pub fn at_zeros(&self) -> bool {
        hydra_dag::zeros::zero_prefix(&self.buf) == self.buf.len()
    }

    fn is_bound(&self, old: u64) -> bool {
        let len = self.zero.0.1;
        self.old_bounds.contains(&old)
            || self
                .old_runs
                .iter()
                .any(|&(s, e)| s < old && old <= e && (old - s).is_multiple_of(len))
    }

    /// The least `j` in `1..=count` such that a cut `j` zero chunks past
    /// old offset `from` would meet an old boundary past the edit.
    fn first_aligned(&self, from: i128, count: u64) -> Option<u64> {
        let len = i128::from(self.zero.0.1);
        let to = from + i128::from(count) * len;
        // Cuts before the edit's end never resume the old chunks.
        let lo = (from + 1).max(self.edit_end_new as i128 - self.delta);
        let explicit = self
            .old_bounds
            .range(u64::try_from(lo).unwrap_or(0)..)
            .map(|&b| i128::from(b))
            .take_while(|&b| b <= to)
            .find(|&b| (b - from) % len == 0);
        let runs = self.old_runs.iter().filter_map(|&(s, e)| {
            let (s, e) = (i128::from(s), i128::from(e));
            if (s - from).rem_euclid(len) != 0 {
                return None;
            }
            let lo = lo.max(s);
            let first = lo + (from - lo).rem_euclid(len);
            (first <= e.min(to)).then_some(first)
        });
        explicit
            .into_iter()
            .chain(runs)
            .min()
            .and_then(|b| u64::try_from((b - from) / len).ok())
    }

    /// Cuts what is fed; stores the chunks and the nodes they close.
    pub fn feed(&mut self, data: &[u8], eof: bool) -> ChunkResult<()> {
        if self.resumed.is_some() {
            return Ok(());
        }
        self.buf.extend_from_slice(data);
        // Chunk by chunk: once the cuts resume the old chunks, the bytes
        // after are not scanned.
        let mut rest = 0;
        while let Some(l) = self
            .params
            .first_chunk(&self.buf[rest..], eof, &mut self.scanned)
        {
            let o = rest;
            rest += l;
            self.add_chunk(o, l)?;
            // A cut past the edit on an old boundary: from here on, old and
            // new content and so their chunks are the same.
            let end_new = self.new_pos + (o + l) as u64;
            if end_new >= self.edit_end_new {
                let old_equiv = end_new as i128 - self.delta;
                if let Ok(old) = u64::try_from(old_equiv)
                    && self.is_bound(old)
                {
                    self.resumed = Some(old);
                    break;
                }
            }
        }
        if self.resumed.is_none() {
            self.cut_as_before(rest)?;
        }
        self.store(Vec::new())?;
        if self.resumed.is_some() {
            self.buf.clear();
            self.scanned = Scanned::default();
        } else {
            self.buf.drain(..rest);
            self.new_pos += rest as u64;
        }
        Ok(())
    }

    /// Cuts the bytes waiting from `rest` on as one chunk and resumes the
    /// old chunks after it when they are the end of an old chunk, unchanged,
    /// from its start on the same footing: the new chunk starts where the
    /// old one did (in step with the change so far) and its last
    /// [`WINDOW`] bytes are old ones. A cut point is decided by its offset
    /// in the chunk and the bytes just before it, so the old chunk's end
    /// is a cut point again, and no earlier one appears where the new
    /// bytes do not reach (the search found none where they do). Without
    /// this, the next old chunk would be read and verified only for its
    /// first byte.
    fn cut_as_before(&mut self, rest: usize) -> ChunkResult<()> {
        let Some((start, end)) = self.old_leaf else {
            return Ok(());
        };
        let old = |new: u64| i128::from(new) - self.delta;
        let chunk_start = self.new_pos + rest as u64;
        let chunk_end = self.new_pos + self.buf.len() as u64;
        let in_step = old(chunk_start) == i128::from(start) && old(chunk_end) == i128::from(end);
        if !in_step
            || chunk_end < self.edit_end_new.saturating_add(WINDOW)
            || rest == self.buf.len()
        {
            return Ok(());
        }
        self.add_chunk(rest, self.buf.len() - rest)?;
        self.resumed = Some(end);
        Ok(())
    }

    /// Makes the `len` bytes waiting at `at` a new chunk: linked in the
    /// tree and queued for storing.
    fn add_chunk(&mut self, at: usize, len: usize) -> ChunkResult<()> {
        let data = &self.buf[at..at + len];
        let cid = Cid::hash(Codec::RAW, data);
        self.tree.push_leaf((cid, len as u64))?;
        self.arena.push(cid, data);
        self.pending_bytes += len;
        Ok(())
    }

    /// Feeds `n` zero bytes. Once a chunk starts inside them, every chunk
    /// with a whole maximum chunk of zeros ahead is the zero chunk, so those
    /// are linked without being cut or hashed (short of any cut that could
    /// resume the old chunks): a terabyte of zeros costs what megabytes do.
    pub fn feed_zeros(&mut self, mut n: u64) -> ChunkResult<()> {
        let max = self.params.max() as u64;
        let mut skipped = false;
        while n > 0 && self.resumed.is_none() {
            let ahead = self.buf.len() as u64 + n;
            if !skipped && ahead > 2 * max && self.at_zeros() {
                skipped = true;
                let (link, block) = self.zero.clone();
                let mut count = (ahead - max) / link.1;
                let from_old = self.new_pos as i128 - self.delta;
                if let Some(j) = self.first_aligned(from_old, count) {
                    count = count.min(j - 1);
                }
                if count > 0 {
                    self.tree.push_repeated(0, link, count)?;
                    self.store(vec![block])?;
                    let skip = count * link.1;
                    self.new_pos += skip;
                    let from_buf = skip.min(self.buf.len() as u64);
                    self.buf.drain(..from_buf as usize);
                    self.scanned = Scanned::default();
                    n -= skip - from_buf;
                    continue;
                }
            }
            // Before a skip, a chunk's worth at a time: only until the
            // bytes waiting are all zeros.
            let k = n.min(if skipped { ZERO_PIECE as u64 } else { max });
            self.feed(&ZEROS[..k as usize], false)?;
            n -= k;
        }
        Ok(())
    }
}
