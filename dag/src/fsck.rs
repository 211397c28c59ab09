//! Consistency checks: every block a ref reaches, read from every volume
//! that should hold it (past caches) and verified; and repair of bad
//! copies from a good one on another volume.

use std::collections::HashSet;

use crate::block::Block;
use crate::bucket::Bucket;
use crate::cbor;
use crate::cid::{Cid, Codec};
use crate::error::{DagError, DagResult};
use crate::refs::RefName;

/// One bad copy of a block.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct BadCopy {
    /// The block.
    pub cid: Cid,
    /// The volume's position in the bucket (0: the primary).
    pub volume: usize,
    /// `missing` or `corrupt`.
    pub problem: &'static str,
    /// Whether another volume holds a good copy to repair it from.
    pub repairable: bool,
}

/// What a check found (and a repair did).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct FsckReport {
    /// Roots checked from.
    pub roots: u64,
    /// Distinct blocks checked.
    pub blocks: u64,
    /// Bytes of the good copies read.
    pub bytes: u64,
    /// Every bad copy.
    pub bad: Vec<BadCopy>,
    /// Bad copies replaced by good ones (repair only).
    pub repaired: u64,
}

impl FsckReport {
    /// Whether every block was found intact everywhere it should be.
    pub fn is_clean(&self) -> bool {
        self.bad.is_empty()
    }

    /// Bad copies that no volume can replace.
    pub fn unrepairable(&self) -> usize {
        self.bad.iter().filter(|b| !b.repairable).count()
    }
}

impl Bucket {
    /// Checks every block reachable from `only` (or from every ref and
    /// every root in the changelog), on each of the first `replication`
    /// volumes; with `repair`, rewrites each bad copy from a good one.
    pub fn fsck(&self, only: Option<&RefName>, repair: bool) -> DagResult<FsckReport> {
        let mut report = FsckReport::default();
        let mut roots: Vec<Cid> = Vec::new();
        match only {
            Some(name) => {
                let root = self
                    .get_ref(name)?
                    .ok_or_else(|| DagError::Other(format!("no ref {name}")))?;
                roots.push(root);
            }
            None => {
                roots.extend(self.list_refs()?.into_iter().map(|(_, c)| c));
                for entry in self.log(None, usize::MAX)? {
                    roots.extend(entry.old);
                    roots.extend(entry.new);
                }
            }
        }
        report.roots = roots.iter().collect::<HashSet<_>>().len() as u64;
        let holders = &self.volumes()[..self.policy().replication];
        let mut stack = roots;
        let mut seen = HashSet::new();
        while let Some(cid) = stack.pop() {
            if !seen.insert(cid) {
                continue;
            }
            report.blocks += 1;
            let mut good = None;
            let mut bad = Vec::new();
            for (i, volume) in holders.iter().enumerate() {
                match volume.get_uncached(&cid) {
                    Ok(Some(data)) => {
                        good.get_or_insert(data);
                    }
                    Ok(None) => bad.push((i, "missing")),
                    Err(DagError::Integrity { .. }) => bad.push((i, "corrupt")),
                    Err(e) => return Err(e),
                }
            }
            // A copy on a volume beyond the replication factor can serve too.
            if good.is_none() {
                for volume in &self.volumes()[holders.len()..] {
                    if let Ok(Some(data)) = volume.get_uncached(&cid) {
                        good = Some(data);
                        break;
                    }
                }
            }
            for (volume, problem) in bad {
                let mut repairable = good.is_some();
                if repair && let Some(data) = &good {
                    let v = &self.volumes()[volume];
                    v.delete_many(std::slice::from_ref(&cid))?;
                    v.put_many(&[Block::trusted(cid, data.clone())])?;
                    if v.get_uncached(&cid)?.is_some() {
                        report.repaired += 1;
                    } else {
                        repairable = false;
                    }
                }
                report.bad.push(BadCopy {
                    cid,
                    volume,
                    problem,
                    repairable,
                });
            }
            let Some(data) = good else { continue };
            report.bytes += data.len() as u64;
            if cid.codec() == Codec::DAG_CBOR {
                let links = cbor::links(&data).map_err(|e| {
                    DagError::Other(format!("block {cid} verifies but does not decode: {e}"))
                })?;
                stack.extend(links.into_iter().filter(|l| !seen.contains(l)));
            }
        }
        Ok(report)
    }
}
