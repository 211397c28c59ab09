//! Who is asking, and what the permission bits let them do.

use crate::error::{FsError, FsResult};
use crate::node::{Kind, Meta};

/// Read permission.
pub const R: u32 = 4;
/// Write permission.
pub const W: u32 = 2;
/// Execute / search permission.
pub const X: u32 = 1;

/// The identity an operation runs as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    /// Effective user id.
    pub uid: u32,
    /// Effective group id.
    pub gid: u32,
    /// Supplementary groups.
    pub groups: Vec<u32>,
    /// Whether the caller holds CAP_FSETID: keeps setuid and setgid on
    /// what it writes, truncates or chowns.
    pub fsetid: bool,
    /// The creator's umask, taken from what it makes unless the directory
    /// has a default ACL (0 where the client applied it already).
    pub umask: u32,
}

impl Caller {
    /// The superuser.
    pub fn root() -> Caller {
        Caller {
            uid: 0,
            gid: 0,
            groups: Vec::new(),
            fsetid: true,
            umask: 0,
        }
    }

    /// A user with no supplementary groups (uid 0 with root's CAP_FSETID).
    pub fn user(uid: u32, gid: u32) -> Caller {
        Caller {
            uid,
            gid,
            groups: Vec::new(),
            fsetid: uid == 0,
            umask: 0,
        }
    }

    /// Whether this is the superuser.
    pub fn is_root(&self) -> bool {
        self.uid == 0
    }

    /// Whether the caller is in group `gid`.
    pub fn in_group(&self, gid: u32) -> bool {
        self.gid == gid || self.groups.contains(&gid)
    }

    /// Whether the caller owns an inode (or is root).
    pub fn owns(&self, meta: &Meta) -> bool {
        self.is_root() || self.uid == meta.uid
    }

    /// Checks `want` (a mix of the read, write and execute bits 4, 2, 1)
    /// against the access ACL, or the mode bits where there is none.
    ///
    /// Root may read and write anything, and execute anything with at
    /// least one execute bit set (and search any directory).
    pub fn check(&self, meta: &Meta, kind: Kind, want: u32) -> FsResult<()> {
        if want == 0 {
            return Ok(());
        }
        if self.is_root() {
            if want & X == 0 || kind == Kind::Dir || meta.perm & 0o111 != 0 {
                return Ok(());
            }
            return Err(FsError::Access);
        }
        if let Some(list) = meta.xattrs.get(crate::acl::ACCESS)
            && let Some(allowed) = crate::acl::permits(list, meta, self, want)
        {
            return if allowed {
                Ok(())
            } else {
                Err(FsError::Access)
            };
        }
        let bits = if self.uid == meta.uid {
            (meta.perm >> 6) & 7
        } else if self.in_group(meta.gid) {
            (meta.perm >> 3) & 7
        } else {
            meta.perm & 7
        };
        if bits & want == want {
            Ok(())
        } else {
            Err(FsError::Access)
        }
    }

    /// In a sticky directory only the owner of the entry or of the
    /// directory (or root) may remove or rename it.
    pub fn check_sticky(&self, dir: &Meta, entry: &Meta) -> FsResult<()> {
        if dir.perm & libc::S_ISVTX != 0
            && !self.is_root()
            && self.uid != dir.uid
            && self.uid != entry.uid
        {
            return Err(FsError::NotPermitted);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(perm: u32, uid: u32, gid: u32) -> Meta {
        Meta {
            perm,
            uid,
            gid,
            ..Meta::default()
        }
    }

    #[test]
    fn owner_group_other_and_root() {
        let m = meta(0o640, 10, 20);
        assert!(Caller::user(10, 99).check(&m, Kind::File, R | W).is_ok());
        assert!(Caller::user(11, 20).check(&m, Kind::File, R).is_ok());
        assert!(Caller::user(11, 20).check(&m, Kind::File, W).is_err());
        assert!(Caller::user(11, 21).check(&m, Kind::File, R).is_err());
        let mut with_group = Caller::user(11, 21);
        with_group.groups.push(20);
        assert!(with_group.check(&m, Kind::File, R).is_ok());
        assert!(Caller::root().check(&m, Kind::File, R | W).is_ok());
        assert!(Caller::root().check(&m, Kind::File, X).is_err());
        assert!(
            Caller::root()
                .check(&meta(0o100, 1, 1), Kind::File, X)
                .is_ok()
        );
        assert!(
            Caller::root()
                .check(&meta(0o000, 1, 1), Kind::Dir, X)
                .is_ok()
        );
        // The owner class applies even when it grants less than others.
        assert!(
            Caller::user(10, 20)
                .check(&meta(0o077, 10, 20), Kind::File, R)
                .is_err()
        );
    }

    #[test]
    fn sticky_directories() {
        let dir = meta(0o1777, 0, 0);
        let theirs = meta(0o644, 5, 5);
        assert!(Caller::user(6, 6).check_sticky(&dir, &theirs).is_err());
        assert!(Caller::user(5, 6).check_sticky(&dir, &theirs).is_ok());
        assert!(Caller::root().check_sticky(&dir, &theirs).is_ok());
        assert!(
            Caller::user(6, 6)
                .check_sticky(&meta(0o777, 0, 0), &theirs)
                .is_ok()
        );
    }
}
