//! Blocks: bytes together with the CID they hash to.

use bytes::Bytes;

use crate::cid::{Cid, Codec};
use crate::error::{DagError, DagResult};

/// The largest block hydra stores or accepts: 1 MiB.
pub const MAX_BLOCK_SIZE: usize = 1 << 20;

/// A block: immutable bytes and their CID.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Block {
    cid: Cid,
    data: Bytes,
}

impl Block {
    /// Hashes `data` into a new block under `codec`.
    pub fn new(codec: Codec, data: impl Into<Bytes>) -> DagResult<Block> {
        let data = data.into();
        check_size(data.len())?;
        Ok(Block {
            cid: Cid::hash(codec, &data),
            data,
        })
    }

    /// Pairs bytes with a CID after checking that they match.
    pub fn verified(cid: Cid, data: impl Into<Bytes>) -> DagResult<Block> {
        let data = data.into();
        check_size(data.len())?;
        cid.verify(&data)?;
        Ok(Block { cid, data })
    }

    /// Pairs bytes with a CID the caller has already checked (or computed).
    pub fn trusted(cid: Cid, data: Bytes) -> Block {
        Block { cid, data }
    }

    /// The CID.
    pub fn cid(&self) -> &Cid {
        &self.cid
    }

    /// The bytes.
    pub fn data(&self) -> &Bytes {
        &self.data
    }

    /// The size in bytes.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// Whether the block has no bytes.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
}

fn check_size(size: usize) -> DagResult<()> {
    if size > MAX_BLOCK_SIZE {
        return Err(DagError::BlockTooLarge {
            size,
            max: MAX_BLOCK_SIZE,
        });
    }
    Ok(())
}
