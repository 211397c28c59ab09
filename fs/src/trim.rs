//! Unloading what nobody uses, so memory follows the working set and not
//! everything ever looked at.
//!
//! A clean directory whose children nobody holds (no kernel reference, no
//! open handle, no unstored change) gives its entries back: its children
//! leave memory and the directory keeps, per child, a hash of the name, the
//! inode number and the readdir cookie. Loading it again hands the same
//! numbers and cookies back, and an inode number met after its directory
//! was unloaded is brought back through its parents ([`State::resolve`]).
//! So unloading is invisible: the kernel, 9P clients and every caller that
//! kept an inode number see the same filesystem as if nothing had left.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hasher};
use std::sync::Arc;

use hydra_dag::Cid;

use crate::attr::Ino;
use crate::error::{FsError, FsResult};
use crate::state::{Content, Dir, Entries, State};

/// What a front end still holds: inodes its clients may name again
/// without looking them up (the kernel's lookup counts, for FUSE).
pub trait Holds: Send + Sync {
    /// Whether `ino` is held.
    fn held(&self, ino: Ino) -> bool;
    /// How many holds have ended so far (only grows).
    fn ended(&self) -> u64;
}

/// Inodes kept in memory before unloading starts, by default (about
/// 100 MiB of them).
pub const MAX_INODES: usize = 128 * 1024;

/// An unloaded directory's children, as it numbered them.
#[derive(Debug)]
struct Unloaded {
    /// (hash of the name, inode, readdir cookie), sorted.
    children: Vec<(u64, Ino, u64)>,
    /// The cookie its next new name gets.
    next_cookie: u64,
    /// The stored list it had when unloaded.
    listed: Option<Cid>,
    /// Its subdirectories then.
    subdirs: u32,
}

impl Unloaded {
    /// The inode and cookie the name with hash `hash` had (none when two
    /// names shared the hash: both come back new).
    fn find(&self, hash: u64) -> Option<(Ino, u64)> {
        let at = self.children.partition_point(|(h, _, _)| *h < hash);
        match &self.children[at..] {
            [(h, ino, cookie), rest @ ..]
                if *h == hash && rest.first().is_none_or(|n| n.0 != hash) =>
            {
                Some((*ino, *cookie))
            }
            _ => None,
        }
    }
}

/// What unloading keeps so that what left comes back unchanged.
pub struct Ghosts {
    /// Unloaded directories, by inode.
    dirs: HashMap<Ino, Unloaded>,
    /// Each unloaded inode's directory.
    parent: HashMap<Ino, Ino>,
    /// Who holds inodes (none: nobody does).
    holds: Option<Arc<dyn Holds>>,
    /// Inodes kept before unloading starts.
    max: usize,
    /// Unload when more than this many are in memory.
    trim_at: usize,
    /// [`Holds::ended`] when last looked at.
    ended_seen: u64,
    /// Inodes unloaded so far (only grows).
    unloads: u64,
    /// The current unloading round (see [`Dir::used_in`]): the next
    /// starts at each tick of the commit timer, or once an eighth of the
    /// budget of inodes came into memory in this one.
    round: u32,
    /// Inodes that came into memory in this round.
    round_loads: usize,
    /// The round of the last unloading that spared directories for being
    /// in use lately: unloading may run again two rounds later.
    spared_in: Option<u32>,
    /// Store changes to unload them only past this many inodes: raised
    /// when storing them freed little (they sit in a directory in use).
    settle_at: usize,
}

impl Default for Ghosts {
    fn default() -> Self {
        Ghosts {
            dirs: HashMap::new(),
            parent: HashMap::new(),
            holds: None,
            max: MAX_INODES,
            trim_at: MAX_INODES,
            ended_seen: 0,
            unloads: 0,
            // Past 1, so that directories never used are not recent.
            round: 2,
            round_loads: 0,
            spared_in: None,
            settle_at: 0,
        }
    }
}

impl std::fmt::Debug for Ghosts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ghosts")
            .field("dirs", &self.dirs.len())
            .field("unloaded", &self.parent.len())
            .field("max", &self.max)
            .finish()
    }
}

/// The hash a child's name is remembered by.
fn name_hash(name: &[u8]) -> u64 {
    let mut h = DefaultHasher::new();
    h.write(name);
    h.finish()
}

impl State {
    /// Sets who holds inodes.
    pub fn set_holds(&mut self, holds: Arc<dyn Holds>) {
        self.ghosts.holds = Some(holds);
    }

    /// Sets how many inodes stay in memory before unloading starts.
    pub fn set_max_inodes(&mut self, max: usize) {
        self.ghosts.max = max.max(1);
        self.ghosts.trim_at = self.ghosts.max;
    }

    /// Inodes unloaded and remembered.
    pub fn unloaded(&self) -> usize {
        self.ghosts.parent.len()
    }

