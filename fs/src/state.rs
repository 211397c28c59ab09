//! The in-memory inode table over the last committed root.
//!
//! Inodes are materialized from stored records as directories are loaded,
//! and get inode numbers that stay fixed for the life of the filesystem
//! object. Dirty tracking keeps one invariant: a dirty directory's ancestors
//! are dirty too, so a commit re-encodes exactly the dirty directories,
//! bottom-up, and reuses every other stored node.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use bytes::Bytes;
use hydra_chunker::{Blob, NodeCache};
use hydra_dag::{Block, Bucket, Cid, WriteSession};

use crate::attr::{Attr, Ino};
use crate::error::{FsError, FsResult};
use crate::file::{FileData, KeptFiles, WriteContext};
use crate::node::{
    Entry, FsRoot, Kind, Meta, Record, Stored, encode_entry, list_cache, read_dir, update_encoded,
    write_encoded,
};
use crate::trim::{Ghosts, Unloading};

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

/// First cookie of a directory's entries (1 and 2 are `.` and `..`).
pub const FIRST_COOKIE: u64 = 3;

/// An inode in memory.
#[derive(Debug)]
pub struct Inode {
    /// Its type.
    pub kind: Kind,
    /// Its metadata.
    pub meta: Meta,
    /// Names pointing at it (directories: computed, see [`State::nlink`]).
    pub nlink: u32,
    /// The directory holding it (for hard-linked inodes: one of them; the
    /// root: itself).
    pub parent: Ino,
    /// Its hard-link group, when it lives in the root's link table.
    pub group: Option<u64>,
    /// Its content.
    pub content: Content,
    /// Its record (or, for a directory, its entry list) changed since the
    /// last commit.
    pub dirty: bool,
    /// Open handles.
    pub opens: u32,
}

/// The content of an inode in memory.
#[derive(Debug)]
pub enum Content {
    /// File bytes.
    File(FileData),
    /// Directory entries.
    Dir(Dir),
    /// Symlink target.
    Symlink(Vec<u8>),
    /// Nothing (fifos, devices, sockets).
    Special,
}

/// A directory in memory: loaded on first use.
#[derive(Debug, Default)]
pub struct Dir {
    /// The committed entry list (meaningful while not dirty).
    pub stored: Option<Cid>,
    /// The entries, once loaded.
    pub entries: Option<Box<Entries>>,
    /// Subdirectories (valid once loaded).
    pub subdirs: u32,
    /// The unloading round it was last looked into in (see
    /// [`State::maybe_trim`]): a directory used in this round or the one
    /// before stays, so one in use is not loaded again and again.
    pub used_in: u32,
}

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

/// Everything the filesystem holds in memory.
#[derive(Debug)]
pub struct State {
    /// Every materialized inode.
    pub inodes: HashMap<Ino, Inode>,
    next_ino: u64,
    /// The root last committed (or loaded).
    pub base: Option<Cid>,
    /// Materialized hard-link groups.
    pub groups: HashMap<u64, Ino>,
    /// Link-table records not yet materialized: group → (nlink, record).
    pub group_records: HashMap<u64, (u32, Record)>,
    /// The next unused group number.
    pub next_group: u64,
    /// The link table changed since the last commit.
    pub links_dirty: bool,
    /// Pins what has been written since the last commit.
    pub session: WriteSession,
    /// The block store.
    pub bucket: Bucket,
    /// Chunk bounds for file content.
    pub params: hydra_chunker::ChunkParams,
    /// The root the last successful write of all changes produced.
    pub written_root: Option<Cid>,
    /// Bytes of file content held in memory since content was last settled
    /// (an upper bound of what the overlay holds: cheap to keep, unlike a
    /// walk of it); streamed appends are stored as they come and do not count.
    pub written_since_settle: u64,
    /// Bytes outside holes of large blobs, by root (see [`State::attr`]).
    data_bytes: HashMap<Cid, u64>,
    /// What unloaded directories remember (see [`crate::trim`]).
    pub(crate) ghosts: Ghosts,
    /// Committed files whose bytes stay in memory for their next write.
    kept: KeptFiles,
    /// Directory-list nodes kept between commits.
    lists: hydra_kv::Tree,
    /// Files' tree nodes kept between edits (see [`FILE_NODES`]).
    nodes: NodeCache,
}

/// Decoded tree nodes of files kept between edits: a database's next
/// commit walks the nodes its last one made (about 8 MiB).
const FILE_NODES: usize = 8 << 20;

