//! Writing the state as a new root: dirty inodes become records, bottom-up,
//! and memory changes only once their blocks are stored.

use bytes::Bytes;
use hydra_chunker::Blob;
use hydra_dag::{Block, Cid};

use super::{Content, Dir, Inode, State};
use crate::attr::Ino;
use crate::error::FsResult;
use crate::file::FileData;
use crate::node::{Entry, FsRoot, Record, Stored, encode_entry, update_encoded, write_encoded};

/// A change to make in memory once a commit's blocks are stored.
#[derive(Debug)]
enum Update {
    /// The file's content is now this stored blob.
    File(Ino, Blob),
    /// The directory's entry list is now this stored node.
    Dir(Ino, Option<Cid>),
    /// The inode's record is stored.
    Clean(Ino),
}

/// A root planned by [`State::plan_root`], to store.
#[derive(Debug)]
pub struct PlannedRoot {
    /// The new root.
    pub root: Cid,
    /// The new blocks it needs.
    pub blocks: Vec<Block>,
    updates: Vec<Update>,
}

impl State {
    /// Stores the changed content of every file (without committing), so
    /// memory holds records, not data.
    pub fn settle_files(&mut self) -> FsResult<()> {
        let cx = self.write_context();
        let mut blocks = Vec::new();
        let mut settled = Vec::new();
        for (ino, inode) in self.inodes.iter_mut() {
            // Streams store as they go and stay open for more appends.
            if let Content::File(data) = &mut inode.content
                && data.is_dirty()
                && !matches!(data, FileData::Stream { .. })
            {
                settled.push((*ino, data.plan(&cx, &mut blocks)?));
            }
        }
        cx.session.put_blocks(&blocks)?;
        for (ino, blob) in settled {
            if let Some(Inode {
                content: Content::File(data),
                ..
            }) = self.inodes.get_mut(&ino)
            {
                data.apply(blob);
            }
        }
        self.written_since_settle = 0;
        Ok(())
    }

    /// The record of `ino` for storing. New blocks (buffered file content,
    /// directory nodes) are appended to `blocks`, and what to change in
    /// memory once they are stored to `updates`: nothing changes before.
    fn record(
        &mut self,
        ino: Ino,
        blocks: &mut Vec<Block>,
        updates: &mut Vec<Update>,
    ) -> FsResult<Record> {
        let cx = self.write_context();
        // An unloaded directory's entries cannot have changed (children
        // exist in memory only once loaded): its stored list stands.
        let dirty_dir = {
            let inode = self.get(ino)?;
            inode.dirty
                && matches!(
                    &inode.content,
                    Content::Dir(Dir {
                        entries: Some(_),
                        ..
                    })
                )
        };
        let mut new_list = None;
        if dirty_dir {
            let stored = match &self.get(ino)?.content {
                Content::Dir(dir) => dir.stored,
                _ => None,
            };
            let entries = self.entries(ino)?;
            // Over a stored list, only the names added or removed and the
            // children changed since are written again; the rest of the
            // list stands as stored.
            let names: Vec<(Vec<u8>, Option<Ino>)> = match stored {
                Some(_) => {
                    let changed = |child| self.inodes.get(&child).is_none_or(|c| c.dirty);
                    let names = entries.names_to_write(changed);
                    // Debug builds (every test) check the children noted
                    // against a visit of every entry: only hard-linked
                    // ones, whose entries name their group and so do not
                    // change with them, may be left out.
                    #[cfg(debug_assertions)]
                    for name in entries.scan_names(std::collections::BTreeSet::new(), changed) {
                        let grouped = entries
                            .get(name)
                            .and_then(|c| self.inodes.get(&c))
                            .is_some_and(|c| c.group.is_some());
                        assert!(
                            names.contains(name) || grouped,
                            "a changed child was not noted in its directory"
                        );
                    }
                    names
                        .into_iter()
                        .map(|n| (n.to_vec(), entries.get(n)))
                        .collect()
                }
                None => entries
                    .by_name
                    .iter()
                    .map(|(name, (child, _))| (name.to_vec(), Some(*child)))
                    .collect(),
            };
            let mut listed = Vec::with_capacity(names.len());
            for (name, child) in names {
                let entry = match child {
                    Some(child) => Some(
                        self.entry_of(child, blocks, updates)
                            .map_err(|e| e.within(&name))?,
                    ),
                    None => None,
                };
                listed.push((name, entry));
            }
            let (root, mut new_blocks) = match stored {
                Some(base) => update_encoded(&self.lists, base, listed)?,
                None => write_encoded(
                    listed
                        .into_iter()
                        .filter_map(|(n, e)| Some((n, e?)))
                        .collect(),
                )?,
            };
            blocks.append(&mut new_blocks);
            new_list = Some(root);
        }
        let inode = self.get_mut(ino)?;
        let content = match &mut inode.content {
            Content::File(data) => {
                let blob = data.plan(&cx, blocks)?;
                updates.push(Update::File(ino, blob.clone()));
                Stored::File(blob)
            }
            Content::Dir(dir) => Stored::Dir(new_list.unwrap_or(dir.stored)),
            Content::Symlink(target) => Stored::Symlink(target.clone()),
            Content::Special => Stored::Special,
        };
        if let Some(list) = new_list {
            updates.push(Update::Dir(ino, list));
        }
        if inode.dirty {
            updates.push(Update::Clean(ino));
        }
        Ok(Record {
            kind: inode.kind,
            meta: inode.meta.clone(),
            content,
        })
    }

