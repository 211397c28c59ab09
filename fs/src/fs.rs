//! `Fs`: the filesystem core every front end calls.
//!
//! One mutex guards the inode table; reads of committed file content take
//! a copy of the blob reference and read outside it, through a per-handle
//! reader that keeps decoded tree nodes. Writes go to the write-back
//! overlay; [`Fs::commit`] stores every change bottom-up and moves the ref
//! `fs/<name>` with a compare-and-swap (every commit is a changelog entry).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::time::Duration;

use hydra_chunker::{Blob, BlobReader, ChunkParams};
use hydra_dag::{Bucket, Cid, LogEntry, RefName, RefNote, now_ns};

use crate::attr::{Attr, DirEntry, Fh, Ino, OpenFlags, SetAttr, StatFs, TimeSet};
use crate::error::{FsError, FsResult};
use crate::file::{FileData, WriteContext};
use crate::follow::Changed;
use crate::merge::{OnConflict, merge_roots};
use crate::node::{Kind, Meta};
use crate::perm::{Caller, R, W, X};
use crate::state::{Content, FIRST_COOKIE, State, clean_blob};
use crate::trim::{Holds, MAX_INODES};

/// Switches for opening a filesystem.
#[derive(Clone, Debug)]
pub struct FsOptions {
    /// Refuse every change with EROFS.
    pub read_only: bool,
    /// Commit this often while there are changes (`None`: only on demand).
    pub commit_interval: Option<Duration>,
    /// Commit when changed file content held in memory passes this.
    pub dirty_limit: u64,
    /// Where statfs measures free space (the store directory).
    pub statfs_path: Option<PathBuf>,
    /// Who commits (recorded in the changelog).
    pub author: String,
    /// Past `dirty_limit`, commit (true) or only store file content
    /// without moving the ref (false: imports that must commit once).
    pub commit_on_pressure: bool,
    /// How often to look for commits by other writers while there are no
    /// changes (`None`: never; a commit merges them anyway).
    pub refresh_interval: Option<Duration>,
    /// What a commit does when another writer changed the same things.
    pub on_conflict: OnConflict,
    /// Inodes kept in memory before unused directories are unloaded.
    pub max_inodes: usize,
}

impl Default for FsOptions {
    fn default() -> Self {
        FsOptions {
            read_only: false,
            commit_interval: Some(Duration::from_secs(5)),
            dirty_limit: 256 << 20,
            statfs_path: None,
            author: RefNote::by_current_user("").author,
            commit_on_pressure: true,
            refresh_interval: Some(Duration::from_secs(1)),
            on_conflict: OnConflict::Refuse,
            max_inodes: MAX_INODES,
        }
    }
}

/// How long a commit keeps merging onto other writers' commits before it
/// reports a conflict.
const MERGE_DEADLINE: Duration = Duration::from_secs(30);

/// Whether a read warms the blocks after it when it continues a sequential
/// stream of reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadAhead {
    /// Fetch the next blocks on a background thread while the caller uses
    /// these: for clients that ask for one range at a time.
    Warm,
    /// Fetch only what is asked: for clients that read ahead themselves
    /// (the kernel's FUSE client sends the next ranges at once, and its
    /// requests already overlap).
    Off,
}

/// What [`Fs::seek`] looks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seek {
    /// The next byte of data (`SEEK_DATA`).
    Data,
    /// The next hole (`SEEK_HOLE`).
    Hole,
}

/// Readers a handle keeps (streams of reads served at once).
const READERS_PER_HANDLE: usize = 4;

/// An open file handle's state.
#[derive(Debug)]
struct Handle {
    ino: Ino,
    flags: OpenFlags,
    /// Readers of the blob last read through this handle: one per stream
    /// of reads (the kernel's read-ahead sends several at once), each
    /// keeping its decoded tree nodes and seeing its reads as sequential.
    readers: Vec<(hydra_chunker::Blob, BlobReader)>,
}

