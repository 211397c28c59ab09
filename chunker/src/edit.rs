//! Edits: write at an offset, append, truncate, reusing untouched chunks.
//!
//! An edit re-cuts from the start of the first chunk it touches and keeps
//! cutting past the edited range until a new cut falls on an old chunk
//! boundary; from there the old chunks are reused as they are. Because
//! chunking and the tree are content-defined, the result is the very blob
//! (same root) that writing the new content from scratch gives, while only
//! the re-cut chunks and the tree nodes above them are new blocks.

use bytes::Bytes;
use hydra_dag::{Block, Cid, Codec, WriteSession};

use crate::blob::Blob;
use crate::error::{ChunkError, ChunkResult};
use crate::params::ChunkParams;
use crate::reader::BlobReader;
use crate::tree::TreeBuilder;
use crate::writer::BlobWriter;

/// Zeros are fed in pieces of this size when an edit extends a blob.
const ZERO_PIECE: usize = 1 << 20;

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
        if matches!(blob, Blob::Inline(_)) || new_size <= 4 * self.params.max() as u64 {
            // Small or inline: write the new content afresh, streaming.
            let mut writer = BlobWriter::new(self.session.clone(), self.params);
            writer.write_bytes(&reader.read_at(0, at as usize)?)?;
            match insert {
                Insert::Bytes(b) => writer.write_bytes(b)?,
                Insert::Zeros(n) => feed_zeros(n, |z| writer.write_bytes(z))?,
            }
            let tail_at = at + remove;
            writer.write_bytes(&reader.read_at(tail_at, (size - tail_at) as usize)?)?;
            return Ok(writer.finish()?.0);
        }
        let leaves = reader.leaves()?;
        let mut starts = Vec::with_capacity(leaves.len() + 1);
        let mut pos = 0;
        for (_, len) in &leaves {
            starts.push(pos);
            pos += len;
        }
        starts.push(pos);
        // The first leaf to re-cut holds `at` (or is the last one, at the end).
        let first = starts
            .partition_point(|&s| s <= at)
            .saturating_sub(1)
            .min(leaves.len() - 1);
        let mut recut = Recut {
            editor: self,
            tree: TreeBuilder::new(),
            buf: Vec::new(),
            cuts: Vec::new(),
            new_pos: starts[first],
            starts: &starts,
            delta: new_size as i128 - size as i128,
            edit_end_new: at + insert.len(),
            resumed: None,
        };
        for link in &leaves[..first] {
            recut.tree.push_leaf(*link)?;
        }
        recut.feed(
            &reader.read_at(starts[first], (at - starts[first]) as usize)?,
            false,
        )?;
        match insert {
            Insert::Bytes(b) => recut.feed(b, false)?,
            Insert::Zeros(n) => feed_zeros(n, |z| recut.feed(z, false))?,
        }
        // Old bytes after the removed range, a leaf at a time, until resync.
        let mut old_pos = at + remove;
        let mut leaf = starts.partition_point(|&s| s <= old_pos).saturating_sub(1);
        while old_pos < size && recut.resumed.is_none() {
            let leaf_end = starts[leaf + 1];
            let piece = reader.read_at(old_pos, (leaf_end - old_pos) as usize)?;
            old_pos = leaf_end;
            leaf += 1;
            recut.feed(&piece, false)?;
        }
        if recut.resumed.is_none() {
            recut.feed(&[], true)?;
        }
        let resumed = recut.resumed;
        let mut tree = std::mem::take(&mut recut.tree);
        if let Some(i) = resumed {
            for link in &leaves[i..] {
                tree.push_leaf(*link)?;
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

fn feed_zeros(mut n: u64, mut feed: impl FnMut(&[u8]) -> ChunkResult<()>) -> ChunkResult<()> {
    let zeros = vec![0u8; ZERO_PIECE.min(n as usize)];
    while n > 0 {
        let k = n.min(ZERO_PIECE as u64) as usize;
        feed(&zeros[..k])?;
        n -= k as u64;
    }
    Ok(())
}

/// The re-cutting state of one splice.
struct Recut<'e> {
    editor: &'e BlobEditor,
    tree: TreeBuilder,
    buf: Vec<u8>,
    cuts: Vec<(usize, usize)>,
    /// New-content offset of `buf[0]`.
    new_pos: u64,
    /// Old leaf start offsets, and the old size last.
    starts: &'e [u64],
    /// New size minus old size.
    delta: i128,
    /// New-content offset just past the inserted bytes.
    edit_end_new: u64,
    /// Index of the old leaf from which old leaves are reused, once found.
    resumed: Option<usize>,
}

impl Recut<'_> {
    fn feed(&mut self, data: &[u8], eof: bool) -> ChunkResult<()> {
        if self.resumed.is_some() {
            return Ok(());
        }
        self.buf.extend_from_slice(data);
        self.cuts.clear();
        let rest = self.editor.params.split(&self.buf, eof, &mut self.cuts);
        let mut chunks = Vec::with_capacity(self.cuts.len());
        for &(o, l) in &self.cuts {
            let data = Bytes::copy_from_slice(&self.buf[o..o + l]);
            let cid = Cid::hash(Codec::RAW, &data);
            self.tree.push_leaf((cid, l as u64))?;
            chunks.push(Block::trusted(cid, data));
            // A cut past the edit on an old boundary: from here on, old and
            // new content and so their chunks are the same.
            let end_new = self.new_pos + (o + l) as u64;
            if end_new >= self.edit_end_new {
                let old_equiv = end_new as i128 - self.delta;
                if let Ok(old) = u64::try_from(old_equiv)
                    && let Ok(i) = self.starts.binary_search(&old)
                {
                    self.resumed = Some(i);
                    break;
                }
            }
        }
        chunks.extend(self.tree.take_blocks());
        self.editor.session.put_blocks(&chunks)?;
        if self.resumed.is_some() {
            self.buf.clear();
        } else {
            self.buf.drain(..rest);
            self.new_pos += rest as u64;
        }
        Ok(())
    }
}
