//! Operations on names: create, link, remove and rename entries.

use hydra_chunker::Blob;
use hydra_dag::now_ns;

use crate::acl;
use crate::attr::{Attr, Fh, Ino, OpenFlags, RenameMode};
use crate::error::{FsError, FsResult};
use crate::file::FileData;
use crate::fs::{Fs, check_name};
use crate::node::{Kind, Meta, Record};
use crate::perm::{Caller, W, X};
use crate::state::{Content, Dir, Inode, State, inode_from_record};

/// What a new inode is to be.
struct NewNode {
    kind: Kind,
    mode: u32,
    rdev: u64,
    content: Content,
}

/// Most hard links one inode may have.
const LINK_MAX: u32 = 65_000;

/// Checks that `parent` is a directory the caller may add to or remove
/// from, and loads it.
fn writable_dir(s: &mut State, parent: Ino, c: &Caller) -> FsResult<()> {
    let dir = s.get(parent)?;
    if dir.kind != Kind::Dir {
        return Err(FsError::NotDir);
    }
    c.check(&dir.meta, dir.kind, W | X)?;
    if dir.nlink == 0 {
        // Removed while still open: nothing may be created in it.
        return Err(FsError::NotFound);
    }
    s.load_dir(parent)
}

/// Refuses `.`/`..` and taken names for a new entry.
fn free_name(s: &mut State, parent: Ino, name: &[u8]) -> FsResult<()> {
    if name == b"." || name == b".." {
        return Err(FsError::Exists);
    }
    check_name(name)?;
    if s.child(parent, name)?.is_some() {
        return Err(FsError::Exists);
    }
    Ok(())
}

/// Enters `inode` as `name` in `parent` (a free name of a loaded,
/// writable directory), stamps the parent changed at `now` and marks it
/// dirty; returns the new inode's number.
fn add_child(s: &mut State, parent: Ino, name: &[u8], inode: Inode, now: i64) -> FsResult<Ino> {
    let is_dir = inode.kind == Kind::Dir;
    let ino = s.add_inode(inode);
    s.entries_mut(parent)?.insert(name.to_vec(), ino);
    let dir = s.get_mut(parent)?;
    dir.meta.mtime = now;
    dir.meta.ctime = now;
    if is_dir && let Content::Dir(d) = &mut dir.content {
        d.subdirs += 1;
    }
    s.mark_dirty(parent);
    Ok(ino)
}

impl Fs {
    fn make_node(&self, parent: Ino, name: &[u8], node: NewNode, c: &Caller) -> FsResult<Ino> {
        let NewNode {
            kind,
            mode,
            rdev,
            content,
        } = node;
        self.writable()?;
        let mut s = self.state_at(&[parent])?;
        writable_dir(&mut s, parent, c)?;
        free_name(&mut s, parent, name)?;
        if matches!(kind, Kind::CharDev | Kind::BlockDev) && !c.is_root() {
            return Err(FsError::NotPermitted);
        }
        let now = now_ns();
        let dir_meta = s.get(parent)?.meta.clone();
        let (mut perm, xattrs) = acl::for_new(&dir_meta, kind, mode & 0o7777, c.umask);
        // setgid directories hand their group down, and setgid to subdirectories.
        let gid = if dir_meta.perm & libc::S_ISGID != 0 {
            if kind == Kind::Dir {
                perm |= libc::S_ISGID;
            }
            dir_meta.gid
        } else {
            c.gid
        };
        if kind != Kind::Dir && perm & libc::S_ISGID != 0 && !c.fsetid && !c.in_group(gid) {
            perm &= !libc::S_ISGID;
        }
        let mut inode = new_inode(kind, perm, (c.uid, gid), parent, content, now);
        inode.meta.rdev = rdev;
        inode.meta.xattrs = xattrs;
        let ino = add_child(&mut s, parent, name, inode, now)?;
        s.mark_dirty(ino);
        Ok(ino)
    }

    /// Adds a stored record (a file, or a whole directory tree whose blocks
    /// are in the bucket already) as a new entry `name` of `parent`, as it
    /// is: how a tree built elsewhere, such as a git checkout, joins the
    /// filesystem without copying its content.
    pub fn graft(&self, parent: Ino, name: &[u8], record: Record, c: &Caller) -> FsResult<Attr> {
        self.writable()?;
        let mut s = self.state_at(&[parent])?;
        writable_dir(&mut s, parent, c)?;
        free_name(&mut s, parent, name)?;
        if matches!(record.kind, Kind::CharDev | Kind::BlockDev) && !c.is_root() {
            return Err(FsError::NotPermitted);
        }
        // Stored already: only the parent's listing changes.
        let inode = inode_from_record(record, parent, 1, None);
        let ino = add_child(&mut s, parent, name, inode, now_ns())?;
        s.attr(ino)
    }

