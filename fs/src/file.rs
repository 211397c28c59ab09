//! File content while it is being changed: the write-back overlay.
//!
//! A file is clean (a committed [`Blob`]), a buffer (small files and files
//! rewritten from scratch, wholly in memory), a stream (a large file
//! written sequentially from the start, chunked and stored as it arrives,
//! in bounded memory), or an overlay (random writes to a large file, kept as
//! extents over the blob until they are applied). Commit turns every state
//! back into a clean blob, keeping a buffer's bytes in memory while the
//! file is open, for its next write.

use std::collections::BTreeMap;

use bytes::Bytes;
use hydra_chunker::{
    Blob, BlobEditor, BlobReader, BlobWriter, ChunkParams, NodeCache, Prior, chunk_changed,
    put_shared,
};
use hydra_dag::{Block, Bucket, WriteSession};

use crate::error::{FsError, FsResult};

/// On flush, files larger than this are stored at once; smaller ones wait
/// for the commit, which stores many of them in one batch.
pub const FLUSH_SETTLE_MIN: u64 = 8 << 20;

/// A stream keeps writes arriving this far ahead of its end (and at most
/// this many bytes of them) to append once the gap fills.
const REORDER_WINDOW: u64 = 32 << 20;

/// An overlay of at most this many writes of at most this many bytes in
/// all has the chunks it rewrites stored with the commit's other blocks.
const FEW_WRITES: usize = 16;
const FEW_WRITE_BYTES: usize = 1 << 20;

/// Files up to this size are edited in a memory buffer.
const BUFFER_MAX: u64 = 4 << 20;

/// Why a file's content was lost.
#[derive(Clone, Debug)]
pub struct Loss {
    why: String,
    /// The store ran out of space (ENOSPC rather than EIO).
    no_space: bool,
}

impl Loss {
    fn interrupted() -> Loss {
        Loss {
            why: "stream interrupted".into(),
            no_space: false,
        }
    }

    /// The error every later read, write and commit of the file reports.
    pub fn error(&self) -> FsError {
        if self.no_space {
            FsError::LostNoSpace(self.why.clone())
        } else {
            FsError::Lost(self.why.clone())
        }
    }
}

/// The content of a file.
#[derive(Debug)]
pub enum FileData {
    /// Committed, unchanged content.
    Clean(Blob),
    /// Committed, unchanged content with its bytes still in memory: a
    /// buffer a commit stored while the file stayed open (a database, its
    /// log), so the next write edits them without reading the blob back.
    Kept(Box<KeptContent>),
    /// The whole content in memory, and the chunks it was last stored as
    /// with what changed since, when known (so a commit cuts only there).
    Buffer(Vec<u8>, Option<Box<Prior>>),
    /// A buffer a commit is storing: the same bytes, shared with the blocks
    /// being written (no copy), and the chunks they are cut into (reused
    /// only once stored); clean once they are.
    Planned(Bytes, Box<Prior>),
    /// Appended to sequentially, being chunked as it arrives.
    Stream {
        /// The writer.
        writer: Box<BlobWriter>,
        /// Bytes written so far.
        len: u64,
        /// Writes that arrived ahead of `len` (the kernel's requests can
        /// overtake each other), appended once the gap before them fills.
        ahead: BTreeMap<u64, Vec<u8>>,
    },
    /// Content that a failed stream lost: every read and commit reports it
    /// until the file is truncated or removed.
    Lost(Loss),
    /// Random writes over a large blob (boxed: rare, and every inode in
    /// memory is as large as its largest content).
    Overlay(Box<Overlay>),
}

/// Stored content kept in memory (see [`FileData::Kept`]).
#[derive(Debug)]
pub struct KeptContent {
    blob: Blob,
    data: Bytes,
    /// The chunks `data` is cut into.
    chunks: Prior,
}

/// Random writes laid over a blob.
#[derive(Debug)]
pub struct Overlay {
    /// The content under the writes.
    pub base: Blob,
    /// The file's size.
    pub size: u64,
    /// Written ranges by offset, never overlapping.
    pub extents: BTreeMap<u64, Vec<u8>>,
}

