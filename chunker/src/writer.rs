//! The streaming blob writer.
//!
//! Four stages overlap: the caller's thread copies input into 4 MiB
//! segments; a cutting thread finds chunk boundaries (FastCDC); a hashing
//! thread hashes the chunks (BLAKE3) and builds the tree; storing threads
//! write batches of blocks (which on the embedded volume mostly wait on
//! the disk). The caller returns as soon as its bytes are copied.
//! Bounded channels keep memory at a few segments and batches whatever the
//! input size. Content that ends before the first segment fills is handled
//! on the caller's thread without starting any thread.

use std::collections::HashSet;
use std::io::{Read, Write};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use bytes::Bytes;
use hydra_dag::{Block, Cid, Codec, WriteSession};

use crate::blob::{Blob, BlobStats, INLINE_MAX};
use crate::error::{ChunkError, ChunkResult};
use crate::params::ChunkParams;
use crate::tree::TreeBuilder;

/// Input is cut in segments of this size.
const SEGMENT: usize = 4 << 20;
/// Chunks are stored in batches of about this many bytes.
const BATCH: usize = 16 << 20;
/// Segments queued for the worker at most.
const QUEUE: usize = 2;
/// Batches queued for the storing threads at most: with one more being
/// written by each of them, the disk never waits for the hasher.
const BATCH_QUEUE: usize = 1;

/// A segment and the chunks cut from it.
type Work = (Bytes, Vec<(usize, usize)>);
/// The storing threads: their queue and their outcomes.
type Storer = (SyncSender<Vec<Block>>, Vec<JoinHandle<ChunkResult<()>>>);
/// Storing threads per writer.
const STORERS: usize = 2;
/// The hashing worker: its queue and what it returns.
type Worker = (SyncSender<Work>, JoinHandle<ChunkResult<(Blob, BlobStats)>>);
/// The capacity of a segment buffer: a segment, room for the last one's
/// uncut tail before it, and a chunk's slack (also the size of the
/// buffers an edit gathers its new chunks in, so the two share the pool).
pub(crate) fn segment_capacity(params: ChunkParams) -> usize {
    SEGMENT + 2 * params.max()
}

/// A filled segment for the cutter: the buffer, the room left at its
/// front (for the previous segment's uncut tail) and whether it is the last.
type Segment = (Vec<u8>, usize, bool);
/// The cutting worker: its queue and what it returns.
type Cutter = (
    SyncSender<Segment>,
    JoinHandle<ChunkResult<(Blob, BlobStats)>>,
);

/// Where full batches of blocks go: straight to the session, or to a
/// storing thread.
#[derive(Debug)]
pub(crate) enum BatchStore {
    Direct(WriteSession),
    /// Kept for the caller to store.
    Collect(Vec<Block>),
    /// `None` once the thread has been joined.
    Threaded(Option<Storer>),
}

impl BatchStore {
    /// Two storing threads: while one waits for its batch's fsync, the
    /// other writes the next batch (the volume lets batches overlap).
    pub(crate) fn threaded(session: WriteSession) -> ChunkResult<BatchStore> {
        let (tx, rx) = sync_channel::<Vec<Block>>(BATCH_QUEUE);
        let rx = std::sync::Arc::new(std::sync::Mutex::new(rx));
        let mut handles = Vec::with_capacity(STORERS);
        for _ in 0..STORERS {
            let (session, rx) = (session.clone(), rx.clone());
            let handle = std::thread::Builder::new()
                .name("hydra-chunk-store".into())
                .spawn(move || {
                    loop {
                        let batch = {
                            let rx = rx.lock().unwrap_or_else(|e| e.into_inner());
                            rx.recv()
                        };
                        match batch {
                            Ok(batch) => session.put_blocks(&batch)?,
                            Err(_) => return Ok(()),
                        }
                    }
                })
                .map_err(|e| ChunkError::Worker(e.to_string()))?;
            handles.push(handle);
        }
        Ok(BatchStore::Threaded(Some((tx, handles))))
    }

    /// Stores `batch`, or hands it to the storing threads.
    pub(crate) fn put(&mut self, batch: Vec<Block>) -> ChunkResult<()> {
        match self {
            BatchStore::Direct(session) => Ok(session.put_blocks(&batch)?),
            BatchStore::Collect(kept) => {
                kept.extend(batch);
                Ok(())
            }
            BatchStore::Threaded(Some((tx, _))) => {
                if tx.send(batch).is_err() {
                    // The storer stopped: its error is the one to report.
                    self.close()?;
                    return Err(ChunkError::Worker("storing thread exited".into()));
                }
                Ok(())
            }
            BatchStore::Threaded(None) => Err(ChunkError::Worker("storing thread exited".into())),
        }
    }

