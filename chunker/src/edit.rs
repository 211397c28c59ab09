//! Edits: write at an offset, append, truncate, reusing untouched chunks.
//!
//! An edit re-cuts from the start of the first chunk it touches and keeps
//! cutting past the edited range until a new cut falls on an old chunk
//! boundary; from there the old chunks are reused as they are, whole
//! subtrees at a time. Because chunking and the tree are content-defined,
//! the result is the very blob (same root) that writing the new content
//! from scratch gives, while only the re-cut chunks and the tree nodes above
//! them are new blocks. Many writes go in one pass. A range copied from
//! another blob reuses that blob's chunks the same way once the cuts fall
//! in step with them, so copying a file costs O(depth × fanout) too.

use hydra_dag::{Block, Codec, WriteSession};

use crate::blob::Blob;
use crate::error::{ChunkError, ChunkResult};
use crate::nodes::NodeCache;
use crate::params::ChunkParams;
use crate::reader::BlobReader;

use crate::recut::{self, Recut};
use crate::walk;
use crate::writer::{BatchStore, BlobWriter};

/// What an edit inserts.
enum Insert<'a> {
    Bytes(&'a [u8]),
    Zeros(u64),
    /// `len` bytes of another blob (of the same bucket) from offset `from`.
    Range {
        src: &'a Blob,
        from: u64,
        len: u64,
    },
}

impl Insert<'_> {
    fn len(&self) -> u64 {
        match self {
            Insert::Bytes(b) => b.len() as u64,
            Insert::Zeros(n) => *n,
            Insert::Range { len, .. } => *len,
        }
    }
}

/// One change: `remove` old bytes at old offset `at` give way to `insert`.
struct Change<'a> {
    at: u64,
    remove: u64,
    insert: Insert<'a>,
}

impl Change<'_> {
    /// How much the change grows the content.
    fn growth(&self) -> i128 {
        i128::from(self.insert.len()) - i128::from(self.remove)
    }
}

/// Blob editing in one bucket with one set of chunk bounds.
#[derive(Debug, Clone)]
pub struct BlobEditor {
    session: WriteSession,
    params: ChunkParams,
    /// New blocks of re-cuts kept for the caller to store, when it asked.
    kept: Option<std::sync::Arc<std::sync::Mutex<Vec<Block>>>>,
    /// Where tree nodes read and made are kept decoded, when given.
    nodes: Option<NodeCache>,
}

impl BlobEditor {
    /// An editor storing new blocks through `session`.
    pub fn new(session: WriteSession, params: ChunkParams) -> Self {
        BlobEditor {
            session,
            params,
            kept: None,
            nodes: None,
        }
    }

    /// Keeps the tree nodes its edits read and make in `cache`, decoded,
    /// for later edits of the same blobs.
    pub fn with_nodes(mut self, cache: NodeCache) -> Self {
        self.nodes = Some(cache);
        self
    }

    /// An editor that keeps most new blocks (its re-cuts') for the caller
    /// to store with others in one batch, [`BlobEditor::take_blocks`]:
    /// nothing refers to them before. It never reads them back, so each
    /// edit must start from a stored blob.
    pub fn collecting(session: WriteSession, params: ChunkParams) -> Self {
        BlobEditor {
            kept: Some(Default::default()),
            ..BlobEditor::new(session, params)
        }
    }

    /// The new blocks a collecting editor kept so far.
    pub fn take_blocks(&self) -> Vec<Block> {
        self.kept.as_ref().map_or_else(Vec::new, |kept| {
            std::mem::take(&mut *kept.lock().unwrap_or_else(|e| e.into_inner()))
        })
    }

    /// Overwrites bytes at `offset` with `data`, extending the blob (with
    /// zeros across any gap) as needed.
    pub fn write_at(&self, blob: &Blob, offset: u64, data: &[u8]) -> ChunkResult<Blob> {
        let size = blob.size();
        if offset > size {
            let grown = self.truncate(blob, offset)?;
            return self.append(&grown, data);
        }
        let remove = (data.len() as u64).min(size - offset);
        self.rewrite(blob, &[change(offset, remove, Insert::Bytes(data))])
    }

    /// Overwrites every range in `writes` (in offset order, not
    /// overlapping, within the blob) in one pass: each chunk and tree node
    /// they touch is written once.
    pub fn write_many(&self, blob: &Blob, writes: &[(u64, &[u8])]) -> ChunkResult<Blob> {
        let changes: Vec<Change> = writes
            .iter()
            .map(|&(at, data)| change(at, data.len() as u64, Insert::Bytes(data)))
            .collect();
        self.rewrite(blob, &changes)
    }