/// Most bytes of committed files kept in memory at once (see
/// [`FileData::Kept`]); the longest kept are let go first.
const KEPT_BYTES: u64 = 32 << 20;
/// Most files kept in memory at once.
const KEPT_FILES: usize = 256;

/// Which files keep their bytes in memory after a commit, within a
/// budget: the longest kept are let go first.
#[derive(Debug, Default)]
pub struct KeptFiles {
    /// Inode and bytes by the order they were kept in.
    order: BTreeMap<u64, (u64, u64)>,
    /// Each kept inode's place in `order`.
    place: std::collections::HashMap<u64, u64>,
    next: u64,
    bytes: u64,
}

impl KeptFiles {
    /// Counts `len` bytes kept for inode `ino` (in place of what it kept
    /// before); returns the inodes to let go of to stay in budget. An inode
    /// that let go of its bytes since counts until then, which only lets
    /// the others go sooner.
    pub fn note(&mut self, ino: u64, len: u64) -> Vec<u64> {
        if let Some(old) = self.place.remove(&ino)
            && let Some((_, n)) = self.order.remove(&old)
        {
            self.bytes -= n;
        }
        self.order.insert(self.next, (ino, len));
        self.place.insert(ino, self.next);
        self.next += 1;
        self.bytes += len;
        let mut out = Vec::new();
        while self.bytes > KEPT_BYTES || self.order.len() > KEPT_FILES {
            let Some((_, (old, n))) = self.order.pop_first() else {
                break;
            };
            self.place.remove(&old);
            self.bytes -= n;
            out.push(old);
        }
        out
    }
}

/// What writing needs: where blocks go and how to cut them.
#[derive(Debug, Clone)]
pub struct WriteContext {
    /// Pins what is written until the next commit.
    pub session: WriteSession,
    /// Chunk bounds.
    pub params: ChunkParams,
    /// Files' tree nodes kept decoded between edits.
    pub nodes: NodeCache,
}

impl WriteContext {
    /// An editor of files' blobs, keeping the tree nodes it reads and makes.
    pub fn editor(&self) -> BlobEditor {
        BlobEditor::new(self.session.clone(), self.params).with_nodes(self.nodes.clone())
    }
}

impl FileData {
    /// The file's size.
    pub fn size(&self) -> u64 {
        match self {
            FileData::Clean(blob) => blob.size(),
            FileData::Buffer(data, _) => data.len() as u64,
            FileData::Planned(data, _) => data.len() as u64,
            FileData::Kept(kept) => kept.data.len() as u64,
            FileData::Stream { len, ahead, .. } => ahead
                .iter()
                .next_back()
                .map_or(*len, |(o, d)| (*len).max(o + d.len() as u64)),
            FileData::Overlay(o) => o.size,
            FileData::Lost(_) => 0,
        }
    }

    /// Whether there are changes not yet turned into a blob.
    pub fn is_dirty(&self) -> bool {
        !matches!(self, FileData::Clean(_) | FileData::Kept(_))
    }

    /// The clean blob, if the file has no pending changes.
    pub fn clean_blob(&self) -> Option<&Blob> {
        match self {
            FileData::Clean(blob) => Some(blob),
            FileData::Kept(kept) => Some(&kept.blob),
            _ => None,
        }
    }

    /// Turns pending changes into a stored blob; returns it.
    pub fn settle(&mut self, cx: &WriteContext) -> FsResult<Blob> {
        let mut blocks = Vec::new();
        let blob = self.plan(cx, &mut blocks)?;
        cx.session.put_blocks(&blocks)?;
        self.apply(blob.clone());
        Ok(blob)
    }

