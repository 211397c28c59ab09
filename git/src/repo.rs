//! A repository as the store holds it: the ref `git/<name>` names a root
//! node linking two prolly trees, the objects (id → kind and content) and
//! the refs (name → id, or `ref: NAME` for a symbolic ref such as HEAD).
//!
//! Object content is kept byte for byte as git hashed it: blobs as chunked
//! blobs (the same chunks a file of the same bytes has in a filesystem of
//! the store, so they are stored once), commits, trees and tags the same
//! way, inline in the tree's leaves when small. An object is in the map
//! only once every object it names is: a repository is always complete.

use std::collections::BTreeMap;
use std::ops::Bound;

use bytes::Bytes;
use hydra_chunker::{Blob, BlobReader};
use hydra_dag::{Block, Bucket, Cid, Codec, DagError, Ipld, RefName, RefNote, WriteSession};
use hydra_kv::{Item, Tree};

use crate::error::{GitError, GitResult};
use crate::object::{Commit, ObjectKind, Oid, TreeEntry, parse_tag, parse_tree};

/// What a ref points at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RefTarget {
    /// An object.
    Direct(Oid),
    /// Another ref, by name (HEAD → `refs/heads/main`).
    Symbolic(String),
}

impl RefTarget {
    fn encode(&self) -> Bytes {
        match self {
            RefTarget::Direct(oid) => Bytes::copy_from_slice(&oid.0),
            RefTarget::Symbolic(name) => Bytes::from(format!("ref: {name}")),
        }
    }

    fn decode(bytes: &[u8]) -> Option<RefTarget> {
        if let Some(name) = bytes.strip_prefix(b"ref: ") {
            return Some(RefTarget::Symbolic(String::from_utf8(name.to_vec()).ok()?));
        }
        Oid::from_bytes(bytes).map(RefTarget::Direct)
    }
}

/// An object as stored: its kind and content.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredObject {
    /// Its kind.
    pub kind: ObjectKind,
    /// Its bytes (as git hashes them, without the header).
    pub content: Blob,
}

impl StoredObject {
    /// The map item that holds it (links to its blocks visible to GC).
    pub fn to_item(&self) -> Item {
        let kind = Ipld::Integer(self.kind.code().into());
        let list = match &self.content {
            Blob::Inline(data) => vec![kind, Ipld::Bytes(data.to_vec())],
            Blob::Stored { root, size } => {
                vec![kind, Ipld::Link(*root), Ipld::Integer((*size).into())]
            }
        };
        Item::Cbor(Bytes::from(Ipld::List(list).encode()))
    }

    /// Decodes a map item; `oid` names it in errors.
    pub fn from_item(oid: &Oid, item: &Item) -> GitResult<StoredObject> {
        let bad = || GitError::Corrupt(format!("the entry of object {oid} does not decode"));
        let Item::Cbor(bytes) = item else {
            return Err(bad());
        };
        let Ipld::List(list) = Ipld::decode(bytes)? else {
            return Err(bad());
        };
        let kind = match list.first() {
            Some(Ipld::Integer(k)) => u8::try_from(*k).ok().and_then(ObjectKind::from_code),
            _ => None,
        }
        .ok_or_else(bad)?;
        let content = match (list.get(1), list.get(2)) {
            (Some(Ipld::Bytes(data)), None) => Blob::Inline(Bytes::from(data.clone())),
            (Some(Ipld::Link(root)), Some(Ipld::Integer(size))) => Blob::Stored {
                root: *root,
                size: u64::try_from(*size).map_err(|_| bad())?,
            },
            _ => return Err(bad()),
        };
        Ok(StoredObject { kind, content })
    }
}

/// Changes to a repository, committed together by [`Repo::commit`].
#[derive(Debug, Default)]
pub struct Update {
    /// New objects (their blocks already stored).
    pub objects: BTreeMap<Bytes, Option<Item>>,
    /// Ref changes: a new target, or `None` to delete.
    pub refs: BTreeMap<String, Option<RefTarget>>,
    /// Replace every ref by those in `refs` (a mirror), rather than merge.
    pub replace_refs: bool,
}

/// A repository stored in the DAG, as of one root.
#[derive(Clone)]
pub struct Repo {
    bucket: Bucket,
    name: String,
    root: Option<Cid>,
    objects: Tree,
    refs: BTreeMap<String, RefTarget>,
}

impl std::fmt::Debug for Repo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Repo")
            .field("name", &self.name)
            .field("root", &self.root)
            .field("refs", &self.refs.len())
            .finish()
    }
}

/// The ref that names repository `name`.
pub fn ref_name(name: &str) -> GitResult<RefName> {
    Ok(RefName::new(format!("git/{name}"))?)
}

