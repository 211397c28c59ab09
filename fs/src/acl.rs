//! POSIX access control lists, in the form Linux stores them as the
//! `system.posix_acl_access` and `system.posix_acl_default` attributes:
//! checking access, following chmod, and handing a directory's default
//! list down to what is made in it.

use std::collections::BTreeMap;

use crate::node::{Kind, Meta};
use crate::perm::Caller;

/// The access list's attribute name.
pub(crate) const ACCESS: &[u8] = b"system.posix_acl_access";
/// The default list's attribute name (directories only).
pub(crate) const DEFAULT: &[u8] = b"system.posix_acl_default";

/// Whether attribute `name` is one of the two lists.
pub(crate) fn is_acl(name: &[u8]) -> bool {
    name == ACCESS || name == DEFAULT
}

/// An inode's attributes.
type Xattrs = BTreeMap<Vec<u8>, Vec<u8>>;

const VERSION: u32 = 2;
const USER_OBJ: u16 = 0x01;
const USER: u16 = 0x02;
const GROUP_OBJ: u16 = 0x04;
const GROUP: u16 = 0x08;
const MASK: u16 = 0x10;
const OTHER: u16 = 0x20;

/// One entry: tag, permission bits (rwx = 4, 2, 1) and, for named users
/// and groups, the id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Entry {
    tag: u16,
    perm: u32,
    id: u32,
}

/// A parsed list, its entries in stored order.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Acl(Vec<Entry>);

impl Acl {
    /// Parses the stored form; `None` when malformed or missing the
    /// owner, group or other entry, or naming someone without a mask.
    fn parse(value: &[u8]) -> Option<Acl> {
        let header = value.get(..4)?;
        if u32::from_le_bytes([header[0], header[1], header[2], header[3]]) != VERSION {
            return None;
        }
        let body = &value[4..];
        if !body.len().is_multiple_of(8) {
            return None;
        }
        let entries: Vec<Entry> = body
            .chunks(8)
            .map(|e| Entry {
                tag: u16::from_le_bytes([e[0], e[1]]),
                perm: u32::from(u16::from_le_bytes([e[2], e[3]]) & 7),
                id: u32::from_le_bytes([e[4], e[5], e[6], e[7]]),
            })
            .collect();
        let has = |tag| entries.iter().any(|e| e.tag == tag);
        let named = has(USER) || has(GROUP);
        let known = entries
            .iter()
            .all(|e| matches!(e.tag, USER_OBJ | USER | GROUP_OBJ | GROUP | MASK | OTHER));
        (known && has(USER_OBJ) && has(GROUP_OBJ) && has(OTHER) && (has(MASK) || !named))
            .then_some(Acl(entries))
    }

    /// The stored form.
    fn encode(&self) -> Vec<u8> {
        let mut out = VERSION.to_le_bytes().to_vec();
        for e in &self.0 {
            out.extend_from_slice(&e.tag.to_le_bytes());
            out.extend_from_slice(&(e.perm as u16).to_le_bytes());
            out.extend_from_slice(&e.id.to_le_bytes());
        }
        out
    }

    fn perm(&self, tag: u16) -> Option<u32> {
        self.0.iter().find(|e| e.tag == tag).map(|e| e.perm)
    }

    /// The mode's permission bits this list stands for (the group bits
    /// are the mask's when there is one).
    fn mode(&self) -> u32 {
        let group = self.perm(MASK).or(self.perm(GROUP_OBJ)).unwrap_or(0);
        (self.perm(USER_OBJ).unwrap_or(0) << 6) | (group << 3) | self.perm(OTHER).unwrap_or(0)
    }

    /// Whether it says more than the mode bits can.
    fn extended(&self) -> bool {
        self.0.iter().any(|e| matches!(e.tag, USER | GROUP | MASK))
    }

    /// Sets the owner, group-class and other bits from `mode`, as chmod
    /// does (the group class is the mask when there is one).
    fn set_mode(&mut self, mode: u32) {
        self.classes(mode, |_, bits| bits);
    }