    /// The blob the content is to be stored as. A buffered file's blocks
    /// are appended to `blocks` for the caller to store (many files in one
    /// batch); the file itself stays as it is until [`FileData::apply`], so
    /// a commit that fails loses nothing. (Streams and overlays store their
    /// blocks as they go; a finished stream is clean at once.)
    pub fn plan(&mut self, cx: &WriteContext, blocks: &mut Vec<Block>) -> FsResult<Blob> {
        match self {
            FileData::Clean(blob) => Ok(blob.clone()),
            FileData::Kept(kept) => Ok(kept.blob.clone()),
            FileData::Buffer(data, prior) => {
                let data = Bytes::from(std::mem::take(data));
                match chunk_changed(cx.params, data.clone(), prior.as_deref()) {
                    Ok((blob, mut new, chunks)) => {
                        *self = FileData::Planned(data, Box::new(chunks));
                        blocks.append(&mut new);
                        Ok(blob)
                    }
                    Err(e) => {
                        // The bytes stay, with no chunks known to reuse.
                        *self = FileData::Planned(data, Box::default());
                        Err(e.into())
                    }
                }
            }
            // A commit that stored these bytes failed: their chunks may not
            // be stored, so none is reused.
            FileData::Planned(data, _) => {
                let (blob, mut new, _) = chunk_changed(cx.params, data.clone(), None)?;
                blocks.append(&mut new);
                Ok(blob)
            }
            FileData::Stream { .. } => {
                let state = std::mem::replace(self, FileData::Lost(Loss::interrupted()));
                let FileData::Stream { writer, ahead, .. } = state else {
                    return Err(Loss::interrupted().error());
                };
                match writer.finish() {
                    Ok((blob, _)) if ahead.is_empty() => {
                        *self = FileData::Clean(blob.clone());
                        Ok(blob)
                    }
                    Ok((blob, _)) => {
                        // Writes still waiting past a gap: an overlay of them.
                        let size = self_size_of(&blob, &ahead);
                        *self = FileData::Overlay(Box::new(Overlay {
                            base: blob,
                            size,
                            extents: ahead,
                        }));
                        self.plan(cx, blocks)
                    }
                    Err(e) => {
                        *self = FileData::Lost(Loss {
                            why: e.to_string(),
                            no_space: e.is_no_space(),
                        });
                        Err(e.into())
                    }
                }
            }
            FileData::Overlay(o) => {
                let Overlay {
                    base,
                    size,
                    extents,
                } = &**o;
                // Cut or grow the base first, so every extent overwrites,
                // then write them all in one pass.
                let editor = cx.editor();
                let base = editor.truncate(base, *size)?;
                let writes: Vec<(u64, &[u8])> =
                    extents.iter().map(|(o, d)| (*o, d.as_slice())).collect();
                // A few writes (a database's pages at a fsync) rewrite a few
                // chunks: stored with the commit's other blocks, in one
                // batch, rather than on their own.
                let few = writes.len() <= FEW_WRITES
                    && writes.iter().map(|(_, d)| d.len()).sum::<usize>() <= FEW_WRITE_BYTES;
                if !few {
                    return Ok(editor.write_many(&base, &writes)?);
                }
                let editor = BlobEditor::collecting(cx.session.clone(), cx.params)
                    .with_nodes(cx.nodes.clone());
                let blob = editor.write_many(&base, &writes)?;
                blocks.append(&mut editor.take_blocks());
                Ok(blob)
            }
            FileData::Lost(loss) => Err(loss.error()),
        }
    }

    /// Marks the content as stored as `blob` (after its blocks are).
    pub fn apply(&mut self, blob: Blob) {
        if !matches!(self, FileData::Lost(_)) {
            *self = FileData::Clean(blob);
        }
    }

    /// Marks the content as stored as `blob` (after its blocks are), keeping
    /// a buffer's bytes in memory; returns how many bytes it keeps.
    pub fn apply_keeping(&mut self, blob: Blob) -> u64 {
        let (data, chunks) = match self {
            FileData::Planned(data, chunks) => {
                (std::mem::take(data), std::mem::take(&mut **chunks))
            }
            // Kept already (and counted when it was).
            FileData::Kept(_) => return 0,
            _ => (Bytes::new(), Prior::default()),
        };
        if data.is_empty() {
            self.apply(blob);
            return 0;
        }
        let len = data.len() as u64;
        *self = FileData::Kept(Box::new(KeptContent { blob, data, chunks }));
        len
    }