/// The names of the repositories in a bucket.
pub fn list(bucket: &Bucket) -> GitResult<Vec<String>> {
    Ok(bucket
        .list_refs()?
        .into_iter()
        .filter_map(|(name, _)| name.as_str().strip_prefix("git/").map(str::to_string))
        .collect())
}

impl Repo {
    /// The repository `name` as last committed (empty when it has none).
    pub fn open(bucket: &Bucket, name: &str) -> GitResult<Repo> {
        let root = bucket.get_ref(&ref_name(name)?)?;
        Repo::at(bucket, name, root)
    }

    /// The repository `name` as of `root`, which must exist.
    pub fn open_existing(bucket: &Bucket, name: &str) -> GitResult<Repo> {
        let repo = Repo::open(bucket, name)?;
        if repo.root.is_none() {
            return Err(GitError::NoRepo(name.to_string()));
        }
        Ok(repo)
    }

    /// The repository `name` as of the root node `root` (`None`: empty).
    pub fn at(bucket: &Bucket, name: &str, root: Option<Cid>) -> GitResult<Repo> {
        let (objects, refs_root) = match root {
            None => (None, None),
            Some(cid) => {
                let node = Ipld::decode(&bucket.require(&cid)?)?;
                let link = |key: &str| match node.get(key) {
                    Some(Ipld::Link(c)) => Ok(Some(*c)),
                    None | Some(Ipld::Null) => Ok(None),
                    _ => Err(GitError::Corrupt(format!("root {cid}: bad {key} link"))),
                };
                (link("objects")?, link("refs")?)
            }
        };
        let mut refs = BTreeMap::new();
        Tree::new(bucket.clone(), refs_root).scan(
            Bound::Unbounded,
            Bound::Unbounded,
            false,
            &mut |k, item| {
                let target = match item {
                    Item::Value(v) => RefTarget::decode(v),
                    _ => None,
                };
                if let (Ok(name), Some(target)) = (String::from_utf8(k.to_vec()), target) {
                    refs.insert(name, target);
                }
                Ok(true)
            },
        )?;
        Ok(Repo {
            bucket: bucket.clone(),
            name: name.to_string(),
            root,
            objects: Tree::new(bucket.clone(), objects),
            refs,
        })
    }

    /// The repository's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The root node (`None` for an empty repository).
    pub fn root(&self) -> Option<Cid> {
        self.root
    }

    /// The bucket it lives in.
    pub fn bucket(&self) -> &Bucket {
        &self.bucket
    }

    /// The object map.
    pub fn objects(&self) -> &Tree {
        &self.objects
    }

    /// Every ref, HEAD included, by name.
    pub fn refs(&self) -> &BTreeMap<String, RefTarget> {
        &self.refs
    }

    /// The object a ref ends at, following symbolic refs.
    pub fn ref_target(&self, name: &str) -> Option<Oid> {
        let mut name = name;
        for _ in 0..8 {
            match self.refs.get(name)? {
                RefTarget::Direct(oid) => return Some(*oid),
                RefTarget::Symbolic(next) => name = next,
            }
        }
        None
    }

    /// The stored object `oid`, if the repository has it.
    pub fn object(&self, oid: &Oid) -> GitResult<Option<StoredObject>> {
        match self.objects.get_item(&oid.0)? {
            Some(item) => Ok(Some(StoredObject::from_item(oid, &item)?)),
            None => Ok(None),
        }
    }

    /// Whether the repository has object `oid`.
    pub fn has(&self, oid: &Oid) -> GitResult<bool> {
        Ok(self.objects.get_item(&oid.0)?.is_some())
    }

    /// The kind and bytes of object `oid`, which must exist.
    pub fn read(&self, oid: &Oid) -> GitResult<(ObjectKind, Bytes)> {
        let object = self.object(oid)?.ok_or(GitError::MissingObject {
            oid: *oid,
            context: None,
        })?;
        Ok((object.kind, self.content(&object.content)?))
    }

    /// The bytes of a stored content blob.
    pub fn content(&self, blob: &Blob) -> GitResult<Bytes> {
        Ok(match blob {
            Blob::Inline(data) => data.clone(),
            Blob::Stored { size, .. } => {
                let mut r = BlobReader::new(self.bucket.clone(), blob.clone());
                Bytes::from(r.read_at(0, *size as usize)?)
            }
        })
    }