    /// Waits for every batch to be stored.
    pub(crate) fn close(&mut self) -> ChunkResult<()> {
        match self {
            BatchStore::Direct(_) | BatchStore::Collect(_) | BatchStore::Threaded(None) => Ok(()),
            BatchStore::Threaded(worker) => {
                let Some((tx, handles)) = worker.take() else {
                    return Ok(());
                };
                drop(tx);
                let mut result = Ok(());
                for handle in handles {
                    let outcome = handle
                        .join()
                        .map_err(|_| ChunkError::Worker("storing thread panicked".into()))
                        .and_then(|r| r);
                    if result.is_ok() {
                        result = outcome;
                    }
                }
                result
            }
        }
    }
}

/// A tree holding the subtrees a resumed blob keeps, and their bytes.
type Prefix = (TreeBuilder, u64);

/// Hashes and links chunks; runs on the hashing thread or inline.
#[derive(Debug)]
struct Sink {
    store: BatchStore,
    tree: TreeBuilder,
    batch: Vec<Block>,
    batch_bytes: usize,
    stats: BlobStats,
    seen: HashSet<Cid>,
}

impl Sink {
    /// A sink that continues `prefix`, if any (whose statistics count its
    /// bytes, not its chunks).
    fn new(store: BatchStore, prefix: Option<Prefix>) -> Self {
        let (tree, bytes) = prefix.unwrap_or_default();
        Sink {
            store,
            tree,
            batch: Vec::new(),
            batch_bytes: 0,
            stats: BlobStats {
                logical_bytes: bytes,
                ..BlobStats::default()
            },
            seen: HashSet::new(),
        }
    }

    fn take(&mut self, (segment, cuts): Work) -> ChunkResult<()> {
        for (offset, len) in cuts {
            let data = segment.slice(offset..offset + len);
            let cid = Cid::hash(Codec::RAW, &data);
            self.stats.chunks += 1;
            self.stats.logical_bytes += len as u64;
            if self.seen.insert(cid) {
                self.stats.unique_chunks += 1;
                self.stats.unique_bytes += len as u64;
            }
            self.tree.push_leaf((cid, len as u64))?;
            self.batch.push(Block::trusted(cid, data));
            self.batch_bytes += len;
            if self.batch_bytes >= BATCH {
                self.flush()?;
            }
        }
        Ok(())
    }

    fn flush(&mut self) -> ChunkResult<()> {
        self.batch.extend(self.tree.take_blocks());
        if !self.batch.is_empty() {
            let batch = std::mem::take(&mut self.batch);
            self.store.put(batch)?;
        }
        self.batch_bytes = 0;
        Ok(())
    }

    fn finish(mut self) -> ChunkResult<(Blob, BlobStats)> {
        let root = self.tree.finish()?;
        let nodes = self.tree.take_blocks();
        self.stats.nodes = nodes.len() as u64;
        self.batch.extend(nodes);
        self.flush()?;
        self.store.close()?;
        let blob = match root {
            None => Blob::empty(),
            Some((root, size)) => Blob::Stored { root, size },
        };
        Ok((blob, self.stats))
    }
}

/// Starts the hashing thread (which starts the storing thread).
fn spawn_hasher(session: &WriteSession, prefix: Option<Prefix>) -> ChunkResult<Worker> {
    let (tx, rx) = sync_channel(QUEUE);
    let sink = Sink::new(BatchStore::threaded(session.clone())?, prefix);
    let handle = std::thread::Builder::new()
        .name("hydra-chunk-hash".into())
        .spawn(move || run_worker(sink, rx))
        .map_err(|e| ChunkError::Worker(e.to_string()))?;
    Ok((tx, handle))
}

fn run_worker(mut sink: Sink, rx: Receiver<Work>) -> ChunkResult<(Blob, BlobStats)> {
    for work in rx {
        sink.take(work)?;
    }
    sink.finish()
}

/// Starts the cutting thread, which starts the hashing thread.
fn spawn_cutter(
    session: &WriteSession,
    params: ChunkParams,
    prefix: Option<Prefix>,
) -> ChunkResult<Cutter> {
    let (tx, rx) = sync_channel::<Segment>(QUEUE);
    let hasher = spawn_hasher(session, prefix)?;
    let handle = std::thread::Builder::new()
        .name("hydra-chunk-cut".into())
        .spawn(move || run_cutter(params, rx, hasher))
        .map_err(|e| ChunkError::Worker(e.to_string()))?;
    Ok((tx, handle))
}

