//! One 9P connection's state: its fids, and the translation of every
//! request into `Fs` calls. Errors become Rlerror through [`NpError::errno`],
//! the one mapping (filesystem errors go through `FsError::errno`).
//!
//! Requests run on blocking threads, many at once; the fid table is
//! locked only to look a fid up or change it, never across an `Fs` call.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use hydra_dag::Cid;
use hydra_fs::{Caller, Fh, Fs, FsError, Ino, Kind, RenameMode};

use super::identity;
use super::locks::{LockTable, Outcome, Owner, span};
use super::wire::{self, NOFID, Rmsg, StatfsReply, Tmsg, lock};
use crate::snapdir::Snapshots;
use convert::{qid, set_attr, stat};
use xattr::XattrWrite;

mod convert;
mod io;
mod xattr;

/// `statfs` type of a 9P filesystem (V9FS_MAGIC).
const V9FS_MAGIC: u32 = 0x0102_1997;
/// Tunlinkat flag: remove a directory.
const AT_REMOVEDIR: u32 = 0x200;

/// What one server exports: a filesystem and its snapshots.
#[derive(Debug)]
pub struct Export {
    /// The served filesystem.
    pub fs: Fs,
    /// Its name (the aname clients attach with).
    pub name: String,
    /// Its snapshots by changelog id (none when `fs` is itself a snapshot).
    pub snapshots: Option<Snapshots>,
    /// Told of every change made through 9P to the live filesystem, so
    /// another front end (FUSE) drops what it cached.
    pub invalidate: Option<Arc<dyn Invalidate>>,
    /// Requests served, by kind.
    pub ops: Arc<crate::ops::OpCounts>,
}

/// Another front end's caches, to drop after a change made through 9P.
pub trait Invalidate: Send + Sync + std::fmt::Debug {
    /// The attributes and content of `ino` changed.
    fn inode(&self, ino: Ino);
    /// Entry `name` of directory `parent` changed or went away.
    fn entry(&self, parent: Ino, name: &[u8]);
}

