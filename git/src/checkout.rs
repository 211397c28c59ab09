//! Checking a revision out straight into a filesystem of the store: the
//! git tree becomes UnixFS directory nodes whose file records point at the
//! blobs the repository already stores, so no file content is read or
//! written; then one commit of the filesystem.

use std::collections::HashMap;

use hydra_dag::{Block, Cid, WriteSession, now_ns};
use hydra_fs::node::{
    Entry, Kind, Meta, Record, Stored, encode_entry, read_entries, write_encoded,
};
use hydra_fs::{Caller, Fs, FsError, Ino, split_last};

use crate::error::{GitError, GitResult};
use crate::object::{EntryKind, ObjectKind, Oid};
use crate::repo::Repo;

/// Directory nodes are stored in batches of about this many bytes.
const BATCH_BYTES: usize = 16 << 20;

/// Builds UnixFS directories from git trees, each distinct tree once.
#[derive(Debug)]
pub struct Materializer<'a> {
    repo: &'a Repo,
    session: WriteSession,
    /// Owner and times every node gets.
    meta: Meta,
    done: HashMap<Oid, (Option<Cid>, u64)>,
    blocks: Vec<Block>,
    pending: usize,
    /// Files, symlinks and directories below the last tree built.
    pub nodes: u64,
}

impl<'a> Materializer<'a> {
    /// A builder writing through `session`; nodes get `meta`'s owner and times.
    pub fn new(repo: &'a Repo, session: WriteSession, meta: Meta) -> Self {
        Materializer {
            repo,
            session,
            meta,
            done: HashMap::new(),
            blocks: Vec::new(),
            pending: 0,
            nodes: 0,
        }
    }

    fn meta(&self, perm: u32) -> Meta {
        Meta {
            perm,
            ..self.meta.clone()
        }
    }

    /// The entry list of the directory for tree `oid` (`None`: empty).
    pub fn dir(&mut self, oid: &Oid) -> GitResult<Option<Cid>> {
        let (root, nodes) = self.tree_dir(oid)?;
        self.nodes = nodes;
        Ok(root)
    }

    /// The entry list for tree `oid` and how many nodes lie below it.
    fn tree_dir(&mut self, oid: &Oid) -> GitResult<(Option<Cid>, u64)> {
        if let Some(done) = self.done.get(oid) {
            return Ok(*done);
        }
        let mut nodes = 0;
        let mut listed = Vec::new();
        for entry in self.repo.tree(oid)? {
            let record = match entry.kind() {
                EntryKind::Tree => {
                    let (list, below) = self.tree_dir(&entry.oid)?;
                    nodes += below;
                    Record {
                        kind: Kind::Dir,
                        meta: self.meta(0o755),
                        content: Stored::Dir(list),
                    }
                }
                EntryKind::Submodule => Record {
                    kind: Kind::Dir,
                    meta: self.meta(0o755),
                    content: Stored::Dir(None),
                },
                kind => {
                    let object =
                        self.repo
                            .object(&entry.oid)?
                            .ok_or_else(|| GitError::MissingObject {
                                oid: entry.oid,
                                context: Some(format!("named by tree {oid}")),
                            })?;
                    if object.kind != ObjectKind::Blob {
                        return Err(GitError::WrongKind {
                            oid: entry.oid,
                            found: object.kind.name(),
                            wanted: "blob",
                        });
                    }
                    match kind {
                        EntryKind::Symlink => Record {
                            kind: Kind::Symlink,
                            meta: self.meta(0o777),
                            content: Stored::Symlink(self.repo.content(&object.content)?.to_vec()),
                        },
                        _ => Record {
                            kind: Kind::File,
                            meta: self.meta(if kind == EntryKind::Executable {
                                0o755
                            } else {
                                0o644
                            }),
                            content: Stored::File(object.content),
                        },
                    }
                }
            };
            nodes += 1;
            listed.push((entry.name, encode_entry(&Entry::Inode(record))));
        }
        // Git orders a directory as if its name ended in '/'; the
        // filesystem by plain bytes.
        listed.sort_by(|a, b| a.0.cmp(&b.0));
        let (root, blocks) = write_encoded(listed)?;
        self.pending += blocks.iter().map(Block::len).sum::<usize>();
        self.blocks.extend(blocks);
        if self.pending >= BATCH_BYTES {
            self.flush()?;
        }
        self.done.insert(*oid, (root, nodes));
        Ok((root, nodes))
    }