    /// Lets go of kept bytes (the content stays as it is).
    pub fn release_kept(&mut self) {
        if let FileData::Kept(kept) = self {
            *self = FileData::Clean(kept.blob.clone());
        }
    }

    /// Reads up to `len` bytes at `offset` of content that is not clean.
    /// (Clean content is read through a [`BlobReader`] outside any lock.)
    pub fn read_dirty(
        &mut self,
        bucket: &Bucket,
        cx: &WriteContext,
        offset: u64,
        len: usize,
    ) -> FsResult<Vec<u8>> {
        if let FileData::Stream { .. } = self {
            self.settle(cx)?;
        }
        let size = self.size();
        if offset >= size {
            return Ok(Vec::new());
        }
        let end = offset.saturating_add(len as u64).min(size);
        match self {
            FileData::Clean(blob) => Ok(BlobReader::new(bucket.clone(), blob.clone())
                .read_at(offset, (end - offset) as usize)?),
            FileData::Buffer(data, _) => Ok(data[offset as usize..end as usize].to_vec()),
            FileData::Planned(data, _) => Ok(data[offset as usize..end as usize].to_vec()),
            FileData::Kept(kept) => Ok(kept.data[offset as usize..end as usize].to_vec()),
            FileData::Stream { .. } => Err(Loss::interrupted().error()),
            FileData::Lost(loss) => Err(loss.error()),
            FileData::Overlay(o) => {
                let (base, extents) = (&o.base, &o.extents);
                let mut out = vec![0u8; (end - offset) as usize];
                if offset < base.size() {
                    let got = BlobReader::new(bucket.clone(), base.clone())
                        .read_at(offset, (end - offset) as usize)?;
                    out[..got.len()].copy_from_slice(&got);
                }
                // Extents starting before `end` that reach past `offset`.
                for (&start, data) in extents.range(..end) {
                    let stop = start + data.len() as u64;
                    if stop <= offset {
                        continue;
                    }
                    let from = start.max(offset);
                    let to = stop.min(end);
                    out[(from - offset) as usize..(to - offset) as usize]
                        .copy_from_slice(&data[(from - start) as usize..(to - start) as usize]);
                }
                Ok(out)
            }
        }
    }

