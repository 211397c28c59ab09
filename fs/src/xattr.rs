//! Extended attributes.

use hydra_dag::now_ns;

use crate::acl;
use crate::attr::Ino;
use crate::error::{FsError, FsResult};
use crate::fs::{CAPABILITY, Fs};
use crate::node::Kind;
use crate::perm::{Caller, R, W};

/// `XATTR_CREATE`: fail if the attribute exists.
pub const XATTR_CREATE: i32 = 1;
/// `XATTR_REPLACE`: fail if the attribute does not exist.
pub const XATTR_REPLACE: i32 = 2;
/// Largest attribute value.
const VALUE_MAX: usize = 64 * 1024;
/// Most bytes of names and values one inode may carry: its record must fit
/// a directory node, which must fit a block.
const TOTAL_MAX: usize = 256 * 1024;

/// Checks the caller may touch attribute `name` of an inode for `want`.
fn check_xattr(
    name: &[u8],
    meta: &crate::node::Meta,
    kind: Kind,
    c: &Caller,
    want: u32,
) -> FsResult<()> {
    if name.is_empty() {
        return Err(FsError::Invalid("empty attribute name"));
    }
    if name.len() > 255 {
        return Err(FsError::Range);
    }
    if name.starts_with(b"user.") {
        // user.* only on files and directories, governed by the mode bits.
        if !matches!(kind, Kind::File | Kind::Dir) {
            return if want == W {
                Err(FsError::NotPermitted)
            } else {
                Err(FsError::NoAttribute)
            };
        }
        return c.check(meta, kind, want);
    }
    if name.starts_with(b"trusted.") && !c.is_root() {
        return if want == W {
            Err(FsError::NotPermitted)
        } else {
            Err(FsError::NoAttribute)
        };
    }
    if name.starts_with(b"security.")
        || name.starts_with(b"system.")
        || name.starts_with(b"trusted.")
    {
        if want == W && !c.owns(meta) {
            return Err(FsError::NotPermitted);
        }
        return Ok(());
    }
    Err(FsError::Unsupported("attribute namespace"))
}

impl Fs {
    /// The value of attribute `name`.
    pub fn getxattr(&self, ino: Ino, name: &[u8], c: &Caller) -> FsResult<Vec<u8>> {
        let s = self.state_at(&[ino])?;
        let inode = s.get(ino)?;
        check_xattr(name, &inode.meta, inode.kind, c, R)?;
        inode
            .meta
            .xattrs
            .get(name)
            .cloned()
            .ok_or(FsError::NoAttribute)
    }

    /// Sets attribute `name` (`flags`: [`XATTR_CREATE`] / [`XATTR_REPLACE`]).
    pub fn setxattr(
        &self,
        ino: Ino,
        name: &[u8],
        value: &[u8],
        flags: i32,
        c: &Caller,
    ) -> FsResult<()> {
        self.writable()?;
        if value.len() > VALUE_MAX {
            return Err(FsError::Range);
        }
        let mut s = self.state_at(&[ino])?;
        let inode = s.get_mut(ino)?;
        check_xattr(name, &inode.meta, inode.kind, c, W)?;
        let exists = inode.meta.xattrs.contains_key(name);
        if flags & XATTR_CREATE != 0 && exists {
            return Err(FsError::Exists);
        }
        if flags & XATTR_REPLACE != 0 && !exists {
            return Err(FsError::NoAttribute);
        }
        let total: usize = inode
            .meta
            .xattrs
            .iter()
            .filter(|(k, _)| k.as_slice() != name)
            .map(|(k, v)| k.len() + v.len())
            .sum();
        if total + name.len() + value.len() > TOTAL_MAX {
            return Err(FsError::NoSpace);
        }
        if name == acl::DEFAULT && inode.kind != Kind::Dir {
            // As Linux answers.
            return Err(FsError::Access);
        }
        let acl_mode = if acl::is_acl(name) {
            Some(acl::mode_of(value).ok_or(FsError::Invalid("malformed ACL"))?)
        } else {
            None
        };
        // (Only the owner gets here for an ACL: `check_xattr`.)
        if name == acl::ACCESS
            && let Some((mode, extended)) = acl_mode
        {
            inode.meta.perm = (inode.meta.perm & !0o777) | mode;
            // As a chmod would: setgid goes unless the setter is in the
            // file's group or holds CAP_FSETID.
            if !c.fsetid && !c.in_group(inode.meta.gid) {
                inode.meta.perm &= !libc::S_ISGID;
            }
            if !extended {
                // Equivalent to the mode bits: kept there alone, as Linux does.
                inode.meta.xattrs.remove(name);
                inode.meta.ctime = now_ns();
                s.mark_dirty(ino);
                return Ok(());
            }
        }
        inode.meta.xattrs.insert(name.to_vec(), value.to_vec());
        inode.meta.ctime = now_ns();
        s.mark_dirty(ino);
        Ok(())
    }

    /// Every attribute name the caller may see.
    pub fn listxattr(&self, ino: Ino, c: &Caller) -> FsResult<Vec<Vec<u8>>> {
        let s = self.state_at(&[ino])?;
        let inode = s.get(ino)?;
        Ok(inode
            .meta
            .xattrs
            .keys()
            .filter(|k| !k.starts_with(b"trusted.") || c.is_root())
            .cloned()
            .collect())
    }

    /// Removes attribute `name`.
    pub fn removexattr(&self, ino: Ino, name: &[u8], c: &Caller) -> FsResult<()> {
        self.writable()?;
        let mut s = self.state_at(&[ino])?;
        let inode = s.get_mut(ino)?;
        // Whoever may write a file may take its capabilities away: a write
        // does (the kernel asks for it as the writer).
        let writer_drops_caps = name == CAPABILITY && c.check(&inode.meta, inode.kind, W).is_ok();
        if !writer_drops_caps {
            check_xattr(name, &inode.meta, inode.kind, c, W)?;
        }
        if inode.meta.xattrs.remove(name).is_none() {
            // Linux removes an ACL that is not there without complaint
            // (`setfacl -b`).
            return if acl::is_acl(name) {
                Ok(())
            } else {
                Err(FsError::NoAttribute)
            };
        }
        inode.meta.ctime = now_ns();
        s.mark_dirty(ino);
        Ok(())
    }
}
