//! The prolly tree: an ordered map of byte keys to byte values on blocks.
//!
//! Reads descend from the root in O(depth). A batch of changes rewrites
//! only the nodes it touches: at each level, starting from the node that
//! holds the first change, entries are merged with the changes and cut
//! again, moving right until a cut falls where an old node ended and no
//! change is left in the next node; from there the old nodes stand. The
//! nodes removed and added become the changes of the level above.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;
use hydra_chunker::{Blob, BlobReader, ChunkParams, INLINE_MAX, put_shared};
use hydra_dag::{Block, Bucket, Cid, WriteSession};

use crate::cache::NodeCache;
use crate::error::{KvError, KvResult};
use crate::node::{Chunker, Item, Node};

/// Longest key accepted.
pub const MAX_KEY: usize = 4096;

/// One change: a new value, or `None` to delete.
pub type Edit = Option<Bytes>;

/// A snapshot of a tree (its root), with a cache of decoded nodes shared
/// by the trees derived from it.
#[derive(Debug, Clone)]
pub struct Tree {
    bucket: Bucket,
    root: Option<Cid>,
    inner: Arc<Mutex<NodeCache>>,
    /// Whether nodes a change makes go into the cache too (a cache of the
    /// tree's own; the process's shared one keeps only nodes read).
    keep_made: bool,
}

/// Bytes of decoded nodes a tree keeps by default.
pub const NODE_CACHE: usize = 256 << 20;

/// The smallest key after every key that starts with `prefix` (`None`
/// when there is none: the prefix is all 0xff bytes, or empty).
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut e = prefix.to_vec();
    while let Some(last) = e.pop() {
        if last < 0xff {
            e.push(last + 1);
            return Some(e);
        }
    }
    None
}

/// Checks a key's length.
pub fn check_key(key: &[u8]) -> KvResult<()> {
    if key.len() > MAX_KEY {
        return Err(KvError::KeyTooLong {
            len: key.len(),
            max: MAX_KEY,
        });
    }
    Ok(())
}

impl Tree {
    /// The tree rooted at `root` (`None`: empty), sharing the process's
    /// cache of decoded nodes ([`NODE_CACHE`] bytes; a node is named by its
    /// content, so trees of any bucket can share it).
    pub fn new(bucket: Bucket, root: Option<Cid>) -> Tree {
        static SHARED: OnceLock<Arc<Mutex<NodeCache>>> = OnceLock::new();
        let inner = SHARED
            .get_or_init(|| Arc::new(Mutex::new(NodeCache::new(NODE_CACHE))))
            .clone();
        Tree {
            bucket,
            root,
            inner,
            keep_made: false,
        }
    }

    /// The tree rooted at `root`, with a cache of its own of up to
    /// `cache_bytes` of decoded nodes.
    pub fn with_cache(bucket: Bucket, root: Option<Cid>, cache_bytes: usize) -> Tree {
        Tree {
            bucket,
            root,
            inner: Arc::new(Mutex::new(NodeCache::new(cache_bytes))),
            keep_made: cache_bytes > 0,
        }
    }

    /// The tree rooted at `root` in the same bucket, sharing this tree's
    /// cache of decoded nodes.
    pub fn at(&self, root: Option<Cid>) -> Tree {
        Tree {
            bucket: self.bucket.clone(),
            root,
            inner: self.inner.clone(),
            keep_made: self.keep_made,
        }
    }

    /// The root (`None` for the empty tree).
    pub fn root(&self) -> Option<Cid> {
        self.root
    }

    /// The bucket the tree lives in.
    pub fn bucket(&self) -> &Bucket {
        &self.bucket
    }

    /// The decoded node `cid` (from the cache when it was read lately).
    pub fn node(&self, cid: &Cid) -> KvResult<Arc<Node>> {
        if let Some(n) = self.cache().get(cid) {
            return Ok(n);
        }
        let data = self.bucket.require(cid)?;
        let block_len = data.len();
        let node = Arc::new(Node::decode(cid, data)?);
        let size = block_len + node.decoded_size();
        self.cache().put(*cid, node.clone(), size);
        Ok(node)
    }