    /// Stores every change and returns the new root. On failure nothing in
    /// memory has changed (but for finished streams, which are stored), so
    /// the next commit tries again with everything.
    pub fn write_root(&mut self) -> FsResult<Cid> {
        let planned = self.plan_root()?;
        self.session.put_blocks(&planned.blocks)?;
        Ok(self.root_written(planned))
    }

    /// The new root of every change and the blocks to store for it; memory
    /// changes only once they are, with [`State::root_written`].
    pub fn plan_root(&mut self) -> FsResult<PlannedRoot> {
        let mut blocks = Vec::new();
        let mut updates = Vec::new();
        let root = self.record(Ino::ROOT, &mut blocks, &mut updates)?;
        // The link table: materialized groups (re-encoded) and the rest.
        let mut links: Vec<(u64, u32, Record)> = Vec::new();
        let groups: Vec<(u64, Ino)> = self.groups.iter().map(|(g, i)| (*g, *i)).collect();
        for (group, ino) in groups {
            let nlink = self.get(ino)?.nlink;
            if nlink == 0 {
                continue;
            }
            let record = self.record(ino, &mut blocks, &mut updates)?;
            links.push((group, nlink, record));
        }
        for (group, (nlink, record)) in &self.group_records {
            links.push((*group, *nlink, record.clone()));
        }
        links.sort_by_key(|(g, _, _)| *g);
        let fs_root = FsRoot {
            root,
            links,
            next_group: self.next_group,
        };
        let (root_block, mut more) = fs_root.write()?;
        blocks.append(&mut more);
        Ok(PlannedRoot {
            root: *root_block.cid(),
            blocks,
            updates,
        })
    }

    /// Brings memory to the planned root once its blocks are stored;
    /// returns the root.
    pub fn root_written(&mut self, planned: PlannedRoot) -> Cid {
        let PlannedRoot { root, updates, .. } = planned;
        for update in updates {
            match update {
                Update::File(ino, blob) => {
                    let Some(Inode {
                        content: Content::File(data),
                        opens,
                        ..
                    }) = self.inodes.get_mut(&ino)
                    else {
                        continue;
                    };
                    // A file still open is likely written again soon.
                    if *opens == 0 {
                        data.apply(blob);
                        continue;
                    }
                    let kept = data.apply_keeping(blob);
                    if kept > 0 {
                        for old in self.kept.note(ino.0, kept) {
                            if let Some(Inode {
                                content: Content::File(data),
                                ..
                            }) = self.inodes.get_mut(&Ino(old))
                            {
                                data.release_kept();
                            }
                        }
                    }
                }
                Update::Dir(ino, list) => {
                    if let Some(Inode {
                        content: Content::Dir(dir),
                        ..
                    }) = self.inodes.get_mut(&ino)
                    {
                        dir.stored = list;
                        if let Some(entries) = &mut dir.entries {
                            entries.settle();
                        }
                    }
                }
                Update::Clean(ino) => {
                    if let Some(inode) = self.inodes.get_mut(&ino) {
                        inode.dirty = false;
                    }
                }
            }
        }
        self.links_dirty = false;
        self.written_since_settle = 0;
        self.written_root = Some(root);
        self.trim_after_commit();
        root
    }

    /// The encoded entry naming `child` in its directory: its record, or
    /// its hard-link group (recording its changes as [`State::record`]).
    fn entry_of(
        &mut self,
        child: Ino,
        blocks: &mut Vec<Block>,
        updates: &mut Vec<Update>,
    ) -> FsResult<Bytes> {
        let entry = match self.get(child)?.group {
            Some(group) => Entry::Link(group),
            None => Entry::Inode(self.record(child, blocks, updates)?),
        };
        Ok(encode_entry(&entry))
    }

    /// The list of directory `dir` as written whole, and the one stored:
    /// to check that writing only what changed gives the same list.
    #[cfg(test)]
    pub(crate) fn lists_of(&mut self, dir: Ino) -> FsResult<(Option<Cid>, Option<Cid>)> {
        let children: Vec<(Vec<u8>, Ino)> = self
            .entries(dir)?
            .by_name
            .iter()
            .map(|(name, (child, _))| (name.to_vec(), *child))
            .collect();
        let (mut blocks, mut updates) = (Vec::new(), Vec::new());
        let mut listed = Vec::new();
        for (name, child) in children {
            listed.push((name, self.entry_of(child, &mut blocks, &mut updates)?));
        }
        let whole = write_encoded(listed)?.0;
        let stored = match &self.get(dir)?.content {
            Content::Dir(d) => d.stored,
            _ => None,
        };
        Ok((whole, stored))
    }
}