    /// Creates a directory (the caller's umask applies unless a default ACL does).
    pub fn mkdir(&self, parent: Ino, name: &[u8], mode: u32, c: &Caller) -> FsResult<Attr> {
        let content = Content::Dir(Dir {
            stored: None,
            entries: Some(Box::default()),
            subdirs: 0,
            used_in: 0,
        });
        let ino = self.make_node(
            parent,
            name,
            NewNode {
                kind: Kind::Dir,
                // setuid/setgid are not taken from mkdir's mode (setgid
                // comes from the parent, below).
                mode: mode & 0o1777,
                rdev: 0,
                content,
            },
            c,
        )?;
        self.state_at(&[ino])?.attr(ino)
    }

    /// Creates a file, fifo, socket or device node from a `mode` with type bits.
    pub fn mknod(
        &self,
        parent: Ino,
        name: &[u8],
        mode: u32,
        rdev: u64,
        c: &Caller,
    ) -> FsResult<Attr> {
        let kind = Kind::from_mode(mode).ok_or(FsError::Invalid("unknown file type"))?;
        let content = match kind {
            Kind::File => Content::File(FileData::Clean(Blob::empty())),
            Kind::Dir => return Err(FsError::Invalid("mknod of a directory")),
            Kind::Symlink => return Err(FsError::Invalid("mknod of a symlink")),
            _ => Content::Special,
        };
        let rdev = if matches!(kind, Kind::CharDev | Kind::BlockDev) {
            rdev
        } else {
            0
        };
        let ino = self.make_node(
            parent,
            name,
            NewNode {
                kind,
                mode,
                rdev,
                content,
            },
            c,
        )?;
        self.state_at(&[ino])?.attr(ino)
    }

    /// Creates and opens a regular file.
    pub fn create(
        &self,
        parent: Ino,
        name: &[u8],
        mode: u32,
        flags: OpenFlags,
        c: &Caller,
    ) -> FsResult<(Attr, Fh)> {
        let content = Content::File(FileData::Clean(Blob::empty()));
        let ino = self.make_node(
            parent,
            name,
            NewNode {
                kind: Kind::File,
                mode,
                rdev: 0,
                content,
            },
            c,
        )?;
        let attr = {
            let mut s = self.state_at(&[ino])?;
            s.get_mut(ino)?.opens += 1;
            s.attr(ino)?
        };
        let flags = OpenFlags {
            write: true,
            ..flags
        };
        Ok((attr, self.new_handle(ino, flags)))
    }

    /// Creates a symbolic link to `target`.
    pub fn symlink(&self, parent: Ino, name: &[u8], target: &[u8], c: &Caller) -> FsResult<Attr> {
        if target.is_empty() {
            return Err(FsError::NotFound);
        }
        if target.len() > 4095 {
            return Err(FsError::NameTooLong);
        }
        let content = Content::Symlink(target.to_vec());
        let ino = self.make_node(
            parent,
            name,
            NewNode {
                kind: Kind::Symlink,
                mode: 0o777,
                rdev: 0,
                content,
            },
            c,
        )?;
        self.state_at(&[ino])?.attr(ino)
    }

    /// Gives `ino` another name: a real hard link.
    pub fn link(&self, ino: Ino, parent: Ino, name: &[u8], c: &Caller) -> FsResult<Attr> {
        self.writable()?;
        let mut s = self.state_at(&[ino, parent])?;
        s.get(ino)?;
        // The destination first, as Linux reports it.
        writable_dir(&mut s, parent, c)?;
        free_name(&mut s, parent, name)?;
        let inode = s.get(ino)?;
        if inode.kind == Kind::Dir {
            return Err(FsError::NotPermitted);
        }
        if inode.nlink >= LINK_MAX {
            return Err(FsError::TooManyLinks);
        }
        if inode.nlink == 0 {
            return Err(FsError::NotFound);
        }
        s.make_group(ino)?;
        s.entries_mut(parent)?.insert(name.to_vec(), ino);
        let now = now_ns();
        let inode = s.get_mut(ino)?;
        inode.nlink += 1;
        inode.meta.ctime = now;
        let dir = s.get_mut(parent)?;
        dir.meta.mtime = now;
        dir.meta.ctime = now;
        s.mark_dirty(parent);
        s.mark_dirty(ino);
        s.attr(ino)
    }

