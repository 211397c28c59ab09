//! Holes: runs of the chunk that repeats through long runs of zeros (and a
//! last, shorter chunk of zeros after one). They cost nothing to store, so
//! a blob's allocated size leaves them out and `SEEK_DATA` / `SEEK_HOLE`
//! skip them a subtree at a time.

use std::collections::HashMap;

use hydra_dag::{Cid, Codec};

use crate::blob::Blob;
use crate::error::ChunkResult;
use crate::params::ChunkParams;
use crate::reader::BlobReader;
use crate::recut::zero_chunk;
use crate::tree::Link;
use crate::walk::{self, Leaf};

impl BlobReader {
    /// Bytes of the blob outside holes: what its content occupies.
    pub fn data_bytes(&mut self, params: ChunkParams) -> ChunkResult<u64> {
        let Blob::Stored { root, size } = self.blob().clone() else {
            return Ok(self.size());
        };
        let zero = zero_chunk(params)?.0;
        let mut seen = HashMap::new();
        let mut holes = self.hole_bytes((root, size), zero, &mut seen)?;
        let last = walk::leaf_at(self, (root, size), size - 1)?;
        if last.link != zero && is_hole(last, size, zero) {
            holes += last.link.1;
        }
        Ok(size - holes)
    }

    /// Bytes in holes under `link` (answers kept in `seen`: equal subtrees
    /// of a long hole are counted once).
    fn hole_bytes(
        &mut self,
        link: Link,
        zero: Link,
        seen: &mut HashMap<Cid, u64>,
    ) -> ChunkResult<u64> {
        if link.0.codec() == Codec::RAW {
            return Ok(if link == zero { link.1 } else { 0 });
        }
        if let Some(&n) = seen.get(&link.0) {
            return Ok(n);
        }
        let node = self.node(&link.0)?;
        let mut n = 0;
        for child in &node.links {
            n += self.hole_bytes(*child, zero, seen)?;
        }
        seen.insert(link.0, n);
        Ok(n)
    }

    /// The first offset at or after `offset` that holds data, if any.
    pub fn next_data(&mut self, offset: u64, params: ChunkParams) -> ChunkResult<Option<u64>> {
        let Blob::Stored { root, size } = self.blob().clone() else {
            return Ok((offset < self.size()).then_some(offset));
        };
        let zero = zero_chunk(params)?.0;
        let mut pos = offset;
        while pos < size {
            let leaf = walk::leaf_at(self, (root, size), pos)?;
            if !is_hole(leaf, size, zero) {
                return Ok(Some(pos));
            }
            if leaf.link != zero {
                // The last chunk, of zeros: the hole the blob ends with.
                return Ok(None);
            }
            pos = leaf.start + walk::run_of(self, (root, size), leaf.start, zero)?;
        }
        Ok(None)
    }

    /// Where the first hole at or after `offset` starts: `offset` itself
    /// inside one, the size (the hole every file ends with) if none.
    pub fn next_hole(&mut self, offset: u64, params: ChunkParams) -> ChunkResult<u64> {
        let Blob::Stored { root, size } = self.blob().clone() else {
            return Ok(self.size().max(offset));
        };
        let zero = zero_chunk(params)?.0;
        let mut pos = offset;
        while pos < size {
            let leaf = walk::leaf_at(self, (root, size), pos)?;
            if is_hole(leaf, size, zero) {
                return Ok(pos);
            }
            pos = leaf.end();
        }
        Ok(size.max(offset))
    }
}

/// Whether `leaf` of a blob of `size` bytes is a hole: the zero chunk, or
/// the blob's last chunk, shorter, of nothing but zeros.
fn is_hole(leaf: Leaf, size: u64, zero: Link) -> bool {
    leaf.link == zero
        || (leaf.end() == size
            && leaf.link.1 < zero.1
            && leaf.link.0 == Cid::hash(Codec::RAW, &vec![0; leaf.link.1 as usize]))
}