/// A mounted-or-not filesystem: every POSIX operation over the block DAG.
#[derive(Debug, Clone)]
pub struct Fs {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    bucket: Bucket,
    /// `None` for a snapshot view, which never commits.
    name: Option<RefName>,
    options: FsOptions,
    state: Mutex<State>,
    handles: Mutex<HashMap<Fh, Arc<Mutex<Handle>>>>,
    next_fh: AtomicU64,
    /// Commits made, and their total time in nanoseconds.
    commits: AtomicU64,
    commit_ns: AtomicU64,
    stop: Arc<(Mutex<bool>, Condvar)>,
    /// Told what changed when another writer's commit is taken in.
    watcher: WatcherSlot,
}

/// Where the watcher is kept.
#[derive(Default)]
struct WatcherSlot(Mutex<Option<Watcher>>);

impl std::fmt::Debug for WatcherSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WatcherSlot")
    }
}

/// A callback told what changed under a front end's caches.
pub type Watcher = Arc<dyn Fn(Vec<Changed>) + Send + Sync>;

impl Drop for Inner {
    fn drop(&mut self) {
        let (stopped, cv) = &*self.stop;
        *lock(stopped) = true;
        cv.notify_all();
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The attribute holding a file's capabilities.
pub(crate) const CAPABILITY: &[u8] = b"security.capability";

/// Drops setuid, and setgid where it means "execute as group" or the caller
/// is outside the file's group (a write, truncate or chown, as Linux does).
fn clear_suid(meta: &mut Meta, c: &Caller) {
    meta.perm &= !libc::S_ISUID;
    if meta.perm & 0o010 != 0 || !(c.fsetid || c.in_group(meta.gid)) {
        meta.perm &= !libc::S_ISGID;
    }
}

/// Whether a mode change `perm` by someone other than the owner is a writer
/// dropping setuid or setgid, as a client's kernel does on write or truncate
/// (FUSE without `HANDLE_KILLPRIV_V2`, 9P): only clearing those bits, by a
/// caller who may write the file.
fn writer_drops_ids(meta: &Meta, kind: Kind, perm: u32, c: &Caller) -> bool {
    let ids = libc::S_ISUID | libc::S_ISGID;
    perm & !ids == meta.perm & !ids
        && perm & !meta.perm == 0
        && kind == Kind::File
        && c.check(meta, kind, W).is_ok()
}

/// What a change of a file's content takes away, as Linux does: setuid and
/// setgid as [`clear_suid`] says unless the writer holds CAP_FSETID, and
/// capabilities always.
fn drop_privileges(meta: &mut Meta, c: &Caller) {
    if !c.fsetid {
        clear_suid(meta, c);
    }
    meta.xattrs.remove(CAPABILITY);
}

/// Checks a single path component.
pub fn check_name(name: &[u8]) -> FsResult<()> {
    if name.is_empty() {
        return Err(FsError::NotFound);
    }
    if name.len() > 255 {
        return Err(FsError::NameTooLong);
    }
    if name.contains(&b'/') || name.contains(&0) {
        return Err(FsError::Invalid("a name may not contain '/' or NUL"));
    }
    Ok(())
}

impl Fs {
    /// Opens filesystem `name` (ref `fs/<name>`), creating it empty (root
    /// owned by `owner`, mode 0755) when the ref does not exist.
    pub fn open(bucket: Bucket, name: &str, owner: &Caller, options: FsOptions) -> FsResult<Fs> {
        let ref_name = RefName::new(format!("fs/{name}"))?;
        let params = ChunkParams::from_policy(&bucket.policy().chunking)?;
        let state = match bucket.get_ref(&ref_name)? {
            Some(root) => State::load(bucket.clone(), params, root)?,
            None => {
                let now = now_ns();
                let meta = Meta {
                    perm: 0o755,
                    uid: owner.uid,
                    gid: owner.gid,
                    atime: now,
                    mtime: now,
                    ctime: now,
                    ..Meta::default()
                };
                State::empty(bucket.clone(), params, meta)
            }
        };
        Ok(Fs::start(bucket, Some(ref_name), state, options))
    }

    /// A read-only view of the filesystem committed at `root`.
    pub fn open_snapshot(bucket: Bucket, root: Cid) -> FsResult<Fs> {
        let params = ChunkParams::from_policy(&bucket.policy().chunking)?;
        let state = State::load(bucket.clone(), params, root)?;
        let options = FsOptions {
            read_only: true,
            commit_interval: None,
            ..FsOptions::default()
        };
        Ok(Fs::start(bucket, None, state, options))
    }

    fn start(bucket: Bucket, name: Option<RefName>, mut state: State, options: FsOptions) -> Fs {
        state.set_holds(None, options.max_inodes);
        let commit = options.commit_interval.filter(|_| !options.read_only);
        let tick = [commit, options.refresh_interval]
            .into_iter()
            .flatten()
            .min()
            .filter(|_| name.is_some());
        let fs = Fs {
            inner: Arc::new(Inner {
                bucket,
                name,
                options,
                state: Mutex::new(state),
                handles: Mutex::new(HashMap::new()),
                next_fh: AtomicU64::new(1),
                commits: AtomicU64::new(0),
                commit_ns: AtomicU64::new(0),
                stop: Arc::new((Mutex::new(false), Condvar::new())),
                watcher: WatcherSlot::default(),
            }),
        };
        if let Some(tick) = tick {
            let weak = Arc::downgrade(&fs.inner);
            let stop = fs.inner.stop.clone();
            let _ = std::thread::Builder::new()
                .name("hydra-fs-commit".into())
                .spawn(move || commit_timer(weak, stop, tick, commit));
        }
        fs
    }

    /// The block store under this filesystem.
    pub fn bucket(&self) -> &Bucket {
        &self.inner.bucket
    }

    /// The CID naming a file's committed content (its blob's root, or
    /// for content kept inline the CID of its bytes as one raw block);
    /// `None` while it has changes not yet stored.
    pub fn content_id(&self, ino: Ino) -> FsResult<Option<Cid>> {
        let s = self.state_at(&[ino])?;
        Ok(match crate::state::clean_blob(s.get(ino)?) {
            Some(hydra_chunker::Blob::Stored { root, .. }) => Some(root),
            Some(hydra_chunker::Blob::Inline(data)) => {
                Some(Cid::hash(hydra_dag::Codec::RAW, &data))
            }
            None => None,
        })
    }

    /// Whether changes are refused.
    pub fn is_read_only(&self) -> bool {
        self.inner.options.read_only
    }

    pub(crate) fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.inner.state)
    }