    /// Removes a non-directory entry.
    pub fn unlink(&self, parent: Ino, name: &[u8], c: &Caller) -> FsResult<()> {
        self.writable()?;
        let mut s = self.state_at(&[parent])?;
        writable_dir(&mut s, parent, c)?;
        check_name(name)?;
        let child = s.child(parent, name)?.ok_or(FsError::NotFound)?;
        if s.get(child)?.kind == Kind::Dir {
            return Err(FsError::IsDir);
        }
        c.check_sticky(&s.get(parent)?.meta, &s.get(child)?.meta)?;
        remove_entry(&mut s, parent, name, child)?;
        Ok(())
    }

    /// Removes an empty directory.
    pub fn rmdir(&self, parent: Ino, name: &[u8], c: &Caller) -> FsResult<()> {
        self.writable()?;
        match name {
            b"." => return Err(FsError::Invalid("rmdir of '.'")),
            b".." => return Err(FsError::NotEmpty),
            _ => {}
        }
        let mut s = self.state_at(&[parent])?;
        writable_dir(&mut s, parent, c)?;
        check_name(name)?;
        let child = s.child(parent, name)?.ok_or(FsError::NotFound)?;
        if s.get(child)?.kind != Kind::Dir {
            return Err(FsError::NotDir);
        }
        s.load_dir(child)?;
        if !s.entries(child)?.by_name.is_empty() {
            return Err(FsError::NotEmpty);
        }
        c.check_sticky(&s.get(parent)?.meta, &s.get(child)?.meta)?;
        remove_entry(&mut s, parent, name, child)?;
        Ok(())
    }

    /// Renames `name` in `parent` to `new_name` in `new_parent`.
    pub fn rename(
        &self,
        parent: Ino,
        name: &[u8],
        new_parent: Ino,
        new_name: &[u8],
        mode: RenameMode,
        c: &Caller,
    ) -> FsResult<()> {
        self.writable()?;
        let (mode, whiteout) = mode.split();
        if whiteout && !c.is_root() {
            // Linux asks for CAP_MKNOD.
            return Err(FsError::NotPermitted);
        }
        // Checks in the order Linux reports them: the directories, the
        // source, the new name, the target's presence, then the moves
        // that cannot be.
        let mut s = self.state_at(&[parent, new_parent])?;
        writable_dir(&mut s, parent, c)?;
        writable_dir(&mut s, new_parent, c)?;
        for n in [name, new_name] {
            if n == b"." || n == b".." {
                return Err(FsError::Invalid("rename of '.' or '..'"));
            }
        }
        check_name(name)?;
        let src = s.child(parent, name)?.ok_or(FsError::NotFound)?;
        check_name(new_name)?;
        let dst = s.child(new_parent, new_name)?;
        match (mode, dst) {
            (RenameMode::NoReplace, Some(d))
                if d != src || parent != new_parent || name != new_name =>
            {
                return Err(FsError::Exists);
            }
            (RenameMode::Exchange, None) => return Err(FsError::NotFound),
            _ => {}
        }
        // A target that is an ancestor of the source is not empty.
        if let Some(d) = dst
            && mode != RenameMode::Exchange
            && s.get(d)?.kind == Kind::Dir
        {
            let mut at = parent;
            loop {
                if at == d {
                    return Err(FsError::NotEmpty);
                }
                let up = s.get(at)?.parent;
                if up == at {
                    break;
                }
                at = up;
            }
        }
        c.check_sticky(&s.get(parent)?.meta, &s.get(src)?.meta)?;
        if let Some(dst) = dst {
            c.check_sticky(&s.get(new_parent)?.meta, &s.get(dst)?.meta)?;
        }
        if parent == new_parent && name == new_name {
            return if mode == RenameMode::NoReplace {
                Err(FsError::Exists)
            } else {
                Ok(())
            };
        }
        let src_kind = s.get(src)?.kind;
        // A directory may not move into itself or below itself.
        for moving in [
            Some(src),
            if mode == RenameMode::Exchange {
                dst
            } else {
                None
            },
        ]
        .into_iter()
        .flatten()
        {
            if s.get(moving)?.kind == Kind::Dir {
                let target_dir = if moving == src { new_parent } else { parent };
                let mut at = target_dir;
                loop {
                    if at == moving {
                        return Err(FsError::InvalidMove("a directory cannot move into itself"));
                    }
                    let up = s.get(at)?.parent;
                    if up == at {
                        break;
                    }
                    at = up;
                }
                // Changing a directory's parent rewrites its "..": needs write on it.
                if parent != new_parent {
                    let m = &s.get(moving)?.meta;
                    c.check(m, Kind::Dir, W)?;
                }
            }
        }
        let now = now_ns();
        match (mode, dst) {
            (RenameMode::NoReplace, Some(_)) => return Err(FsError::Exists),
            (RenameMode::Exchange, None) => return Err(FsError::NotFound),
            (RenameMode::Exchange, Some(dst)) => {
                s.entries_mut(parent)?.remove(name);
                s.entries_mut(new_parent)?.remove(new_name);
                s.entries_mut(parent)?.insert(name.to_vec(), dst);
                s.entries_mut(new_parent)?.insert(new_name.to_vec(), src);
                let dst_kind = s.get(dst)?.kind;
                if parent != new_parent && (src_kind == Kind::Dir) != (dst_kind == Kind::Dir) {
                    let (to_new, to_old) = if src_kind == Kind::Dir {
                        (1i64, -1i64)
                    } else {
                        (-1, 1)
                    };
                    adjust_subdirs(&mut s, new_parent, to_new)?;
                    adjust_subdirs(&mut s, parent, to_old)?;
                }
                reparent(&mut s, dst, parent, now)?;
                reparent(&mut s, src, new_parent, now)?;
                touch_dirs(&mut s, &[parent, new_parent], now)?;
                return Ok(());
            }
            (_, Some(dst)) => {
                if dst == src {
                    // Two names of one inode: POSIX says do nothing.
                    return Ok(());
                }
                let dst_kind = s.get(dst)?.kind;
                match (src_kind == Kind::Dir, dst_kind == Kind::Dir) {
                    (true, false) => return Err(FsError::NotDir),
                    (false, true) => return Err(FsError::IsDir),
                    (true, true) => {
                        s.load_dir(dst)?;
                        if !s.entries(dst)?.by_name.is_empty() {
                            return Err(FsError::NotEmpty);
                        }
                    }
                    (false, false) => {}
                }
                remove_entry(&mut s, new_parent, new_name, dst)?;
            }
            (_, None) => {}
        }
        s.entries_mut(parent)?.remove(name);
        s.entries_mut(new_parent)?.insert(new_name.to_vec(), src);
        if src_kind == Kind::Dir && parent != new_parent {
            adjust_subdirs(&mut s, parent, -1)?;
            adjust_subdirs(&mut s, new_parent, 1)?;
        }
        reparent(&mut s, src, new_parent, now)?;
        touch_dirs(&mut s, &[parent, new_parent], now)?;
        if whiteout {
            // A 0/0 character device with no permission bits.
            let mark = new_inode(
                Kind::CharDev,
                0,
                (c.uid, c.gid),
                parent,
                Content::Special,
                now,
            );
            let ino = add_child(&mut s, parent, name, mark, now)?;
            s.mark_dirty(ino);
        }
        Ok(())
    }
}