    /// Zeros `len` bytes at `offset` (those within the blob); the size
    /// stays. Long ranges cost what a few chunks do.
    pub fn zero_range(&self, blob: &Blob, offset: u64, len: u64) -> ChunkResult<Blob> {
        let size = blob.size();
        let n = len.min(size.saturating_sub(offset));
        if n == 0 {
            return Ok(blob.clone());
        }
        self.rewrite(blob, &[change(offset, n, Insert::Zeros(n))])
    }

    /// Appends `data`.
    pub fn append(&self, blob: &Blob, data: &[u8]) -> ChunkResult<Blob> {
        self.rewrite(blob, &[change(blob.size(), 0, Insert::Bytes(data))])
    }

    /// Overwrites `blob` from `at` on with up to `len` bytes of `src` (a
    /// blob of the same bucket) from `from`, extending `blob` (with zeros
    /// across any gap) as needed; returns the new blob and how many bytes
    /// were copied (fewer when `src` ends first). `src`'s chunks are
    /// reused, not read and cut again, wherever the cuts fall in step.
    pub fn copy_range(
        &self,
        blob: &Blob,
        at: u64,
        src: &Blob,
        from: u64,
        len: u64,
    ) -> ChunkResult<(Blob, u64)> {
        let n = len.min(src.size().saturating_sub(from));
        if n == 0 {
            return Ok((blob.clone(), 0));
        }
        if let Some(root) = src.root() {
            // Kept from GC until the copy is committed where a ref reaches it.
            self.session.pin(*root);
        }
        let size = blob.size();
        let copied = if at == 0 && n >= size {
            // Nothing of `blob` stays: `src` cut down to the range.
            let end = from + n;
            self.rewrite(
                src,
                &[
                    change(0, from, Insert::Bytes(&[])),
                    change(end, src.size() - end, Insert::Bytes(&[])),
                ],
            )?
        } else {
            let base = if at > size {
                self.truncate(blob, at)?
            } else {
                blob.clone()
            };
            let remove = n.min(base.size() - at);
            let insert = Insert::Range { src, from, len: n };
            self.rewrite(&base, &[change(at, remove, insert)])?
        };
        Ok((copied, n))
    }

    /// Cuts the blob to `len` bytes, or extends it with zeros.
    pub fn truncate(&self, blob: &Blob, len: u64) -> ChunkResult<Blob> {
        let size = blob.size();
        if len <= size {
            self.rewrite(blob, &[change(len, size - len, Insert::Bytes(&[]))])
        } else {
            self.rewrite(blob, &[change(size, 0, Insert::Zeros(len - size))])
        }
    }

