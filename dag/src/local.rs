//! The embedded default volume: SQLite index, refs and changelog; block
//! bytes in append-only pack files, tiny blocks inline in SQLite.
//!
//! Block bytes stay out of SQLite rows because WAL mode writes every page
//! twice: 64 KiB rows insert at 100–380 MB/s on this machine class, while
//! appending to a pack and indexing in SQLite runs above 1.5 GB/s.
//!
//! Durability: a batch is appended to the current pack and fsynced, then its
//! index rows and the pack's new committed length commit in one SQLite
//! transaction (synchronous=FULL). A crash between the two leaves a tail past
//! the committed length, which opening for writing cuts off.

mod ahead;
mod compact;
mod index;
pub mod pack;

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use rusqlite::{Connection, TransactionBehavior};

use crate::block::Block;
use crate::cid::Cid;
use crate::error::{DagError, DagResult};
use crate::refs::{LogEntry, RefName, RefNote, now_ns};
use crate::volume::{BlockInfo, CompactStats, Volume, VolumeStats};
use ahead::Ahead;
use index::Location;
use pack::{HEADER_LEN, PackId, PackSet, TARGET_SIZE, record_header_len, write_records};

/// Blocks up to this size live inline in the SQLite index.
pub const INLINE_MAX: usize = 2048;
/// A larger block whose bytes other than its leading and trailing zeros
/// are at most this many, and at most a quarter of it, lives inline too,
/// trimmed: a write into a hole makes a maximum chunk of zeros around a
/// few bytes, which would cost a pack its whole length.
pub const SPARSE_MAX: usize = 16 << 10;

/// The embedded volume in a directory.
#[derive(Debug)]
pub struct LocalVolume {
    dir: PathBuf,
    packs: PackSet,
    /// `None` when opened read-only.
    writer: Mutex<Option<Writer>>,
    /// Idle read connections; SQLite in WAL mode reads concurrently.
    readers: Mutex<Vec<Connection>>,
    /// Locations looked up ahead of sequential readers.
    ahead: Ahead,
    read_only: bool,
}

#[derive(Debug)]
struct Writer {
    conn: Connection,
    pack: PackId,
    file: Arc<File>,
    /// End of the space handed out in the current pack; the next batch
    /// goes here. (The committed length lives in the index.)
    next: u64,
    /// Batches being written (outside the lock) per pack: compaction
    /// leaves those packs alone.
    in_flight: HashMap<PackId, u32>,
}

impl LocalVolume {
    /// Opens (creating when writable) the volume in `dir`.
    ///
    /// Writable opens cut torn pack tails and remove packs that were never
    /// committed. The caller holds the store lock that makes this process
    /// the only writer.
    pub fn open(dir: &Path, read_only: bool) -> DagResult<LocalVolume> {
        let packs = PackSet::new(dir.join("packs"));
        if !read_only {
            std::fs::create_dir_all(packs.dir()).map_err(|e| DagError::io(packs.dir(), e))?;
        }
        let conn = index::open(&dir.join("index.sqlite"), read_only)?;
        let writer = if read_only {
            None
        } else {
            Some(recover(conn, &packs)?)
        };
        Ok(LocalVolume {
            dir: dir.to_path_buf(),
            packs,
            writer: Mutex::new(writer),
            readers: Mutex::new(Vec::new()),
            ahead: Ahead::default(),
            read_only,
        })
    }

    fn with_reader<T>(&self, f: impl FnOnce(&Connection) -> DagResult<T>) -> DagResult<T> {
        let conn = self.readers.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let conn = match conn {
            Some(c) => c,
            None => index::open(&self.dir.join("index.sqlite"), true)?,
        };
        let result = f(&conn);
        self.readers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(conn);
        result
    }

    fn with_writer<T>(&self, f: impl FnOnce(&mut Writer) -> DagResult<T>) -> DagResult<T> {
        let mut guard = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        match guard.as_mut() {
            Some(w) => f(w),
            None => Err(DagError::Unsupported(format!(
                "the store at {} is open read-only",
                self.dir.display()
            ))),
        }
    }

    /// Whether this handle may write.
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }
}

