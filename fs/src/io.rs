//! File handles and I/O: open, read, write, allocate, punch, seek, copy,
//! flush and release.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use hydra_chunker::{Blob, BlobReader};
use hydra_dag::now_ns;

use crate::attr::{Fh, Ino, OpenFlags};
use crate::error::{FsError, FsResult};
use crate::file::{FileData, WriteContext};
use crate::fs::{Fs, Handle, READERS_PER_HANDLE, ReadAhead, Seek, drop_privileges, lock};
use crate::node::Kind;
use crate::perm::{Caller, R, W};
use crate::state::{Content, clean_blob};

impl Fs {
    /// Opens a file; returns a handle.
    pub fn open_file(&self, ino: Ino, flags: OpenFlags, c: &Caller) -> FsResult<Fh> {
        if flags.write || flags.truncate {
            self.writable()?;
        }
        let mut s = self.state_at(&[ino])?;
        let inode = s.get(ino)?;
        if inode.kind == Kind::Dir {
            if flags.write {
                return Err(FsError::IsDir);
            }
        } else {
            let mut want = 0;
            if flags.read {
                want |= R;
            }
            if flags.write || flags.truncate {
                want |= W;
            }
            c.check(&inode.meta, inode.kind, want)?;
        }
        if flags.truncate && inode.kind == Kind::File {
            let cx = s.write_context();
            let now = now_ns();
            let inode = s.get_mut(ino)?;
            if let Content::File(data) = &mut inode.content
                && data.size() > 0
            {
                data.truncate(&cx, 0)?;
                inode.meta.mtime = now;
                inode.meta.ctime = now;
                drop_privileges(&mut inode.meta, c);
                s.mark_dirty(ino);
            }
        }
        s.get_mut(ino)?.opens += 1;
        drop(s);
        Ok(self.new_handle(ino, flags))
    }

    pub(crate) fn new_handle(&self, ino: Ino, flags: OpenFlags) -> Fh {
        let fh = Fh(self.inner.next_fh.fetch_add(1, Ordering::Relaxed));
        let handle = Handle {
            ino,
            flags,
            readers: Vec::new(),
            listing_end: None,
        };
        lock(&self.inner.handles).insert(fh, Arc::new(Mutex::new(handle)));
        fh
    }

    pub(crate) fn handle(&self, fh: Fh) -> FsResult<Arc<Mutex<Handle>>> {
        lock(&self.inner.handles)
            .get(&fh)
            .cloned()
            .ok_or(FsError::BadHandle)
    }

    /// Reads up to `size` bytes at `offset`.
    pub fn read(&self, fh: Fh, offset: u64, size: usize) -> FsResult<Vec<u8>> {
        let mut out = Vec::new();
        let n = self.read_into(fh, offset, size, ReadAhead::Warm, &mut out)?;
        out.truncate(n);
        Ok(out)
    }

    /// Writes up to `size` bytes at `offset` over the start of `out` and
    /// returns how many; bytes of `out` past them are left as they were, so
    /// a front end can reuse one buffer for every read without clearing it.
    pub fn read_into(
        &self,
        fh: Fh,
        offset: u64,
        size: usize,
        ahead: ReadAhead,
        out: &mut Vec<u8>,
    ) -> FsResult<usize> {
        let handle = self.handle(fh)?;
        let mut h = lock(&handle);
        if !h.flags.read {
            return Err(FsError::BadHandle);
        }
        let mut s = self.state();
        let inode = s.get(h.ino)?;
        if inode.kind == Kind::Dir {
            return Err(FsError::IsDir);
        }
        if let Some(blob) = clean_blob(inode) {
            drop(s);
            // Take a reader of the handle and read with no lock held, so
            // the kernel's parallel read-ahead requests overlap: the one
            // whose last read ended here (a sequential stream), else any.
            h.readers.retain(|(cached, _)| *cached == blob);
            let pick = h
                .readers
                .iter()
                .position(|(_, r)| r.next_offset() == Some(offset))
                .or(h.readers.len().checked_sub(1));
            let cached = pick.map(|i| h.readers.swap_remove(i));
            drop(h);
            let mut reader = match cached {
                Some((_, reader)) => reader,
                None => BlobReader::new(self.inner.bucket.clone(), blob.clone()),
            };
            reader.set_read_ahead(ahead == ReadAhead::Warm);
            let result = if offset >= reader.size() {
                Ok(0)
            } else {
                reader
                    .read_at_over(offset, size, out)
                    .map_err(FsError::from)
            };
            let mut h = lock(&handle);
            if h.readers.len() < READERS_PER_HANDLE {
                h.readers.push((blob, reader));
            }
            return result;
        }
        let cx = s.write_context();
        let bucket = s.bucket.clone();
        let ino = h.ino;
        match &mut s.get_mut(ino)?.content {
            Content::File(data) => {
                let read = data.read_dirty(&bucket, &cx, offset, size)?;
                if out.len() < read.len() {
                    out.resize(read.len(), 0);
                }
                out[..read.len()].copy_from_slice(&read);
                Ok(read.len())
            }
            _ => Err(FsError::Invalid("not a regular file")),
        }
    }