    /// Narrows the owner, group-class and other bits to those of `mode`,
    /// as a creation under a default list does.
    fn narrow(&mut self, mode: u32) {
        self.classes(mode, |old, bits| old & bits);
    }

    /// Replaces the owner, group-class and other entries' bits with
    /// `f(old, the mode's bits for that class)`.
    fn classes(&mut self, mode: u32, f: impl Fn(u32, u32) -> u32) {
        let group_tag = if self.perm(MASK).is_some() {
            MASK
        } else {
            GROUP_OBJ
        };
        for e in &mut self.0 {
            let shift = match e.tag {
                USER_OBJ => 6,
                OTHER => 0,
                tag if tag == group_tag => 3,
                _ => continue,
            };
            e.perm = f(e.perm, (mode >> shift) & 7);
        }
    }
}

/// The mode bits an access list stands for, and whether it says more than
/// they do (named users or groups). `None` for a malformed list.
pub(crate) fn mode_of(value: &[u8]) -> Option<(u32, bool)> {
    Acl::parse(value).map(|acl| (acl.mode(), acl.extended()))
}

/// Whether the access list `value` gives `c` (not root, not the owner's
/// class decided by the mode alone) every bit of `want`; `None` when the
/// list cannot be read, and the mode bits decide.
pub(crate) fn permits(value: &[u8], meta: &Meta, c: &Caller, want: u32) -> Option<bool> {
    let acl = Acl::parse(value)?;
    let grants = |perm: u32| perm & want == want;
    if c.uid == meta.uid {
        return Some(grants(acl.perm(USER_OBJ)?));
    }
    let mask = acl.perm(MASK).unwrap_or(7);
    if let Some(e) = acl.0.iter().find(|e| e.tag == USER && e.id == c.uid) {
        return Some(grants(e.perm & mask));
    }
    let mut in_class = false;
    for e in &acl.0 {
        let member = match e.tag {
            GROUP_OBJ => c.in_group(meta.gid),
            GROUP => c.in_group(e.id),
            _ => false,
        };
        if member {
            if grants(e.perm & mask) {
                return Some(true);
            }
            in_class = true;
        }
    }
    if in_class {
        return Some(false);
    }
    Some(grants(acl.perm(OTHER)?))
}

/// The access list `value` after a chmod to `mode`; `None` when it cannot
/// be read (and is better dropped than left contradicting the mode).
pub(crate) fn after_chmod(value: &[u8], mode: u32) -> Option<Vec<u8>> {
    let mut acl = Acl::parse(value)?;
    acl.set_mode(mode);
    Some(acl.encode())
}