/// Cuts each segment behind the previous one's uncut tail (copied into
/// the room the caller left at the segment's front, so the bulk is never
/// copied) and hands the chunks to the hasher.
fn run_cutter(
    params: ChunkParams,
    rx: Receiver<Segment>,
    (hasher, handle): Worker,
) -> ChunkResult<(Blob, BlobStats)> {
    let mut tail: Vec<u8> = Vec::new();
    let mut cuts = Vec::new();
    let join = |handle: JoinHandle<ChunkResult<(Blob, BlobStats)>>| {
        handle
            .join()
            .map_err(|_| ChunkError::Worker("hashing thread panicked".into()))?
    };
    for (mut buf, room, eof) in rx {
        let data = if tail.len() > room {
            // Cannot happen (the room is one maximal chunk); stay correct.
            let mut joined = std::mem::take(&mut tail);
            joined.extend_from_slice(&buf[room..]);
            Bytes::from(joined)
        } else {
            let start = room - tail.len();
            buf[start..room].copy_from_slice(&tail);
            crate::pool::share(buf).slice(start..)
        };
        cuts.clear();
        let rest = params.split(&data, eof, &mut cuts);
        tail = data[rest..].to_vec();
        if !cuts.is_empty()
            && hasher
                .send((data.slice(..rest), std::mem::take(&mut cuts)))
                .is_err()
        {
            drop(hasher);
            return Err(join(handle)
                .err()
                .unwrap_or(ChunkError::Worker("hashing thread exited".into())));
        }
        if eof {
            break;
        }
    }
    drop(hasher);
    join(handle)
}

/// Writes a blob from a stream of bytes, in bounded memory.
#[derive(Debug)]
pub struct BlobWriter {
    /// The part of an existing blob this one continues (see `resume`),
    /// until the hashing starts.
    prefix: Option<Prefix>,
    params: ChunkParams,
    /// The segment being filled: `room` bytes left free at the front (for
    /// the cutter to put the previous segment's tail in), then the data.
    buf: Vec<u8>,
    room: usize,
    cuts: Vec<(usize, usize)>,
    session: WriteSession,
    worker: Option<Cutter>,
}

impl BlobWriter {
    /// A writer storing through `session` with the given chunk bounds.
    pub fn new(session: WriteSession, params: ChunkParams) -> Self {
        BlobWriter {
            prefix: None,
            params,
            buf: Vec::new(),
            room: 0,
            cuts: Vec::new(),
            session,
            worker: None,
        }
    }

    /// A writer that appends to `blob`: its leaves but the last are kept as
    /// they are, the last is cut again together with what is written next.
    /// The result is the blob that writing everything afresh would give.
    pub fn resume(session: WriteSession, params: ChunkParams, blob: &Blob) -> ChunkResult<Self> {
        let mut writer = BlobWriter::new(session.clone(), params);
        match blob {
            Blob::Stored { root, size } => {
                let mut reader =
                    crate::reader::BlobReader::new(session.bucket().clone(), blob.clone());
                let root = (*root, *size);
                let last = crate::walk::leaf_at(&mut reader, root, size.saturating_sub(1))?;
                let mut tree = TreeBuilder::new();
                crate::walk::push_old(&mut reader, root, &mut tree, 0, last.start)?;
                let tail = reader.read_at(last.start, last.link.1 as usize)?;
                writer.prefix = Some((tree, last.start));
                writer.write_bytes(&tail)?;
            }
            Blob::Inline(data) => writer.write_bytes(data)?,
        }
        Ok(writer)
    }

    /// Bytes buffered in the current segment.
    fn buffered(&self) -> usize {
        self.buf.len() - self.room
    }

    /// Hands the filled segment to the cutter (started on first use).
    fn ship(&mut self, eof: bool) -> ChunkResult<()> {
        if self.worker.is_none() {
            self.worker = Some(spawn_cutter(
                &self.session,
                self.params,
                self.prefix.take(),
            )?);
        }
        // The next segment leaves room for this one's uncut tail.
        let room = self.params.max();
        let mut next = crate::pool::take(segment_capacity(self.params));
        next.resize(room, 0);
        let segment = std::mem::replace(&mut self.buf, next);
        let segment_room = std::mem::replace(&mut self.room, room);
        if let Some((tx, _)) = &self.worker
            && tx.send((segment, segment_room, eof)).is_err()
        {
            // The worker stopped early: its error is what matters.
            return Err(self
                .join()
                .err()
                .unwrap_or(ChunkError::Worker("worker exited".into())));
        }
        Ok(())
    }

    fn join(&mut self) -> ChunkResult<(Blob, BlobStats)> {
        let Some((tx, handle)) = self.worker.take() else {
            return Err(ChunkError::Worker("no worker".into()));
        };
        drop(tx);
        handle
            .join()
            .map_err(|_| ChunkError::Worker("cutting thread panicked".into()))?
    }