/// A new, dirty inode with one link, owned by `(uid, gid)`, made `now`.
fn new_inode(
    kind: Kind,
    perm: u32,
    (uid, gid): (u32, u32),
    parent: Ino,
    content: Content,
    now: i64,
) -> Inode {
    Inode {
        kind,
        meta: Meta {
            perm,
            uid,
            gid,
            atime: now,
            mtime: now,
            ctime: now,
            ..Meta::default()
        },
        nlink: 1,
        parent,
        group: None,
        content,
        dirty: true,
        opens: 0,
    }
}

fn adjust_subdirs(s: &mut State, dir: Ino, by: i64) -> FsResult<()> {
    if let Content::Dir(d) = &mut s.get_mut(dir)?.content {
        d.subdirs = (i64::from(d.subdirs) + by).max(0) as u32;
    }
    Ok(())
}

fn reparent(s: &mut State, ino: Ino, parent: Ino, now: i64) -> FsResult<()> {
    let inode = s.get_mut(ino)?;
    inode.parent = parent;
    inode.meta.ctime = now;
    s.mark_dirty(ino);
    Ok(())
}

fn touch_dirs(s: &mut State, dirs: &[Ino], now: i64) -> FsResult<()> {
    for &dir in dirs {
        let d = s.get_mut(dir)?;
        d.meta.mtime = now;
        d.meta.ctime = now;
        s.mark_dirty(dir);
    }
    Ok(())
}

/// Removes entry `name` (naming `child`) from `parent` and drops a link.
fn remove_entry(s: &mut State, parent: Ino, name: &[u8], child: Ino) -> FsResult<()> {
    let now = now_ns();
    s.entries_mut(parent)?.remove(name);
    let kind = s.get(child)?.kind;
    if kind == Kind::Dir {
        adjust_subdirs(s, parent, -1)?;
    }
    let inode = s.get_mut(child)?;
    inode.nlink = if kind == Kind::Dir {
        0
    } else {
        inode.nlink.saturating_sub(1)
    };
    inode.meta.ctime = now;
    let grouped = inode.group.is_some();
    if grouped {
        s.links_dirty = true;
    }
    touch_dirs(s, &[parent], now)?;
    s.forget_if_orphan(child);
    Ok(())
}