/// What a node of `kind` made with `mode` (umask not applied) under a
/// directory with attributes `dir` starts with: its mode bits and
/// attributes. The directory's default list decides in place of `umask`:
/// the new node's access list is the default narrowed to `mode` (kept
/// only when it says more than the mode), and a new directory takes the
/// default too. Symlinks take neither (always 0777).
pub(crate) fn for_new(dir: &Meta, kind: Kind, mode: u32, umask: u32) -> (u32, Xattrs) {
    let mut xattrs = Xattrs::new();
    if kind == Kind::Symlink {
        return (mode, xattrs);
    }
    let Some((default, mut acl)) = dir
        .xattrs
        .get(DEFAULT)
        .and_then(|d| Some((d, Acl::parse(d)?)))
    else {
        return (mode & !umask, xattrs);
    };
    acl.narrow(mode);
    if acl.extended() {
        xattrs.insert(ACCESS.to_vec(), acl.encode());
    }
    if kind == Kind::Dir {
        xattrs.insert(DEFAULT.to_vec(), default.clone());
    }
    ((mode & !0o777) | acl.mode(), xattrs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acl(entries: &[(u16, u32, u32)]) -> Vec<u8> {
        Acl(entries
            .iter()
            .map(|&(tag, perm, id)| Entry { tag, perm, id })
            .collect())
        .encode()
    }

    fn owned(perm: u32) -> Meta {
        Meta {
            perm,
            uid: 10,
            gid: 20,
            ..Meta::default()
        }
    }

    #[test]
    fn minimal_lists_are_mode_bits() {
        let minimal = acl(&[(USER_OBJ, 6, 0), (GROUP_OBJ, 4, 0), (OTHER, 4, 0)]);
        assert_eq!(mode_of(&minimal), Some((0o644, false)));
        let named = acl(&[
            (USER_OBJ, 7, 0),
            (USER, 5, 7),
            (GROUP_OBJ, 5, 0),
            (MASK, 1, 0),
            (OTHER, 0, 0),
        ]);
        assert_eq!(mode_of(&named), Some((0o710, true)));
        assert_eq!(mode_of(b"\x01\x00\x00\x00"), None);
        assert_eq!(mode_of(&acl(&[(USER_OBJ, 6, 0)])), None);
        // A named user needs a mask.
        let unmasked = acl(&[
            (USER_OBJ, 6, 0),
            (USER, 4, 7),
            (GROUP_OBJ, 4, 0),
            (OTHER, 0, 0),
        ]);
        assert_eq!(mode_of(&unmasked), None);
    }

    #[test]
    fn named_entries_are_masked_and_groups_decide_together() {
        let list = acl(&[
            (USER_OBJ, 6, 0),
            (USER, 6, 1000),
            (GROUP_OBJ, 0, 0),
            (GROUP, 4, 30),
            (MASK, 4, 0),
            (OTHER, 0, 0),
        ]);
        let m = owned(0o640);
        let user = |uid, gid| Caller::user(uid, gid);
        assert_eq!(permits(&list, &m, &user(1000, 1), 4), Some(true));
        // The mask takes the named user's write away.
        assert_eq!(permits(&list, &m, &user(1000, 1), 2), Some(false));
        assert_eq!(permits(&list, &m, &user(5, 30), 4), Some(true));
        // In the owning group (which grants nothing) and in group 30:
        // one matching entry that grants is enough.
        let mut both = user(5, 20);
        both.groups.push(30);
        assert_eq!(permits(&list, &m, &both, 4), Some(true));
        assert_eq!(permits(&list, &m, &user(5, 20), 4), Some(false));
        assert_eq!(permits(&list, &m, &user(5, 5), 4), Some(false));
        assert_eq!(permits(&list, &m, &user(10, 5), 6), Some(true));
    }

    #[test]
    fn chmod_sets_the_mask_and_creation_narrows_the_default() {
        let list = acl(&[
            (USER_OBJ, 6, 0),
            (USER, 4, 1000),
            (GROUP_OBJ, 0, 0),
            (MASK, 4, 0),
            (OTHER, 0, 0),
        ]);
        let changed = after_chmod(&list, 0o664).expect("chmod");
        assert_eq!(mode_of(&changed), Some((0o664, true)));
        assert!(changed.len() == list.len() && changed != list);
        let default = acl(&[
            (USER_OBJ, 7, 0),
            (GROUP_OBJ, 5, 0),
            (GROUP, 7, 30),
            (MASK, 7, 0),
            (OTHER, 5, 0),
        ]);
        let under = |default: &Vec<u8>| Meta {
            xattrs: [(DEFAULT.to_vec(), default.clone())].into(),
            ..Meta::default()
        };
        let (mode, xattrs) = for_new(&under(&default), Kind::File, 0o644, 0o077);
        assert_eq!(mode, 0o644);
        assert_eq!(mode_of(&xattrs[ACCESS]), Some((0o644, true)));
        let minimal = acl(&[(USER_OBJ, 7, 0), (GROUP_OBJ, 0, 0), (OTHER, 0, 0)]);
        let (mode, xattrs) = for_new(&under(&minimal), Kind::Dir, 0o777, 0o022);
        assert_eq!(mode, 0o700);
        assert!(!xattrs.contains_key(ACCESS) && xattrs[DEFAULT] == minimal);
    }
}