/// Files at least this large count only the bytes outside their holes as
/// allocated (`st_blocks`), so `du`, `cp` and `tar` see them as sparse.
const SPARSE_MIN: u64 = 1 << 20;
/// Most allocated sizes of blobs kept; the cache starts over past it.
const DATA_BYTES_KEPT: usize = 4096;

pub(crate) fn inode_from_record(
    record: Record,
    parent: Ino,
    nlink: u32,
    group: Option<u64>,
) -> Inode {
    let content = match record.content {
        Stored::File(blob) => Content::File(FileData::Clean(blob)),
        Stored::Dir(stored) => Content::Dir(Dir {
            stored,
            entries: None,
            subdirs: 0,
            used_in: 0,
        }),
        Stored::Symlink(target) => Content::Symlink(target),
        Stored::Special => Content::Special,
    };
    Inode {
        kind: record.kind,
        meta: record.meta,
        nlink,
        parent,
        group,
        content,
        dirty: false,
        opens: 0,
    }
}

impl State {
    /// An empty filesystem whose root belongs to `owner` with `perm`.
    pub fn empty(bucket: Bucket, params: hydra_chunker::ChunkParams, meta: Meta) -> State {
        let mut state = State {
            inodes: HashMap::new(),
            next_ino: Ino::ROOT.0 + 1,
            base: None,
            groups: HashMap::new(),
            group_records: HashMap::new(),
            next_group: 1,
            links_dirty: false,
            session: bucket.session(),
            lists: list_cache(&bucket),
            nodes: NodeCache::new(FILE_NODES),
            bucket,
            params,
            written_root: None,
            written_since_settle: 0,
            data_bytes: HashMap::new(),
            ghosts: Ghosts::default(),
            kept: KeptFiles::default(),
        };
        let mut root = inode_from_record(
            Record {
                kind: Kind::Dir,
                meta,
                content: Stored::Dir(None),
            },
            Ino::ROOT,
            2,
            None,
        );
        if let Content::Dir(dir) = &mut root.content {
            dir.entries = Some(Box::default());
        }
        root.dirty = true;
        state.inodes.insert(Ino::ROOT, root);
        state
    }

    /// The filesystem committed at `root`.
    pub fn load(bucket: Bucket, params: hydra_chunker::ChunkParams, root: Cid) -> FsResult<State> {
        let fs_root = FsRoot::read(&bucket, &root)?;
        let mut state = State::empty(bucket, params, Meta::default());
        let root_inode = inode_from_record(fs_root.root, Ino::ROOT, 2, None);
        state.inodes.insert(Ino::ROOT, root_inode);
        state.group_records = fs_root
            .links
            .into_iter()
            .map(|(g, n, r)| (g, (n, r)))
            .collect();
        state.next_group = fs_root.next_group;
        state.base = Some(root);
        state.written_root = Some(root);
        Ok(state)
    }

    /// The inode `ino`, or ENOENT.
    pub fn get(&self, ino: Ino) -> FsResult<&Inode> {
        self.inodes.get(&ino).ok_or(FsError::NotFound)
    }

    /// The inode `ino` for changing, or ENOENT.
    pub fn get_mut(&mut self, ino: Ino) -> FsResult<&mut Inode> {
        self.inodes.get_mut(&ino).ok_or(FsError::NotFound)
    }

    /// A fresh inode number for `inode`.
    pub fn add_inode(&mut self, inode: Inode) -> Ino {
        let ino = Ino(self.next_ino);
        self.next_ino += 1;
        self.inodes.insert(ino, inode);
        self.count_materialized();
        ino
    }

    /// Marks an inode's record changed, and the directories that hold it.
    pub fn mark_dirty(&mut self, ino: Ino) {
        let Some(inode) = self.inodes.get_mut(&ino) else {
            return;
        };
        inode.dirty = true;
        if inode.nlink == 0 {
            // Unlinked (an open file, a removed directory): no directory
            // holds it any more.
            return;
        }
        if inode.group.is_some() {
            self.links_dirty = true;
            return;
        }
        let mut up = inode.parent;
        let mut at = ino;
        while up != at {
            let Some(dir) = self.inodes.get_mut(&up) else {
                break;
            };
            if let Content::Dir(Dir {
                entries: Some(entries),
                ..
            }) = &mut dir.content
            {
                entries.note_dirty(at);
            }
            if dir.dirty {
                break;
            }
            dir.dirty = true;
            at = up;
            up = dir.parent;
        }
    }