/// Moves `name` from `expected` to `new` and logs it, inside `tx`.
fn cas_ref_in(
    tx: &rusqlite::Transaction,
    name: &RefName,
    expected: Option<&Cid>,
    new: Option<&Cid>,
    note: &RefNote,
) -> DagResult<LogEntry> {
    let actual = index::get_ref(tx, name)?;
    if actual.as_ref() != expected {
        return Err(DagError::RefConflict {
            name: name.to_string(),
            expected: expected.copied(),
            actual,
        });
    }
    index::write_ref(tx, name, new)?;
    let mut entry = LogEntry::from_note(0, name, actual, new.copied(), note);
    entry.id = index::append_log(tx, &entry)?;
    Ok(entry)
}

/// Cuts torn tails, drops uncommitted packs and picks the pack to append to.
fn recover(mut conn: Connection, packs: &PackSet) -> DagResult<Writer> {
    let committed = index::packs(&conn)?;
    let known: HashSet<PackId> = committed.iter().map(|(id, _)| *id).collect();
    for id in packs.list_on_disk()? {
        if !known.contains(&id) {
            packs.remove(id)?;
        }
    }
    for &(id, size) in &committed[..committed.len().saturating_sub(1)] {
        packs.cut_tail(id, size)?;
    }
    match committed.last() {
        Some(&(id, size)) if size < TARGET_SIZE => {
            let file = Arc::new(packs.open_for_append(id, size)?);
            Ok(Writer {
                conn,
                pack: id,
                file,
                next: size,
                in_flight: HashMap::new(),
            })
        }
        last => {
            if let Some(&(id, size)) = last {
                packs.cut_tail(id, size)?;
            }
            let id = PackId(last.map_or(1, |(id, _)| id.0 + 1));
            let file = Arc::new(new_pack(&mut conn, packs, id)?);
            Ok(Writer {
                conn,
                pack: id,
                file,
                next: HEADER_LEN,
                in_flight: HashMap::new(),
            })
        }
    }
}

fn new_pack(conn: &mut Connection, packs: &PackSet, id: PackId) -> DagResult<File> {
    let file = packs.create(id)?;
    let tx = conn.transaction()?;
    index::set_pack_size(&tx, id, HEADER_LEN)?;
    tx.commit()?;
    Ok(file)
}

impl Writer {
    /// Starts a new pack when the current one is full.
    fn rotate_if_full(&mut self, packs: &PackSet) -> DagResult<()> {
        if self.next >= TARGET_SIZE {
            self.rotate(packs)?;
        }
        Ok(())
    }

    /// Starts appending to a new pack.
    fn rotate(&mut self, packs: &PackSet) -> DagResult<()> {
        let id = PackId(self.pack.0 + 1);
        self.file = Arc::new(new_pack(&mut self.conn, packs, id)?);
        self.pack = id;
        self.next = HEADER_LEN;
        Ok(())
    }

    /// Hands out space for `blocks` in the current pack; returns where
    /// each goes and the end of the region.
    fn reserve(&mut self, blocks: &[&Block]) -> (Vec<Location>, u64) {
        let mut locations = Vec::with_capacity(blocks.len());
        let mut at = self.next;
        for block in blocks {
            let data_offset = at + record_header_len(block.cid());
            at = data_offset + block.len() as u64;
            locations.push(Location::Packed {
                pack: self.pack,
                offset: data_offset,
                len: block.len() as u64,
            });
        }
        self.next = at;
        (locations, at)
    }

    /// Appends blocks to the current pack and fsyncs it, under the lock
    /// (compaction); returns each block's location. Nothing is indexed yet.
    fn append(&mut self, packs: &PackSet, blocks: &[&Block]) -> DagResult<Vec<Location>> {
        let start = self.next;
        let (locations, _) = self.reserve(blocks);
        write_records(&self.file, blocks, start)
            .and_then(|()| self.file.sync_data())
            .map_err(|e| DagError::io(packs.path(self.pack), e))?;
        Ok(locations)
    }
}

