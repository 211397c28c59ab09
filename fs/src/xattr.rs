//! Extended attributes.

use hydra_dag::now_ns;

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

/// The access ACL, which the kernel keeps in the mode bits when it is
/// equivalent to them (tools like `cp -a` set it instead of calling chmod).
const ACL_ACCESS: &[u8] = b"system.posix_acl_access";

/// The mode bits an access ACL stands for, and whether the ACL says more
/// than they do (named users or groups). `None` for a malformed ACL.
fn acl_mode(value: &[u8]) -> Option<(u32, bool)> {
    const USER_OBJ: u16 = 0x01;
    const GROUP_OBJ: u16 = 0x04;
    const MASK: u16 = 0x10;
    const OTHER: u16 = 0x20;
    let header = value.get(..4)?;
    if u32::from_le_bytes([header[0], header[1], header[2], header[3]]) != 2 {
        return None;
    }
    let entries = &value[4..];
    if !entries.len().is_multiple_of(8) {
        return None;
    }
    let (mut user, mut group, mut mask, mut other) = (None, None, None, None);
    let mut extended = false;
    for e in entries.chunks(8) {
        let tag = u16::from_le_bytes([e[0], e[1]]);
        let perm = u32::from(u16::from_le_bytes([e[2], e[3]]) & 7);
        match tag {
            USER_OBJ => user = Some(perm),
            GROUP_OBJ => group = Some(perm),
            MASK => mask = Some(perm),
            OTHER => other = Some(perm),
            _ => extended = true,
        }
    }
    let group_bits = mask.or(group)?;
    Some((
        (user? << 6) | (group_bits << 3) | other?,
        extended || mask.is_some(),
    ))
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
        if name == ACL_ACCESS {
            if !c.owns(&inode.meta) {
                return Err(FsError::NotPermitted);
            }
            let (mode, extended) =
                acl_mode(value).ok_or(FsError::Invalid("malformed access ACL"))?;
            inode.meta.perm = (inode.meta.perm & !0o777) | mode;
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
            return Err(FsError::NoAttribute);
        }
        inode.meta.ctime = now_ns();
        s.mark_dirty(ino);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::acl_mode;

    fn acl(entries: &[(u16, u16)]) -> Vec<u8> {
        let mut v = 2u32.to_le_bytes().to_vec();
        for (tag, perm) in entries {
            v.extend_from_slice(&tag.to_le_bytes());
            v.extend_from_slice(&perm.to_le_bytes());
            v.extend_from_slice(&u32::MAX.to_le_bytes());
        }
        v
    }

    #[test]
    fn minimal_acls_are_mode_bits() {
        assert_eq!(
            acl_mode(&acl(&[(1, 6), (4, 4), (0x20, 4)])),
            Some((0o644, false))
        );
        assert_eq!(
            acl_mode(&acl(&[(1, 7), (2, 5), (4, 5), (0x10, 1), (0x20, 0)])),
            Some((0o710, true))
        );
        assert_eq!(acl_mode(b"\x01\x00\x00\x00"), None);
        assert_eq!(acl_mode(&acl(&[(1, 6)])), None);
    }
}
