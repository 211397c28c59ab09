//! Who is asking, and what the permission bits let them do.

use std::sync::OnceLock;

use crate::error::{FsError, FsResult};
use crate::node::{Kind, Meta};

/// Read permission.
pub const R: u32 = 4;
/// Write permission.
pub const W: u32 = 2;
/// Execute / search permission.
pub const X: u32 = 1;

/// Supplementary groups: a list, or one a loader makes on first use.
#[derive(Clone, Debug, Default)]
pub struct Groups {
    list: OnceLock<Vec<u32>>,
    /// Makes the list from its argument when it is first needed.
    load: Option<(LoadGroups, u32)>,
}

/// Makes a caller's supplementary groups from one number (a process id).
pub type LoadGroups = fn(u32) -> Vec<u32>;

impl Groups {
    /// Groups loaded by `load(arg)` the first time they are asked about
    /// (most permission checks never are).
    pub fn lazy(load: LoadGroups, arg: u32) -> Groups {
        Groups {
            list: OnceLock::new(),
            load: Some((load, arg)),
        }
    }

    /// The groups, loaded now if they were not yet.
    pub fn list(&self) -> &[u32] {
        self.list
            .get_or_init(|| self.load.map_or_else(Vec::new, |(load, arg)| load(arg)))
    }

    /// Whether `gid` is one of them.
    pub fn contains(&self, gid: u32) -> bool {
        self.list().contains(&gid)
    }

    /// Adds `gid`.
    pub fn push(&mut self, gid: u32) {
        let mut list = self.list().to_vec();
        list.push(gid);
        *self = Groups::from(list);
    }
}

impl From<Vec<u32>> for Groups {
    fn from(list: Vec<u32>) -> Groups {
        Groups {
            list: OnceLock::from(list),
            load: None,
        }
    }
}

impl PartialEq for Groups {
    fn eq(&self, other: &Groups) -> bool {
        self.list() == other.list()
    }
}

impl Eq for Groups {}

/// The identity an operation runs as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    /// Effective user id.
    pub uid: u32,
    /// Effective group id.
    pub gid: u32,
    /// Supplementary groups.
    pub groups: Groups,
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
            groups: Groups::default(),
            fsetid: true,
            umask: 0,
        }
    }

    /// A user with no supplementary groups (uid 0 with root's CAP_FSETID).
    pub fn user(uid: u32, gid: u32) -> Caller {
        Caller {
            uid,
            gid,
            groups: Groups::default(),
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
        self.gid == gid || self.groups.contains(gid)
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
        let grants = |bits: u32| bits & want == want;
        let (group, other) = ((meta.perm >> 3) & 7, meta.perm & 7);
        let granted = if self.uid == meta.uid {
            grants((meta.perm >> 6) & 7)
        } else if grants(group) == grants(other) {
            // Membership cannot change the answer: skip finding it out
            // (for a front end, a read of the caller's /proc status).
            grants(other)
        } else if self.in_group(meta.gid) {
            grants(group)
        } else {
            grants(other)
        };
        if granted {
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
    fn groups_are_loaded_only_when_membership_decides() {
        use std::sync::atomic::{AtomicU32, Ordering};
        static LOADS: AtomicU32 = AtomicU32::new(0);
        fn load(pid: u32) -> Vec<u32> {
            LOADS.fetch_add(1, Ordering::SeqCst);
            vec![pid]
        }
        let lazy = |group| Caller {
            groups: Groups::lazy(load, group),
            ..Caller::user(11, 21)
        };
        // Owned, or group and other agree: no load.
        assert!(lazy(20).check(&meta(0o700, 11, 20), Kind::File, R).is_ok());
        assert!(lazy(20).check(&meta(0o755, 0, 20), Kind::Dir, X).is_ok());
        assert!(lazy(20).check(&meta(0o750, 0, 20), Kind::File, W).is_err());
        assert_eq!(LOADS.load(Ordering::SeqCst), 0);
        // Group grants what other does not: membership decides, once.
        let member = lazy(20);
        assert!(member.check(&meta(0o750, 0, 20), Kind::Dir, X).is_ok());
        assert!(member.check(&meta(0o750, 0, 20), Kind::Dir, R).is_ok());
        assert_eq!(LOADS.load(Ordering::SeqCst), 1);
        assert!(lazy(30).check(&meta(0o750, 0, 20), Kind::Dir, X).is_err());
        // Group denies what other grants: a member is refused.
        assert!(lazy(20).check(&meta(0o704, 0, 20), Kind::File, R).is_err());
        assert!(lazy(30).check(&meta(0o704, 0, 20), Kind::File, R).is_ok());
        assert_eq!(LOADS.load(Ordering::SeqCst), 4);
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