/// The part of `data` to keep inline in the index (all of a small block,
/// the bytes between leading and trailing zeros of a mostly-zero one), or
/// `None` for a block that belongs in a pack.
fn inline_part(data: &[u8]) -> Option<std::ops::Range<usize>> {
    if data.len() <= INLINE_MAX {
        return Some(0..data.len());
    }
    let lead = crate::zeros::zero_prefix(data);
    let trail = if lead == data.len() {
        0
    } else {
        crate::zeros::zero_suffix(data)
    };
    let kept = data.len() - lead - trail;
    (kept <= SPARSE_MAX && kept * 4 <= data.len()).then_some(lead..lead + kept)
}

/// Fills `out` (the whole block) from its inline part `data` after `lead`
/// zeros.
fn untrim(cid: &Cid, data: &[u8], lead: u64, out: &mut [u8]) -> DagResult<()> {
    let start = usize::try_from(lead).unwrap_or(usize::MAX);
    // An entry whose bytes do not fit its length cannot be the block.
    let Some(end) = start.checked_add(data.len()).filter(|&e| e <= out.len()) else {
        return Err(DagError::Integrity { cid: *cid });
    };
    out[..start].fill(0);
    out[start..end].copy_from_slice(data);
    out[end..].fill(0);
    Ok(())
}

/// Where the index says a block's bytes are.
enum Place {
    /// Held in the index itself, trimmed: `lead` zeros, `data`, then zeros
    /// up to `len`.
    Inline { data: Vec<u8>, lead: u64, len: u64 },
    /// `len` bytes at an offset of a pack.
    Packed(PackId, u64, usize),
}

impl LocalVolume {
    /// Finds `cid` and hands its place to `read`, which returns `None` when
    /// the pack it names is gone.
    ///
    /// A compaction may move a block between the lookup and the read and
    /// delete its old pack; looking it up again finds the new place. Only
    /// the same location missing twice is an error.
    fn read_located<T>(
        &self,
        cid: &Cid,
        mut read: impl FnMut(Place) -> DagResult<Option<T>>,
    ) -> DagResult<Option<T>> {
        let mut missing_at = None;
        // A location looked up ahead is used once: if its pack is gone,
        // the loop asks the index.
        let mut ahead = self.ahead.take(cid);
        loop {
            let located = match ahead.take() {
                Some((pack, offset, len)) => Some(Place::Packed(pack, offset, len)),
                None => self.with_reader(|c| self.locate(c, cid))?,
            };
            let Some(place) = located else {
                return Ok(None);
            };
            let packed = match &place {
                Place::Packed(pack, offset, len) => Some((*pack, *offset, *len)),
                Place::Inline { .. } => None,
            };
            if let Some(found) = read(place)? {
                return Ok(Some(found));
            }
            let Some((pack, offset, _)) = packed else {
                return Ok(None);
            };
            if missing_at == packed {
                return Err(DagError::CorruptPack {
                    path: self.packs.path(pack),
                    offset,
                    reason: format!("block {cid} is indexed in a pack file that does not exist"),
                });
            }
            missing_at = packed;
        }
    }

    /// Looks `cid` up in the index; a block right after the last one
    /// located also brings the locations of the blocks after it.
    fn locate(&self, c: &Connection, cid: &Cid) -> DagResult<Option<Place>> {
        Ok(match index::locate(c, cid)? {
            None => None,
            Some(Location::Inline { lead, len }) => {
                index::inline_data(c, cid)?.map(|data| Place::Inline { data, lead, len })
            }
            Some(Location::Packed { pack, offset, len }) => {
                let at =
                    |offset, len: u64| (pack, offset, usize::try_from(len).unwrap_or(usize::MAX));
                let (pack, offset, len) = at(offset, len);
                if self.ahead.located((pack, offset, len)) {
                    let after = index::blocks_after(c, pack, offset, ahead::WINDOW)?;
                    self.ahead.keep(
                        after
                            .into_iter()
                            .map(|(cid, offset, len)| (cid, at(offset, len))),
                    );
                }
                Some(Place::Packed(pack, offset, len))
            }
        })
    }
}

