//! The in-memory inode table over the last committed root.
//!
//! Inodes are materialized from stored records as directories are loaded,
//! and get inode numbers that stay fixed for the life of the filesystem
//! object. Dirty tracking keeps one invariant: a dirty directory's ancestors
//! are dirty too, so a commit re-encodes exactly the dirty directories,
//! bottom-up, and reuses every other stored node.

use std::collections::HashMap;

use hydra_chunker::{Blob, NodeCache};
use hydra_dag::{Bucket, Cid, WriteSession};

use crate::attr::{Attr, Ino};
use crate::error::{FsError, FsResult};
use crate::file::{FileData, KeptFiles, WriteContext};
use crate::node::{Entry, FsRoot, Kind, Meta, Record, Stored, list_cache, read_dir};
use crate::trim::{Ghosts, Unloading};

mod entries;
mod root;

pub use entries::{Entries, Name};

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