    /// Appends bytes.
    pub fn write_bytes(&mut self, data: &[u8]) -> ChunkResult<()> {
        let mut data = data;
        while !data.is_empty() {
            let free = SEGMENT - self.buffered().min(SEGMENT);
            let take = free.max(1).min(data.len());
            self.buf.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.buffered() >= SEGMENT {
                self.ship(false)?;
            }
        }
        Ok(())
    }

    /// Copies everything from `input`; returns the bytes read.
    pub fn write_from(&mut self, mut input: impl Read) -> ChunkResult<u64> {
        let mut total = 0;
        loop {
            let len = self.buf.len();
            let full = self.room + SEGMENT;
            if self.buf.capacity() < full {
                self.buf.reserve(full - len);
            }
            self.buf.resize(len.max(full), 0);
            let n = loop {
                match input.read(&mut self.buf[len..]) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        self.buf.truncate(len);
                        return Err(ChunkError::Input(e));
                    }
                }
            };
            self.buf.truncate(len + n);
            total += n as u64;
            if n == 0 {
                return Ok(total);
            }
            if self.buffered() >= SEGMENT {
                self.ship(false)?;
            }
        }
    }

    /// Stores what is left and returns the blob with its statistics.
    pub fn finish(mut self) -> ChunkResult<(Blob, BlobStats)> {
        if self.worker.is_none() && self.prefix.is_none() && self.buffered() <= INLINE_MAX {
            let data = Bytes::copy_from_slice(&self.buf[self.room..]);
            let stats = BlobStats {
                logical_bytes: data.len() as u64,
                ..BlobStats::default()
            };
            return Ok((Blob::Inline(data), stats));
        }
        if self.worker.is_none() {
            // Everything fits in one segment: no thread needed.
            self.buf.drain(..self.room);
            self.room = 0;
            self.cuts.clear();
            self.params.split(&self.buf, true, &mut self.cuts);
            let mut sink = Sink::new(BatchStore::Direct(self.session.clone()), self.prefix.take());
            let segment = Bytes::from(std::mem::take(&mut self.buf));
            sink.take((segment, std::mem::take(&mut self.cuts)))?;
            return sink.finish();
        }
        self.ship(true)?;
        self.join()
    }
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.write_bytes(buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Writes everything `input` yields as one blob.
pub fn put_reader(
    session: &WriteSession,
    params: ChunkParams,
    input: impl Read,
) -> ChunkResult<(Blob, BlobStats)> {
    let mut writer = BlobWriter::new(session.clone(), params);
    writer.write_from(input)?;
    writer.finish()
}

/// Writes `data` as one blob.
pub fn put_bytes(session: &WriteSession, params: ChunkParams, data: &[u8]) -> ChunkResult<Blob> {
    let mut writer = BlobWriter::new(session.clone(), params);
    writer.write_bytes(data)?;
    Ok(writer.finish()?.0)
}

/// Writes `data` as one blob without copying it: chunks are slices of it.
pub fn put_shared(
    session: &WriteSession,
    params: ChunkParams,
    data: Bytes,
) -> ChunkResult<(Blob, BlobStats)> {
    if data.len() <= INLINE_MAX {
        let stats = BlobStats {
            logical_bytes: data.len() as u64,
            ..BlobStats::default()
        };
        return Ok((Blob::Inline(data), stats));
    }
    if data.len() <= SEGMENT {
        let mut cuts = Vec::new();
        params.split(&data, true, &mut cuts);
        let mut sink = Sink::new(BatchStore::Direct(session.clone()), None);
        sink.take((data, cuts))?;
        return sink.finish();
    }
    let (tx, handle) = spawn_hasher(session, None)?;
    let mut pos = 0;
    while pos < data.len() {
        let end = (pos + SEGMENT).min(data.len());
        let eof = end == data.len();
        let window = data.slice(pos..end);
        let mut cuts = Vec::new();
        let rest = params.split(&window, eof, &mut cuts);
        pos += rest;
        if tx.send((window, cuts)).is_err() {
            break; // the hasher failed; joining it below reports why
        }
    }
    drop(tx);
    handle
        .join()
        .map_err(|_| ChunkError::Worker("hashing thread panicked".into()))?
}

/// Cuts and hashes in-memory content into blocks without storing them:
/// for callers that batch many small blobs into one store call.
pub fn chunk_blocks(params: ChunkParams, data: Bytes) -> ChunkResult<(Blob, Vec<Block>)> {
    let (blob, blocks, _) = crate::rechunk::chunk_changed(params, data, None)?;
    Ok((blob, blocks))
}