    /// The file behind `fh` and whether it appends, when the fs is
    /// writable and `fh` is open for writing.
    fn write_handle(&self, fh: Fh) -> FsResult<(Ino, bool)> {
        self.writable()?;
        let handle = self.handle(fh)?;
        let h = lock(&handle);
        if !h.flags.write {
            return Err(FsError::BadHandle);
        }
        Ok((h.ino, h.flags.append))
    }

    /// Writes `data` at `offset` (at the end for append handles); returns
    /// the bytes written.
    pub fn write(&self, fh: Fh, offset: u64, data: &[u8], c: &Caller) -> FsResult<usize> {
        let (ino, append) = self.write_handle(fh)?;
        let over_limit = {
            let mut s = self.state();
            let cx = s.write_context();
            let bucket = s.bucket.clone();
            let now = now_ns();
            let inode = s.get_mut(ino)?;
            let Content::File(file) = &mut inode.content else {
                return Err(FsError::Invalid("not a regular file"));
            };
            let at = if append { file.size() } else { offset };
            let held = file.write(&bucket, &cx, at, data)?;
            inode.meta.mtime = now;
            inode.meta.ctime = now;
            drop_privileges(&mut inode.meta, c);
            s.mark_dirty(ino);
            s.written_since_settle += held;
            s.written_since_settle > self.inner.options.dirty_limit
        };
        if over_limit {
            if self.inner.options.commit_on_pressure && self.inner.name.is_some() {
                self.commit("memory threshold")?;
            } else {
                self.state().settle_files()?;
            }
        }
        Ok(data.len())
    }

    /// Grows the file open as `fh` to cover `len` bytes at `offset`, never
    /// shrinking it (`fallocate`'s default mode; content-addressed storage
    /// has no space to reserve ahead).
    pub fn allocate(&self, fh: Fh, offset: u64, len: u64, c: &Caller) -> FsResult<()> {
        let end = offset.saturating_add(len);
        self.change_file(fh, c, |file, cx| {
            if end <= file.size() {
                return Ok(false);
            }
            file.truncate(cx, end)?;
            Ok(true)
        })
    }

    /// Zeros `len` bytes at `offset` of the file open as `fh`, keeping
    /// its size (`fallocate` with `PUNCH_HOLE | KEEP_SIZE`).
    pub fn punch_hole(&self, fh: Fh, offset: u64, len: u64, c: &Caller) -> FsResult<()> {
        // Content-addressed storage frees nothing a zeroed range would keep.
        self.zero_range(fh, offset, len, true, c)
    }

    /// Zeros `len` bytes at `offset` of the file open as `fh`, growing it
    /// to their end unless `keep_size` (`fallocate`'s `ZERO_RANGE`).
    pub fn zero_range(
        &self,
        fh: Fh,
        offset: u64,
        len: u64,
        keep_size: bool,
        c: &Caller,
    ) -> FsResult<()> {
        let end = offset.saturating_add(len);
        self.change_file(fh, c, |file, cx| {
            // Bytes past the old end read as zeros once the file grows.
            let size = file.size();
            if !keep_size && end > size {
                file.truncate(cx, end)?;
            }
            if offset < size {
                file.zero_range(cx, offset, end.min(size) - offset)?;
            }
            Ok(true)
        })
    }

    /// The content of the file open for reading as `fh`, as a blob (its
    /// pending changes are stored first): what a copy shares.
    pub fn content(&self, fh: Fh) -> FsResult<Blob> {
        let handle = self.handle(fh)?;
        let h = lock(&handle);
        if !h.flags.read {
            return Err(FsError::BadHandle);
        }
        let ino = h.ino;
        drop(h);
        self.settled(ino)
    }