    /// Stores the nodes built so far.
    pub fn flush(&mut self) -> GitResult<()> {
        self.session.put_blocks(&self.blocks)?;
        self.blocks.clear();
        self.pending = 0;
        Ok(())
    }
}

/// What [`checkout`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckoutReport {
    /// The commit checked out.
    pub commit: Oid,
    /// Files, symlinks and directories written.
    pub nodes: u64,
}

/// Writes the tree of `rev` into `fs` at `at` (absent, or an empty
/// directory; `/` for the root), owned by `caller`, and commits once.
pub fn checkout(
    repo: &Repo,
    rev: &str,
    fs: &Fs,
    at: &[u8],
    caller: &Caller,
) -> GitResult<CheckoutReport> {
    let target = repo.resolve(rev)?;
    let (commit, _) = repo.commit_object(&target)?;
    let (tree, _) = repo.peel(&commit, ObjectKind::Tree)?;
    let now = now_ns();
    let meta = Meta {
        uid: caller.uid,
        gid: caller.gid,
        atime: now,
        mtime: now,
        ctime: now,
        ..Meta::default()
    };
    // The session pins the new nodes until the commit names them.
    let session = fs.bucket().session();
    let mut builder = Materializer::new(repo, session.clone(), meta.clone());
    let list = builder.dir(&tree)?;
    builder.flush()?;
    let nodes = builder.nodes;

    let at_root = at.iter().all(|&b| b == b'/');
    let existing = if at_root {
        Some(Ino::ROOT)
    } else {
        match fs.resolve(at, caller) {
            Ok(ino) => Some(ino),
            Err(FsError::NotFound) => None,
            Err(e) => return Err(e.into()),
        }
    };
    match existing {
        Some(dir) => {
            let attr = fs.getattr(dir)?;
            if attr.kind != Kind::Dir {
                return Err(GitError::Fs(Box::new(FsError::NotDir)));
            }
            if fs
                .readdir(dir, 0, caller)?
                .iter()
                .any(|e| e.name != b"." && e.name != b"..")
            {
                return Err(GitError::Fs(Box::new(FsError::NotEmpty)));
            }
            if let Some(list) = list {
                for (name, value) in read_entries(fs.bucket(), &list)? {
                    let Entry::Inode(record) = Entry::from_ipld(&value, &list)? else {
                        continue;
                    };
                    fs.graft(dir, &name, record, caller)?;
                }
            }
        }
        None => {
            let (parent, name) = split_last(at)?;
            let parent = fs.mkdir_p(Ino::ROOT, &parent, caller)?;
            let record = Record {
                kind: Kind::Dir,
                meta: Meta {
                    perm: 0o755,
                    ..meta
                },
                content: Stored::Dir(list),
            };
            fs.graft(parent, &name, record, caller)?;
        }
    }
    fs.commit(&format!("git checkout {} {rev} ({commit})", repo.name()))?;
    drop(session);
    Ok(CheckoutReport { commit, nodes })
}

/// Stores the tree of `commit` as a whole filesystem root (read-only
/// views of a repository: files owned by root, every time the commit's)
/// through `session`; returns the root to open with `Fs::open_snapshot`.
pub fn commit_root(repo: &Repo, commit: &Oid, session: &WriteSession) -> GitResult<Cid> {
    let (commit, parsed) = repo.commit_object(commit)?;
    let (tree, _) = repo.peel(&commit, ObjectKind::Tree)?;
    let time = parsed.committer.time.saturating_mul(1_000_000_000);
    let meta = Meta {
        atime: time,
        mtime: time,
        ctime: time,
        ..Meta::default()
    };
    let mut builder = Materializer::new(repo, session.clone(), meta.clone());
    let list = builder.dir(&tree)?;
    let root = hydra_fs::node::FsRoot {
        root: Record {
            kind: Kind::Dir,
            meta: Meta {
                perm: 0o755,
                ..meta
            },
            content: Stored::Dir(list),
        },
        links: Vec::new(),
        next_group: 1,
    };
    let (block, blocks) = root.write()?;
    builder.blocks.extend(blocks);
    builder.flush()?;
    Ok(*block.cid())
}
