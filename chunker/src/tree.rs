//! The blob tree: (child CID, byte length) links in DAG-CBOR nodes.
//!
//! Leaves are raw chunk blocks. A node is `{"links": [[cid, len], …],
//! "size": total}`. Node boundaries are content-defined: a node closes after
//! a link whose CID hashes below a threshold (about one link in
//! [`TARGET_FANOUT`]) or at [`MAX_FANOUT`] links. So the tree depends only on
//! the sequence of chunks: equal contents give equal roots, and an edit
//! changes only the nodes on the path to the chunks it touched.

use std::collections::BTreeMap;
use std::sync::Arc;

use hydra_dag::{Block, Cid, Codec, Ipld};

use crate::error::{ChunkError, ChunkResult};
use crate::nodes::NodeCache;

/// Links per node on average.
pub const TARGET_FANOUT: u32 = 128;
/// Links per node at most (keeps nodes near 40 KiB at worst).
pub const MAX_FANOUT: usize = 1024;

/// A link to a child: its CID and the bytes of blob under it.
pub type Link = (Cid, u64);

/// A decoded tree node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    /// The children in order.
    pub links: Vec<Link>,
    /// `ends[i]`: the offset just past child `i`.
    pub ends: Vec<u64>,
}

impl Node {
    /// Encodes links as a node block.
    pub fn encode(links: &[Link]) -> ChunkResult<Block> {
        let size: u64 = links.iter().map(|(_, n)| n).sum();
        let list = links
            .iter()
            .map(|(cid, n)| Ipld::List(vec![Ipld::Link(*cid), Ipld::Integer(i128::from(*n))]))
            .collect();
        let mut map = BTreeMap::new();
        map.insert("links".to_string(), Ipld::List(list));
        map.insert("size".to_string(), Ipld::Integer(i128::from(size)));
        Ok(Block::new(Codec::DAG_CBOR, Ipld::Map(map).encode())?)
    }

    /// The node of `links`, with their ends.
    pub fn new(links: Vec<Link>) -> Node {
        let ends = links
            .iter()
            .scan(0u64, |end, (_, n)| {
                *end += n;
                Some(*end)
            })
            .collect();
        Node { links, ends }
    }

    /// Decodes a node block.
    pub fn decode(cid: &Cid, data: &[u8]) -> ChunkResult<Node> {
        let bad = |reason: &str| ChunkError::Malformed {
            cid: *cid,
            reason: reason.to_string(),
        };
        let value = Ipld::decode(data)?;
        let Some(Ipld::List(items)) = value.get("links") else {
            return Err(bad("no links list"));
        };
        let mut links = Vec::with_capacity(items.len());
        let mut ends = Vec::with_capacity(items.len());
        let mut total: u64 = 0;
        for item in items {
            let Ipld::List(pair) = item else {
                return Err(bad("link is not a pair"));
            };
            let (Some(Ipld::Link(child)), Some(Ipld::Integer(len))) = (pair.first(), pair.get(1))
            else {
                return Err(bad("link is not [cid, length]"));
            };
            let len = u64::try_from(*len).map_err(|_| bad("negative length"))?;
            total = total
                .checked_add(len)
                .ok_or_else(|| bad("size overflows"))?;
            links.push((*child, len));
            ends.push(total);
        }
        match value.get("size") {
            Some(Ipld::Integer(size)) if *size == i128::from(total) => {}
            _ => return Err(bad("size does not match the sum of its links")),
        }
        if links.is_empty() {
            return Err(bad("node without links"));
        }
        Ok(Node { links, ends })
    }

    /// Total bytes under this node.
    pub fn size(&self) -> u64 {
        self.ends.last().copied().unwrap_or(0)
    }

    /// Index of the child holding byte `offset` (`offset < size`).
    pub fn child_at(&self, offset: u64) -> usize {
        self.ends.partition_point(|&end| end <= offset)
    }

    /// Offset where child `i` starts.
    pub fn start_of(&self, i: usize) -> u64 {
        if i == 0 { 0 } else { self.ends[i - 1] }
    }
}

