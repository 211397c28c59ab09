//! Append-only pack files: where the embedded volume keeps block bytes.
//!
//! A pack is an 8-byte magic followed by records
//! `[data length: u32 LE][CID length: u8][CID bytes][data]`. The SQLite
//! index names each block's pack and data offset and, per pack, the length
//! up to which records are committed; anything past it is a torn tail from
//! a crash and is cut off when the store is opened for writing. The CIDs in
//! the records make a pack self-describing, so an index can be rebuilt.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::ErrorKind;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use bytes::Bytes;

use crate::block::Block;
use crate::cid::Cid;
use crate::durable::sync_dir;
use crate::error::{DagError, DagResult};

/// The first bytes of every pack file.
pub const MAGIC: &[u8; 8] = b"HYDRPK01";
/// Length of the pack header.
pub const HEADER_LEN: u64 = MAGIC.len() as u64;
/// A pack stops taking new batches once it is this long.
pub const TARGET_SIZE: u64 = 1 << 30;

/// Identifier of a pack file within one volume.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct PackId(pub u32);

/// Appends the record header for a block of `len` bytes to `out`.
pub fn write_record_header(cid: &Cid, len: usize, out: &mut Vec<u8>) {
    out.extend_from_slice(&(len as u32).to_le_bytes());
    let start = out.len();
    out.push(0);
    cid.write_bytes(out);
    out[start] = (out.len() - start - 1) as u8;
}

/// Writes the records of `blocks` (headers and data, vectored: no copy of
/// the data) at `start`.
pub fn write_records(file: &File, blocks: &[&Block], start: u64) -> std::io::Result<()> {
    let mut headers = Vec::with_capacity(blocks.len() * 48);
    let mut header_ends = Vec::with_capacity(blocks.len());
    for block in blocks {
        write_record_header(block.cid(), block.len(), &mut headers);
        header_ends.push(headers.len());
    }
    let mut slices: Vec<&[u8]> = Vec::with_capacity(blocks.len() * 2);
    let mut from = 0;
    for (block, &end) in blocks.iter().zip(&header_ends) {
        slices.push(&headers[from..end]);
        slices.push(block.data());
        from = end;
    }
    write_all_vectored_at(file, &slices, start)
}

/// Writes every slice, in order, at `offset` (pwritev, resuming after
/// partial writes).
fn write_all_vectored_at(
    file: &File,
    mut slices: &[&[u8]],
    mut offset: u64,
) -> std::io::Result<()> {
    const IOV_MAX: usize = 1024;
    let mut skip = 0; // bytes of slices[0] already written
    while !slices.is_empty() {
        let batch: Vec<std::io::IoSlice<'_>> = slices
            .iter()
            .take(IOV_MAX)
            .enumerate()
            .map(|(i, s)| std::io::IoSlice::new(if i == 0 { &s[skip..] } else { s }))
            .collect();
        let mut written = match rustix::io::pwritev(file, &batch, offset) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => n,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        };
        offset += written as u64;
        while let Some(first) = slices.first() {
            let left = first.len() - skip;
            if written < left {
                skip += written;
                break;
            }
            written -= left;
            skip = 0;
            slices = &slices[1..];
        }
    }
    Ok(())
}

/// Size of the record header that precedes a block's data.
pub fn record_header_len(cid: &Cid) -> u64 {
    5 + cid.to_bytes().len() as u64
}

/// The pack files of one volume, with read handles kept open.
#[derive(Debug)]
pub struct PackSet {
    dir: PathBuf,
    handles: RwLock<HashMap<PackId, Arc<File>>>,
}

impl PackSet {
    /// The packs under `dir`.
    pub fn new(dir: PathBuf) -> Self {
        PackSet {
            dir,
            handles: RwLock::new(HashMap::new()),
        }
    }

    /// The folder holding the packs.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Path of a pack file.
    pub fn path(&self, id: PackId) -> PathBuf {
        self.dir.join(format!("{:08}.pack", id.0))
    }

    /// Every pack file present on disk.
    pub fn list_on_disk(&self) -> DagResult<Vec<PackId>> {
        let mut ids = Vec::new();
        let entries = std::fs::read_dir(&self.dir).map_err(|e| DagError::io(&self.dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| DagError::io(&self.dir, e))?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if let Some(id) = name.strip_suffix(".pack").and_then(|n| n.parse().ok()) {
                ids.push(PackId(id));
            }
        }
        ids.sort();
        Ok(ids)
    }

