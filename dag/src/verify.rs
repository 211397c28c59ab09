//! A decorator that checks every block read against its CID.

use std::sync::Arc;

use bytes::Bytes;

use crate::cid::Cid;
use crate::error::DagResult;
use crate::volume::{Volume, forward_volume_metadata, forward_writes};

/// Verifies every block it returns; a mismatch is [`crate::DagError::Integrity`].
#[derive(Debug)]
pub struct VerifiedVolume {
    inner: Arc<dyn Volume>,
}

impl VerifiedVolume {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn Volume>) -> Self {
        VerifiedVolume { inner }
    }
}

impl Volume for VerifiedVolume {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn get(&self, cid: &Cid) -> DagResult<Option<Bytes>> {
        let data = self.inner.get(cid)?;
        if let Some(data) = &data {
            cid.verify(data)?;
        }
        Ok(data)
    }

    fn get_uncached(&self, cid: &Cid) -> DagResult<Option<Bytes>> {
        let data = self.inner.get_uncached(cid)?;
        if let Some(data) = &data {
            cid.verify(data)?;
        }
        Ok(data)
    }

    fn get_into(&self, cid: &Cid, out: &mut [u8]) -> DagResult<Option<usize>> {
        let found = self.inner.get_into(cid, out)?;
        if found == Some(out.len()) {
            cid.verify(out)?;
        }
        Ok(found)
    }

    fn get_many(&self, cids: &[Cid]) -> DagResult<Vec<Option<Bytes>>> {
        let found = self.inner.get_many(cids)?;
        for (cid, data) in cids.iter().zip(&found) {
            if let Some(data) = data {
                cid.verify(data)?;
            }
        }
        Ok(found)
    }

    fn has(&self, cid: &Cid) -> DagResult<bool> {
        self.inner.has(cid)
    }

    forward_writes!();

    fn delete_many(&self, cids: &[Cid]) -> DagResult<u64> {
        self.inner.delete_many(cids)
    }

    forward_volume_metadata!();
}