    /// Writes `data` at `offset`, extending with zeros across any gap;
    /// returns how many of its bytes are now held in memory (none when a
    /// stream took them, as it stores them as they come).
    pub fn write(
        &mut self,
        bucket: &Bucket,
        cx: &WriteContext,
        offset: u64,
        data: &[u8],
    ) -> FsResult<u64> {
        if data.is_empty() {
            // POSIX: a zero-length write changes nothing, even past the end.
            return Ok(0);
        }
        loop {
            match self {
                FileData::Lost(loss) => return Err(loss.error()),
                // A commit that stored these bytes failed: edit them again.
                FileData::Planned(..) | FileData::Kept(_) => self.unshare(),
                FileData::Clean(blob) => {
                    let blob = blob.clone();
                    *self = if blob.size() > BUFFER_MAX && offset == blob.size() {
                        // Appending to a large file (a stream a commit
                        // interrupted, a log): keep streaming.
                        FileData::Stream {
                            writer: Box::new(BlobWriter::resume(
                                cx.session.clone(),
                                cx.params,
                                &blob,
                            )?),
                            len: blob.size(),
                            ahead: BTreeMap::new(),
                        }
                    } else if blob.size() == 0 {
                        FileData::Buffer(Vec::new(), None)
                    } else if blob.size() <= BUFFER_MAX {
                        let size = blob.size() as usize;
                        let data = BlobReader::new(bucket.clone(), blob).read_at(0, size)?;
                        FileData::Buffer(data, None)
                    } else {
                        FileData::Overlay(Box::new(Overlay {
                            size: blob.size(),
                            base: blob,
                            extents: BTreeMap::new(),
                        }))
                    };
                }
                FileData::Buffer(buf, prior) => {
                    let end = offset + data.len() as u64;
                    if offset >= buf.len() as u64
                        && end > BUFFER_MAX
                        && offset - buf.len() as u64 <= REORDER_WINDOW
                    {
                        // A large sequential write: stream it from here on.
                        let mut writer = BlobWriter::new(cx.session.clone(), cx.params);
                        writer.write_bytes(buf)?;
                        let len = buf.len() as u64;
                        *self = FileData::Stream {
                            writer: Box::new(writer),
                            len,
                            ahead: BTreeMap::new(),
                        };
                        continue;
                    }
                    if end > BUFFER_MAX * 4 {
                        // Random writes far out: keep them as an overlay.
                        let base =
                            put_shared(&cx.session, cx.params, Bytes::from(std::mem::take(buf)))?.0;
                        *self = FileData::Overlay(Box::new(Overlay {
                            size: base.size(),
                            base,
                            extents: BTreeMap::new(),
                        }));
                        continue;
                    }
                    if let Some(prior) = prior {
                        prior.changed(offset.min(buf.len() as u64), end);
                    }
                    if (buf.len() as u64) < end {
                        buf.resize(end as usize, 0);
                    }
                    buf[offset as usize..end as usize].copy_from_slice(data);
                    return Ok(data.len() as u64);
                }
                FileData::Stream { writer, len, ahead } => {
                    if offset == *len {
                        writer.write_bytes(data)?;
                        *len += data.len() as u64;
                        // Whatever waited for this gap follows now.
                        while let Some(next) = ahead.remove(len) {
                            writer.write_bytes(&next)?;
                            *len += next.len() as u64;
                        }
                        return Ok(0);
                    }
                    let waiting: u64 = ahead.values().map(|d| d.len() as u64).sum();
                    if offset > *len
                        && offset - *len <= REORDER_WINDOW
                        && waiting + data.len() as u64 <= REORDER_WINDOW
                        && !ahead.contains_key(&offset)
                    {
                        ahead.insert(offset, data.to_vec());
                        return Ok(data.len() as u64);
                    }
                    self.settle(cx)?;
                }
                FileData::Overlay(o) => {
                    let Overlay { size, extents, .. } = &mut **o;
                    insert_extent(extents, offset, data);
                    *size = (*size).max(offset + data.len() as u64);
                    return Ok(data.len() as u64);
                }
            }
        }
    }

    /// Zeros `len` bytes at `offset` (a punched hole); the size stays.
    pub fn zero_range(&mut self, cx: &WriteContext, offset: u64, len: u64) -> FsResult<()> {
        let blob = self.settle(cx)?;
        let editor = cx.editor();
        *self = FileData::Clean(editor.zero_range(&blob, offset, len)?);
        Ok(())
    }

    /// Overwrites the content from `at` on with up to `len` bytes of `src`
    /// from `from` (extending it as needed); returns how many were copied.
    /// `src`'s chunks are shared, not copied.
    pub fn copy_from(
        &mut self,
        cx: &WriteContext,
        at: u64,
        src: &Blob,
        from: u64,
        len: u64,
    ) -> FsResult<u64> {
        let blob = self.settle(cx)?;
        let editor = cx.editor();
        let (copied, n) = editor.copy_range(&blob, at, src, from, len)?;
        *self = FileData::Clean(copied);
        Ok(n)
    }

    /// Turns bytes shared with stored blocks (planned or kept) back into a
    /// buffer of their own to edit.
    fn unshare(&mut self) {
        let (data, chunks) = match self {
            // A commit that stored these failed: their chunks may not be.
            FileData::Planned(data, _) => (std::mem::take(data), None),
            FileData::Kept(kept) => (
                std::mem::take(&mut kept.data),
                Some(Box::new(std::mem::take(&mut kept.chunks))),
            ),
            _ => return,
        };
        // Once the blocks cut from them are dropped, the bytes are this
        // file's alone: taken back without a copy.
        let data = data.try_into_mut().map_or_else(|d| d.to_vec(), Vec::from);
        *self = FileData::Buffer(data, chunks);
    }