    /// The object `oid` read as `want`, peeling annotated tags (and commits
    /// to their trees when a tree is wanted).
    pub fn peel(&self, oid: &Oid, want: ObjectKind) -> GitResult<(Oid, Bytes)> {
        let mut oid = *oid;
        for _ in 0..32 {
            let (kind, data) = self.read(&oid)?;
            if kind == want {
                return Ok((oid, data));
            }
            match kind {
                ObjectKind::Tag => oid = parse_tag(&oid, &data)?.0,
                ObjectKind::Commit if want == ObjectKind::Tree => {
                    oid = Commit::parse(&oid, &data)?.tree
                }
                found => {
                    return Err(GitError::WrongKind {
                        oid,
                        found: found.name(),
                        wanted: want.name(),
                    });
                }
            }
        }
        Err(GitError::Corrupt(format!("tag chain at {oid} too long")))
    }

    /// The commit `oid` (peeling tags).
    pub fn commit_object(&self, oid: &Oid) -> GitResult<(Oid, Commit)> {
        let (oid, data) = self.peel(oid, ObjectKind::Commit)?;
        Ok((oid, Commit::parse(&oid, &data)?))
    }

    /// The entries of tree `oid` (peeling tags and commits).
    pub fn tree(&self, oid: &Oid) -> GitResult<Vec<TreeEntry>> {
        let (oid, data) = self.peel(oid, ObjectKind::Tree)?;
        parse_tree(&oid, &data)
    }

    /// The entry at `path` (slash-separated) below tree `root`; `None` for
    /// an empty path.
    pub fn entry_at(&self, root: &Oid, path: &str) -> GitResult<Option<TreeEntry>> {
        let missing = || GitError::NoPath {
            path: path.to_string(),
            rev: root.to_string(),
        };
        let mut tree = *root;
        let mut found: Option<TreeEntry> = None;
        for part in path.split('/').filter(|p| !p.is_empty()) {
            if let Some(entry) = &found {
                if entry.kind() != crate::object::EntryKind::Tree {
                    return Err(missing());
                }
                tree = entry.oid;
            }
            let entries = self.tree(&tree)?;
            found = Some(
                entries
                    .into_iter()
                    .find(|e| e.name == part.as_bytes())
                    .ok_or_else(missing)?,
            );
        }
        Ok(found)
    }

    /// Objects whose id starts with the hex digits `prefix` (at most `limit`).
    pub fn find_prefix(&self, prefix: &str, limit: usize) -> GitResult<Vec<Oid>> {
        let (Some(lo), Some(hi)) = (
            Oid::from_hex(&format!("{prefix:0<40}")),
            Oid::from_hex(&format!("{prefix:f<40}")),
        ) else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        self.objects.scan(
            Bound::Included(&lo.0),
            Bound::Included(&hi.0),
            false,
            &mut |k, _| {
                if let Some(oid) = Oid::from_bytes(k) {
                    out.push(oid);
                }
                Ok(out.len() < limit)
            },
        )?;
        Ok(out)
    }

    /// Stores `update` on top of this version and moves `git/<name>` to
    /// it by compare-and-swap; fails with [`GitError::Conflict`] if another
    /// writer moved it first. Returns the new version.
    pub fn commit(&self, session: &WriteSession, update: Update, message: &str) -> GitResult<Repo> {
        let mut blocks: Vec<Block> = Vec::new();
        let objects = self.objects.apply_unstored(update.objects, &mut blocks)?;
        let mut refs = if update.replace_refs {
            BTreeMap::new()
        } else {
            self.refs.clone()
        };
        for (name, target) in update.refs {
            match target {
                Some(t) => refs.insert(name, t),
                None => refs.remove(&name),
            };
        }
        let (refs_root, ref_blocks) = hydra_kv::build(
            refs.iter()
                .map(|(k, v)| (Bytes::from(k.clone()), Item::Value(v.encode())))
                .collect(),
        )?;
        blocks.extend(ref_blocks);
        let link = |c: Option<Cid>| c.map_or(Ipld::Null, Ipld::Link);
        let node = Ipld::Map(BTreeMap::from([
            ("v".to_string(), Ipld::Integer(1)),
            ("objects".to_string(), link(objects.root())),
            ("refs".to_string(), link(refs_root)),
        ]));
        let root = Block::new(Codec::DAG_CBOR, node.encode())?;
        let root_cid = *root.cid();
        blocks.push(root);
        session.put_blocks(&blocks)?;
        let name = ref_name(&self.name)?;
        let note = RefNote::by_current_user(message);
        match self
            .bucket
            .cas_ref(&name, self.root.as_ref(), Some(&root_cid), &note)
        {
            Ok(_) => {}
            Err(DagError::RefConflict { .. }) => return Err(GitError::Conflict(self.name.clone())),
            Err(e) => return Err(e.into()),
        }
        Ok(Repo {
            bucket: self.bucket.clone(),
            name: self.name.clone(),
            root: Some(root_cid),
            objects,
            refs,
        })
    }
}