    /// Loads a directory's entries (materializing its children).
    pub fn load_dir(&mut self, ino: Ino) -> FsResult<()> {
        let round = self.trim_round();
        let inode = self.get_mut(ino)?;
        let stored = match &mut inode.content {
            Content::Dir(dir) if dir.entries.is_some() => {
                dir.used_in = round;
                return Ok(());
            }
            Content::Dir(dir) => dir.stored,
            _ => return Err(FsError::NotDir),
        };
        let listed: Vec<(Vec<u8>, Entry)> = read_dir(&self.bucket, stored)?;
        // Children of an unloaded directory come back as they were.
        let kept = self.take_unloaded(ino);
        let (mut entries, subdirs) = match self.materialize(ino, listed, kept.as_ref()) {
            Ok(loaded) => loaded,
            Err(e) => {
                if let Some(kept) = kept {
                    self.untake_unloaded(ino, kept);
                }
                return Err(e);
            }
        };
        entries.settle();
        if let Content::Dir(dir) = &mut self.get_mut(ino)?.content {
            dir.entries = Some(Box::new(entries));
            dir.subdirs = subdirs;
            dir.used_in = round;
        }
        Ok(())
    }

    /// Inodes for a directory's listed entries, numbered as `kept` says;
    /// returns its entries and subdirectory count.
    fn materialize(
        &mut self,
        dir: Ino,
        listed: Vec<(Vec<u8>, Entry)>,
        kept: Option<&Unloading>,
    ) -> FsResult<(Entries, u32)> {
        let mut entries = kept.map(Unloading::entries).unwrap_or_default();
        let mut subdirs = 0;
        for (name, entry) in listed {
            let was = kept.and_then(|k| k.kept(&name));
            let before = was.filter(|(ino, _)| !self.inodes.contains_key(ino));
            let child = match entry {
                Entry::Inode(record) => {
                    if record.kind == Kind::Dir {
                        subdirs += 1;
                    }
                    let inode = inode_from_record(record, dir, 1, None);
                    match before {
                        Some((ino, _)) => {
                            self.inodes.insert(ino, inode);
                            self.count_materialized();
                            ino
                        }
                        None => self.add_inode(inode),
                    }
                }
                Entry::Link(group) => self.group_inode(group, dir)?,
            };
            match was {
                Some((_, cookie)) => entries.insert_at(name, child, cookie),
                None => entries.insert(name, child),
            }
        }
        Ok((entries, subdirs))
    }

    /// The inode of hard-link group `group`, materializing it if needed.
    pub(crate) fn group_inode(&mut self, group: u64, parent: Ino) -> FsResult<Ino> {
        if let Some(ino) = self.groups.get(&group) {
            return Ok(*ino);
        }
        let (nlink, record) =
            self.group_records
                .remove(&group)
                .ok_or_else(|| FsError::Corrupt {
                    cid: self.base.unwrap_or(Cid::hash(hydra_dag::Codec::RAW, b"")),
                    reason: format!(
                        "entry names hard-link group {group}, which the link table lacks"
                    ),
                })?;
        let ino = self.add_inode(inode_from_record(record, parent, nlink, Some(group)));
        self.groups.insert(group, ino);
        Ok(ino)
    }

    /// The entries of a loaded directory.
    pub fn entries(&self, ino: Ino) -> FsResult<&Entries> {
        match &self.get(ino)?.content {
            Content::Dir(Dir {
                entries: Some(entries),
                ..
            }) => Ok(entries),
            Content::Dir(_) => Err(FsError::Invalid("directory not loaded")),
            _ => Err(FsError::NotDir),
        }
    }

    /// The entries of a loaded directory, for changing.
    pub fn entries_mut(&mut self, ino: Ino) -> FsResult<&mut Entries> {
        match &mut self.get_mut(ino)?.content {
            Content::Dir(Dir {
                entries: Some(entries),
                ..
            }) => Ok(entries),
            Content::Dir(_) => Err(FsError::Invalid("directory not loaded")),
            _ => Err(FsError::NotDir),
        }
    }

    /// The child `name` of directory `dir`, loading it if needed.
    pub fn child(&mut self, dir: Ino, name: &[u8]) -> FsResult<Option<Ino>> {
        self.load_dir(dir)?;
        Ok(self.entries(dir)?.get(name))
    }

    /// Link count as stat reports it.
    pub fn nlink(&mut self, ino: Ino) -> FsResult<u32> {
        let inode = self.get(ino)?;
        if inode.kind != Kind::Dir || inode.nlink == 0 {
            return Ok(inode.nlink);
        }
        if let Content::Dir(Dir {
            entries: None,
            stored,
            ..
        }) = &inode.content
            && let Some(subdirs) = self.unloaded_subdirs(ino, *stored)
        {
            return Ok(2 + subdirs);
        }
        self.load_dir(ino)?;
        match &self.get(ino)?.content {
            Content::Dir(dir) => Ok(2 + dir.subdirs),
            _ => Err(FsError::NotDir),
        }
    }