fn is_boundary(cid: &Cid) -> bool {
    let d = cid.digest();
    u32::from_le_bytes([d[0], d[1], d[2], d[3]]) < u32::MAX / TARGET_FANOUT
}

/// Builds a tree bottom-up from a stream of leaf links, in bounded memory.
#[derive(Debug, Default)]
pub struct TreeBuilder {
    levels: Vec<Vec<Link>>,
    /// Node blocks made and not yet taken by the caller.
    blocks: Vec<Block>,
    /// Where the nodes made are kept decoded, when given.
    keep: Option<NodeCache>,
}

impl TreeBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Keeps every node made, decoded, in `cache`.
    pub fn keep_nodes(&mut self, cache: NodeCache) {
        self.keep = Some(cache);
    }

    /// Appends a leaf link.
    pub fn push_leaf(&mut self, link: Link) -> ChunkResult<()> {
        self.push(0, link)
    }

    /// Appends the link of a whole subtree of height `level` (0: a leaf).
    /// Gives the tree its leaves would give only while every level below
    /// is empty ([`TreeBuilder::lowest_open`] ≥ `level`).
    pub fn push(&mut self, level: usize, link: Link) -> ChunkResult<()> {
        if self.levels.len() <= level {
            self.levels.resize_with(level + 1, Vec::new);
        }
        self.levels[level].push(link);
        if is_boundary(&link.0) || self.levels[level].len() >= MAX_FANOUT {
            self.close(level)?;
        }
        Ok(())
    }

    /// Appends `count` copies of the subtree `link` of height `level`, in
    /// O(height) steps: runs of equal links make runs of equal nodes.
    pub fn push_repeated(&mut self, level: usize, link: Link, mut count: u64) -> ChunkResult<()> {
        if count == 0 {
            return Ok(());
        }
        if self.levels.len() <= level {
            self.levels.resize_with(level + 1, Vec::new);
        }
        if is_boundary(&link.0) {
            // Each copy closes a node: the pending one, then one of its own.
            self.push(level, link)?;
            return self.push_repeated_nodes(level, &[link], count - 1);
        }
        let room = (MAX_FANOUT - self.levels[level].len()) as u64;
        if count < room {
            self.levels[level].extend(std::iter::repeat_n(link, count as usize));
            return Ok(());
        }
        // Fill the pending node (the last copy closes it), then whole nodes
        // of copies, then the rest stays pending.
        self.levels[level].extend(std::iter::repeat_n(link, room as usize - 1));
        self.push(level, link)?;
        count -= room;
        let fanout = MAX_FANOUT as u64;
        self.push_repeated_nodes(level, &vec![link; MAX_FANOUT], count / fanout)?;
        self.levels[level].extend(std::iter::repeat_n(link, (count % fanout) as usize));
        Ok(())
    }

    /// Pushes `count` nodes of `links` (each closed) one level up.
    fn push_repeated_nodes(&mut self, level: usize, links: &[Link], count: u64) -> ChunkResult<()> {
        if count == 0 {
            return Ok(());
        }
        let size = links.iter().map(|(_, n)| n).sum();
        let block = Node::encode(links)?;
        let cid = *block.cid();
        self.blocks.push(block);
        self.push_repeated(level + 1, (cid, size), count)
    }

    /// The lowest level holding pending links (`usize::MAX` when none): a
    /// subtree of at most this height may be pushed whole.
    pub fn lowest_open(&self) -> usize {
        self.levels
            .iter()
            .position(|l| !l.is_empty())
            .unwrap_or(usize::MAX)
    }

    fn close(&mut self, level: usize) -> ChunkResult<()> {
        let links = std::mem::take(&mut self.levels[level]);
        let size = links.iter().map(|(_, n)| n).sum();
        let block = Node::encode(&links)?;
        let cid = *block.cid();
        self.blocks.push(block);
        if let Some(cache) = &self.keep {
            cache.insert(cid, Arc::new(Node::new(links)));
        }
        self.push(level + 1, (cid, size))
    }

    /// Node blocks made so far, for the caller to store.
    pub fn take_blocks(&mut self) -> Vec<Block> {
        std::mem::take(&mut self.blocks)
    }

    /// Closes every open node; returns the root link (`None` when empty).
    pub fn finish(&mut self) -> ChunkResult<Option<Link>> {
        let mut level = 0;
        while level < self.levels.len() {
            let top = level + 1 == self.levels.len();
            match self.levels[level].len() {
                0 => {}
                1 if top => return Ok(self.levels[level].pop()),
                _ => self.close(level)?,
            }
            level += 1;
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaves(n: u32) -> Vec<Link> {
        (0..n)
            .map(|i| (Cid::hash(Codec::RAW, &i.to_le_bytes()), 1000 + u64::from(i)))
            .collect()
    }

    fn build(links: &[Link]) -> (Option<Link>, Vec<Block>) {
        let mut b = TreeBuilder::new();
        for l in links {
            b.push_leaf(*l).expect("push");
        }
        let root = b.finish().expect("finish");
        (root, b.take_blocks())
    }

    #[test]
    fn one_leaf_is_its_own_root() {
        let l = leaves(1);
        let (root, blocks) = build(&l);
        assert_eq!(root, Some(l[0]));
        assert!(blocks.is_empty());
        assert_eq!(build(&[]).0, None);
    }

    #[test]
    fn sizes_add_up_and_nodes_decode() {
        let l = leaves(5000);
        let (root, blocks) = build(&l);
        let (_, size) = root.expect("root");
        assert_eq!(size, l.iter().map(|(_, n)| n).sum::<u64>());
        for b in &blocks {
            let node = Node::decode(b.cid(), b.data()).expect("decodes");
            assert!(node.links.len() <= MAX_FANOUT);
        }
    }

    #[test]
    fn repeated_links_build_what_one_by_one_pushes_do() {
        let find = |boundary: bool| {
            (0u32..)
                .map(|i| (Cid::hash(Codec::RAW, &i.to_le_bytes()), 4096))
                .find(|l| is_boundary(&l.0) == boundary)
                .expect("a link")
        };
        let fanout = MAX_FANOUT as u64;
        for link in [find(false), find(true)] {
            for pending in [0, 3, MAX_FANOUT as u32 - 1] {
                for count in [
                    0,
                    1,
                    5,
                    fanout - 1,
                    fanout,
                    fanout + 1,
                    3000,
                    fanout * fanout + 7,
                ] {
                    let mut one = TreeBuilder::new();
                    let mut many = TreeBuilder::new();
                    for l in leaves(pending) {
                        one.push_leaf(l).expect("push");
                        many.push_leaf(l).expect("push");
                    }
                    for _ in 0..count {
                        one.push_leaf(link).expect("push");
                    }
                    many.push_repeated(0, link, count).expect("push");
                    let tail = leaves(2);
                    for l in &tail {
                        one.push_leaf(*l).expect("push");
                        many.push_leaf(*l).expect("push");
                    }
                    let case = format!(
                        "boundary {} pending {pending} count {count}",
                        is_boundary(&link.0)
                    );
                    assert_eq!(
                        one.finish().expect("finish"),
                        many.finish().expect("finish"),
                        "{case}"
                    );
                    let made = |b: &mut TreeBuilder| {
                        b.take_blocks()
                            .iter()
                            .map(|b| *b.cid())
                            .collect::<std::collections::HashSet<_>>()
                    };
                    assert_eq!(made(&mut one), made(&mut many), "{case}");
                }
            }
        }
    }

    #[test]
    fn a_changed_leaf_changes_few_nodes() {
        let l = leaves(5000);
        let (_, before) = build(&l);
        let mut changed = l.clone();
        changed[2500] = (Cid::hash(Codec::RAW, b"other"), 77);
        let (_, after) = build(&changed);
        let old: std::collections::HashSet<Cid> = before.iter().map(|b| *b.cid()).collect();
        let new = after.iter().filter(|b| !old.contains(b.cid())).count();
        assert!(new <= 4, "{new} new nodes");
    }
}
