//! Following a root committed elsewhere: the in-memory inode table is
//! brought to another root in place, so names that stay keep their inode
//! numbers (what the kernel and open handles hold) and only what changed
//! is reloaded.

use std::collections::{BTreeMap, HashMap};

use hydra_dag::Cid;

use crate::attr::Ino;
use crate::error::{FsError, FsResult};
use crate::file::FileData;
use crate::node::{Entry, FsRoot, Kind, Record, Stored, read_dir};
use crate::state::{Content, State, inode_from_record};

/// What a front end must stop caching after the filesystem followed
/// another writer's commit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Changed {
    /// The inode's attributes or content changed.
    Inode(Ino),
    /// The name in the directory now names something else, or nothing.
    Entry(Ino, Vec<u8>),
}

impl State {
    /// Brings the clean table to the filesystem committed at `root`;
    /// returns what changed.
    pub fn follow(&mut self, root: Cid) -> FsResult<Vec<Changed>> {
        if self.is_dirty() {
            return Err(FsError::Invalid("changes not committed"));
        }
        let fs_root = FsRoot::read(&self.bucket, &root)?;
        let mut out = Vec::new();
        // The link table first: names met below look groups up in it.
        let mut table: HashMap<u64, (u32, Record)> = fs_root
            .links
            .into_iter()
            .map(|(g, n, r)| (g, (n, r)))
            .collect();
        let materialized: Vec<(u64, Ino)> = self.groups.iter().map(|(g, i)| (*g, *i)).collect();
        for (group, ino) in materialized {
            match table.remove(&group) {
                Some((nlink, record)) => {
                    if self.get(ino)?.kind == record.kind {
                        self.update(ino, record, &mut out)?;
                    }
                    let inode = self.get_mut(ino)?;
                    if inode.nlink != nlink {
                        // Even with its metadata the same, the kernel holds
                        // the count.
                        inode.nlink = nlink;
                        out.push(Changed::Inode(ino));
                    }
                }
                None => {
                    self.groups.remove(&group);
                    let inode = self.get_mut(ino)?;
                    inode.nlink = 0;
                    inode.group = None;
                    out.push(Changed::Inode(ino));
                }
            }
        }
        self.group_records = table;
        self.next_group = fs_root.next_group;
        self.update(Ino::ROOT, fs_root.root, &mut out)?;
        self.base = Some(root);
        self.written_root = Some(root);
        self.links_dirty = false;
        Ok(out)
    }

    /// Brings inode `ino` to `record` (of the same kind).
    fn update(&mut self, ino: Ino, record: Record, out: &mut Vec<Changed>) -> FsResult<()> {
        let inode = self.get_mut(ino)?;
        let mut changed = inode.meta != record.meta;
        inode.meta = record.meta;
        let mut follow_dir = None;
        match (&mut inode.content, record.content) {
            (Content::File(data), Stored::File(blob)) => {
                if data.clean_blob() != Some(&blob) {
                    *data = FileData::Clean(blob);
                    changed = true;
                }
            }
            (Content::Symlink(target), Stored::Symlink(new)) => {
                if *target != new {
                    *target = new;
                    changed = true;
                }
            }
            (Content::Dir(dir), Stored::Dir(list)) => {
                if dir.stored != list {
                    dir.stored = list;
                    changed = true;
                    if dir.entries.is_some() {
                        follow_dir = Some(list);
                    }
                }
            }
            (Content::Special, Stored::Special) => {}
            _ => return Err(FsError::Invalid("a followed inode changed its kind")),
        }
        if changed {
            out.push(Changed::Inode(ino));
        }
        if let Some(list) = follow_dir {
            self.follow_dir(ino, list, out)?;
        }
        Ok(())
    }

    /// Brings a loaded directory's entries to the stored list `list`.
    fn follow_dir(&mut self, dir: Ino, list: Option<Cid>, out: &mut Vec<Changed>) -> FsResult<()> {
        let listed: BTreeMap<Vec<u8>, Entry> = read_dir(&self.bucket, list)?;
        let gone: Vec<(Vec<u8>, Ino)> = self
            .entries(dir)?
            .by_name
            .iter()
            .filter(|(name, _)| !listed.contains_key(&***name))
            .map(|(name, (ino, _))| (name.to_vec(), *ino))
            .collect();
        for (name, child) in gone {
            self.entries_mut(dir)?.remove(&name);
            self.detach(child);
            out.push(Changed::Entry(dir, name));
        }
        for (name, entry) in listed {
            let existing = self.entries(dir)?.get(&name);
            if let Some(child) = existing {
                let inode = self.get(child)?;
                match &entry {
                    Entry::Link(group) if inode.group == Some(*group) => continue,
                    Entry::Inode(record) if inode.group.is_none() && inode.kind == record.kind => {
                        if let Entry::Inode(record) = entry {
                            self.update(child, record, out)?;
                        }
                        continue;
                    }
                    _ => {
                        self.entries_mut(dir)?.remove(&name);
                        self.detach(child);
                    }
                }
            }
            let child = match entry {
                Entry::Inode(record) => self.add_inode(inode_from_record(record, dir, 1, None)),
                Entry::Link(group) => self.group_inode(group, dir)?,
            };
            self.entries_mut(dir)?.insert(name.clone(), child);
            out.push(Changed::Entry(dir, name));
        }
        let children: Vec<Ino> = self
            .entries(dir)?
            .by_name
            .values()
            .map(|(i, _)| *i)
            .collect();
        let subdirs = children
            .iter()
            .filter(|c| self.inodes.get(c).is_some_and(|i| i.kind == Kind::Dir))
            .count();
        if let Content::Dir(d) = &mut self.get_mut(dir)?.content {
            d.subdirs = u32::try_from(subdirs).unwrap_or(u32::MAX);
            // The entries are the stored list's now.
            if let Some(entries) = &mut d.entries {
                entries.settle();
            }
        }
        Ok(())
    }

    /// Drops a name's inode: a hard-linked one keeps the link table's
    /// count; a directory takes its loaded children with it.
    fn detach(&mut self, ino: Ino) {
        let Some(inode) = self.inodes.get_mut(&ino) else {
            return;
        };
        if inode.group.is_none() {
            inode.nlink = 0;
            let children: Vec<Ino> = match &inode.content {
                Content::Dir(d) => d
                    .entries
                    .as_ref()
                    .map(|e| e.by_name.values().map(|(i, _)| *i).collect())
                    .unwrap_or_default(),
                _ => Vec::new(),
            };
            for child in children {
                self.detach(child);
            }
        }
        self.forget_if_orphan(ino);
    }
}