    /// Cuts or extends the file to `len` bytes.
    pub fn truncate(&mut self, cx: &WriteContext, len: u64) -> FsResult<()> {
        if len == 0 {
            *self = FileData::Buffer(Vec::new(), None);
            return Ok(());
        }
        self.unshare();
        match self {
            FileData::Buffer(buf, prior) if len <= BUFFER_MAX * 4 => {
                let old = buf.len() as u64;
                if let Some(prior) = prior {
                    prior.changed(len.min(old), len.max(old));
                }
                buf.resize(len as usize, 0);
                Ok(())
            }
            // Above the base, the overlay just moves its end; below it, the
            // base itself must be cut (else growing again would resurface it).
            FileData::Overlay(o) if len >= o.base.size() => {
                let Overlay { size, extents, .. } = &mut **o;
                // Drop or cut extents past the new end.
                let beyond: Vec<u64> = extents.range(len..).map(|(k, _)| *k).collect();
                for k in beyond {
                    extents.remove(&k);
                }
                if let Some((&start, data)) = extents.range_mut(..len).next_back() {
                    let keep = (len - start).min(data.len() as u64) as usize;
                    data.truncate(keep);
                }
                *size = len;
                Ok(())
            }
            _ => {
                let blob = self.settle(cx)?;
                let editor = cx.editor();
                let cut = editor.truncate(&blob, len)?;
                *self = FileData::Clean(cut);
                Ok(())
            }
        }
    }
}

/// The size of a blob with extents laid over it.
fn self_size_of(base: &Blob, extents: &BTreeMap<u64, Vec<u8>>) -> u64 {
    extents
        .iter()
        .next_back()
        .map_or(base.size(), |(o, d)| base.size().max(o + d.len() as u64))
}

/// Inserts an extent, merging it with any it overlaps or touches.
fn insert_extent(extents: &mut BTreeMap<u64, Vec<u8>>, offset: u64, data: &[u8]) {
    let end = offset + data.len() as u64;
    let mut start = offset;
    let mut merged: Vec<u8> = Vec::new();
    // An extent that starts before and reaches into (or touches) the new one.
    if let Some((&s, prev)) = extents.range(..offset).next_back()
        && s + prev.len() as u64 >= offset
    {
        start = s;
        merged = extents.remove(&s).unwrap_or_default();
    }
    let rel = (offset - start) as usize;
    if merged.len() < rel + data.len() {
        merged.resize(rel + data.len(), 0);
    }
    merged[rel..rel + data.len()].copy_from_slice(data);
    // Extents starting inside (or touching the end of) the new one.
    let inside: Vec<u64> = extents.range(offset..=end).map(|(k, _)| *k).collect();
    for k in inside {
        if let Some(next) = extents.remove(&k) {
            let next_end = k + next.len() as u64;
            if next_end > end {
                let skip = (end - k) as usize;
                merged.extend_from_slice(&next[skip..]);
            }
        }
    }
    extents.insert(start, merged);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply(model: &mut Vec<u8>, offset: u64, data: &[u8]) {
        let end = offset as usize + data.len();
        if model.len() < end {
            model.resize(end, 0);
        }
        model[offset as usize..end].copy_from_slice(data);
    }

    #[test]
    fn extents_merge() {
        let mut e = BTreeMap::new();
        let mut model = Vec::new();
        for (o, d) in [
            (10u64, &b"abc"[..]),
            (20, b"xyz"),
            (12, b"QQQQQQQQQ"),
            (0, b"0"),
            (1, b"1"),
            (30, b"end"),
            (29, b"-"),
        ] {
            insert_extent(&mut e, o, d);
            apply(&mut model, o, d);
            let mut flat = vec![0u8; model.len()];
            for (k, v) in &e {
                flat[*k as usize..*k as usize + v.len()].copy_from_slice(v);
            }
            assert_eq!(flat, model);
            let mut prev_end = 0;
            for (k, v) in &e {
                assert!(*k >= prev_end, "no overlap");
                prev_end = k + v.len() as u64;
            }
        }
    }
}