impl LocalVolume {
    /// Stores every block, and in the transaction that indexes them runs
    /// `then` (which may fail with a ref conflict and still keep them).
    fn put_many_then<T>(
        &self,
        blocks: &[Block],
        then: impl FnOnce(&rusqlite::Transaction) -> DagResult<T>,
    ) -> DagResult<T> {
        // Three steps, so that batches from several threads overlap: under
        // the lock, sort out what is new and hand out pack space; without
        // it, write and fsync the records; under the lock again, index them
        // and move the pack's committed length. Space whose batch fails is
        // never indexed: garbage inside a pack, or a tail cut on reopen.
        let stored_ms = now_ns() / 1_000_000;
        let mut packed = Vec::new();
        let mut inline = Vec::new();
        let mut present = Vec::new();
        let reserved = self.with_writer(|w| {
            let mut seen = HashSet::with_capacity(blocks.len());
            for block in blocks {
                if !seen.insert(*block.cid()) {
                    continue;
                }
                if index::contains(&w.conn, block.cid())? {
                    present.push(block.cid());
                } else if let Some(kept) = inline_part(block.data()) {
                    inline.push((block, kept));
                } else {
                    packed.push(block);
                }
            }
            if packed.is_empty() {
                return Ok(None);
            }
            w.rotate_if_full(&self.packs)?;
            let start = w.next;
            let (locations, end) = w.reserve(&packed);
            *w.in_flight.entry(w.pack).or_default() += 1;
            Ok(Some((w.pack, w.file.clone(), start, end, locations)))
        })?;
        let written = match &reserved {
            None => Ok(()),
            Some((pack, file, start, _, _)) => write_records(file, &packed, *start)
                .and_then(|()| file.sync_data())
                .map_err(|e| DagError::io(self.packs.path(*pack), e)),
        };
        self.with_writer(|w| {
            if let Some((pack, ..)) = &reserved
                && let Some(n) = w.in_flight.get_mut(pack)
            {
                *n -= 1;
                if *n == 0 {
                    w.in_flight.remove(pack);
                }
            }
            written?;
            let tx = w
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)?;
            if let Some((pack, _, _, end, locations)) = &reserved {
                for (block, loc) in packed.iter().zip(locations) {
                    index::insert(&tx, block.cid(), *loc, block.len() as u64, stored_ms)?;
                }
                index::grow_pack(&tx, *pack, *end)?;
            }
            for (block, kept) in &inline {
                let len = block.len() as u64;
                let lead = kept.start as u64;
                let location = Location::Inline { lead, len };
                index::insert(&tx, block.cid(), location, len, stored_ms)?;
                index::insert_inline(&tx, block.cid(), &block.data()[kept.clone()])?;
            }
            // A block stored again counts as young again for GC's grace period.
            for cid in &present {
                index::touch(&tx, cid, stored_ms)?;
            }
            let out = then(&tx);
            if let Err(e) = &out
                && !matches!(e, DagError::RefConflict { .. })
            {
                return out;
            }
            tx.commit()?;
            out
        })
    }
}