    /// Keeps a node a change made in the cache: the next change of the
    /// tree reads it again.
    fn keep(&self, block: &Block, node: Node) {
        if !self.keep_made {
            return;
        }
        let size = block.len() + node.decoded_size();
        self.cache().put(*block.cid(), Arc::new(node), size);
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, NodeCache> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The bytes of a value item.
    pub fn value(&self, item: &Item) -> KvResult<Bytes> {
        match item {
            Item::Value(v) | Item::Cbor(v) => Ok(v.clone()),
            Item::Blob(root) => {
                let mut r = BlobReader::open(self.bucket.clone(), *root)?;
                let size = r.size() as usize;
                Ok(Bytes::from(r.read_at(0, size)?))
            }
            Item::Child(_) => Err(KvError::Invalid("a child link is not a value")),
        }
    }

    /// The value of `key`.
    pub fn get(&self, key: &[u8]) -> KvResult<Option<Bytes>> {
        match self.get_item(key)? {
            Some(Item::Value(v)) => Ok(Some(v)),
            Some(item) => Ok(Some(self.value(&item)?)),
            None => Ok(None),
        }
    }

    /// The item `key` maps to (a large value stays a link to its blob).
    pub fn get_item(&self, key: &[u8]) -> KvResult<Option<Item>> {
        let Some(mut cid) = self.root else {
            return Ok(None);
        };
        loop {
            let node = self.node(&cid)?;
            if node.level == 0 {
                return Ok(node.search(key).ok().map(|i| node.items[i].clone()));
            }
            match &node.items[node.child_index(key)] {
                Item::Child(c) => cid = *c,
                _ => return Err(corrupt(&cid, "an inner node holds a value")),
            }
        }
    }

    /// Calls `f(key, item)` for entries in `[from, to)` in key order (or
    /// reverse), until it returns false. Values stay items: large ones are
    /// read only when asked for ([`Tree::value`]).
    pub fn scan(
        &self,
        from: Bound<&[u8]>,
        to: Bound<&[u8]>,
        reverse: bool,
        f: &mut dyn FnMut(&Bytes, &Item) -> KvResult<bool>,
    ) -> KvResult<()> {
        if let Some(root) = self.root {
            self.scan_node(&root, from, to, reverse, f)?;
        }
        Ok(())
    }

    /// Returns false when `f` asked to stop.
    fn scan_node(
        &self,
        cid: &Cid,
        from: Bound<&[u8]>,
        to: Bound<&[u8]>,
        reverse: bool,
        f: &mut dyn FnMut(&Bytes, &Item) -> KvResult<bool>,
    ) -> KvResult<bool> {
        let node = self.node(cid)?;
        let n = node.keys.len();
        let after_start = |k: &[u8]| match from {
            Bound::Included(s) => k >= s,
            Bound::Excluded(s) => k > s,
            Bound::Unbounded => true,
        };
        let before_end = |k: &[u8]| match to {
            Bound::Included(e) => k <= e,
            Bound::Excluded(e) => k < e,
            Bound::Unbounded => true,
        };
        let order: Box<dyn Iterator<Item = usize>> = if reverse {
            Box::new((0..n).rev())
        } else {
            Box::new(0..n)
        };
        for i in order {
            if node.level == 0 {
                let k = &node.keys[i];
                if after_start(k) && before_end(k) && !f(k, &node.items[i])? {
                    return Ok(false);
                }
                continue;
            }
            // Child i holds keys in [keys[i], keys[i+1]): skip it when
            // that range lies wholly past the end or before the start.
            if !before_end(&node.keys[i]) {
                continue;
            }
            if let (Some(next), Bound::Included(s) | Bound::Excluded(s)) =
                (node.keys.get(i + 1), from)
                && next.as_ref() <= s
            {
                continue;
            }
            let Item::Child(child) = &node.items[i] else {
                return Err(corrupt(cid, "an inner node holds a value"));
            };
            if !self.scan_node(child, from, to, reverse, f)? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Applies `edits` (sorted by key) and stores the changed nodes through
    /// `session`; returns the new tree.
    pub fn apply(&self, session: &WriteSession, edits: BTreeMap<Bytes, Edit>) -> KvResult<Tree> {
        let mut changes = BTreeMap::new();
        for (k, v) in edits {
            check_key(&k)?;
            let item = match v {
                None => None,
                Some(v) if v.len() <= INLINE_MAX => Some(Item::Value(v)),
                Some(v) => match put_shared(session, ChunkParams::default(), v)?.0 {
                    Blob::Stored { root, .. } => Some(Item::Blob(root)),
                    Blob::Inline(data) => Some(Item::Value(data)),
                },
            };
            changes.insert(k, item);
        }
        self.apply_items(session, changes)
    }

    /// Applies changes given as items (`None` deletes): a leaf item as it
    /// is to be stored, whose blocks (a blob's) the caller has stored.
    pub fn apply_items(
        &self,
        session: &WriteSession,
        changes: BTreeMap<Bytes, Option<Item>>,
    ) -> KvResult<Tree> {
        let mut blocks = Vec::new();
        let tree = self.apply_unstored(changes, &mut blocks)?;
        session.put_blocks(&blocks)?;
        Ok(tree)
    }

    /// [`Tree::apply_items`] without storing: the new nodes are appended
    /// to `blocks` for the caller to store (with blocks of its own, in one
    /// batch) before anything refers to the new root.
    pub fn apply_unstored(
        &self,
        changes: BTreeMap<Bytes, Option<Item>>,
        blocks: &mut Vec<Block>,
    ) -> KvResult<Tree> {
        for (k, item) in &changes {
            check_key(k)?;
            if let Some(Item::Child(_)) = item {
                return Err(KvError::Invalid("a leaf holds no child links"));
            }
        }
        let root = self.rebuild(changes.into_iter().collect(), blocks)?;
        Ok(self.at(root))
    }

    /// The new root after `changes`; new nodes go to `blocks`.
    fn rebuild(
        &self,
        mut changes: Vec<(Bytes, Option<Item>)>,
        blocks: &mut Vec<Block>,
    ) -> KvResult<Option<Cid>> {
        let Some(root) = self.root else {
            let entries = changes
                .into_iter()
                .filter_map(|(k, i)| Some((k, i?)))
                .collect();
            return build_up(0, entries, blocks, Some(self));
        };
        let top = self.node(&root)?.level;
        for level in 0..top {
            if changes.is_empty() {
                return Ok(Some(root));
            }
            changes = self.rebuild_level(root, level, &changes, blocks)?;
        }
        if changes.is_empty() {
            return Ok(Some(root));
        }
        // The root's own level: merge, then cut and build up as needed.
        let node = self.node(&root)?;
        let entries = merge(&node, &changes);
        let Some(mut new_root) = build_up(top, entries, blocks, Some(self))? else {
            return Ok(None);
        };
        // Shrinking: a root with one child is that child, all the way down.
        loop {
            let kept = self.cache().get(&new_root);
            let node = match (kept, blocks.iter().find(|b| b.cid() == &new_root)) {
                (Some(node), _) => node,
                (None, Some(b)) => Arc::new(Node::decode(b.cid(), b.data().clone())?),
                (None, None) => self.node(&new_root)?,
            };
            match (node.level, node.items.as_slice()) {
                (1.., [Item::Child(only)]) => new_root = *only,
                _ => return Ok(Some(new_root)),
            }
        }
    }

    /// Rewrites the level-`level` nodes `changes` touch; returns the
    /// changes for the level above.
    fn rebuild_level(
        &self,
        root: Cid,
        level: u8,
        changes: &[(Bytes, Option<Item>)],
        blocks: &mut Vec<Block>,
    ) -> KvResult<Vec<(Bytes, Option<Item>)>> {
        let mut up: BTreeMap<Bytes, Option<Item>> = BTreeMap::new();
        let mut next = 0; // first change not yet applied
        while next < changes.len() {
            let mut cur = Cursor::at(self, root, level, &changes[next].0)?;
            let mut chunker = Chunker::new(level);
            loop {
                let node = cur.current.clone();
                let end = cur.next_first_key();
                // This node's changes: up to the next node's first key.
                let stop = match &end {
                    Some(e) => next + changes[next..].partition_point(|(k, _)| k < e),
                    None => changes.len(),
                };
                up.insert(node.keys[0].clone(), None);
                for (k, i) in merge(&node, &changes[next..stop]) {
                    if let Some(done) = chunker.push(k, i) {
                        emit(done, blocks, &mut up, Some(self))?;
                    }
                }
                next = stop;
                if !cur.advance(self)? {
                    if let Some(done) = chunker.take() {
                        emit(done, blocks, &mut up, Some(self))?;
                    }
                    break;
                }
                let more_here = end
                    .as_ref()
                    .is_some_and(|_| next < changes.len() && cur.holds(&changes[next].0));
                if chunker.is_empty() && !more_here {
                    break;
                }
            }
        }
        Ok(up.into_iter().collect())
    }
}

fn corrupt(cid: &Cid, reason: &str) -> KvError {
    KvError::Corrupt {
        cid: *cid,
        reason: reason.to_string(),
    }
}

/// Stores a finished node and records it for the level above.
fn emit(
    node: Node,
    blocks: &mut Vec<Block>,
    up: &mut BTreeMap<Bytes, Option<Item>>,
    cache: Option<&Tree>,
) -> KvResult<()> {
    let block = node.to_block()?;
    up.insert(node.keys[0].clone(), Some(Item::Child(*block.cid())));
    if let Some(tree) = cache {
        tree.keep(&block, node);
    }
    blocks.push(block);
    Ok(())
}

/// A node's entries with sorted `changes` applied.
fn merge(node: &Node, changes: &[(Bytes, Option<Item>)]) -> Vec<(Bytes, Item)> {
    let mut out = Vec::with_capacity(node.keys.len() + changes.len());
    let (mut i, mut j) = (0, 0);
    while i < node.keys.len() || j < changes.len() {
        let take_change = match (node.keys.get(i), changes.get(j)) {
            (Some(k), Some((c, _))) => c <= k,
            (None, Some(_)) => true,
            _ => false,
        };
        if take_change {
            let (k, item) = &changes[j];
            if node.keys.get(i) == Some(k) {
                i += 1; // replaced or deleted
            }
            if let Some(item) = item {
                out.push((k.clone(), item.clone()));
            }
            j += 1;
        } else {
            out.push((node.keys[i].clone(), node.items[i].clone()));
            i += 1;
        }
    }
    out
}

/// Cuts `entries` of `level` into nodes and the levels above until one
/// node is left; returns its CID (`None` when there are no entries).
/// Builds the tree of `entries` (sorted by key, keys distinct) without
/// storing it: its root (`None` when empty) and its blocks, root last.
/// Items are kept as given (no value becomes a blob here).
pub fn build(entries: Vec<(Bytes, Item)>) -> KvResult<(Option<Cid>, Vec<Block>)> {
    if entries.windows(2).any(|w| w[0].0 >= w[1].0) {
        return Err(KvError::Invalid("entries out of order or repeated"));
    }
    for (k, item) in &entries {
        check_key(k)?;
        match item {
            Item::Cbor(v) if v.first().is_none_or(|b| b >> 5 == 2) => {
                return Err(KvError::Invalid("a CBOR item must not be a byte string"));
            }
            Item::Child(_) => return Err(KvError::Invalid("a leaf holds no child links")),
            _ => {}
        }
    }
    let mut blocks = Vec::new();
    let root = build_up(0, entries, &mut blocks, None)?;
    Ok((root, blocks))
}

fn build_up(
    mut level: u8,
    mut entries: Vec<(Bytes, Item)>,
    blocks: &mut Vec<Block>,
    cache: Option<&Tree>,
) -> KvResult<Option<Cid>> {
    loop {
        if entries.is_empty() {
            return Ok(None);
        }
        // A root with one child is that child (a fresh build stops there).
        if level > 0
            && entries.len() == 1
            && let Item::Child(c) = entries[0].1
        {
            return Ok(Some(c));
        }
        let mut chunker = Chunker::new(level);
        let mut nodes = Vec::new();
        for (k, i) in entries {
            nodes.extend(chunker.push(k, i));
        }
        nodes.extend(chunker.take());
        let single = nodes.len() == 1;
        let mut above = Vec::with_capacity(nodes.len());
        for node in nodes {
            let block = node.to_block()?;
            above.push((node.keys[0].clone(), Item::Child(*block.cid())));
            if let Some(tree) = cache {
                tree.keep(&block, node);
            }
            blocks.push(block);
        }
        if single {
            return Ok(blocks.last().map(|b| *b.cid()));
        }
        entries = above;
        level += 1;
    }
}

/// A position at one level of a tree: the path from the root down to the
/// parent of the current node, with the child index taken at each step.
struct Cursor {
    level: u8,
    path: Vec<(Cid, Arc<Node>, usize)>,
    current: Arc<Node>,
}

impl Cursor {
    /// The level-`level` node whose range holds `key` (below the root).
    fn at(tree: &Tree, root: Cid, level: u8, key: &[u8]) -> KvResult<Cursor> {
        let mut cid = root;
        let mut node = tree.node(&cid)?;
        let mut path = Vec::new();
        while node.level > level {
            let i = node.child_index(key);
            let Item::Child(c) = node.items[i] else {
                return Err(corrupt(&cid, "an inner node holds a value"));
            };
            let child = tree.node(&c)?;
            path.push((cid, node, i));
            cid = c;
            node = child;
        }
        Ok(Cursor {
            level,
            path,
            current: node,
        })
    }

    /// The first key of the next node at this level (from the parents).
    fn next_first_key(&self) -> Option<Bytes> {
        self.path
            .iter()
            .rev()
            .find(|(_, n, i)| i + 1 < n.keys.len())
            .map(|(_, n, i)| n.keys[i + 1].clone())
    }

    /// Whether `key` falls in the current node's range (it is at or past
    /// its first key and before the next node's).
    fn holds(&self, key: &[u8]) -> bool {
        key >= self.current.keys[0].as_ref()
            && self.next_first_key().is_none_or(|e| key < e.as_ref())
    }

    /// Moves to the next node at this level; false at the end.
    fn advance(&mut self, tree: &Tree) -> KvResult<bool> {
        while let Some((_, n, i)) = self.path.last_mut() {
            if *i + 1 < n.keys.len() {
                *i += 1;
                break;
            }
            self.path.pop();
        }
        if self.path.is_empty() {
            return Ok(false);
        }
        loop {
            let Some((parent, n, i)) = self.path.last() else {
                return Ok(false);
            };
            let Item::Child(c) = n.items[*i] else {
                return Err(corrupt(parent, "an inner node holds a value"));
            };
            let child = tree.node(&c)?;
            if child.level == self.level {
                self.current = child;
                return Ok(true);
            }
            self.path.push((c, child, 0));
        }
    }
}