    /// The content of file `ino` as a blob, its pending changes stored.
    fn settled(&self, ino: Ino) -> FsResult<Blob> {
        let mut s = self.state();
        if let Some(blob) = clean_blob(s.get(ino)?) {
            return Ok(blob);
        }
        let cx = s.write_context();
        match &mut s.get_mut(ino)?.content {
            Content::File(data) => data.settle(&cx),
            Content::Dir(_) => Err(FsError::IsDir),
            _ => Err(FsError::Invalid("not a regular file")),
        }
    }

    /// Where the next data (`SEEK_DATA`) or hole (`SEEK_HOLE`) at or after
    /// `offset` starts in the file open as `fh`; holes are runs of zero
    /// chunks, and the end of the file is one.
    pub fn seek(&self, fh: Fh, offset: u64, to: Seek) -> FsResult<u64> {
        let handle = self.handle(fh)?;
        let ino = lock(&handle).ino;
        let blob = self.settled(ino)?;
        if offset >= blob.size() {
            return Err(FsError::NoData);
        }
        let params = self.state().params;
        let mut reader = BlobReader::new(self.inner.bucket.clone(), blob);
        match to {
            Seek::Data => reader.next_data(offset, params)?.ok_or(FsError::NoData),
            Seek::Hole => Ok(reader.next_hole(offset, params)?),
        }
    }

    /// Overwrites the file open for writing as `fh` from `at` on with up
    /// to `len` bytes of `src` (content of this filesystem's bucket, see
    /// [`Fs::content`]) from `from`; returns how many bytes were copied.
    /// The copy shares `src`'s chunks (`copy_file_range`).
    pub fn copy_into(
        &self,
        fh: Fh,
        at: u64,
        src: &Blob,
        from: u64,
        len: u64,
        c: &Caller,
    ) -> FsResult<u64> {
        let (_, append) = self.write_handle(fh)?;
        if append {
            return Err(FsError::BadHandle);
        }
        let mut copied = 0;
        self.change_file(fh, c, |file, cx| {
            copied = file.copy_from(cx, at, src, from, len)?;
            Ok(copied > 0)
        })?;
        Ok(copied)
    }

    /// Applies `change` to the content of the file open for writing as
    /// `fh`, under one hold of the state; when it says it changed
    /// something, the file's times move and it is marked dirty.
    fn change_file(
        &self,
        fh: Fh,
        c: &Caller,
        change: impl FnOnce(&mut FileData, &WriteContext) -> FsResult<bool>,
    ) -> FsResult<()> {
        let (ino, _) = self.write_handle(fh)?;
        let mut s = self.state();
        let cx = s.write_context();
        let now = now_ns();
        let inode = s.get_mut(ino)?;
        let Content::File(file) = &mut inode.content else {
            return Err(FsError::Invalid("not a regular file"));
        };
        if !change(file, &cx)? {
            return Ok(());
        }
        inode.meta.mtime = now;
        inode.meta.ctime = now;
        drop_privileges(&mut inode.meta, c);
        s.mark_dirty(ino);
        Ok(())
    }

    /// Called on every close of a file descriptor: stores the file's
    /// buffered content (without committing), so a large write-back does
    /// not wait for the next commit. Errors surface to the closer.
    pub fn flush(&self, fh: Fh) -> FsResult<()> {
        let handle = self.handle(fh)?;
        let ino = lock(&handle).ino;
        if self.inner.options.read_only {
            return Ok(());
        }
        let mut s = self.state();
        let cx = s.write_context();
        if let Content::File(data) = &mut s.get_mut(ino)?.content
            && data.is_dirty()
            && data.size() > crate::file::FLUSH_SETTLE_MIN
        {
            data.settle(&cx)?;
        }
        Ok(())
    }

    /// Closes a file's last descriptor: stores what [`Fs::flush`] stores,
    /// then releases the handle (which goes even when storing fails).
    pub fn close_file(&self, fh: Fh) -> FsResult<()> {
        let stored = self.flush(fh);
        self.release(fh)?;
        stored
    }

    /// Closes a handle.
    pub fn release(&self, fh: Fh) -> FsResult<()> {
        let handle = lock(&self.inner.handles)
            .remove(&fh)
            .ok_or(FsError::BadHandle)?;
        let ino = lock(&handle).ino;
        let mut s = self.state();
        if let Ok(inode) = s.get_mut(ino) {
            inode.opens = inode.opens.saturating_sub(1);
            if let (0, Content::File(data)) = (inode.opens, &mut inode.content) {
                data.release_kept();
            }
        }
        s.forget_if_orphan(ino);
        Ok(())
    }
}
