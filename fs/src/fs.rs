//! `Fs`: the filesystem core every front end calls.
//!
//! One mutex guards the inode table; reads of committed file content take
//! a copy of the blob reference and read outside it, through a per-handle
//! reader that keeps decoded tree nodes. Writes go to the write-back
//! overlay; [`Fs::commit`] stores every change bottom-up and moves the ref
//! `fs/<name>` with a compare-and-swap (every commit is a changelog entry).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use hydra_chunker::{BlobReader, ChunkParams};
use hydra_dag::{Bucket, Cid, RefName, RefNote, now_ns};

use crate::attr::{Attr, Fh, Ino, OpenFlags, SetAttr, StatFs, TimeSet};
use crate::error::{FsError, FsResult};
use crate::follow::Changed;
use crate::merge::OnConflict;
use crate::node::{Kind, Meta};
use crate::perm::{Caller, W, X};
use crate::state::{Content, State};
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
pub(crate) const READERS_PER_HANDLE: usize = 4;

/// An open file handle's state.
#[derive(Debug)]
pub(crate) struct Handle {
    pub(crate) ino: Ino,
    pub(crate) flags: OpenFlags,
    /// Readers of the blob last read through this handle: one per stream
    /// of reads (the kernel's read-ahead sends several at once), each
    /// keeping its decoded tree nodes and seeing its reads as sequential.
    pub(crate) readers: Vec<(hydra_chunker::Blob, BlobReader)>,
    /// For a directory: the cookie its listing from this handle stops
    /// before (set when the listing begins).
    pub(crate) listing_end: Option<u64>,
}

/// A mounted-or-not filesystem: every POSIX operation over the block DAG.
#[derive(Debug, Clone)]
pub struct Fs {
    pub(crate) inner: Arc<Inner>,
}

/// What every clone of an [`Fs`] shares.
#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) bucket: Bucket,
    /// `None` for a snapshot view, which never commits.
    pub(crate) name: Option<RefName>,
    pub(crate) options: FsOptions,
    pub(crate) state: Mutex<State>,
    pub(crate) handles: Mutex<HashMap<Fh, Arc<Mutex<Handle>>>>,
    pub(crate) next_fh: AtomicU64,
    /// Commits made, and their total time in nanoseconds.
    pub(crate) commits: AtomicU64,
    pub(crate) commit_ns: AtomicU64,
    /// Commit attempts begun (numbered from 1, under the state lock), and
    /// the highest of them known to have left memory equal to the store.
    pub(crate) commits_begun: AtomicU64,
    pub(crate) commit_durable: AtomicU64,
    pub(crate) stop: Arc<(Mutex<bool>, Condvar)>,
    /// Told what changed when another writer's commit is taken in.
    pub(crate) watcher: WatcherSlot,
}

/// Where the watcher is kept.
#[derive(Default)]
pub(crate) struct WatcherSlot(pub(crate) Mutex<Option<Watcher>>);

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

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
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
pub(crate) fn drop_privileges(meta: &mut Meta, c: &Caller) {
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
        state.set_max_inodes(options.max_inodes);
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
                commits_begun: AtomicU64::new(0),
                commit_durable: AtomicU64::new(0),
                stop: Arc::new((Mutex::new(false), Condvar::new())),
                watcher: WatcherSlot::default(),
            }),
        };
        if let Some(tick) = tick {
            let weak = Arc::downgrade(&fs.inner);
            let stop = fs.inner.stop.clone();
            let _ = std::thread::Builder::new()
                .name("hydra-fs-commit".into())
                .spawn(move || crate::commit::commit_timer(weak, stop, tick, commit));
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
        self.state().set_holds(holds);
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
            // An access ACL follows the mode: owner, group class (the
            // mask) and other.
            if let Some(list) = inode.meta.xattrs.get_mut(crate::acl::ACCESS) {
                match crate::acl::after_chmod(list, perm) {
                    Some(changed) => *list = changed,
                    None => drop(inode.meta.xattrs.remove(crate::acl::ACCESS)),
                }
            }
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
}