    /// Inodes unloaded so far, counting each time (only grows).
    pub fn unloads(&self) -> u64 {
        self.ghosts.unloads
    }

    /// Brings an unloaded inode back (loading its directories again);
    /// ENOENT when `ino` names nothing.
    pub fn resolve(&mut self, ino: Ino) -> FsResult<()> {
        let mut chain = Vec::new();
        let mut at = ino;
        while !self.inodes.contains_key(&at) {
            let up = *self.ghosts.parent.get(&at).ok_or(FsError::NotFound)?;
            if chain.len() > self.ghosts.parent.len() {
                return Err(FsError::Invalid("unloaded inodes form a loop"));
            }
            chain.push(up);
            at = up;
        }
        for dir in chain.into_iter().rev() {
            self.load_dir(dir)?;
        }
        match self.inodes.contains_key(&ino) {
            true => Ok(()),
            false => Err(FsError::NotFound),
        }
    }

    /// Takes the numbers an unloaded directory's children had, for
    /// [`State::load_dir`] to give back.
    pub(crate) fn take_unloaded(&mut self, dir: Ino) -> Option<Unloading> {
        let unloaded = self.ghosts.dirs.remove(&dir)?;
        for (_, child, _) in &unloaded.children {
            self.ghosts.parent.remove(child);
        }
        Some(Unloading(unloaded))
    }

    /// Puts back what [`State::take_unloaded`] took, after a load failed.
    pub(crate) fn untake_unloaded(&mut self, dir: Ino, taken: Unloading) {
        for (_, child, _) in &taken.0.children {
            if !self.inodes.contains_key(child) {
                self.ghosts.parent.insert(*child, dir);
            }
        }
        self.ghosts.dirs.insert(dir, taken.0);
    }

    /// The subdirectory count of an unloaded directory, when its stored
    /// list is still `listed` (another writer's commit may have moved it).
    pub(crate) fn unloaded_subdirs(&self, dir: Ino, listed: Option<Cid>) -> Option<u32> {
        self.ghosts
            .dirs
            .get(&dir)
            .filter(|u| u.listed == listed)
            .map(|u| u.subdirs)
    }

    /// Forgets what was kept of a removed directory's unloaded children.
    pub(crate) fn forget_unloaded(&mut self, dir: Ino) {
        let mut stack = vec![dir];
        while let Some(d) = stack.pop() {
            if let Some(u) = self.ghosts.dirs.remove(&d) {
                for (_, child, _) in u.children {
                    if self.ghosts.parent.remove(&child).is_some() {
                        stack.push(child);
                    }
                }
            }
        }
    }

    /// The current unloading round.
    pub(crate) fn trim_round(&self) -> u32 {
        self.ghosts.round
    }

    /// Counts an inode come into memory (the rounds' clock).
    pub(crate) fn count_materialized(&mut self) {
        self.ghosts.round_loads += 1;
    }

    /// Starts the next unloading round: what was loaded before may go.
    pub fn next_round(&mut self) {
        self.ghosts.round = self.ghosts.round.wrapping_add(1).max(2);
        self.ghosts.round_loads = 0;
    }

    /// Whether some change in memory is not stored yet.
    fn has_unstored_changes(&self) -> bool {
        self.links_dirty || self.inodes.get(&Ino::ROOT).is_some_and(|r| r.dirty)
    }

    /// A commit made changed inodes clean: they may be unloaded now.
    pub(crate) fn trim_after_commit(&mut self) {
        self.ghosts.trim_at = self.ghosts.max;
    }

    /// Unloads what nobody uses once more than the most inodes are in
    /// memory (called only where no inode number is in use inside the lock).
    pub fn maybe_trim(&mut self) {
        let g = &mut self.ghosts;
        if let Some(holds) = &g.holds {
            let ended = holds.ended();
            if ended.saturating_sub(g.ended_seen) >= (g.max / 4).max(1) as u64 {
                g.ended_seen = ended;
                g.trim_at = g.max;
            }
        }
        if self.ghosts.round_loads >= (self.ghosts.max / 8).max(1) {
            self.next_round();
        }
        if let Some(spared) = self.ghosts.spared_in
            && self.ghosts.round.wrapping_sub(spared) >= 2
        {
            // What was spared for being in use may have fallen out of use.
            self.ghosts.spared_in = None;
            self.ghosts.trim_at = self.ghosts.max;
        }
        if self.inodes.len() <= self.ghosts.trim_at {
            return;
        }
        // Directories used in this round or the one before stay.
        self.trim_unused(true);
        let len = self.inodes.len();
        if len > self.ghosts.max.max(self.ghosts.settle_at) && self.has_unstored_changes() {
            // Changed inodes cannot leave memory: store them as a commit
            // would, without moving the ref (the next commit does), and
            // unload what that made clean. A failure here changes nothing;
            // the commit reports it.
            let freed = match self.write_root() {
                Ok(_) => self.trim_unused(true),
                Err(_) => 0,
            };
            // Storing a directory in use again and again would only cost.
            self.ghosts.settle_at = match freed < self.ghosts.max / 4 {
                true => len.saturating_mul(2),
                false => 0,
            };
        }
        // What is still in memory is held: look again after it grew by
        // half the budget, or after holds ended or a commit.
        self.ghosts.trim_at = self.ghosts.max.max(self.inodes.len() + self.ghosts.max / 2);
    }