impl Volume for LocalVolume {
    fn name(&self) -> &'static str {
        "local"
    }

    fn get(&self, cid: &Cid) -> DagResult<Option<Bytes>> {
        self.read_located(cid, |place| match place {
            Place::Inline { data, lead, len } => {
                let mut out = vec![0; len as usize];
                untrim(cid, &data, lead, &mut out)?;
                Ok(Some(Bytes::from(out)))
            }
            Place::Packed(pack, offset, len) => self.packs.read(pack, offset, len),
        })
    }

    fn get_into(&self, cid: &Cid, out: &mut [u8]) -> DagResult<Option<usize>> {
        self.read_located(cid, |place| match place {
            Place::Inline { len, .. } if len as usize != out.len() => Ok(Some(len as usize)),
            Place::Inline { data, lead, .. } => {
                untrim(cid, &data, lead, out)?;
                Ok(Some(out.len()))
            }
            Place::Packed(_, _, len) if len != out.len() => Ok(Some(len)),
            Place::Packed(pack, offset, len) => {
                Ok(self.packs.read_into(pack, offset, out)?.then_some(len))
            }
        })
    }

    fn has(&self, cid: &Cid) -> DagResult<bool> {
        self.with_reader(|c| index::contains(c, cid))
    }

    fn put_many(&self, blocks: &[Block]) -> DagResult<()> {
        if blocks.is_empty() {
            return Ok(());
        }
        self.put_many_then(blocks, |_| Ok(()))
    }

    fn put_many_and_cas_ref(
        &self,
        blocks: &[Block],
        name: &RefName,
        expected: Option<&Cid>,
        new: Option<&Cid>,
        note: &RefNote,
    ) -> DagResult<LogEntry> {
        // The blocks' index rows and the ref move in one transaction: one
        // write and sync of the index, not two.
        self.put_many_then(blocks, |tx| cas_ref_in(tx, name, expected, new, note))
    }

    fn delete_many(&self, cids: &[Cid]) -> DagResult<u64> {
        self.with_writer(|w| {
            let tx = w
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)?;
            let mut n = 0;
            for cid in cids {
                n += u64::from(index::delete(&tx, cid)?);
            }
            tx.commit()?;
            self.ahead.clear();
            Ok(n)
        })
    }

    fn for_each_block(&self, f: &mut dyn FnMut(BlockInfo)) -> DagResult<()> {
        self.with_reader(|c| {
            index::for_each_block(c, &mut |cid, size, stored_ms| {
                f(BlockInfo {
                    cid,
                    size,
                    stored_ms,
                })
            })
        })
    }

    fn get_ref(&self, name: &RefName) -> DagResult<Option<Cid>> {
        self.with_reader(|c| index::get_ref(c, name))
    }

    fn cas_ref(
        &self,
        name: &RefName,
        expected: Option<&Cid>,
        new: Option<&Cid>,
        note: &RefNote,
    ) -> DagResult<LogEntry> {
        self.with_writer(|w| {
            let tx = w
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)?;
            let entry = cas_ref_in(&tx, name, expected, new, note)?;
            tx.commit()?;
            Ok(entry)
        })
    }

    fn list_refs(&self) -> DagResult<Vec<(RefName, Cid)>> {
        self.with_reader(index::list_refs)
    }

    fn log(&self, name: Option<&RefName>, limit: usize) -> DagResult<Vec<LogEntry>> {
        self.with_reader(|c| index::log(c, name, limit))
    }

    fn stats(&self) -> DagResult<VolumeStats> {
        let (blocks, block_bytes, refs, log_entries) = self.with_reader(index::counts)?;
        let mut stored_bytes = 0;
        for entry in std::fs::read_dir(self.packs.dir())
            .into_iter()
            .flatten()
            .flatten()
            .chain(std::fs::read_dir(&self.dir).into_iter().flatten().flatten())
        {
            if let Ok(meta) = entry.metadata()
                && meta.is_file()
            {
                stored_bytes += meta.len();
            }
        }
        Ok(VolumeStats {
            blocks,
            block_bytes,
            stored_bytes,
            refs,
            log_entries,
        })
    }

    fn compact(&self, min_live: f64) -> DagResult<CompactStats> {
        self.with_writer(|w| self.compact_packs(w, min_live))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cid::Codec;

    fn block(i: u32, len: usize) -> Block {
        let data: Vec<u8> = (0..len)
            .map(|j| (j as u32).wrapping_mul(i + 7) as u8)
            .collect();
        Block::new(Codec::RAW, data).expect("block")
    }

    fn pack_bytes(dir: &Path) -> u64 {
        std::fs::read_dir(dir.join("packs"))
            .expect("ls")
            .map(|e| e.expect("entry").metadata().expect("stat").len())
            .sum()
    }

    #[test]
    fn compaction_reclaims_dead_bytes_and_keeps_live_blocks() {
        let dir = tempfile::tempdir().expect("tempdir");
        let vol = LocalVolume::open(dir.path(), false).expect("open");
        let blocks: Vec<Block> = (0..40).map(|i| block(i, 10_000)).collect();
        vol.put_many(&blocks).expect("put");
        let dead: Vec<Cid> = blocks.iter().step_by(2).map(|b| *b.cid()).collect();
        assert_eq!(vol.delete_many(&dead).expect("delete"), 20);
        let before = pack_bytes(dir.path());
        let stats = vol.compact(0.9).expect("compact");
        assert_eq!(stats.packs_rewritten, 1);
        let after = pack_bytes(dir.path());
        assert!(after < before * 6 / 10, "{after} < 60% of {before}");
        for (i, b) in blocks.iter().enumerate() {
            let got = vol.get(b.cid()).expect("get");
            if i % 2 == 0 {
                assert_eq!(got, None);
            } else {
                assert_eq!(got.as_ref(), Some(b.data()));
            }
        }
        // Appends continue in the new pack and survive a reopen.
        let extra = block(99, 5000);
        vol.put(&extra).expect("put");
        drop(vol);
        let vol = LocalVolume::open(dir.path(), false).expect("reopen");
        assert_eq!(
            vol.get(extra.cid()).expect("get").as_ref(),
            Some(extra.data())
        );
        assert_eq!(
            vol.get(blocks[1].cid()).expect("get").as_ref(),
            Some(blocks[1].data())
        );
        // A second compaction with nothing dead does nothing.
        assert_eq!(vol.compact(0.5).expect("compact").packs_rewritten, 0);
    }

    /// Blocks of 5,000 bytes, packed (not inline), in the order written.
    fn packed_blocks(n: u32) -> Vec<Block> {
        (0..n).map(|i| block(i, 5000)).collect()
    }

    #[test]
    fn reads_in_pack_order_look_ahead_and_a_delete_drops_what_was_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let vol = LocalVolume::open(dir.path(), false).expect("open");
        let blocks = packed_blocks(200);
        vol.put_many(&blocks).expect("put");
        assert_eq!(
            vol.get(blocks[0].cid()).expect("get").as_ref(),
            Some(blocks[0].data())
        );
        assert_eq!(vol.ahead.kept(), 0, "one read is not a sequence");
        assert_eq!(
            vol.get(blocks[1].cid()).expect("get").as_ref(),
            Some(blocks[1].data())
        );
        assert_eq!(
            vol.ahead.kept(),
            ahead::WINDOW as usize,
            "the second looks ahead"
        );
        let mut out = vec![0; 5000];
        for b in &blocks[2..10] {
            assert_eq!(vol.get_into(b.cid(), &mut out).expect("get"), Some(5000));
            assert_eq!(out, b.data().as_ref());
        }
        assert_eq!(
            vol.ahead.kept(),
            ahead::WINDOW as usize - 8,
            "each taken once"
        );
        vol.delete_many(&[*blocks[20].cid()]).expect("delete");
        assert_eq!(vol.ahead.kept(), 0);
        for (i, b) in blocks.iter().enumerate().skip(10) {
            let got = vol.get(b.cid()).expect("get");
            assert_eq!(
                got.as_deref(),
                (i != 20).then(|| b.data().as_ref()),
                "block {i}"
            );
        }
        // A wrong length is reported, not read, from a kept location too.
        vol.get(blocks[0].cid()).expect("get");
        vol.get(blocks[1].cid()).expect("get");
        assert_eq!(
            vol.get_into(blocks[2].cid(), &mut [0; 10]).expect("get"),
            Some(5000)
        );
    }

    #[test]
    fn locations_kept_ahead_survive_another_process_compacting() {
        let dir = tempfile::tempdir().expect("tempdir");
        let writer = LocalVolume::open(dir.path(), false).expect("open");
        let blocks = packed_blocks(200);
        writer.put_many(&blocks).expect("put");
        let reader = LocalVolume::open(dir.path(), true).expect("open read-only");
        reader.get(blocks[0].cid()).expect("get");
        reader.get(blocks[1].cid()).expect("get");
        assert!(reader.ahead.kept() > 0);
        let dead: Vec<Cid> = blocks.iter().skip(2).step_by(2).map(|b| *b.cid()).collect();
        writer.delete_many(&dead).expect("delete");
        assert_eq!(writer.compact(0.9).expect("compact").packs_rewritten, 1);
        // Every live block reads back exactly; a dead one reads back as
        // itself (the reader still had its pack open) or as absent.
        for (i, b) in blocks.iter().enumerate().skip(2) {
            let got = reader.get(b.cid()).expect("get");
            if i % 2 == 1 {
                assert_eq!(got.as_ref(), Some(b.data()), "block {i}");
            } else {
                assert!(got.is_none() || got.as_ref() == Some(b.data()), "block {i}");
            }
        }
    }
}
