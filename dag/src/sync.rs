//! Copying refs between stores: the blocks a ref needs that the
//! destination lacks, then the ref itself.

use std::collections::HashSet;

use crate::block::Block;
use crate::bucket::Bucket;
use crate::cbor;
use crate::cid::{Cid, Codec};
use crate::error::{DagError, DagResult};
use crate::refs::{RefName, RefNote};

/// Blocks are copied in batches of about this many bytes.
const BATCH_BYTES: usize = 16 << 20;

/// What [`sync`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct SyncReport {
    /// Refs set in the destination.
    pub refs: u64,
    /// Blocks reachable from them.
    pub blocks: u64,
    /// Blocks the destination lacked and got.
    pub copied: u64,
    /// Their bytes.
    pub copied_bytes: u64,
    /// Changelog entries copied with their signatures.
    pub entries: u64,
}

/// Copies `names` (every ref when empty) from `src` to `dst`: the blocks
/// each needs that `dst` lacks, then the ref, moved by compare-and-swap
/// from whatever `dst` holds (so `dst` ends as a mirror of those refs).
pub fn sync(src: &Bucket, dst: &Bucket, names: &[RefName], message: &str) -> DagResult<SyncReport> {
    let refs: Vec<(RefName, Cid)> = if names.is_empty() {
        src.list_refs()?
    } else {
        names
            .iter()
            .map(|n| {
                src.get_ref(n)?
                    .map(|c| (n.clone(), c))
                    .ok_or_else(|| DagError::Other(format!("the source has no ref {n}")))
            })
            .collect::<DagResult<_>>()?
    };
    let mut report = SyncReport::default();
    let session = dst.session();
    let mut seen = HashSet::new();
    let mut stack: Vec<Cid> = refs.iter().map(|(_, c)| *c).collect();
    let mut batch: Vec<Block> = Vec::new();
    let mut pending = 0;
    while let Some(cid) = stack.pop() {
        if !seen.insert(cid) {
            continue;
        }
        report.blocks += 1;
        let data = if dst.has(&cid)? {
            if cid.codec() != Codec::DAG_CBOR {
                continue;
            }
            dst.require(&cid)?
        } else {
            let data = src.require(&cid)?;
            report.copied += 1;
            report.copied_bytes += data.len() as u64;
            pending += data.len();
            batch.push(Block::trusted(cid, data.clone()));
            if pending >= BATCH_BYTES {
                session.put_blocks(&batch)?;
                batch.clear();
                pending = 0;
            }
            data
        };
        if cid.codec() == Codec::DAG_CBOR {
            let links = cbor::links(&data)
                .map_err(|e| DagError::Other(format!("block {cid} does not decode: {e}")))?;
            stack.extend(links.into_iter().filter(|l| !seen.contains(l)));
        }
    }
    session.put_blocks(&batch)?;
    let note = RefNote::by_current_user(message);
    for (name, root) in refs {
        let current = dst.get_ref(&name)?;
        if current != Some(root) {
            match history(src, &name, current, root)? {
                // The source's own entries, with their times, authors and
                // signatures, replayed in order.
                Some(entries) => {
                    for e in entries {
                        let copied = RefNote {
                            author: e.author.clone(),
                            message: e.message.clone(),
                            time_ns: Some(e.time_ns),
                            signature: e.signature,
                        };
                        dst.cas_ref(&name, e.old.as_ref(), e.new.as_ref(), &copied)?;
                        report.entries += 1;
                    }
                }
                // Histories that parted: one move, signed here.
                None => {
                    dst.cas_ref(&name, current.as_ref(), Some(&root), &note)?;
                }
            }
        }
        report.refs += 1;
    }
    Ok(report)
}

/// The source's changelog entries leading `name` from `from` to `to`,
/// oldest first; `None` when its log holds no such unbroken chain.
fn history(
    src: &Bucket,
    name: &RefName,
    from: Option<Cid>,
    to: Cid,
) -> DagResult<Option<Vec<crate::refs::LogEntry>>> {
    let mut chain = Vec::new();
    let mut want = Some(to);
    for entry in src.log(Some(name), usize::MAX)? {
        if entry.new != want {
            // An entry off the chain (the ref moved back and forth).
            continue;
        }
        want = entry.old;
        chain.push(entry);
        if want == from {
            chain.reverse();
            return Ok(Some(chain));
        }
    }
    Ok(None)
}