    /// Unloads every directory nobody uses, deepest first; returns how
    /// many inodes left memory.
    pub fn trim(&mut self) -> usize {
        self.trim_unused(false)
    }

    /// [`State::trim`], sparing with `recent` the directories loaded in
    /// this round.
    fn trim_unused(&mut self, recent: bool) -> usize {
        let holds = self.ghosts.holds.clone();
        let held = |ino: Ino| holds.as_ref().is_some_and(|h| h.held(ino));
        let mut order = Vec::new();
        let mut stack = vec![Ino::ROOT];
        while let Some(d) = stack.pop() {
            order.push(d);
            if let Ok(entries) = self.entries(d) {
                for (child, _) in entries.by_name.values() {
                    if let Some(inode) = self.inodes.get(child)
                        && let Content::Dir(Dir {
                            entries: Some(_), ..
                        }) = &inode.content
                    {
                        stack.push(*child);
                    }
                }
            }
        }
        let before = self.inodes.len();
        let mut spared = false;
        // Children come after their directory in `order`: backwards, a
        // directory is looked at once its subdirectories were unloaded.
        for dir in order.into_iter().rev() {
            if self.unloadable(dir, &held) {
                if recent && self.used_lately(dir) {
                    spared = true;
                    continue;
                }
                self.unload(dir);
            }
        }
        if spared {
            self.ghosts.spared_in = Some(self.ghosts.round);
        }
        // A table sized for what left gives its memory back.
        if self.inodes.capacity() > 4 * self.inodes.len().max(1024) {
            self.inodes.shrink_to(2 * self.inodes.len());
        }
        before - self.inodes.len()
    }

    /// Whether a directory's entries may leave memory.
    fn unloadable(&self, dir: Ino, held: &dyn Fn(Ino) -> bool) -> bool {
        let Some(inode) = self.inodes.get(&dir) else {
            return false;
        };
        if inode.dirty || inode.nlink == 0 {
            return false;
        }
        let Content::Dir(Dir {
            entries: Some(entries),
            ..
        }) = &inode.content
        else {
            return false;
        };
        entries.by_name.values().all(|(ino, _)| {
            let Some(child) = self.inodes.get(ino) else {
                return false;
            };
            // Hard-linked inodes stay (the link table finds them).
            if child.group.is_some() {
                return true;
            }
            !child.dirty
                && child.opens == 0
                && !held(*ino)
                && match &child.content {
                    Content::File(data) => !data.is_dirty(),
                    Content::Dir(d) => d.entries.is_none(),
                    Content::Symlink(_) | Content::Special => true,
                }
        })
    }

    /// Whether a directory was looked into in this round or the one before.
    fn used_lately(&self, dir: Ino) -> bool {
        match self.inodes.get(&dir).map(|i| &i.content) {
            Some(Content::Dir(d)) => self.ghosts.round.wrapping_sub(d.used_in) <= 1,
            _ => false,
        }
    }

    /// Unloads a directory's entries (see [`State::unloadable`]).
    fn unload(&mut self, dir: Ino) {
        let Some(inode) = self.inodes.get_mut(&dir) else {
            return;
        };
        let Content::Dir(d) = &mut inode.content else {
            return;
        };
        let Some(entries) = d.entries.take() else {
            return;
        };
        let (subdirs, listed) = (d.subdirs, d.stored);
        let next_cookie = entries.next_cookie();
        let mut children = Vec::with_capacity(entries.by_name.len());
        for (name, (child, cookie)) in entries.by_name {
            children.push((name_hash(&name), child, cookie));
            if self.inodes.get(&child).is_some_and(|c| c.group.is_none()) {
                self.inodes.remove(&child);
                self.ghosts.parent.insert(child, dir);
                self.ghosts.unloads += 1;
            }
        }
        children.sort_unstable();
        self.ghosts.dirs.insert(
            dir,
            Unloaded {
                children,
                next_cookie,
                listed,
                subdirs,
            },
        );
    }
}

/// An unloaded directory's numbers, while it loads again.
#[derive(Debug)]
pub(crate) struct Unloading(Unloaded);

impl Unloading {
    /// The inode and cookie `name` had, if it was there.
    pub(crate) fn kept(&self, name: &[u8]) -> Option<(Ino, u64)> {
        self.0.find(name_hash(name))
    }

    /// Starts a new entry list that numbers on where the old one stopped.
    pub(crate) fn entries(&self) -> Entries {
        Entries::starting_at(self.0.next_cookie)
    }
}
