//! The FUSE front end: kernel requests become `Fs` calls, `FsError`s
//! become errnos through [`FsError::errno`], the one mapping.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::{Duration, SystemTime};

use crate::gitviews::{GIT_VIEWS_NAME, GitViews};
use crate::kernelrefs::KernelRefs;
use crate::snapdir::{
    GIT_VIEW_BASE, GIT_VIEWS_INO, Place, SNAPSHOTS_NAME, Snapshots, attr_in, git_repo_ino, join,
    place,
};
use fuser::{
    AccessFlags, CopyFileRangeFlags, Errno, FileHandle, Filesystem, FopenFlags, Generation,
    INodeNo, InitFlags, KernelConfig, LockOwner, RenameFlags, ReplyAttr, ReplyCreate, ReplyData,
    ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyLseek, ReplyOpen, ReplyStatfs,
    ReplyWrite, ReplyXattr, Request, TimeOrNow, WriteFlags,
};
use hydra_fs::{
    Attr, Caller, DirEntry, Fh, Fs, FsError, Ino, Listed, OpenFlags, ReadAhead, RenameMode, Seek,
    SetAttr, TimeSet,
};

use crate::ops::{FUSE_OPS, op_index};

mod caller;
mod convert;
mod madeup;

use caller::{caller, creator, holds_cap_fsetid};
use convert::{file_attr, file_type, kernel_ns};

/// How long the kernel may cache the attributes and names of the live fs,
/// snapshots and git views. Changes through this mount the kernel
/// invalidates itself; all others (9P, the gateway, other writers' commits
/// followed) are invalidated explicitly, and snapshots never change.
const TTL: Duration = Duration::from_secs(3600);
/// How long the kernel may cache what the made-up directories hold: new
/// snapshots appear in `.snapshots` and branches move in `.git-views`
/// without a notice to the kernel.
const SYNTHETIC_TTL: Duration = Duration::from_secs(1);

/// How long the kernel may cache the attributes of kernel inode `n`.
fn attr_ttl(n: u64) -> &'static Duration {
    if synthetic(n) { &SYNTHETIC_TTL } else { &TTL }
}

/// How long the kernel may cache the name of `child` in `parent`.
fn entry_ttl(parent: u64, child: u64) -> &'static Duration {
    if synthetic(parent) || synthetic(child) {
        &SYNTHETIC_TTL
    } else {
        &TTL
    }
}

/// Keep the file's cached pages across opens.
const KEEP_CACHE: FopenFlags = FopenFlags::FOPEN_KEEP_CACHE;
/// No FLUSH request on every close: `release` stores what a flush would.
const NO_FLUSH: FopenFlags = FopenFlags::FOPEN_NOFLUSH;
/// Largest write the kernel sends in one request.
pub const MAX_WRITE: u32 = 1 << 20;
/// Most bytes one `copy_file_range` request copies: its reply counts in 32
/// bits (the caller asks again for the rest).
const MAX_COPY: u64 = (u32::MAX as u64) & !0xfff;

/// The filesystem as the kernel sees it.
pub struct HydraFuse {
    fs: Fs,
    /// `.snapshots` of a live mount (none for a snapshot mount).
    snapshots: Option<Snapshots>,
    /// `.git-views`: the store's repositories.
    git: Option<GitViews>,
    /// Requests served, by operation.
    ops: std::sync::Arc<crate::ops::OpCounts>,
    /// The kernel's lookup counts.
    refs: std::sync::Arc<KernelRefs>,
}

impl HydraFuse {
    /// Serves `fs`, counting requests in `ops`.
    pub fn new(
        fs: Fs,
        snapshots: Option<Snapshots>,
        git: Option<GitViews>,
        ops: std::sync::Arc<crate::ops::OpCounts>,
    ) -> Self {
        let refs = std::sync::Arc::new(KernelRefs::default());
        fs.set_holds(refs.clone());
        HydraFuse {
            fs,
            snapshots,
            git,
            ops,
            refs,
        }
    }