    /// Applies `changes` (in order, not overlapping) in one pass.
    fn rewrite(&self, blob: &Blob, changes: &[Change<'_>]) -> ChunkResult<Blob> {
        let size = blob.size();
        let mut end = 0;
        for c in changes {
            if c.at < end || c.at > size || c.remove > size - c.at {
                return Err(ChunkError::OutOfRange { offset: c.at, size });
            }
            end = c.at + c.remove;
        }
        let changes: Vec<&Change> = changes
            .iter()
            .filter(|c| c.remove > 0 || c.insert.len() > 0)
            .collect();
        if changes.is_empty() {
            return Ok(blob.clone());
        }
        let new_size = (i128::from(size) + changes.iter().map(|c| c.growth()).sum::<i128>()) as u64;
        let mut reader = self.reader(blob);
        if new_size <= 4 * self.params.max() as u64 {
            // Small: write the new content afresh, streaming.
            let mut writer = BlobWriter::new(self.session.clone(), self.params);
            let mut pos = 0;
            for c in &changes {
                writer.write_bytes(&reader.read_at(pos, (c.at - pos) as usize)?)?;
                match c.insert {
                    Insert::Bytes(b) => writer.write_bytes(b)?,
                    Insert::Zeros(n) => recut::feed_zeros(n, |z| writer.write_bytes(z))?,
                    Insert::Range { src, from, len } => {
                        let mut src = BlobReader::new(self.session.bucket().clone(), src.clone());
                        writer.write_bytes(&src.read_at(from, len as usize)?)?;
                    }
                }
                pos = c.at + c.remove;
            }
            writer.write_bytes(&reader.read_at(pos, (size - pos) as usize)?)?;
            return Ok(writer.finish()?.0);
        }
        let root = match blob {
            Blob::Stored { root, size } => (*root, *size),
            // Grown far past inline size: its bytes as a chunk of their own,
            // re-cut with the rest like any first leaf.
            Blob::Inline(data) => {
                let chunk = Block::new(Codec::RAW, data.clone())?;
                self.session.put_blocks(std::slice::from_ref(&chunk))?;
                (*chunk.cid(), size)
            }
        };
        let batches = match self.kept {
            Some(_) => BatchStore::Collect(Vec::new()),
            None => BatchStore::Direct(self.session.clone()),
        };
        let mut recut = Recut::new(batches, self.params)?;
        if let Some(cache) = &self.nodes {
            recut.tree.keep_nodes(cache.clone());
        }
        let mut scratch = Vec::new();
        // Old offset up to which the new tree holds the content.
        let mut pos = 0;
        let mut delta = 0i128;
        let mut next = 0;
        let mut warmed = 0;
        while let Some(c) = changes.get(next) {
            warmed = warm_ahead(&mut reader, root, &changes, next, warmed)?;
            // Re-cut from the start of the leaf holding the second byte
            // before the change (a cut depends on the byte after it, and
            // FastCDC, testing two bytes a step, cuts after an even count
            // only if one more byte exists: a change may remove it); keep
            // the old subtrees before it.
            let before = c.at.saturating_sub(2).min(size.saturating_sub(1));
            let first = walk::leaf_at(&mut reader, root, before)?;
            walk::push_old(&mut reader, root, &mut recut.tree, pos, first.start)?;
            recut.restart((first.start as i128 + delta) as u64);
            feed_old(&mut reader, &mut recut, &mut scratch, first.start, c.at)?;
            let mut old_pos = c.at;
            let mut reached = next;
            // Until the cuts resume the old chunks: the change, old bytes up
            // to the next change, that change, and so on.
            while recut.resumed.is_none() {
                if let Some(c) = changes.get(reached).filter(|c| c.at == old_pos) {
                    delta += c.growth();
                    let end_new = i128::from(old_pos) + delta + i128::from(c.remove);
                    recut.change(end_new as u64, delta);
                    old_pos += c.remove;
                    // A boundary to resume at, unless the next change
                    // starts right there or a byte later (and so decides
                    // that cut).
                    let adjacent = changes
                        .get(reached + 1)
                        .is_some_and(|n| n.at <= old_pos + 1);
                    if !adjacent
                        && (old_pos == size
                            || walk::leaf_at(&mut reader, root, old_pos)?.start == old_pos)
                    {
                        recut.bound(old_pos);
                    }
                    match c.insert {
                        Insert::Bytes(b) => recut.feed(b, false)?,
                        Insert::Zeros(n) => recut.feed_zeros(n)?,
                        Insert::Range { src, from, len } => {
                            self.feed_range(&mut recut, src, from, from + len)?
                        }
                    }
                    reached += 1;
                    continue;
                }
                if old_pos == size {
                    recut.feed(&[], true)?;
                    break;
                }
                // Old bytes up to the next change; no boundary at its start
                // or a byte before counts (its first byte decides the cut).
                let limit = changes.get(reached).map_or(size, |c| c.at);
                let last = if reached < changes.len() {
                    limit.saturating_sub(2)
                } else {
                    limit
                };
                let leaf = walk::leaf_at(&mut reader, root, old_pos)?;
                if leaf.start == old_pos && leaf.link == recut.zero_leaf() && recut.at_zeros() {
                    let run = walk::run_of(&mut reader, root, old_pos, leaf.link)?;
                    let run = run.min(last.saturating_sub(old_pos) / leaf.link.1 * leaf.link.1);
                    if run > 0 {
                        recut.zero_run(old_pos, old_pos + run);
                        recut.feed_zeros(run)?;
                        old_pos += run;
                        continue;
                    }
                }
                let piece_end = leaf.end().min(limit);
                if piece_end == leaf.end() && piece_end <= last {
                    recut.bound(piece_end);
                    recut.old_chunk(leaf.start, piece_end);
                }
                feed_old(&mut reader, &mut recut, &mut scratch, old_pos, piece_end)?;
                old_pos = piece_end;
            }
            pos = recut.resumed.unwrap_or(size);
            next = reached;
        }
        walk::push_old(&mut reader, root, &mut recut.tree, pos, size)?;
        let root = recut.tree.finish()?;
        recut.flush()?;
        if let Some(kept) = &self.kept {
            kept.lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend(recut.take_kept());
        }
        Ok(match root {
            None => Blob::empty(),
            Some((root, size)) => Blob::Stored { root, size },
        })
    }
}

impl BlobEditor {
    /// A reader of `blob`'s old bytes for an edit. It warms no blocks
    /// ahead: an edit reads only up to where the cuts fall in step again,
    /// and warming ahead of each of 1,000 random writes read 800 MiB.
    fn reader(&self, blob: &Blob) -> BlobReader {
        let mut reader = BlobReader::new(self.session.bucket().clone(), blob.clone());
        if let Some(cache) = &self.nodes {
            reader = reader.with_nodes(cache.clone());
        }
        reader.set_read_ahead(false);
        reader
    }

