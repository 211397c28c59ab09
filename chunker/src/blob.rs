//! Blobs: byte strings stored as a chunk tree, or inline when tiny.

use bytes::Bytes;
use hydra_dag::{Cid, Codec};

/// Content up to this size is kept inline in its parent, not as a block.
pub const INLINE_MAX: usize = 1024;

/// A stored byte string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Blob {
    /// Small content carried by value (it lives in the parent node).
    Inline(Bytes),
    /// Content in blocks: one raw chunk, or a tree of them.
    Stored {
        /// A raw chunk (single-chunk blob) or a DAG-CBOR tree node.
        root: Cid,
        /// Total bytes.
        size: u64,
    },
}

impl Blob {
    /// The empty blob.
    pub fn empty() -> Blob {
        Blob::Inline(Bytes::new())
    }

    /// Length in bytes.
    pub fn size(&self) -> u64 {
        match self {
            Blob::Inline(b) => b.len() as u64,
            Blob::Stored { size, .. } => *size,
        }
    }

    /// The root CID, when stored in blocks.
    pub fn root(&self) -> Option<&Cid> {
        match self {
            Blob::Inline(_) => None,
            Blob::Stored { root, .. } => Some(root),
        }
    }

    /// Whether the root is a tree node (rather than a single chunk).
    pub fn is_tree(&self) -> bool {
        self.root().is_some_and(|c| c.codec() == Codec::DAG_CBOR)
    }
}

/// What writing or inspecting a blob found.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct BlobStats {
    /// Bytes of content.
    pub logical_bytes: u64,
    /// Chunks (leaves), counting repeats.
    pub chunks: u64,
    /// Distinct chunks.
    pub unique_chunks: u64,
    /// Bytes of the distinct chunks: what the content costs to store.
    pub unique_bytes: u64,
    /// Tree nodes.
    pub nodes: u64,
    /// Tree depth (0 for a single chunk or inline content).
    pub depth: u32,
}