    /// The attributes of `ino`.
    pub fn attr(&mut self, ino: Ino) -> FsResult<Attr> {
        let nlink = self.nlink(ino)?;
        let inode = self.get(ino)?;
        let size = match &inode.content {
            Content::File(data) => data.size(),
            Content::Symlink(target) => target.len() as u64,
            Content::Dir(_) => 4096,
            Content::Special => 0,
        };
        let allocated = match &inode.content {
            Content::File(FileData::Clean(blob)) if size >= SPARSE_MIN => {
                let blob = blob.clone();
                self.data_bytes_of(&blob)
            }
            // Random writes over a sparse file (a disk image, a file grown
            // by `truncate`): what the content under them holds, plus what
            // they wrote, so `cp`, `du` and `tar -S` see the holes before
            // the commit too (the kernel keeps the figure an hour).
            Content::File(FileData::Overlay(o)) if size >= SPARSE_MIN => {
                let written: u64 = o.extents.values().map(|e| e.len() as u64).sum();
                let base = o.base.clone();
                let under = self.data_bytes_of(&base).min(size);
                under.saturating_add(written).min(size)
            }
            _ => size,
        };
        let inode = self.get(ino)?;
        Ok(Attr {
            ino,
            kind: inode.kind,
            perm: inode.meta.perm,
            nlink,
            uid: inode.meta.uid,
            gid: inode.meta.gid,
            size,
            blocks: allocated.div_ceil(512),
            atime: inode.meta.atime,
            mtime: inode.meta.mtime,
            ctime: inode.meta.ctime,
            rdev: inode.meta.rdev,
        })
    }

    /// The bytes of `blob` outside holes, walked once per blob (a read
    /// error counts every byte: the read itself will report it).
    fn data_bytes_of(&mut self, blob: &Blob) -> u64 {
        let Some(root) = blob.root().copied() else {
            return blob.size();
        };
        if let Some(&n) = self.data_bytes.get(&root) {
            return n;
        }
        let n = hydra_chunker::BlobReader::new(self.bucket.clone(), blob.clone())
            .data_bytes(self.params)
            .unwrap_or(blob.size());
        if self.data_bytes.len() >= DATA_BYTES_KEPT {
            self.data_bytes.clear();
        }
        self.data_bytes.insert(root, n);
        n
    }

    /// Moves an inode into the link table (before it gets a second name).
    pub fn make_group(&mut self, ino: Ino) -> FsResult<()> {
        if self.get(ino)?.group.is_some() {
            return Ok(());
        }
        let group = self.next_group;
        self.next_group += 1;
        // Its entry in its directory becomes a link: that directory changes
        // (marked while the inode is not grouped yet, so the directory
        // notes it among its changed children).
        self.mark_dirty(ino);
        let inode = self.get_mut(ino)?;
        inode.group = Some(group);
        self.groups.insert(group, ino);
        self.mark_dirty(ino);
        Ok(())
    }

    /// Drops an inode no name and no handle refers to any more.
    pub fn forget_if_orphan(&mut self, ino: Ino) {
        let Some(inode) = self.inodes.get(&ino) else {
            return;
        };
        if inode.nlink == 0 && inode.opens == 0 && ino != Ino::ROOT {
            if let Some(group) = inode.group {
                self.groups.remove(&group);
                self.links_dirty = true;
            }
            self.inodes.remove(&ino);
            self.forget_unloaded(ino);
        }
    }

    /// Whether anything changed since the last commit (or a commit wrote a
    /// root that the ref does not name yet).
    pub fn is_dirty(&self) -> bool {
        self.base.is_none()
            || self.links_dirty
            || self.written_root != self.base
            || self.inodes.get(&Ino::ROOT).is_some_and(|r| r.dirty)
    }

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
                    for name in entries.scan_names(BTreeSet::new(), changed) {
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

    /// A fresh write session, once a commit made the old one's blocks
    /// reachable.
    pub fn renew_session(&mut self) {
        self.session = self.bucket.session();
    }

    /// Context for writing file data.
    pub fn write_context(&self) -> WriteContext {
        WriteContext {
            session: self.session.clone(),
            params: self.params,
            nodes: self.nodes.clone(),
        }
    }
}

/// A blob is clean content that can be read outside the lock.
pub fn clean_blob(inode: &Inode) -> Option<Blob> {
    match &inode.content {
        Content::File(data) => data.clean_blob().cloned(),
        _ => None,
    }
}