/// Why a request failed, before it becomes an Rlerror.
#[derive(Debug, thiserror::Error)]
pub enum NpError {
    /// The filesystem refused.
    #[error(transparent)]
    Fs(#[from] FsError),
    /// An unknown fid.
    #[error("unknown fid {0}")]
    BadFid(u32),
    /// A new fid that is already in use.
    #[error("fid {0} is in use")]
    FidInUse(u32),
    /// The fid is not open for this.
    #[error("fid {0} is not open for that")]
    NotOpen(u32),
    /// The fid is already open.
    #[error("fid {0} is already open")]
    AlreadyOpen(u32),
    /// Tattach named something not exported, or a user nobody knows.
    #[error("no export or user {0:?}")]
    NoExport(String),
    /// Authentication is not configured.
    #[error("authentication is not required")]
    NoAuth,
    /// An extended attribute value over 64 KiB.
    #[error("extended attribute too large")]
    TooBig,
    /// The lock table is full.
    #[error("too many locks")]
    NoLocks,
    /// A request this server does not take.
    #[error("request not supported: {0}")]
    Unsupported(&'static str),
    /// A frame that does not decode.
    #[error(transparent)]
    Wire(#[from] wire::WireError),
}

impl NpError {
    /// The Linux errno an Rlerror carries: the one mapping of 9P errors.
    pub fn errno(&self) -> u32 {
        let e = match self {
            NpError::Fs(e) => e.errno().0,
            NpError::BadFid(_) | NpError::NotOpen(_) => libc::EBADF,
            NpError::FidInUse(_) | NpError::AlreadyOpen(_) => libc::EINVAL,
            // ENOENT for Tauth is what clients (diod's among them) read
            // as "no authentication required".
            NpError::NoExport(_) | NpError::NoAuth => libc::ENOENT,
            NpError::TooBig => libc::E2BIG,
            NpError::NoLocks => libc::ENOLCK,
            NpError::Unsupported(_) | NpError::Wire(wire::WireError::Unknown(_)) => {
                libc::EOPNOTSUPP
            }
            NpError::Wire(_) => libc::EINVAL,
        };
        e as u32
    }
}

type NpResult<T> = Result<T, NpError>;

/// A change another front end must hear of.
enum Change {
    Inode(Ino),
    Entry(Ino, Vec<u8>),
}

/// What an open fid reads and writes.
#[derive(Clone, Debug)]
enum Opened {
    /// Walked to, not opened.
    No,
    /// An open file, and whether it is open for writing.
    File(Fh, bool),
    /// An open directory.
    Dir(Fh),
    /// An extended attribute (or the list of names) to read.
    XattrRead(Arc<Vec<u8>>),
    /// An extended attribute being written; set on clunk.
    XattrWrite(XattrWrite),
}

/// A fid: a file of a filesystem, seen by a user.
#[derive(Clone, Debug)]
struct Fid {
    fs: Fs,
    /// Which view of the export (0: the live filesystem), for locks.
    view: u64,
    ino: Ino,
    caller: Arc<Caller>,
    /// The directory and name it was walked to, for Trename and Tremove.
    place: Option<(Ino, Arc<[u8]>)>,
    opened: Opened,
}

/// The state of one connection.
#[derive(Debug)]
pub struct Session {
    conn: u64,
    export: Arc<Export>,
    locks: Arc<LockTable>,
    msize: AtomicU32,
    fids: Mutex<HashMap<u32, Fid>>,
}

impl Session {
    /// A new connection's state.
    pub fn new(conn: u64, export: Arc<Export>, locks: Arc<LockTable>, msize: u32) -> Session {
        Session {
            conn,
            export,
            locks,
            msize: AtomicU32::new(msize),
            fids: Mutex::new(HashMap::new()),
        }
    }

    fn fids(&self) -> MutexGuard<'_, HashMap<u32, Fid>> {
        self.fids.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn fid(&self, fid: u32) -> NpResult<Fid> {
        self.fids().get(&fid).cloned().ok_or(NpError::BadFid(fid))
    }

    /// Fids in use (for tests of cleanup).
    pub fn fid_count(&self) -> usize {
        self.fids().len()
    }

    /// Sets the negotiated msize.
    pub fn set_msize(&self, msize: u32) {
        self.msize.store(msize, Ordering::Relaxed);
    }

    /// Whether a clunk only forgets a fid (closing a file opened for
    /// writing stores its content, which is not quick).
    pub fn is_quick(&self, msg: &Tmsg) -> bool {
        let Tmsg::Clunk { fid } = msg else {
            return false;
        };
        self.fids().get(fid).is_some_and(|f| {
            matches!(
                f.opened,
                Opened::No | Opened::XattrRead(_) | Opened::File(_, false) | Opened::Dir(_)
            )
        })
    }

    /// Clunks every fid (Tversion, or the connection's end) and drops its locks.
    pub fn reset(&self) {
        let fids: Vec<Fid> = self.fids().drain().map(|(_, f)| f).collect();
        for f in fids {
            let _ = release(&f);
        }
        self.locks.drop_connection(self.conn);
    }

    /// Answers one request (any but Tversion and Tflush, which the
    /// connection handles).
    pub fn handle(&self, msg: Tmsg) -> Rmsg {
        self.export.ops.hit(msg.kind());
        let changed = self
            .export
            .invalidate
            .as_ref()
            .and_then(|_| self.changes(&msg));
        let reply = match self.dispatch(msg) {
            Ok(r) => r,
            Err(e) => Rmsg::Lerror(e.errno()),
        };
        if let (Some(inv), Some(changes)) = (&self.export.invalidate, changed)
            && !matches!(reply, Rmsg::Lerror(_))
        {
            for c in changes {
                match c {
                    Change::Inode(ino) => inv.inode(ino),
                    Change::Entry(parent, name) => inv.entry(parent, &name),
                }
            }
        }
        reply
    }

    /// What a request would change in the live filesystem, for other
    /// front ends' caches (looked up before the request runs).
    fn changes(&self, msg: &Tmsg) -> Option<Vec<Change>> {
        let live = |fid: u32| self.fid(fid).ok().filter(|f| f.view == 0);
        let entry = |dfid: u32, name: &[u8]| {
            live(dfid).map(|d| vec![Change::Entry(d.ino, name.to_vec()), Change::Inode(d.ino)])
        };
        // The inode a name names before the request: an unlink or a rename
        // changes its link count or ctime, which the kernel may hold.
        let named = |dfid: u32, name: &[u8]| {
            live(dfid)
                .and_then(|d| d.fs.lookup(d.ino, name, &Caller::root()).ok())
                .map(|a| Change::Inode(a.ino))
        };
        match msg {
            Tmsg::Write { fid, .. } | Tmsg::Setattr { fid, .. } => {
                live(*fid).map(|f| vec![Change::Inode(f.ino)])
            }
            Tmsg::Lopen { fid, flags } if *flags as i32 & libc::O_TRUNC != 0 => {
                live(*fid).map(|f| vec![Change::Inode(f.ino)])
            }
            // New names: the FUSE kernel may cache their absence.
            Tmsg::Lcreate {
                fid: dfid, name, ..
            }
            | Tmsg::Symlink {
                fid: dfid, name, ..
            }
            | Tmsg::Mkdir { dfid, name, .. }
            | Tmsg::Mknod { dfid, name, .. } => entry(*dfid, name),
            Tmsg::Clunk { fid } => live(*fid)
                .filter(|f| matches!(f.opened, Opened::XattrWrite(_)))
                .map(|f| vec![Change::Inode(f.ino)]),
            Tmsg::Unlinkat { dfid, name, .. } => {
                let mut c = entry(*dfid, name)?;
                c.extend(named(*dfid, name));
                Some(c)
            }
            Tmsg::Link { dfid, fid, name } => {
                let mut c = entry(*dfid, name)?;
                c.extend(live(*fid).map(|f| Change::Inode(f.ino)));
                Some(c)
            }
            Tmsg::Renameat {
                olddir,
                oldname,
                newdir,
                newname,
            } => {
                let mut c = entry(*olddir, oldname)?;
                c.extend(entry(*newdir, newname)?);
                c.extend(named(*olddir, oldname));
                c.extend(named(*newdir, newname));
                Some(c)
            }
            Tmsg::Remove { fid } => {
                let f = live(*fid)?;
                let (parent, old) = f.place?;
                Some(vec![
                    Change::Entry(parent, old.to_vec()),
                    Change::Inode(parent),
                    Change::Inode(f.ino),
                ])
            }
            Tmsg::Rename { fid, dfid, name } => {
                let f = live(*fid)?;
                let (parent, old) = f.place?;
                let mut c = vec![
                    Change::Entry(parent, old.to_vec()),
                    Change::Inode(parent),
                    Change::Inode(f.ino),
                ];
                c.extend(entry(*dfid, name)?);
                c.extend(named(*dfid, name));
                Some(c)
            }
            _ => None,
        }
    }

    fn dispatch(&self, msg: Tmsg) -> NpResult<Rmsg> {
        match msg {
            Tmsg::Version { .. } | Tmsg::Flush { .. } => {
                Err(NpError::Unsupported("version or flush here"))
            }
            Tmsg::Auth { .. } => Err(NpError::NoAuth),
            Tmsg::Attach {
                fid,
                afid,
                uname,
                aname,
                n_uname,
            } => self.attach(fid, afid, &uname, &aname, n_uname),
            Tmsg::Walk { fid, newfid, names } => self.walk(fid, newfid, &names),
            Tmsg::Lopen { fid, flags } => self.lopen(fid, flags),
            Tmsg::Lcreate {
                fid,
                name,
                flags,
                mode,
                gid,
            } => self.lcreate(fid, name, flags, mode, gid),
            Tmsg::Read { fid, offset, count } => self.read(fid, offset, count),
            Tmsg::Write { fid, offset, data } => self.write(fid, offset, data),
            Tmsg::Clunk { fid } => {
                let f = self.fids().remove(&fid).ok_or(NpError::BadFid(fid))?;
                release(&f)?;
                Ok(Rmsg::Clunk)
            }
            Tmsg::Remove { fid } => {
                let f = self.fids().remove(&fid).ok_or(NpError::BadFid(fid))?;
                let removed = remove(&f);
                release(&f)?;
                removed?;
                Ok(Rmsg::Remove)
            }
            Tmsg::Getattr { fid, .. } => {
                let f = self.fid(fid)?;
                Ok(Rmsg::Getattr(Box::new(stat(&f.fs.getattr(f.ino)?))))
            }
            Tmsg::Setattr { fid, set } => {
                let f = self.fid(fid)?;
                // Through a handle open for writing, a truncate needs no
                // write permission (ftruncate after open).
                let fh = match f.opened {
                    Opened::File(fh, true) => Some(fh),
                    _ => None,
                };
                f.fs.setattr(f.ino, &set_attr(&set), fh, &f.caller)?;
                Ok(Rmsg::Setattr)
            }
            Tmsg::Readdir { fid, offset, count } => self.readdir(fid, offset, count),
            Tmsg::Fsync { fid, .. } => {
                let f = self.fid(fid)?;
                let fh = match f.opened {
                    Opened::File(fh, _) | Opened::Dir(fh) => Some(fh),
                    _ => None,
                };
                f.fs.fsync(fh)?;
                Ok(Rmsg::Fsync)
            }
            Tmsg::Mkdir {
                dfid,
                name,
                mode,
                gid,
            } => {
                let d = self.fid(dfid)?;
                let c = with_gid(&d.caller, gid);
                Ok(Rmsg::Mkdir(qid(&d.fs.mkdir(
                    d.ino,
                    &name,
                    mode & 0o7777,
                    &c,
                )?)))
            }
            Tmsg::Symlink {
                fid,
                name,
                target,
                gid,
            } => {
                let d = self.fid(fid)?;
                let c = with_gid(&d.caller, gid);
                Ok(Rmsg::Symlink(qid(&d
                    .fs
                    .symlink(d.ino, &name, &target, &c)?)))
            }
            Tmsg::Mknod {
                dfid,
                name,
                mode,
                major,
                minor,
                gid,
            } => {
                let d = self.fid(dfid)?;
                let c = with_gid(&d.caller, gid);
                let rdev = libc::makedev(major, minor);
                Ok(Rmsg::Mknod(qid(&d
                    .fs
                    .mknod(d.ino, &name, mode, rdev, &c)?)))
            }
            Tmsg::Rename { fid, dfid, name } => self.rename(fid, dfid, name),
            Tmsg::Renameat {
                olddir,
                oldname,
                newdir,
                newname,
            } => {
                let from = self.fid(olddir)?;
                let to = self.fid(newdir)?;
                from.fs.rename(
                    from.ino,
                    &oldname,
                    to.ino,
                    &newname,
                    RenameMode::Replace,
                    &from.caller,
                )?;
                Ok(Rmsg::Renameat)
            }
            Tmsg::Unlinkat { dfid, name, flags } => {
                let d = self.fid(dfid)?;
                if flags & AT_REMOVEDIR != 0 {
                    d.fs.rmdir(d.ino, &name, &d.caller)?;
                } else {
                    d.fs.unlink(d.ino, &name, &d.caller)?;
                }
                Ok(Rmsg::Unlinkat)
            }
            Tmsg::Readlink { fid } => {
                let f = self.fid(fid)?;
                Ok(Rmsg::Readlink(f.fs.readlink(f.ino)?))
            }
            Tmsg::Link { dfid, fid, name } => {
                let d = self.fid(dfid)?;
                let f = self.fid(fid)?;
                d.fs.link(f.ino, d.ino, &name, &d.caller)?;
                Ok(Rmsg::Link)
            }
            Tmsg::Xattrwalk { fid, newfid, name } => self.xattrwalk(fid, newfid, &name),
            Tmsg::Xattrcreate {
                fid,
                name,
                size,
                flags,
            } => self.xattrcreate(fid, name, size, flags),
            Tmsg::Statfs { fid } => {
                let f = self.fid(fid)?;
                let s = f.fs.statfs()?;
                Ok(Rmsg::Statfs(StatfsReply {
                    kind: V9FS_MAGIC,
                    bsize: s.block_size,
                    blocks: s.blocks,
                    bfree: s.blocks_free,
                    bavail: s.blocks_available,
                    files: s.files,
                    ffree: s.files_free,
                    fsid: 0,
                    namelen: s.name_max,
                }))
            }
            Tmsg::Lock { fid, lock: l } => {
                let f = self.fid(fid)?;
                let owner = self.owner(&l);
                let end = span(l.start, l.length);
                match self
                    .locks
                    .lock((f.view, f.ino.0), &owner, l.kind, l.start, end)
                {
                    Outcome::Granted => Ok(Rmsg::Lock(lock::SUCCESS)),
                    Outcome::Blocked => Ok(Rmsg::Lock(lock::BLOCKED)),
                    Outcome::Full => Err(NpError::NoLocks),
                }
            }
            Tmsg::Getlock { fid, lock: l } => {
                let f = self.fid(fid)?;
                let owner = self.owner(&l);
                let end = span(l.start, l.length);
                let found = self
                    .locks
                    .test((f.view, f.ino.0), &owner, l.kind, l.start, end);
                Ok(Rmsg::Getlock(match found {
                    None => wire::Flock {
                        kind: lock::UNLCK,
                        ..l
                    },
                    Some(r) => wire::Flock {
                        kind: r.kind,
                        flags: 0,
                        start: r.start,
                        length: if r.end == u64::MAX {
                            0
                        } else {
                            r.end - r.start + 1
                        },
                        proc_id: r.owner.proc_id,
                        client_id: r.owner.client,
                    },
                }))
            }
        }
    }

    fn owner(&self, l: &wire::Flock) -> Owner {
        Owner {
            conn: self.conn,
            client: l.client_id.clone(),
            proc_id: l.proc_id,
        }
    }

    fn insert(&self, id: u32, fid: Fid, replace_ok: bool) -> NpResult<()> {
        let mut fids = self.fids();
        if !replace_ok && fids.contains_key(&id) {
            return Err(NpError::FidInUse(id));
        }
        fids.insert(id, fid);
        Ok(())
    }

    fn attach(
        &self,
        fid: u32,
        afid: u32,
        uname: &[u8],
        aname: &[u8],
        n_uname: u32,
    ) -> NpResult<Rmsg> {
        if afid != NOFID {
            return Err(NpError::NoAuth);
        }
        let caller = identity::caller(uname, n_uname)
            .ok_or_else(|| NpError::NoExport(String::from_utf8_lossy(uname).into_owned()))?;
        let (fs, view) = self.resolve(aname)?;
        let attr = fs.getattr(Ino::ROOT)?;
        self.insert(
            fid,
            Fid {
                fs,
                view,
                ino: Ino::ROOT,
                caller: Arc::new(caller),
                place: None,
                opened: Opened::No,
            },
            false,
        )?;
        Ok(Rmsg::Attach(qid(&attr)))
    }

    /// The filesystem an aname names: "" or the export's name, or
    /// NAME@SNAP with SNAP a changelog id or a root CID.
    fn resolve(&self, aname: &[u8]) -> NpResult<(Fs, u64)> {
        let text = String::from_utf8_lossy(aname).into_owned();
        let (name, snap) = match text.split_once('@') {
            Some((n, s)) => (n, Some(s)),
            None => (text.as_str(), None),
        };
        if !name.is_empty() && name != self.export.name {
            return Err(NpError::NoExport(text.clone()));
        }
        let Some(snap) = snap else {
            return Ok((self.export.fs.clone(), 0));
        };
        if let Ok(id) = snap.parse::<u64>() {
            let snaps = self
                .export
                .snapshots
                .as_ref()
                .ok_or_else(|| NpError::NoExport(text.clone()))?;
            return Ok((snaps.view(id)?, id + 1));
        }
        let cid: Cid = snap.parse().map_err(|_| NpError::NoExport(text.clone()))?;
        let fs = Fs::open_snapshot(self.export.fs.bucket().clone(), cid)?;
        // A view number no changelog id reaches.
        let mut first = [0u8; 8];
        first.copy_from_slice(&cid.digest()[..8]);
        let view = u64::from_le_bytes(first) | 1 << 63;
        Ok((fs, view))
    }

    fn walk(&self, fid: u32, newfid: u32, names: &[Vec<u8>]) -> NpResult<Rmsg> {
        let start = self.fid(fid)?;
        if newfid != fid && self.fids().contains_key(&newfid) {
            return Err(NpError::FidInUse(newfid));
        }
        let mut qids = Vec::with_capacity(names.len());
        let mut ino = start.ino;
        let mut place = start.place.clone();
        for (i, name) in names.iter().enumerate() {
            match start.fs.lookup(ino, name, &start.caller) {
                Ok(attr) => {
                    place = match name.as_slice() {
                        b"." => place,
                        b".." => None,
                        _ => Some((ino, Arc::from(name.as_slice()))),
                    };
                    ino = attr.ino;
                    qids.push(qid(&attr));
                }
                Err(e) if i == 0 => return Err(e.into()),
                Err(_) => return Ok(Rmsg::Walk(qids)),
            }
        }
        if names.is_empty() {
            qids.clear();
        }
        let walked = Fid {
            ino,
            place,
            opened: Opened::No,
            ..start
        };
        self.insert(newfid, walked, newfid == fid)?;
        Ok(Rmsg::Walk(qids))
    }

    fn rename(&self, fid: u32, dfid: u32, name: Vec<u8>) -> NpResult<Rmsg> {
        let f = self.fid(fid)?;
        let d = self.fid(dfid)?;
        let (parent, old) = f
            .place
            .clone()
            .ok_or(FsError::Invalid("rename of a fid with no known name"))?;
        f.fs.rename(parent, &old, d.ino, &name, RenameMode::Replace, &f.caller)?;
        if let Some(entry) = self.fids().get_mut(&fid) {
            entry.place = Some((d.ino, Arc::from(name.as_slice())));
        }
        Ok(Rmsg::Rename)
    }
}

/// The caller with the group a create names.
fn with_gid(c: &Caller, gid: u32) -> Caller {
    let mut c = c.clone();
    if gid != NOFID && (c.is_root() || c.in_group(gid)) {
        c.gid = gid;
    }
    c
}

/// Removes the file a fid names (Tremove).
fn remove(f: &Fid) -> NpResult<()> {
    let (parent, name) = f
        .place
        .clone()
        .ok_or(FsError::Invalid("remove of a fid with no known name"))?;
    if f.fs.getattr(f.ino)?.kind == Kind::Dir {
        f.fs.rmdir(parent, &name, &f.caller)?;
    } else {
        f.fs.unlink(parent, &name, &f.caller)?;
    }
    Ok(())
}

/// Closes what a fid has open; an attribute being written is set now.
fn release(f: &Fid) -> NpResult<()> {
    match &f.opened {
        Opened::File(fh, _) => f.fs.close_file(*fh)?,
        Opened::Dir(fh) => f.fs.release(*fh)?,
        Opened::XattrWrite(x) => xattr::set(f, x)?,
        Opened::No | Opened::XattrRead(_) => {}
    }
    Ok(())
}