    /// The state, with `inos` (numbers the caller holds from before) in
    /// memory: the one place unloading runs and unloaded inodes come back.
    pub(crate) fn state_at(&self, inos: &[Ino]) -> FsResult<MutexGuard<'_, State>> {
        let mut s = self.state();
        s.maybe_trim();
        for ino in inos {
            s.resolve(*ino)?;
        }
        Ok(s)
    }

    /// Tells the filesystem who holds inodes, so it unloads only others.
    pub fn set_holds(&self, holds: Arc<dyn Holds>) {
        self.state()
            .set_holds(Some(holds), self.inner.options.max_inodes);
    }

    /// Unloads now every directory nobody uses (it comes back unchanged
    /// when next used); returns how many inodes left memory.
    pub fn unload_unused(&self) -> usize {
        self.state().trim()
    }

    /// Inodes unloaded so far, counting each time one leaves memory.
    pub fn unloads(&self) -> u64 {
        self.state().unloads()
    }

    /// Inodes in memory and inodes unloaded (numbers kept).
    pub fn inode_counts(&self) -> (usize, usize) {
        let s = self.state();
        (s.inodes.len(), s.unloaded())
    }

    pub(crate) fn writable(&self) -> FsResult<()> {
        if self.inner.options.read_only {
            Err(FsError::ReadOnly)
        } else {
            Ok(())
        }
    }

    /// The root last committed.
    pub fn base(&self) -> Option<Cid> {
        self.state().base
    }

    /// Whether there are changes not yet committed.
    pub fn is_dirty(&self) -> bool {
        self.state().is_dirty()
    }

    /// Bytes of file content held in memory since content was last stored
    /// (an upper bound of what the write-back overlay holds; streamed
    /// appends are stored as they come and do not count).
    pub fn pending_bytes(&self) -> u64 {
        self.state().written_since_settle
    }

    /// Looks up `name` in directory `parent`.
    pub fn lookup(&self, parent: Ino, name: &[u8], c: &Caller) -> FsResult<Attr> {
        let mut s = self.state_at(&[parent])?;
        let dir = s.get(parent)?;
        if dir.kind != Kind::Dir {
            return Err(FsError::NotDir);
        }
        c.check(&dir.meta, dir.kind, X)?;
        let ino = match name {
            b"." => parent,
            b".." => dir.parent,
            _ => {
                check_name(name)?;
                s.child(parent, name)?.ok_or(FsError::NotFound)?
            }
        };
        s.attr(ino)
    }

    /// The attributes of `ino`.
    pub fn getattr(&self, ino: Ino) -> FsResult<Attr> {
        self.state_at(&[ino])?.attr(ino)
    }

    /// Changes mode, owner, size or times.
    pub fn setattr(&self, ino: Ino, set: &SetAttr, fh: Option<Fh>, c: &Caller) -> FsResult<Attr> {
        self.writable()?;
        let mut s = self.state_at(&[ino])?;
        let now = now_ns();
        if let Some(size) = set.size {
            let inode = s.get(ino)?;
            match inode.kind {
                Kind::File => {}
                // truncate(2) says EISDIR; ftruncate(2) on a directory, EINVAL.
                Kind::Dir if fh.is_some() => {
                    return Err(FsError::Invalid("ftruncate of a directory"));
                }
                Kind::Dir => return Err(FsError::IsDir),
                _ => return Err(FsError::Invalid("truncate of a non-file")),
            }
            // Through a handle (ftruncate) it must be this file's, open for
            // writing; otherwise the caller needs write permission.
            let via_handle = match fh {
                Some(fh) => {
                    let handle = self.handle(fh)?;
                    let h = lock(&handle);
                    if h.ino != ino || !h.flags.write {
                        return Err(FsError::Invalid("handle not open for writing this file"));
                    }
                    true
                }
                None => false,
            };
            if !via_handle {
                c.check(&inode.meta, inode.kind, W)?;
            }
            let cx = s.write_context();
            let inode = s.get_mut(ino)?;
            if let Content::File(data) = &mut inode.content {
                data.truncate(&cx, size)?;
            }
            inode.meta.mtime = now;
            inode.meta.ctime = now;
            drop_privileges(&mut inode.meta, c);
        }
        let inode = s.get_mut(ino)?;
        if let Some(mode) = set.mode {
            let mut perm = mode & 0o7777;
            if !c.owns(&inode.meta) && !writer_drops_ids(&inode.meta, inode.kind, perm, c) {
                return Err(FsError::NotPermitted);
            }
            if !c.fsetid && !c.in_group(inode.meta.gid) {
                perm &= !libc::S_ISGID;
            }
            inode.meta.perm = perm;
            inode.meta.ctime = now;
        }
        if set.uid.is_some() || set.gid.is_some() {
            let uid = set.uid.unwrap_or(inode.meta.uid);
            let gid = set.gid.unwrap_or(inode.meta.gid);
            if !c.is_root() {
                let changes_uid = uid != inode.meta.uid;
                let may_chgrp = c.uid == inode.meta.uid && c.in_group(gid);
                if changes_uid || (gid != inode.meta.gid && !may_chgrp) {
                    return Err(FsError::NotPermitted);
                }
            }
            // Like Linux: any chown of a non-directory drops setuid (and
            // setgid where it means "execute as group") and capabilities.
            if inode.kind != Kind::Dir {
                clear_suid(&mut inode.meta, c);
                inode.meta.xattrs.remove(CAPABILITY);
            }
            inode.meta.uid = uid;
            inode.meta.gid = gid;
            inode.meta.ctime = now;
        }
        for (which, value) in [(0, set.atime), (1, set.mtime)] {
            let Some(value) = value else { continue };
            let t = match value {
                TimeSet::Now => {
                    if !c.owns(&inode.meta) {
                        c.check(&inode.meta, inode.kind, W)
                            .map_err(|_| FsError::Access)?;
                    }
                    now
                }
                TimeSet::At(t) => {
                    if !c.owns(&inode.meta) {
                        return Err(FsError::NotPermitted);
                    }
                    t
                }
            };
            if which == 0 {
                inode.meta.atime = t;
            } else {
                inode.meta.mtime = t;
            }
            inode.meta.ctime = now;
        }
        if let Some(ctime) = set.ctime {
            if !c.is_root() {
                return Err(FsError::NotPermitted);
            }
            inode.meta.ctime = ctime;
        }
        s.mark_dirty(ino);
        s.attr(ino)
    }

    /// The target of a symlink.
    pub fn readlink(&self, ino: Ino) -> FsResult<Vec<u8>> {
        match &self.state_at(&[ino])?.get(ino)?.content {
            Content::Symlink(target) => Ok(target.clone()),
            _ => Err(FsError::Invalid("not a symlink")),
        }
    }

    /// Checks `mask` (`R_OK`/`W_OK`/`X_OK` bits, or 0 for existence).
    pub fn access(&self, ino: Ino, mask: u32, c: &Caller) -> FsResult<()> {
        let s = self.state_at(&[ino])?;
        let inode = s.get(ino)?;
        if mask & W != 0 && self.inner.options.read_only {
            return Err(FsError::ReadOnly);
        }
        c.check(&inode.meta, inode.kind, mask & 7)
    }

    /// Entries of directory `ino` after `cookie` (0 starts at `.`).
    pub fn readdir(&self, ino: Ino, cookie: u64, c: &Caller) -> FsResult<Vec<DirEntry>> {
        Ok(self
            .readdir_plus(ino, cookie, c)?
            .into_iter()
            .map(|(e, _)| e)
            .collect())
    }

    /// Entries after `cookie` with their attributes.
    pub fn readdir_plus(
        &self,
        ino: Ino,
        cookie: u64,
        c: &Caller,
    ) -> FsResult<Vec<(DirEntry, Attr)>> {
        let mut s = self.state_at(&[ino])?;
        let dir = s.get(ino)?;
        if dir.kind != Kind::Dir {
            return Err(FsError::NotDir);
        }
        c.check(&dir.meta, dir.kind, R)?;
        let parent = dir.parent;
        s.load_dir(ino)?;
        let mut out = Vec::new();
        if cookie < 1 {
            out.push((
                DirEntry {
                    ino,
                    name: b".".to_vec(),
                    kind: Kind::Dir,
                    cookie: 1,
                },
                s.attr(ino)?,
            ));
        }
        if cookie < 2 {
            out.push((
                DirEntry {
                    ino: parent,
                    name: b"..".to_vec(),
                    kind: Kind::Dir,
                    cookie: 2,
                },
                s.attr(parent)?,
            ));
        }
        let entries: Vec<(u64, Vec<u8>, Ino)> = {
            let e = s.entries(ino)?;
            e.by_cookie
                .range(cookie.max(FIRST_COOKIE - 1) + 1..)
                .filter_map(|(ck, name)| e.get(name).map(|child| (*ck, name.to_vec(), child)))
                .collect()
        };
        for (ck, name, child) in entries {
            let attr = s.attr(child)?;
            out.push((
                DirEntry {
                    ino: child,
                    name,
                    kind: attr.kind,
                    cookie: ck,
                },
                attr,
            ));
        }
        Ok(out)
    }

    /// Free space and counts.
    pub fn statfs(&self) -> FsResult<StatFs> {
        let files = {
            let s = self.state();
            (s.inodes.len() + s.unloaded()) as u64
        };
        let mut out = StatFs {
            block_size: 4096,
            blocks: 1 << 40,
            blocks_free: 1 << 39,
            blocks_available: 1 << 39,
            files: files + (1 << 32),
            files_free: 1 << 32,
            name_max: 255,
        };
        if let Some(path) = &self.inner.options.statfs_path
            && let Ok(v) = rustix::fs::statvfs(path)
        {
            let scale = v.f_frsize.max(1) / 4096;
            let scale = scale.max(1);
            out.blocks = v.f_blocks * scale;
            out.blocks_free = v.f_bfree * scale;
            out.blocks_available = v.f_bavail * scale;
        }
        Ok(out)
    }

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
        };
        lock(&self.inner.handles).insert(fh, Arc::new(Mutex::new(handle)));
        fh
    }

    fn handle(&self, fh: Fh) -> FsResult<Arc<Mutex<Handle>>> {
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
        self.change_file(fh, c, |file, cx| {
            file.zero_range(cx, offset, len)?;
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
        }
        s.forget_if_orphan(ino);
        Ok(())
    }

    /// Makes everything written so far durable: commits the filesystem.
    pub fn fsync(&self, _fh: Option<Fh>) -> FsResult<()> {
        if self.inner.options.read_only || self.inner.name.is_none() {
            return Ok(());
        }
        self.commit("fsync").map(|_| ())
    }

    /// Stores every change and moves `fs/<name>`; returns the changelog
    /// entry, or `None` when nothing changed. When another writer committed
    /// meanwhile, both sides' changes are merged (see [`OnConflict`]).
    pub fn commit(&self, message: &str) -> FsResult<Option<LogEntry>> {
        let started = std::time::Instant::now();
        let committed = self.commit_now(message);
        if let Ok(Some(_)) = &committed {
            let ns = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
            self.inner.commits.fetch_add(1, Ordering::Relaxed);
            self.inner.commit_ns.fetch_add(ns, Ordering::Relaxed);
        }
        committed
    }

    /// Commits made through this filesystem object and their total time.
    pub fn commit_stats(&self) -> (u64, Duration) {
        (
            self.inner.commits.load(Ordering::Relaxed),
            Duration::from_nanos(self.inner.commit_ns.load(Ordering::Relaxed)),
        )
    }

    fn commit_now(&self, message: &str) -> FsResult<Option<LogEntry>> {
        let Some(name) = &self.inner.name else {
            return Err(FsError::ReadOnly);
        };
        self.writable()?;
        let mut s = self.state();
        if !s.is_dirty() {
            return Ok(None);
        }
        let root = s.write_root()?;
        let note = RefNote {
            author: self.inner.options.author.clone(),
            message: message.to_string(),
            ..RefNote::default()
        };
        let bucket = &self.inner.bucket;
        let mut target = root;
        let mut merged_from = None;
        // Each round merges onto the newest root. A writer that keeps
        // losing the race backs off a random while, up to a deadline.
        let deadline = std::time::Instant::now() + MERGE_DEADLINE;
        for round in 0u32.. {
            if round >= 3 {
                if std::time::Instant::now() > deadline {
                    break;
                }
                let cap_ms = 1u64 << round.min(7);
                let jitter =
                    (now_ns() as u64 ^ u64::from(round).wrapping_mul(0x9E37_79B9)) % cap_ms;
                std::thread::sleep(Duration::from_millis(jitter + 1));
            }
            let expected = merged_from.or(s.base);
            match bucket.cas_ref(name, expected.as_ref(), Some(&target), &note) {
                Ok(entry) => {
                    // Memory holds ours, clean; after a merge it is brought
                    // to the merged root.
                    s.base = Some(root);
                    let changes = match merged_from {
                        Some(_) => s.follow(target)?,
                        None => Vec::new(),
                    };
                    s.renew_session();
                    drop(s);
                    self.tell(changes);
                    return Ok(Some(entry));
                }
                Err(hydra_dag::DagError::RefConflict { .. }) => {
                    let Some(theirs) = bucket.get_ref(name)? else {
                        break;
                    };
                    let merged = merge_roots(
                        bucket,
                        s.base.as_ref(),
                        &root,
                        &theirs,
                        self.inner.options.on_conflict,
                    )?;
                    s.session.put_blocks(&merged.blocks)?;
                    for path in &merged.conflicts {
                        eprintln!(
                            "hydra: {name}: {path} was changed by another writer too; both kept"
                        );
                    }
                    target = merged.root;
                    merged_from = Some(theirs);
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(FsError::Conflict {
            name: name.to_string(),
        })
    }

    /// Takes in commits of other writers when there are no changes here;
    /// returns whether the filesystem moved.
    pub fn refresh(&self) -> FsResult<bool> {
        let Some(name) = &self.inner.name else {
            return Ok(false);
        };
        let mut s = self.state();
        if s.is_dirty() {
            return Ok(false);
        }
        let Some(current) = self.inner.bucket.get_ref(name)? else {
            return Ok(false);
        };
        if Some(current) == s.base {
            return Ok(false);
        }
        let changes = s.follow(current)?;
        drop(s);
        self.tell(changes);
        Ok(true)
    }

    /// Sets who is told what changed when another writer's commit is
    /// taken in (called from the thread that took it in).
    pub fn set_watcher(&self, watcher: Watcher) {
        *lock(&self.inner.watcher.0) = Some(watcher);
    }

    fn tell(&self, changes: Vec<Changed>) {
        if changes.is_empty() {
            return;
        }
        let watcher = lock(&self.inner.watcher.0).clone();
        if let Some(watcher) = watcher {
            watcher(changes);
        }
    }

    /// Commits and stops the background committer.
    pub fn close(&self) -> FsResult<()> {
        {
            let (stopped, cv) = &*self.inner.stop;
            *lock(stopped) = true;
            cv.notify_all();
        }
        if self.inner.name.is_some() && !self.inner.options.read_only {
            self.commit("close")?;
        }
        Ok(())
    }
}

fn commit_timer(
    fs: Weak<Inner>,
    stop: Arc<(Mutex<bool>, Condvar)>,
    tick: Duration,
    commit: Option<Duration>,
) {
    let mut last_commit = std::time::Instant::now();
    loop {
        {
            let (stopped, cv) = &*stop;
            let guard = lock(stopped);
            let (guard, _) = cv
                .wait_timeout_while(guard, tick, |stopped| !*stopped)
                .unwrap_or_else(|e| e.into_inner());
            if *guard {
                return;
            }
        }
        let Some(inner) = fs.upgrade() else { return };
        let fs = Fs { inner };
        // Unloads what the front ends stopped holding while nothing ran.
        fs.state().maybe_trim();
        // A failed background commit leaves the changes in memory; the next
        // commit (timer, fsync or close) tries again and reports.
        if let Some(interval) = commit
            && fs.is_dirty()
        {
            if last_commit.elapsed() >= interval {
                if let Err(e) = fs.commit("auto") {
                    eprintln!("hydra: background commit failed: {e}");
                }
                last_commit = std::time::Instant::now();
            }
        } else if fs.inner.options.refresh_interval.is_some()
            && let Err(e) = fs.refresh()
        {
            eprintln!("hydra: refresh failed: {e}");
        }
    }
}
