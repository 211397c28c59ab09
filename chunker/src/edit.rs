//! Edits: write at an offset, append, truncate, reusing untouched chunks.
//!
//! An edit re-cuts from the start of the first chunk it touches and keeps
//! cutting past the edited range until a new cut falls on an old chunk
//! boundary; from there the old chunks are reused as they are. Because
//! chunking and the tree are content-defined, the result is the very blob
//! (same root) that writing the new content from scratch gives, while only
//! the re-cut chunks and the tree nodes above them are new blocks.

use hydra_dag::{Block, Codec, WriteSession};

use crate::blob::Blob;
use crate::error::{ChunkError, ChunkResult};
use crate::params::ChunkParams;
use crate::reader::BlobReader;

use crate::recut::{self, Recut};
use crate::walk;
use crate::writer::BlobWriter;

/// What an edit inserts.
enum Insert<'a> {
    Bytes(&'a [u8]),
    Zeros(u64),
}

impl Insert<'_> {
    fn len(&self) -> u64 {
        match self {
            Insert::Bytes(b) => b.len() as u64,
            Insert::Zeros(n) => *n,
        }
    }
}

/// Blob editing in one bucket with one set of chunk bounds.
#[derive(Debug, Clone)]
pub struct BlobEditor {
    session: WriteSession,
    params: ChunkParams,
}

impl BlobEditor {
    /// An editor storing new blocks through `session`.
    pub fn new(session: WriteSession, params: ChunkParams) -> Self {
        BlobEditor { session, params }
    }

    /// Overwrites bytes at `offset` with `data`, extending the blob (with
    /// zeros across any gap) as needed.
    pub fn write_at(&self, blob: &Blob, offset: u64, data: &[u8]) -> ChunkResult<Blob> {
        let size = blob.size();
        if offset > size {
            let grown = self.splice(blob, size, 0, Insert::Zeros(offset - size))?;
            return self.splice(&grown, offset, 0, Insert::Bytes(data));
        }
        let replaced = (data.len() as u64).min(size - offset);
        self.splice(blob, offset, replaced, Insert::Bytes(data))
    }

    /// Appends `data`.
    pub fn append(&self, blob: &Blob, data: &[u8]) -> ChunkResult<Blob> {
        self.splice(blob, blob.size(), 0, Insert::Bytes(data))
    }

    /// Cuts the blob to `len` bytes, or extends it with zeros.
    pub fn truncate(&self, blob: &Blob, len: u64) -> ChunkResult<Blob> {
        let size = blob.size();
        if len <= size {
            self.splice(blob, len, size - len, Insert::Bytes(&[]))
        } else {
            self.splice(blob, size, 0, Insert::Zeros(len - size))
        }
    }

    /// Replaces `remove` bytes at `at` with `insert`.
    fn splice(&self, blob: &Blob, at: u64, remove: u64, insert: Insert<'_>) -> ChunkResult<Blob> {
        let size = blob.size();
        if at > size || remove > size - at {
            return Err(ChunkError::OutOfRange { offset: at, size });
        }
        if remove == 0 && insert.len() == 0 {
            return Ok(blob.clone());
        }
        let new_size = size - remove + insert.len();
        let mut reader = BlobReader::new(self.session.bucket().clone(), blob.clone());
        if new_size <= 4 * self.params.max() as u64 {
            // Small or inline: write the new content afresh, streaming.
            let mut writer = BlobWriter::new(self.session.clone(), self.params);
            writer.write_bytes(&reader.read_at(0, at as usize)?)?;
            match insert {
                Insert::Bytes(b) => writer.write_bytes(b)?,
                Insert::Zeros(n) => recut::feed_zeros(n, |z| writer.write_bytes(z))?,
            }
            let tail_at = at + remove;
            writer.write_bytes(&reader.read_at(tail_at, (size - tail_at) as usize)?)?;
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
        // Subtrees before the first leaf to re-cut (the one holding `at`,
        // or the last one, at the end) are kept whole.
        let (before, first) = walk::before(&mut reader, root, at.min(size.saturating_sub(1)))?;
        let mut recut = Recut::new(
            self.session.clone(),
            self.params,
            first.start,
            new_size as i128 - size as i128,
            at + insert.len(),
        )?;
        for (height, link) in before {
            recut.tree.push(height, link)?;
        }
        // Where old chunks could resume: old leaf boundaries from the end of
        // the removed range on (noted before the bytes that reach them).
        let mut old_pos = at + remove;
        let mut next = (old_pos < size).then(|| walk::leaf_at(&mut reader, root, old_pos));
        if old_pos == size || matches!(next, Some(Ok(leaf)) if leaf.start == old_pos) {
            recut.bound(old_pos);
        }
        recut.feed(
            &reader.read_at(first.start, (at - first.start) as usize)?,
            false,
        )?;
        match insert {
            Insert::Bytes(b) => recut.feed(b, false)?,
            Insert::Zeros(n) => recut.feed_zeros(n)?,
        }
        // Old bytes after the removed range, a leaf (or a run of zero
        // chunks) at a time, until resync.
        while let Some(leaf) = next.take().transpose()? {
            if recut.resumed.is_some() {
                break;
            }
            if leaf.start == old_pos && leaf.link == recut.zero_leaf() && recut.at_zeros() {
                let run = walk::run_of(&mut reader, root, old_pos, leaf.link)?;
                recut.zero_run(old_pos, old_pos + run);
                recut.feed_zeros(run)?;
                old_pos += run;
            } else {
                recut.bound(leaf.end());
                let piece = reader.read_at(old_pos, (leaf.end() - old_pos) as usize)?;
                old_pos = leaf.end();
                recut.feed(&piece, false)?;
            }
            if old_pos < size {
                next = Some(walk::leaf_at(&mut reader, root, old_pos));
            }
        }
        if recut.resumed.is_none() {
            recut.feed(&[], true)?;
        }
        let resumed = recut.resumed;
        let mut tree = recut.tree;
        if let Some(mut pos) = resumed {
            // From an old boundary on the old tree is reused, a subtree at a
            // time: each as high as the levels still open below it allow.
            while pos < size {
                let (height, link) = walk::subtree_at(&mut reader, root, pos, tree.lowest_open())?;
                tree.push(height, link)?;
                pos += link.1;
            }
        }
        let root = tree.finish()?;
        self.session.put_blocks(&tree.take_blocks())?;
        Ok(match root {
            None => Blob::empty(),
            Some((root, size)) => Blob::Stored { root, size },
        })
    }
}