    /// Creates a new, empty pack file and makes its existence durable.
    pub fn create(&self, id: PackId) -> DagResult<File> {
        let path = self.path(id);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| DagError::io(&path, e))?;
        file.write_all_at(MAGIC, 0)
            .and_then(|()| file.sync_all())
            .map_err(|e| DagError::io(&path, e))?;
        sync_dir(&self.dir)?;
        Ok(file)
    }

    /// Opens an existing pack for appending, cutting it to `committed` bytes.
    pub fn open_for_append(&self, id: PackId, committed: u64) -> DagResult<File> {
        let path = self.path(id);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| DagError::io(&path, e))?;
        self.check_and_cut(&file, &path, committed)?;
        Ok(file)
    }

    /// Cuts a pack's torn tail (bytes past `committed`) without keeping it open.
    pub fn cut_tail(&self, id: PackId, committed: u64) -> DagResult<()> {
        self.open_for_append(id, committed).map(drop)
    }

    fn check_and_cut(&self, file: &File, path: &Path, committed: u64) -> DagResult<()> {
        let corrupt = |offset, reason: &str| DagError::CorruptPack {
            path: path.to_path_buf(),
            offset,
            reason: reason.to_string(),
        };
        let len = file.metadata().map_err(|e| DagError::io(path, e))?.len();
        if len < committed {
            return Err(corrupt(len, "pack is shorter than its committed length"));
        }
        let mut magic = [0u8; 8];
        file.read_exact_at(&mut magic, 0)
            .map_err(|e| DagError::io(path, e))?;
        if &magic != MAGIC {
            return Err(corrupt(0, "not a hydra pack file"));
        }
        if len > committed {
            file.set_len(committed)
                .and_then(|()| file.sync_all())
                .map_err(|e| DagError::io(path, e))?;
        }
        Ok(())
    }

    /// Reads `len` bytes at `offset` of pack `id`.
    ///
    /// Returns `Ok(None)` when the pack file no longer exists (a compaction
    /// moved its blocks): the caller looks the block up again.
    pub fn read(&self, id: PackId, offset: u64, len: usize) -> DagResult<Option<Bytes>> {
        let Some(file) = self.handle(id)? else {
            return Ok(None);
        };
        // Read into the vector's spare capacity: no zeroing of a buffer the
        // read overwrites anyway (this is the path of every cold block).
        let mut buf: Vec<u8> = Vec::with_capacity(len);
        while buf.len() < len {
            let at = offset + buf.len() as u64;
            let read = rustix::io::pread(&*file, rustix::buffer::spare_capacity(&mut buf), at);
            self.check_read(id, offset, len, read)?;
        }
        buf.truncate(len);
        Ok(Some(Bytes::from(buf)))
    }

    /// Fills `out` with the bytes at `offset` of pack `id`; `Ok(false)` when
    /// the pack file no longer exists (as [`PackSet::read`]).
    pub fn read_into(&self, id: PackId, offset: u64, out: &mut [u8]) -> DagResult<bool> {
        let Some(file) = self.handle(id)? else {
            return Ok(false);
        };
        let mut done = 0;
        while done < out.len() {
            let read = rustix::io::pread(&*file, &mut out[done..], offset + done as u64);
            if let Ok(n) = read {
                done += n;
            }
            self.check_read(id, offset, out.len(), read)?;
        }
        Ok(true)
    }

    /// Checks one `pread` of a record (an interrupted one is retried): end
    /// of file inside the record or an I/O error is an error.
    fn check_read(
        &self,
        id: PackId,
        offset: u64,
        len: usize,
        read: rustix::io::Result<usize>,
    ) -> DagResult<()> {
        match read {
            Ok(0) => Err(DagError::CorruptPack {
                path: self.path(id),
                offset,
                reason: format!("record of {len} bytes runs past the end of the pack"),
            }),
            Ok(_) | Err(rustix::io::Errno::INTR) => Ok(()),
            Err(e) => Err(DagError::io(self.path(id), e.into())),
        }
    }

    fn handle(&self, id: PackId) -> DagResult<Option<Arc<File>>> {
        if let Some(f) = self
            .handles
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
        {
            return Ok(Some(f.clone()));
        }
        let path = self.path(id);
        let file = match File::open(&path) {
            Ok(f) => Arc::new(f),
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(DagError::io(&path, e)),
        };
        let mut handles = self.handles.write().unwrap_or_else(|e| e.into_inner());
        Ok(Some(handles.entry(id).or_insert(file).clone()))
    }

    /// Deletes a pack file that no index entry names any more.
    pub fn remove(&self, id: PackId) -> DagResult<()> {
        self.handles
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
        let path = self.path(id);
        match std::fs::remove_file(&path) {
            Ok(()) => sync_dir(&self.dir),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(DagError::io(&path, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cid::Codec;

    #[test]
    fn header_length_matches() {
        let cid = Cid::hash(Codec::RAW, b"x");
        let mut out = Vec::new();
        write_record_header(&cid, 1, &mut out);
        assert_eq!(out.len() as u64, record_header_len(&cid));
        assert_eq!(out[4] as usize, out.len() - 5);
    }

    #[test]
    fn torn_tail_is_cut() {
        let dir = tempfile::tempdir().expect("tempdir");
        let packs = PackSet::new(dir.path().to_path_buf());
        let f = packs.create(PackId(1)).expect("create");
        f.write_all_at(b"garbage", HEADER_LEN).expect("write");
        packs.cut_tail(PackId(1), HEADER_LEN).expect("cut");
        let len = std::fs::metadata(packs.path(PackId(1)))
            .expect("stat")
            .len();
        assert_eq!(len, HEADER_LEN);
    }
}