    /// Replies with an entry, which the kernel then holds until it forgets.
    fn entry(&self, reply: ReplyEntry, parent: INodeNo, result: Result<Attr, FsError>) {
        match result {
            Ok(a) => {
                self.refs.add(a.ino.0);
                reply.entry(entry_ttl(parent.0, a.ino.0), &file_attr(&a), Generation(0))
            }
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn snapshots(&self) -> Result<&Snapshots, FsError> {
        self.snapshots.as_ref().ok_or(FsError::NotFound)
    }

    fn git(&self) -> Result<&GitViews, FsError> {
        self.git.as_ref().ok_or(FsError::NotFound)
    }

    /// The filesystem an inode (or handle) number belongs to, the number
    /// within it, and the snapshot id for views.
    fn target(&self, n: u64) -> Result<(Fs, Ino, Option<u64>), FsError> {
        match place(n) {
            Place::Live(i) => Ok((self.fs.clone(), i, None)),
            Place::Snapshot(id, i) => Ok((self.snapshots()?.view(id)?, i, Some(id))),
            Place::GitView(k, i) => Ok((self.git()?.view(k)?, i, Some(GIT_VIEW_BASE + k))),
            Place::Dir | Place::GitDir | Place::GitRepo(_) => Err(FsError::IsDir),
        }
    }

    /// Hands `add` the entries of directory `n` (open as `fh`) after
    /// `offset`, with global inode numbers, what `T` asks for and the view
    /// they are in, until it returns false.
    fn listing<T: Listed>(
        &self,
        n: u64,
        fh: u64,
        offset: u64,
        c: &Caller,
        mut add: impl FnMut(DirEntry, T, Option<u64>) -> bool,
    ) -> Result<(), FsError> {
        if synthetic(n) {
            for (e, a) in self.made_up_listing(n)? {
                if e.cookie > offset && !add(e, T::from_attr(a), None) {
                    break;
                }
            }
            return Ok(());
        }
        let (fs, h, view) = self.target(fh)?;
        fs.readdir_open(Fh(h.0), offset, c, |mut e, listed| {
            if let Some(id) = view {
                e.ino = Ino(join(id, e.ino.0));
            }
            add(e, listed, view)
        })
    }
}

/// Whether `n` is a directory the mount makes up (`.snapshots`,
/// `.git-views` and a repository's directory): no xattrs, no content.
fn synthetic(n: u64) -> bool {
    matches!(place(n), Place::Dir | Place::GitDir | Place::GitRepo(_))
}

fn global(attr: Attr, view: Option<u64>) -> Attr {
    match view {
        Some(id) => attr_in(id, attr),
        None => attr,
    }
}

fn errno(e: &FsError) -> Errno {
    Errno::from_i32(e.errno().0)
}

/// The live inode a kernel number names; anything else (`.snapshots`
/// and the snapshots in it) is read-only: the calling operation answers
/// EROFS.
macro_rules! live {
    ($n:expr, $reply:expr) => {
        match place($n.0) {
            Place::Live(i) => i,
            _ => {
                $reply.error(Errno::from_i32(libc::EROFS));
                return;
            }
        }
    };
}

fn empty(reply: ReplyEmpty, result: Result<(), FsError>) {
    match result {
        Ok(()) => reply.ok(),
        Err(e) => reply.error(errno(&e)),
    }
}

fn xattr_reply(reply: ReplyXattr, size: u32, data: &[u8]) {
    if size == 0 {
        reply.size(data.len() as u32);
    } else if data.len() > size as usize {
        reply.error(Errno::from_i32(libc::ERANGE));
    } else {
        reply.data(data);
    }
}

impl Filesystem for HydraFuse {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        let _ = config.set_max_write(MAX_WRITE);
        let _ = config.set_max_readahead(MAX_WRITE);
        // `Fs` drops setuid, setgid and capabilities on write, truncate and
        // chown itself, so the kernel need not ask for `security.capability`
        // before every write nor refresh and rewrite the mode around it.
        // `Fs` takes root for the holder of CAP_FSETID but where the kernel
        // says otherwise (a write's FUSE_WRITE_KILL_SUIDGID; `fuser` does
        // not pass on the like flags of truncates and truncating opens).
        let _ = config.add_capabilities(InitFlags::FUSE_HANDLE_KILLPRIV_V2);
        // Listings carry each entry's attributes when the kernel judges
        // they will be used (`ls -l`, `tar -c`, `git status`), saving a
        // LOOKUP per name.
        let _ = config
            .add_capabilities(InitFlags::FUSE_DO_READDIRPLUS | InitFlags::FUSE_READDIRPLUS_AUTO);
        // The kernel checks access ACLs as `Fs` does (keeping them cached,
        // dropped on every change through the mount; setting one drops the
        // cached mode too, before `cp -a`'s next `stat`), and leaves the umask
        // to `Fs`, which applies it unless the directory's default ACL
        // decides instead.
        let _ = config.add_capabilities(InitFlags::FUSE_POSIX_ACL | InitFlags::FUSE_DONT_MASK);
        Ok(())
    }

    fn destroy(&mut self) {
        // Unmounted: what is still in memory goes into a last commit.
        let _ = self.fs.close();
    }

    // BATCH_FORGET comes here too (fuser's default splits it).
    fn forget(&self, _req: &Request, i: INodeNo, nlookup: u64) {
        self.ops.hit(const { op_index(FUSE_OPS, "forget") });
        self.refs.forget(i.0, nlookup);
    }

    fn lookup(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        self.ops.hit(const { op_index(FUSE_OPS, "lookup") });
        let name = name.as_bytes();
        let result = match place(parent.0) {
            Place::Live(Ino::ROOT) if name == SNAPSHOTS_NAME && self.snapshots.is_some() => self
                .fs
                .getattr(Ino::ROOT)
                .and_then(|root| Ok(self.snapshots()?.dir_attr(&root))),
            Place::Dir => self.snapshots().and_then(|snaps| {
                let id = snaps.id_of(name)?;
                Ok(attr_in(id, snaps.view(id)?.getattr(Ino::ROOT)?))
            }),
            Place::Live(Ino::ROOT) if name == GIT_VIEWS_NAME && self.git.is_some() => {
                self.git_dir_attr(GIT_VIEWS_INO)
            }
            Place::GitDir => self
                .git()
                .and_then(|git| git.repo_index(name))
                .and_then(|k| self.git_dir_attr(git_repo_ino(k))),
            Place::GitRepo(k) => self.git().and_then(|git| {
                let (view, fs) = git.lookup(&git.repo_name(k)?, name)?;
                self.git_view_attr(view, &fs)
            }),
            _ => self
                .target(parent.0)
                .and_then(|(fs, i, view)| Ok(global(fs.lookup(i, name, &caller(req))?, view))),
        };
        self.entry(reply, parent, result);
    }

    fn getattr(&self, _req: &Request, i: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        self.ops.hit(const { op_index(FUSE_OPS, "getattr") });
        let result = match place(i.0) {
            Place::Dir => self
                .fs
                .getattr(Ino::ROOT)
                .and_then(|root| Ok(self.snapshots()?.dir_attr(&root))),
            Place::GitDir => self.git_dir_attr(GIT_VIEWS_INO),
            Place::GitRepo(k) => self.git_dir_attr(git_repo_ino(k)),
            _ => self
                .target(i.0)
                .and_then(|(fs, i, view)| Ok(global(fs.getattr(i)?, view))),
        };
        match result {
            Ok(a) => reply.attr(attr_ttl(i.0), &file_attr(&a)),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn setattr(
        &self,
        req: &Request,
        i: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        self.ops.hit(const { op_index(FUSE_OPS, "setattr") });
        let i_live = live!(i, reply);
        let when = |t: TimeOrNow| match t {
            TimeOrNow::Now => TimeSet::Now,
            TimeOrNow::SpecificTime(t) => TimeSet::At(kernel_ns(t)),
        };
        let set = SetAttr {
            mode,
            uid,
            gid,
            size,
            atime: atime.map(when),
            mtime: mtime.map(when),
            ctime: None,
        };
        let mut c = caller(req);
        // A truncate, and a chmod that sets setgid, keep setuid and setgid
        // only for a holder of CAP_FSETID. The kernel's flag saying so
        // (FATTR_KILL_SUIDGID) is not passed on by `fuser`, so a root
        // caller's capabilities are read where they matter.
        if c.uid == 0 && (size.is_some() || mode.is_some_and(|m| m & libc::S_ISGID != 0)) {
            c.fsetid = holds_cap_fsetid(req.pid());
        }
        match self.fs.setattr(i_live, &set, fh.map(|f| Fh(f.0)), &c) {
            Ok(a) => reply.attr(&TTL, &file_attr(&a)),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn readlink(&self, _req: &Request, i: INodeNo, reply: ReplyData) {
        self.ops.hit(const { op_index(FUSE_OPS, "readlink") });
        match self.target(i.0).and_then(|(fs, i, _)| fs.readlink(i)) {
            Ok(t) => reply.data(&t),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        rdev: u32,
        reply: ReplyEntry,
    ) {
        self.ops.hit(const { op_index(FUSE_OPS, "mknod") });
        let parent_live = live!(parent, reply);
        self.entry(
            reply,
            parent,
            self.fs.mknod(
                parent_live,
                name.as_bytes(),
                mode,
                u64::from(rdev),
                &creator(req, umask),
            ),
        );
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        self.ops.hit(const { op_index(FUSE_OPS, "mkdir") });
        let parent_live = live!(parent, reply);
        self.entry(
            reply,
            parent,
            self.fs.mkdir(
                parent_live,
                name.as_bytes(),
                mode & 0o7777,
                &creator(req, umask),
            ),
        );
    }

    fn unlink(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.ops.hit(const { op_index(FUSE_OPS, "unlink") });
        let parent_live = live!(parent, reply);
        empty(
            reply,
            self.fs.unlink(parent_live, name.as_bytes(), &caller(req)),
        );
    }

    fn rmdir(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.ops.hit(const { op_index(FUSE_OPS, "rmdir") });
        let parent_live = live!(parent, reply);
        empty(
            reply,
            self.fs.rmdir(parent_live, name.as_bytes(), &caller(req)),
        );
    }

    fn symlink(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        self.ops.hit(const { op_index(FUSE_OPS, "symlink") });
        let parent_live = live!(parent, reply);
        self.entry(
            reply,
            parent,
            self.fs.symlink(
                parent_live,
                name.as_bytes(),
                target.as_os_str().as_bytes(),
                &caller(req),
            ),
        );
    }

    fn rename(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        self.ops.hit(const { op_index(FUSE_OPS, "rename") });
        let newparent_live = live!(newparent, reply);
        let parent_live = live!(parent, reply);
        let bits = flags.bits();
        let (noreplace, whiteout) = (
            bits & libc::RENAME_NOREPLACE != 0,
            bits & libc::RENAME_WHITEOUT != 0,
        );
        let mode = if bits & libc::RENAME_EXCHANGE != 0 {
            RenameMode::Exchange
        } else if whiteout && noreplace {
            RenameMode::WhiteoutNoReplace
        } else if whiteout {
            RenameMode::Whiteout
        } else if noreplace {
            RenameMode::NoReplace
        } else {
            RenameMode::Replace
        };
        empty(
            reply,
            self.fs.rename(
                parent_live,
                name.as_bytes(),
                newparent_live,
                newname.as_bytes(),
                mode,
                &caller(req),
            ),
        );
    }

    fn link(
        &self,
        req: &Request,
        i: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        self.ops.hit(const { op_index(FUSE_OPS, "link") });
        let i_live = live!(i, reply);
        let newparent_live = live!(newparent, reply);
        self.entry(
            reply,
            newparent,
            self.fs
                .link(i_live, newparent_live, newname.as_bytes(), &caller(req)),
        );
    }

    fn open(&self, req: &Request, i: INodeNo, flags: fuser::OpenFlags, reply: ReplyOpen) {
        self.ops.hit(const { op_index(FUSE_OPS, "open") });
        let result = self.target(i.0).and_then(|(fs, i, view)| {
            let fh = fs.open_file(i, OpenFlags::from_libc(flags.0), &caller(req))?;
            Ok(view.map_or(fh.0, |id| join(id, fh.0)))
        });
        // The kernel keeps a file's cached pages from one open to the next:
        // every change that does not come through this mount (9P, another
        // writer's commit followed) invalidates the inode explicitly.
        match result {
            Ok(fh) => reply.opened(FileHandle(fh), KEEP_CACHE | NO_FLUSH),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn read(
        &self,
        _req: &Request,
        _i: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: fuser::OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        self.ops.hit(const { op_index(FUSE_OPS, "read") });
        thread_local! {
            /// Each request thread reads into one buffer for good: a fresh
            /// one per request would be mapped, faulted in, zeroed and
            /// unmapped.
            static BUFFER: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        BUFFER.with_borrow_mut(|buffer| {
            match self.target(fh.0).and_then(|(fs, h, _)| {
                fs.read_into(Fh(h.0), offset, size as usize, ReadAhead::Off, buffer)
            }) {
                Ok(n) => reply.data(&buffer[..n]),
                Err(e) => reply.error(errno(&e)),
            }
        });
    }

    fn write(
        &self,
        req: &Request,
        _i: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        write_flags: WriteFlags,
        _flags: fuser::OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        self.ops.hit(const { op_index(FUSE_OPS, "write") });
        if !matches!(place(fh.0), Place::Live(_)) {
            reply.error(Errno::from_i32(libc::EROFS));
            return;
        }
        let mut c = caller(req);
        // The writer lacks CAP_FSETID (root too, when it dropped it).
        if write_flags.contains(WriteFlags::FUSE_WRITE_KILL_SUIDGID) {
            c.fsetid = false;
        }
        match self.fs.write(Fh(fh.0), offset, data, &c) {
            Ok(n) => reply.written(n as u32),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _i: INodeNo,
        fh: FileHandle,
        _lock: LockOwner,
        reply: ReplyEmpty,
    ) {
        self.ops.hit(const { op_index(FUSE_OPS, "flush") });
        empty(
            reply,
            self.target(fh.0).and_then(|(fs, h, _)| fs.flush(Fh(h.0))),
        );
    }

    fn release(
        &self,
        _req: &Request,
        _i: INodeNo,
        fh: FileHandle,
        _flags: fuser::OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.ops.hit(const { op_index(FUSE_OPS, "release") });
        // Files are opened without flush on close: what a flush would store
        // is stored here, once the last descriptor is closed.
        empty(
            reply,
            self.target(fh.0)
                .and_then(|(fs, h, _)| fs.close_file(Fh(h.0))),
        );
    }

    fn fsync(
        &self,
        _req: &Request,
        _i: INodeNo,
        fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        self.ops.hit(const { op_index(FUSE_OPS, "fsync") });
        empty(reply, self.fs.fsync(Some(Fh(fh.0))));
    }

    fn opendir(&self, req: &Request, i: INodeNo, _flags: fuser::OpenFlags, reply: ReplyOpen) {
        self.ops.hit(const { op_index(FUSE_OPS, "opendir") });
        let result = match place(i.0) {
            Place::Dir | Place::GitDir | Place::GitRepo(_) => Ok(()),
            _ => self
                .target(i.0)
                .and_then(|(fs, i, _)| fs.access(i, 4, &caller(req))),
        };
        // The kernel may keep a listing from one open to the next, as it
        // keeps names: changes through the mount drop it, and every other
        // change to a directory invalidates its inode. The made-up
        // directories change without a notice, so are listed anew.
        let flags = if synthetic(i.0) {
            FopenFlags::empty()
        } else {
            FopenFlags::FOPEN_CACHE_DIR | KEEP_CACHE
        };
        // A handle of `Fs`'s own for a real directory: it bounds a listing
        // to the names there when the listing began.
        let result = result.and_then(|()| {
            if synthetic(i.0) {
                return Ok(0);
            }
            let (fs, i, view) = self.target(i.0)?;
            let fh = fs.open_file(i, OpenFlags::from_libc(libc::O_RDONLY), &caller(req))?;
            Ok(view.map_or(fh.0, |id| join(id, fh.0)))
        });
        match result {
            Ok(fh) => reply.opened(FileHandle(fh), flags),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn releasedir(
        &self,
        _req: &Request,
        i: INodeNo,
        fh: FileHandle,
        _flags: fuser::OpenFlags,
        reply: ReplyEmpty,
    ) {
        self.ops.hit(const { op_index(FUSE_OPS, "releasedir") });
        if synthetic(i.0) {
            reply.ok();
            return;
        }
        empty(
            reply,
            self.target(fh.0).and_then(|(fs, h, _)| fs.release(Fh(h.0))),
        );
    }

    fn readdir(
        &self,
        req: &Request,
        i: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        self.ops.hit(const { op_index(FUSE_OPS, "readdir") });
        let listed = self.listing(i.0, fh.0, offset, &caller(req), |e, (), _| {
            let full = reply.add(
                INodeNo(e.ino.0),
                e.cookie,
                file_type(e.kind),
                OsStr::from_bytes(&e.name),
            );
            !full
        });
        match listed {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn readdirplus(
        &self,
        req: &Request,
        i: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectoryPlus,
    ) {
        self.ops.hit(const { op_index(FUSE_OPS, "readdirplus") });
        let mut sent = Vec::new();
        let listed = self.listing(i.0, fh.0, offset, &caller(req), |e, a, view| {
            let attr = file_attr(&global(a, view));
            let full = reply.add(
                INodeNo(e.ino.0),
                e.cookie,
                OsStr::from_bytes(&e.name),
                entry_ttl(i.0, e.ino.0),
                &attr,
                Generation(0),
            );
            // The kernel takes a lookup of every entry but `.` and `..`.
            if !full && e.name != b"." && e.name != b".." {
                sent.push(e.ino.0);
            }
            !full
        });
        match listed {
            Ok(()) => {
                self.refs.add_all(sent);
                reply.ok();
            }
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        _i: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        self.ops.hit(const { op_index(FUSE_OPS, "fsyncdir") });
        empty(reply, self.fs.fsync(None));
    }

    fn statfs(&self, _req: &Request, _i: INodeNo, reply: ReplyStatfs) {
        self.ops.hit(const { op_index(FUSE_OPS, "statfs") });
        match self.fs.statfs() {
            Ok(s) => reply.statfs(
                s.blocks,
                s.blocks_free,
                s.blocks_available,
                s.files,
                s.files_free,
                s.block_size,
                s.name_max,
                s.block_size,
            ),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn setxattr(
        &self,
        req: &Request,
        i: INodeNo,
        name: &OsStr,
        value: &[u8],
        flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        self.ops.hit(const { op_index(FUSE_OPS, "setxattr") });
        let i_live = live!(i, reply);
        let result = self
            .fs
            .setxattr(i_live, name.as_bytes(), value, flags, &caller(req));
        empty(reply, result);
    }

    fn getxattr(&self, req: &Request, i: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        self.ops.hit(const { op_index(FUSE_OPS, "getxattr") });
        if synthetic(i.0) {
            reply.error(errno(&FsError::NoAttribute));
            return;
        }
        match self
            .target(i.0)
            .and_then(|(fs, i, _)| fs.getxattr(i, name.as_bytes(), &caller(req)))
        {
            Ok(v) => xattr_reply(reply, size, &v),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn listxattr(&self, req: &Request, i: INodeNo, size: u32, reply: ReplyXattr) {
        self.ops.hit(const { op_index(FUSE_OPS, "listxattr") });
        if synthetic(i.0) {
            xattr_reply(reply, size, &[]);
            return;
        }
        match self
            .target(i.0)
            .and_then(|(fs, i, _)| fs.listxattr(i, &caller(req)))
        {
            Ok(names) => {
                let mut data = Vec::new();
                for n in names {
                    data.extend_from_slice(&n);
                    data.push(0);
                }
                xattr_reply(reply, size, &data);
            }
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn removexattr(&self, req: &Request, i: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.ops.hit(const { op_index(FUSE_OPS, "removexattr") });
        let i_live = live!(i, reply);
        empty(
            reply,
            self.fs.removexattr(i_live, name.as_bytes(), &caller(req)),
        );
    }

    fn access(&self, req: &Request, i: INodeNo, mask: AccessFlags, reply: ReplyEmpty) {
        self.ops.hit(const { op_index(FUSE_OPS, "access") });
        let mask = (mask.bits() & 7) as u32;
        let result = match place(i.0) {
            Place::Dir | Place::GitDir | Place::GitRepo(_) if mask & 2 != 0 => {
                Err(FsError::ReadOnly)
            }
            Place::Dir | Place::GitDir | Place::GitRepo(_) => Ok(()),
            _ => self
                .target(i.0)
                .and_then(|(fs, i, _)| fs.access(i, mask, &caller(req))),
        };
        empty(reply, result);
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        self.ops.hit(const { op_index(FUSE_OPS, "create") });
        let parent_live = live!(parent, reply);
        match self.fs.create(
            parent_live,
            name.as_bytes(),
            mode & 0o7777,
            OpenFlags::from_libc(flags),
            &creator(req, umask),
        ) {
            Ok((a, fh)) => {
                self.refs.add(a.ino.0);
                reply.created(
                    &TTL,
                    &file_attr(&a),
                    Generation(0),
                    FileHandle(fh.0),
                    NO_FLUSH,
                )
            }
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn fallocate(
        &self,
        req: &Request,
        i: INodeNo,
        fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        self.ops.hit(const { op_index(FUSE_OPS, "fallocate") });
        live!(i, reply);
        let (fh, c) = (Fh(fh.0), caller(req));
        // Growing (KEEP_SIZE: nothing to reserve), punching holes and
        // zeroing ranges (the kernel refuses collapsing and inserting
        // ranges itself).
        let keep_size = mode & libc::FALLOC_FL_KEEP_SIZE != 0;
        let result = match mode {
            0 => self.fs.allocate(fh, offset, length, &c),
            libc::FALLOC_FL_KEEP_SIZE => Ok(()),
            m if m == libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE => {
                self.fs.punch_hole(fh, offset, length, &c)
            }
            m if m & !libc::FALLOC_FL_KEEP_SIZE == libc::FALLOC_FL_ZERO_RANGE => {
                self.fs.zero_range(fh, offset, length, keep_size, &c)
            }
            _ => return reply.error(Errno::from_i32(libc::EOPNOTSUPP)),
        };
        empty(reply, result);
    }

    fn copy_file_range(
        &self,
        req: &Request,
        _i_in: INodeNo,
        fh_in: FileHandle,
        offset_in: u64,
        i_out: INodeNo,
        fh_out: FileHandle,
        offset_out: u64,
        len: u64,
        _flags: CopyFileRangeFlags,
        reply: ReplyWrite,
    ) {
        self.ops
            .hit(const { op_index(FUSE_OPS, "copy_file_range") });
        live!(i_out, reply);
        // The copy shares the source's chunks: from the live fs or any
        // snapshot or git view of it, all in one bucket.
        let result = self
            .target(fh_in.0)
            .and_then(|(fs, h, _)| fs.content(Fh(h.0)))
            .and_then(|src| {
                let len = len.min(MAX_COPY);
                let c = caller(req);
                self.fs
                    .copy_into(Fh(fh_out.0), offset_out, &src, offset_in, len, &c)
            });
        match result {
            Ok(n) => reply.written(n as u32),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn lseek(
        &self,
        _req: &Request,
        _i: INodeNo,
        fh: FileHandle,
        offset: i64,
        whence: i32,
        reply: ReplyLseek,
    ) {
        self.ops.hit(const { op_index(FUSE_OPS, "lseek") });
        // The kernel asks only for these two; it moves offsets itself.
        let to = match whence {
            libc::SEEK_DATA => Seek::Data,
            libc::SEEK_HOLE => Seek::Hole,
            _ => return reply.error(Errno::from_i32(libc::EINVAL)),
        };
        let Ok(offset) = u64::try_from(offset) else {
            return reply.error(Errno::from_i32(libc::ENXIO));
        };
        match self
            .target(fh.0)
            .and_then(|(fs, h, _)| fs.seek(Fh(h.0), offset, to))
        {
            Ok(at) => reply.offset(i64::try_from(at).unwrap_or(i64::MAX)),
            Err(e) => reply.error(errno(&e)),
        }
    }
}
