//! A loaded directory's entries: by name, in readdir order, and what
//! changed since they were stored.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use super::FIRST_COOKIE;
use crate::attr::Ino;

/// Entries from which a directory keeps a map from child to name.
const BY_INO_MIN: usize = if cfg!(test) { 8 } else { 1024 };

/// A name in a directory, held once by both of its maps.
pub type Name = std::sync::Arc<[u8]>;

/// Loaded directory entries, by name and in readdir order.
#[derive(Debug, Default)]
pub struct Entries {
    /// Name → (child, cookie).
    pub by_name: BTreeMap<Name, (Ino, u64)>,
    /// Cookie → name. Cookies only grow, so a readdir position stays valid
    /// while entries come and go.
    pub by_cookie: BTreeMap<u64, Name>,
    next_cookie: u64,
    /// Names added or removed since the list was last stored (or loaded):
    /// with the entries of changed children, all a commit writes again.
    changed: BTreeSet<Name>,
    /// Child → its name here, to find changed children's names without
    /// visiting every entry (a hard-linked child may be under another);
    /// kept from [`BY_INO_MIN`] entries on, below which a visit is cheap.
    by_ino: Option<HashMap<Ino, Name>>,
    /// Children marked changed since the list was last stored (a superset:
    /// some may have moved away or been written since).
    dirty_kids: HashSet<Ino>,
}

impl Entries {
    /// Adds a name (which must be free).
    pub fn insert(&mut self, name: Vec<u8>, ino: Ino) {
        self.insert_at(name, ino, self.next_cookie());
    }

    /// Adds a name (which must be free) at a cookie it had before.
    pub fn insert_at(&mut self, name: Vec<u8>, ino: Ino, cookie: u64) {
        self.next_cookie = self.next_cookie.max(cookie + 1);
        let name = Name::from(name);
        self.by_cookie.insert(cookie, name.clone());
        self.changed.insert(name.clone());
        // A hard-linked child keeps the first of its names here.
        if let Some(by_ino) = &mut self.by_ino {
            by_ino.entry(ino).or_insert_with(|| name.clone());
        }
        self.by_name.insert(name, (ino, cookie));
        if self.by_ino.is_none() && self.by_name.len() >= BY_INO_MIN {
            let mut by_ino = HashMap::with_capacity(self.by_name.len());
            for (name, (child, _)) in &self.by_name {
                by_ino.entry(*child).or_insert_with(|| name.clone());
            }
            self.by_ino = Some(by_ino);
        }
    }

    /// An empty list whose first new name gets `cookie`.
    pub fn starting_at(cookie: u64) -> Entries {
        Entries {
            next_cookie: cookie.max(FIRST_COOKIE),
            ..Entries::default()
        }
    }

    /// The cookie the next new name gets.
    pub fn next_cookie(&self) -> u64 {
        self.next_cookie.max(FIRST_COOKIE)
    }

    /// Removes a name; returns the child.
    pub fn remove(&mut self, name: &[u8]) -> Option<Ino> {
        let (name, (ino, cookie)) = self.by_name.remove_entry(name)?;
        self.by_cookie.remove(&cookie);
        if let Some(by_ino) = &mut self.by_ino
            && by_ino.get(&ino) == Some(&name)
        {
            by_ino.remove(&ino);
            self.dirty_kids.remove(&ino);
        }
        self.changed.insert(name);
        Some(ino)
    }

    /// Marks the list as the stored one: no name changed since.
    pub fn settle(&mut self) {
        self.changed.clear();
        // Freed, not cleared: a burst of changes leaves no table behind.
        self.dirty_kids = HashSet::new();
    }

    /// Notes that child `ino` changed.
    pub fn note_dirty(&mut self, ino: Ino) {
        self.dirty_kids.insert(ino);
    }

    /// The names a commit writes again over the stored list: those added
    /// or removed, and those of children `changed` says changed.
    pub fn names_to_write(&self, changed: impl Fn(Ino) -> bool) -> BTreeSet<&[u8]> {
        let mut names: BTreeSet<&[u8]> = self.changed.iter().map(|n| &n[..]).collect();
        let Some(by_ino) = &self.by_ino else {
            return self.scan_names(names, changed);
        };
        for &kid in &self.dirty_kids {
            if !changed(kid) {
                continue;
            }
            match by_ino.get(&kid) {
                Some(name) if self.get(name) == Some(kid) => {
                    names.insert(name);
                }
                // A child this list holds under a name not noted: look at
                // every entry (never expected; never wrong).
                _ if self.by_name.values().any(|(c, _)| *c == kid) => {
                    return self.scan_names(names, changed);
                }
                _ => {}
            }
        }
        names
    }

    /// `names` and the names of every entry whose child `changed` says
    /// changed.
    pub fn scan_names<'a>(
        &'a self,
        mut names: BTreeSet<&'a [u8]>,
        changed: impl Fn(Ino) -> bool,
    ) -> BTreeSet<&'a [u8]> {
        for (name, (child, _)) in &self.by_name {
            if changed(*child) {
                names.insert(name);
            }
        }
        names
    }

    /// The child named `name`.
    pub fn get(&self, name: &[u8]) -> Option<Ino> {
        self.by_name.get(name).map(|(ino, _)| *ino)
    }
}
