//! The blocks that prove what a path names in a committed root, and the
//! blocks of what it names: what a trustless gateway sends so a client can
//! verify a file or directory against the root CID alone.

use hydra_chunker::{Blob, tree::Node as BlobNode};
use hydra_dag::{Bucket, Cid, Codec, Ipld};
use hydra_kv::Item;
use hydra_kv::node::Node as KvNode;

use crate::error::{FsError, FsResult};
use crate::node::{Entry, FsRoot, Record, Stored};

/// A path resolved in a committed root.
#[derive(Debug)]
pub struct PathProof {
    /// Every block read to resolve it, root first.
    pub blocks: Vec<Cid>,
    /// What the path names.
    pub target: Record,
}

/// Resolves `path` (`/`-separated) in the filesystem committed at `root`,
/// keeping the blocks each step reads.
pub fn prove_path(bucket: &Bucket, root: &Cid, path: &[u8]) -> FsResult<PathProof> {
    let (mut target, links, _) = FsRoot::read_head(bucket, root)?;
    let bad = |reason: &str| FsError::Corrupt {
        cid: *root,
        reason: reason.to_string(),
    };
    let mut blocks = vec![*root];
    for name in path.split(|&b| b == b'/').filter(|n| !n.is_empty()) {
        let Stored::Dir(list) = target.content else {
            return Err(FsError::NotDir);
        };
        let list = list.ok_or(FsError::NotFound)?;
        let entry = lookup(bucket, &list, name, &mut blocks)?.ok_or(FsError::NotFound)?;
        target = match Entry::from_ipld(&entry, &list)? {
            Entry::Inode(record) => record,
            Entry::Link(group) => {
                let table = links.ok_or_else(|| bad("a hard link without a link table"))?;
                let linked = lookup(bucket, &table, &group.to_be_bytes(), &mut blocks)?
                    .ok_or_else(|| bad("a hard link to a group the table lacks"))?;
                Record::from_ipld(
                    linked
                        .get("r")
                        .ok_or_else(|| bad("link table entry without a record"))?,
                    &table,
                )?
            }
        };
    }
    Ok(PathProof { blocks, target })
}

/// Looks `key` up in the entry tree at `root`, recording the nodes read.
fn lookup(bucket: &Bucket, root: &Cid, key: &[u8], read: &mut Vec<Cid>) -> FsResult<Option<Ipld>> {
    let mut at = *root;
    loop {
        read.push(at);
        let node = KvNode::decode(&at, bucket.require(&at)?)?;
        if node.level > 0 {
            match node.items.get(node.child_index(key)) {
                Some(Item::Child(child)) => at = *child,
                _ => return Ok(None),
            }
            continue;
        }
        return match node.search(key) {
            Ok(i) => match &node.items[i] {
                Item::Cbor(bytes) => Ok(Some(Ipld::decode(bytes)?)),
                _ => Err(FsError::Corrupt {
                    cid: at,
                    reason: "a directory entry that is not a record".into(),
                }),
            },
            Err(_) => Ok(None),
        };
    }
}

/// The nodes of the entry tree at `root` (not what its records link to).
pub fn entry_tree_blocks(bucket: &Bucket, root: &Cid) -> FsResult<Vec<Cid>> {
    let mut out = Vec::new();
    let mut stack = vec![*root];
    while let Some(at) = stack.pop() {
        out.push(at);
        let node = KvNode::decode(&at, bucket.require(&at)?)?;
        if node.level > 0 {
            for item in node.items.iter().rev() {
                if let Item::Child(child) = item {
                    stack.push(*child);
                }
            }
        }
    }
    Ok(out)
}

/// The blocks of `blob` holding bytes `start..end` (all of it for
/// `0..size`), tree nodes before the chunks under them.
pub fn blob_blocks(bucket: &Bucket, blob: &Blob, start: u64, end: u64) -> FsResult<Vec<Cid>> {
    let Blob::Stored { root, size } = blob else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    let mut stack = vec![(*root, 0u64, *size)];
    while let Some((cid, from, to)) = stack.pop() {
        if to <= start || from >= end.max(start + 1) {
            continue;
        }
        out.push(cid);
        if cid.codec() != Codec::DAG_CBOR {
            continue;
        }
        let node = BlobNode::decode(&cid, &bucket.require(&cid)?)?;
        let mut children = Vec::with_capacity(node.links.len());
        for (i, (child, _)) in node.links.iter().enumerate() {
            let child_start = from + node.start_of(i);
            children.push((*child, child_start, from + node.ends[i]));
        }
        stack.extend(children.into_iter().rev());
    }
    Ok(out)
}