    /// Feeds bytes `[from, to)` of `src` to `recut`. Once a new chunk
    /// starts where one of `src` does (with the same bytes before the range
    /// starts, if it starts earlier), the cuts go in step, so `src`'s
    /// subtrees are pushed whole up to its last chunk that ends two bytes
    /// before `to` (the cut of a later one may depend on bytes past it).
    fn feed_range(&self, recut: &mut Recut, src: &Blob, from: u64, to: u64) -> ChunkResult<()> {
        let root = match src {
            Blob::Inline(data) => return recut.feed(&data[from as usize..to as usize], false),
            Blob::Stored { root, size } => (*root, *size),
        };
        let mut reader = self.reader(src);
        // New offset minus `src` offset of the range's bytes.
        let shift =
            i128::from(recut.chunk_start() + recut.waiting().len() as u64) - i128::from(from);
        let stop = walk::leaf_at(&mut reader, root, to.saturating_sub(2).max(from))?.start;
        let mut reused = false;
        let mut pos = from;
        while pos < to {
            if !reused
                && let Ok(start) = u64::try_from(i128::from(recut.chunk_start()) - shift)
                && start < stop
                && walk::leaf_at(&mut reader, root, start)?.start == start
                && (start >= from
                    || recut.waiting()[..(from - start) as usize]
                        == reader.read_at(start, (from - start) as usize)?[..])
            {
                walk::push_old(&mut reader, root, &mut recut.tree, start, stop)?;
                recut.skip_to((i128::from(stop) + shift) as u64);
                reused = true;
                pos = stop;
                continue;
            }
            let leaf = walk::leaf_at(&mut reader, root, pos)?;
            if leaf.start == pos && leaf.link == recut.zero_leaf() {
                let run = walk::run_of(&mut reader, root, pos, leaf.link)?.min(to - pos);
                recut.feed_zeros(run)?;
                pos += run;
                continue;
            }
            let end = leaf.end().min(to);
            recut.feed(&reader.read_at(pos, (end - pos) as usize)?, false)?;
            pos = end;
        }
        Ok(())
    }
}

/// Changes ahead whose first chunks are warmed while one is re-cut.
const WARM_AHEAD: usize = 8;

/// Has the reader's prefetch thread read (and verify) the chunks that
/// the changes after `next`, up to [`WARM_AHEAD`] of them, start in, those
/// from `warmed` on, so that reading them overlaps re-cutting this one;
/// returns how many changes are warmed now.
fn warm_ahead(
    reader: &mut BlobReader,
    root: (hydra_dag::Cid, u64),
    changes: &[&Change<'_>],
    next: usize,
    warmed: usize,
) -> ChunkResult<usize> {
    let until = (next + 1 + WARM_AHEAD).min(changes.len());
    let from = warmed.max(next + 1);
    if from >= until {
        return Ok(warmed.max(until));
    }
    let mut cids = Vec::with_capacity(until - from);
    for c in &changes[from..until] {
        let before = c.at.saturating_sub(2).min(root.1.saturating_sub(1));
        cids.push(walk::leaf_at(reader, root, before)?.link.0);
    }
    reader.warm(cids);
    Ok(until)
}

/// Feeds old bytes `[from, to)` to `recut` through one reused buffer (a
/// fresh one per piece would be faulted in and cleared every time).
fn feed_old(
    reader: &mut BlobReader,
    recut: &mut Recut,
    scratch: &mut Vec<u8>,
    from: u64,
    to: u64,
) -> ChunkResult<()> {
    let n = reader.read_at_over(from, (to - from) as usize, scratch)?;
    recut.feed(&scratch[..n], false)
}

fn change(at: u64, remove: u64, insert: Insert<'_>) -> Change<'_> {
    Change { at, remove, insert }
}
