//! Copying objects from a real repository into the store: every object
//! reachable from the refs (or from given commits), verified against its
//! id, content cut into the store's chunks; what the store has already is
//! neither read nor written again.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use bytes::Bytes;
use hydra_chunker::{ChunkParams, chunk_blocks};
use hydra_dag::{Block, Bucket, WriteSession};
use hydra_kv::Item;

use crate::error::{GitError, GitResult};
use crate::object::{ObjectKind, Oid, children};
use crate::repo::{RefTarget, Repo, StoredObject, Update};

/// Blocks are stored in batches of about this many bytes.
const BATCH_BYTES: usize = 32 << 20;

/// What an import or push copied.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CopyStats {
    /// Objects new to the store.
    pub objects: u64,
    /// Their bytes (as git counts them).
    pub bytes: u64,
}

/// New objects, as map items, with their blocks stored.
#[derive(Debug, Default)]
pub struct Copied {
    /// Object id → item, for [`Update::objects`].
    pub items: BTreeMap<Bytes, Option<Item>>,
    /// What was copied.
    pub stats: CopyStats,
}

/// Opens a repository for reading and refuses one whose history is
/// incomplete.
pub fn open_source(path: &Path) -> GitResult<git2::Repository> {
    // Every object read is hashed and checked here (`copy_objects`);
    // libgit2 checking it again would double the cost.
    git2::opts::strict_hash_verification(false);
    let repo = git2::Repository::open(path).map_err(|e| {
        GitError::Source(format!(
            "{} is not a git repository: {}",
            path.display(),
            e.message()
        ))
    })?;
    if repo.is_shallow() {
        return Err(GitError::Source(format!(
            "{} is a shallow clone: its history is incomplete (run `git fetch --unshallow` there first)",
            path.display()
        )));
    }
    Ok(repo)
}

/// Whether git would accept `name` as the name of a ref.
pub fn valid_ref_name(name: &str) -> bool {
    name == "HEAD" || (name.starts_with("refs/") && git2::Reference::is_valid_name(name))
}

/// Every ref of `source`, HEAD included, validated.
pub fn source_refs(source: &git2::Repository) -> GitResult<BTreeMap<String, RefTarget>> {
    let mut refs = BTreeMap::new();
    let mut add = |r: git2::Reference<'_>| -> GitResult<()> {
        let name = String::from_utf8(r.name_bytes().to_vec())
            .map_err(|_| GitError::BadRefName(String::from_utf8_lossy(r.name_bytes()).into()))?;
        if !valid_ref_name(&name) {
            return Err(GitError::BadRefName(name));
        }
        let target = match (r.symbolic_target(), r.target()) {
            (Some(t), _) => RefTarget::Symbolic(t.to_string()),
            (None, Some(oid)) => RefTarget::Direct(Oid::from_git2(oid)),
            (None, None) => return Err(GitError::BadRefName(name)),
        };
        refs.insert(name, target);
        Ok(())
    };
    for r in source.references()? {
        add(r?)?;
    }
    if let Ok(head) = source.find_reference("HEAD") {
        add(head)?;
    }
    Ok(refs)
}

/// Copies every object reachable from `roots` in `source` that `base`
/// lacks; an object `base` has is taken to come with everything it names.
pub fn copy_objects(
    source: &git2::Odb<'_>,
    base: &Repo,
    session: &WriteSession,
    roots: &[(Oid, String)],
) -> GitResult<Copied> {
    let params = ChunkParams::from_policy(&base.bucket().policy().chunking)?;
    let mut out = Copied::default();
    let mut blocks: Vec<Block> = Vec::new();
    let mut pending = 0usize;
    let mut seen = HashSet::new();
    let mut stack: Vec<(Oid, String)> = roots.to_vec();
    while let Some((oid, context)) = stack.pop() {
        if !seen.insert(oid) || base.has(&oid)? {
            continue;
        }
        let object = source.read(oid.to_git2()).map_err(|e| {
            if e.code() == git2::ErrorCode::NotFound {
                GitError::MissingObject {
                    oid,
                    context: Some(context.clone()),
                }
            } else {
                GitError::CorruptObject {
                    oid,
                    reason: e.message().to_string(),
                }
            }
        })?;
        let kind = ObjectKind::from_git2(object.kind()).ok_or_else(|| GitError::CorruptObject {
            oid,
            reason: "unknown object type".into(),
        })?;
        let data = object.data();
        if Oid::hash(kind, data) != oid {
            return Err(GitError::CorruptObject {
                oid,
                reason: "its bytes hash to another id".into(),
            });
        }
        for (child, _) in children(&oid, kind, data)? {
            if !seen.contains(&child) {
                stack.push((child, format!("named by {} {oid}", kind.name())));
            }
        }
        let (content, new) = chunk_blocks(params, Bytes::copy_from_slice(data))?;
        pending += new.iter().map(Block::len).sum::<usize>();
        blocks.extend(new);
        if pending >= BATCH_BYTES {
            session.put_blocks(&blocks)?;
            blocks.clear();
            pending = 0;
        }
        out.stats.objects += 1;
        out.stats.bytes += data.len() as u64;
        out.items.insert(
            Bytes::copy_from_slice(&oid.0),
            Some(StoredObject { kind, content }.to_item()),
        );
    }
    session.put_blocks(&blocks)?;
    Ok(out)
}

/// What [`import`] did.
#[derive(Clone, Debug)]
pub struct ImportReport {
    /// Objects and bytes new to the store.
    pub copied: CopyStats,
    /// Refs the repository now has (HEAD included).
    pub refs: usize,
    /// The repository's new version (unchanged when nothing was new).
    pub repo: Repo,
}

/// Imports the repository at `path` as `name`: every object reachable
/// from its refs, then its refs (replacing the stored ones), in one commit
/// of `git/<name>` made only once every object is stored.
pub fn import(bucket: &Bucket, name: &str, path: &Path, message: &str) -> GitResult<ImportReport> {
    let source = open_source(path)?;
    let refs = source_refs(&source)?;
    let base = Repo::open(bucket, name)?;
    let roots: Vec<(Oid, String)> = refs
        .iter()
        .filter_map(|(n, t)| match t {
            RefTarget::Direct(oid) => Some((*oid, format!("ref {n}"))),
            RefTarget::Symbolic(_) => None,
        })
        .collect();
    let session = bucket.session();
    let copied = copy_objects(&source.odb()?, &base, &session, &roots)?;
    let count = refs.len();
    if copied.items.is_empty() && &refs == base.refs() && base.root().is_some() {
        return Ok(ImportReport {
            copied: copied.stats,
            refs: count,
            repo: base,
        });
    }
    let update = Update {
        objects: copied.items,
        refs: refs.into_iter().map(|(k, v)| (k, Some(v))).collect(),
        replace_refs: true,
    };
    let repo = base.commit(&session, update, message)?;
    Ok(ImportReport {
        copied: copied.stats,
        refs: count,
        repo,
    })
}
