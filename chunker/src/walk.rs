//! Walks a blob's tree for edits: the subtrees before an offset, the leaf
//! holding an offset, and the largest subtree starting at an offset. An
//! edit then costs O(depth × fanout), not O(leaves).

use std::collections::HashMap;
use std::sync::Arc;

use hydra_dag::{Cid, Codec};

use crate::error::{ChunkError, ChunkResult};
use crate::reader::BlobReader;
use crate::tree::{Link, Node, TreeBuilder};

/// One node on the path from the root down to a leaf.
struct Step {
    node: Arc<Node>,
    /// The child the path goes through.
    child: usize,
    /// Blob offset where the node starts.
    start: u64,
}

impl Step {
    /// Blob offset where the path's child starts.
    fn child_start(&self) -> u64 {
        self.start + self.node.start_of(self.child)
    }
}

/// A leaf and where it starts in the blob.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Leaf {
    /// The chunk and its length.
    pub link: Link,
    /// Blob offset of its first byte.
    pub start: u64,
}

impl Leaf {
    /// Blob offset just past its last byte.
    pub fn end(&self) -> u64 {
        self.start + self.link.1
    }
}

/// The path from `root` down to the leaf holding `offset` (below the size).
fn path(reader: &mut BlobReader, root: Link, offset: u64) -> ChunkResult<(Vec<Step>, Leaf)> {
    let mut steps = Vec::new();
    let (mut cid, mut len) = root;
    let mut start = 0;
    while cid.codec() != Codec::RAW {
        let node = reader.node(&cid)?;
        if node.size() != len || offset - start >= len {
            return Err(ChunkError::Malformed {
                cid,
                reason: format!("node holds {} bytes, its link says {len}", node.size()),
            });
        }
        let child = node.child_at(offset - start);
        let step = Step { node, child, start };
        start = step.child_start();
        (cid, len) = step.node.links[child];
        steps.push(step);
    }
    Ok((
        steps,
        Leaf {
            link: (cid, len),
            start,
        },
    ))
}

/// The leaf holding `offset`.
pub(crate) fn leaf_at(reader: &mut BlobReader, root: Link, offset: u64) -> ChunkResult<Leaf> {
    Ok(path(reader, root, offset)?.1)
}

/// The highest subtree that starts at `offset` and is at most `max` high,
/// with its height (0 for a leaf). `offset` must start a leaf.
pub(crate) fn subtree_at(
    reader: &mut BlobReader,
    root: Link,
    offset: u64,
    max: usize,
) -> ChunkResult<(usize, Link)> {
    let (steps, leaf) = path(reader, root, offset)?;
    if offset == 0 && steps.len() <= max {
        return Ok((steps.len(), root));
    }
    for (k, step) in steps.iter().enumerate() {
        let height = steps.len() - k - 1;
        if step.child_start() == offset && height <= max {
            return Ok((height, step.node.links[step.child]));
        }
    }
    if leaf.start == offset {
        return Ok((0, leaf.link));
    }
    Err(ChunkError::Malformed {
        cid: root.0,
        reason: format!("no chunk starts at offset {offset}"),
    })
}

/// How many bytes from `offset` (a leaf start) on lie in consecutive copies
/// of the leaf `leaf`, found a whole subtree at a time where it can be.
pub(crate) fn run_of(
    reader: &mut BlobReader,
    root: Link,
    offset: u64,
    leaf: Link,
) -> ChunkResult<u64> {
    let mut uniform = HashMap::new();
    let mut pos = offset;
    'run: while pos < root.1 {
        let mut max = usize::MAX;
        loop {
            let (height, link) = subtree_at(reader, root, pos, max)?;
            if height == 0 {
                if link != leaf {
                    break 'run;
                }
                // Down to single leaves: count the copies beside this one
                // in its node, not one walk from the root each.
                pos += same_leaves(reader, root, pos, leaf)?;
                continue 'run;
            }
            if all_of(reader, link, leaf, &mut uniform)? {
                pos += link.1;
                continue 'run;
            }
            if height == 0 {
                break 'run;
            }
            max = height - 1;
        }
    }
    Ok(pos - offset)
}

/// How many bytes from `offset` (the start of a copy of `leaf`) on lie in
/// copies of `leaf` next to each other in the node holding that one.
fn same_leaves(reader: &mut BlobReader, root: Link, offset: u64, leaf: Link) -> ChunkResult<u64> {
    let (steps, _) = path(reader, root, offset)?;
    Ok(match steps.last() {
        None => leaf.1,
        Some(step) => step.node.links[step.child..]
            .iter()
            .take_while(|&&l| l == leaf)
            .map(|l| l.1)
            .sum(),
    })
}

/// Whether every leaf under `link` is `leaf` (answers kept in `seen`).
fn all_of(
    reader: &mut BlobReader,
    link: Link,
    leaf: Link,
    seen: &mut HashMap<Cid, bool>,
) -> ChunkResult<bool> {
    if link.0.codec() == Codec::RAW {
        return Ok(link == leaf);
    }
    if let Some(&all) = seen.get(&link.0) {
        return Ok(all);
    }
    let node = reader.node(&link.0)?;
    let mut all = true;
    for child in &node.links {
        if !all_of(reader, *child, leaf, seen)? {
            all = false;
            break;
        }
    }
    seen.insert(link.0, all);
    Ok(all)
}

/// Pushes the old subtrees covering `[from, to)` (both leaf boundaries) on
/// `tree`, each as high as the levels open below it and `to` allow.
pub(crate) fn push_old(
    reader: &mut BlobReader,
    root: Link,
    tree: &mut TreeBuilder,
    mut from: u64,
    to: u64,
) -> ChunkResult<()> {
    while from < to {
        let mut max = tree.lowest_open();
        loop {
            let (height, link) = subtree_at(reader, root, from, max)?;
            if from + link.1 <= to {
                tree.push(height, link)?;
                from += link.1;
                break;
            }
            if height == 0 {
                return Err(ChunkError::Malformed {
                    cid: link.0,
                    reason: format!("chunk crosses offset {to}"),
                });
            }
            max = height - 1;
        }
    }
    Ok(())
}
