//! Garbage collection: mark from refs, the changelog and pins; sweep the rest.
//!
//! Safety against writers racing a collection in the same process:
//! - roots are read after the collection starts recording new writes, so a
//!   ref moved before that point is seen;
//! - blocks pinned by a live [`crate::WriteSession`] when marking starts are
//!   marked with everything they reach;
//! - every block written after the start, and every block pinned at the
//!   moment of deletion, is spared; deletion happens under the pin lock.
//!
//! Other processes cannot write meanwhile: the store lock makes the
//! collecting process the only writer.

use std::collections::HashSet;
use std::time::Duration;

use crate::bucket::Bucket;
use crate::cbor;
use crate::cid::{Cid, Codec};
use crate::error::{DagError, DagResult};
use crate::refs::now_ns;
use crate::volume::CompactStats;

/// Deletions are issued in batches of this many blocks.
const DELETE_BATCH: usize = 1024;

/// Settings of one collection.
#[derive(Clone, Debug)]
pub struct GcOptions {
    /// Blocks stored more recently than this are kept even if unreachable.
    pub grace: Duration,
    /// Packs whose live fraction falls below this are rewritten.
    pub min_live: f64,
}

impl Default for GcOptions {
    fn default() -> Self {
        GcOptions {
            grace: Duration::from_secs(3600),
            min_live: 0.5,
        }
    }
}

/// What a collection did.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct GcReport {
    /// Distinct roots marked from.
    pub roots: u64,
    /// Blocks found reachable.
    pub marked: u64,
    /// Linked blocks that no volume holds.
    pub missing: u64,
    /// Blocks deleted.
    pub swept_blocks: u64,
    /// Bytes of the deleted blocks.
    pub swept_bytes: u64,
    /// Unreachable blocks kept for being younger than the grace period or pinned.
    pub kept_young: u64,
    /// What pack compaction reclaimed.
    pub compact: CompactStats,
}

impl Bucket {
    /// Collects unreachable blocks older than the grace period.
    pub fn gc(&self, options: &GcOptions) -> DagResult<GcReport> {
        let _one_at_a_time = self.gc_lock();
        let pinned: Vec<Cid> = {
            let mut pins = self.pins();
            pins.written_during_gc = Some(HashSet::new());
            pins.sessions.values().flatten().copied().collect()
        };
        let result = self.mark_and_sweep(options, pinned);
        self.pins().written_during_gc = None;
        result
    }

    fn mark_and_sweep(&self, options: &GcOptions, pinned: Vec<Cid>) -> DagResult<GcReport> {
        let mut report = GcReport::default();
        let mut roots: HashSet<Cid> = pinned.into_iter().collect();
        roots.extend(self.list_refs()?.into_iter().map(|(_, cid)| cid));
        for entry in self.log(None, usize::MAX)? {
            roots.extend(entry.old);
            roots.extend(entry.new);
        }
        report.roots = roots.len() as u64;
        let marked = self.mark(roots, &mut report)?;
        report.marked = marked.len() as u64;

        let cutoff_ms = now_ns() / 1_000_000 - options.grace.as_millis() as i64;
        for volume in self.volumes() {
            let mut candidates = Vec::new();
            volume.for_each_block(&mut |info| {
                if !marked.contains(&info.cid) {
                    if info.stored_ms <= cutoff_ms {
                        candidates.push((info.cid, info.size));
                    } else {
                        report.kept_young += 1;
                    }
                }
            })?;
            for batch in candidates.chunks(DELETE_BATCH) {
                let pins = self.pins();
                let doomed: Vec<Cid> = batch
                    .iter()
                    .filter(|(cid, _)| !pins.protects(cid))
                    .map(|(cid, _)| *cid)
                    .collect();
                report.kept_young += (batch.len() - doomed.len()) as u64;
                let bytes: u64 = batch
                    .iter()
                    .filter(|(cid, _)| !pins.protects(cid))
                    .map(|(_, size)| size)
                    .sum();
                report.swept_blocks += volume.delete_many(&doomed)?;
                report.swept_bytes += bytes;
                drop(pins);
            }
            let compact = volume.compact(options.min_live)?;
            report.compact.packs_rewritten += compact.packs_rewritten;
            report.compact.bytes_copied += compact.bytes_copied;
            report.compact.bytes_reclaimed += compact.bytes_reclaimed;
        }
        Ok(report)
    }

    /// Everything reachable from `roots`. A reachable block that cannot be
    /// read or decoded aborts the collection: what it links to is unknown,
    /// so nothing may be swept.
    fn mark(&self, roots: HashSet<Cid>, report: &mut GcReport) -> DagResult<HashSet<Cid>> {
        let mut marked = HashSet::with_capacity(roots.len() * 4);
        let mut stack: Vec<Cid> = roots.into_iter().collect();
        while let Some(cid) = stack.pop() {
            if !marked.insert(cid) {
                continue;
            }
            if cid.codec() != Codec::DAG_CBOR {
                continue;
            }
            let Some(data) = self.get(&cid)? else {
                report.missing += 1;
                continue;
            };
            let links = cbor::links(&data).map_err(|e| {
                DagError::Other(format!(
                    "gc aborted, nothing swept: block {cid} does not decode: {e}"
                ))
            })?;
            stack.extend(links.into_iter().filter(|l| !marked.contains(l)));
        }
        Ok(marked)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cbor::Ipld;
    use crate::refs::{RefName, RefNote};

    fn node(links: &[Cid]) -> Vec<u8> {
        Ipld::List(links.iter().map(|c| Ipld::Link(*c)).collect()).encode()
    }

    fn now() -> GcOptions {
        GcOptions {
            grace: Duration::ZERO,
            min_live: 0.5,
        }
    }

    #[test]
    fn keeps_reachable_and_history_sweeps_the_rest() {
        let bucket = Bucket::in_memory();
        let name = RefName::new("fs/t").expect("name");
        let leaf1 = bucket.put(Codec::RAW, &b"one"[..]).expect("put");
        let root1 = bucket.put(Codec::DAG_CBOR, node(&[leaf1])).expect("put");
        bucket
            .set_ref(&name, Some(&root1), &RefNote::default())
            .expect("set");
        let leaf2 = bucket.put(Codec::RAW, &b"two"[..]).expect("put");
        let root2 = bucket.put(Codec::DAG_CBOR, node(&[leaf2])).expect("put");
        bucket
            .set_ref(&name, Some(&root2), &RefNote::default())
            .expect("set");
        let garbage = bucket.put(Codec::RAW, &b"garbage"[..]).expect("put");

        let report = bucket.gc(&now()).expect("gc");
        assert_eq!(report.swept_blocks, 1);
        for cid in [leaf1, root1, leaf2, root2] {
            assert!(bucket.has(&cid).expect("has"), "{cid} kept (history)");
        }
        assert!(!bucket.has(&garbage).expect("has"));
    }

    #[test]
    fn grace_keeps_young_blocks() {
        let bucket = Bucket::in_memory();
        let garbage = bucket.put(Codec::RAW, &b"young"[..]).expect("put");
        let report = bucket.gc(&GcOptions::default()).expect("gc");
        assert_eq!(report.swept_blocks, 0);
        assert_eq!(report.kept_young, 1);
        assert!(bucket.has(&garbage).expect("has"));
    }

    #[test]
    fn session_pins_survive_gc() {
        let bucket = Bucket::in_memory();
        let session = bucket.session();
        let leaf = session.put(Codec::RAW, &b"pending"[..]).expect("put");
        bucket.gc(&now()).expect("gc");
        assert!(bucket.has(&leaf).expect("has"));
        drop(session);
        bucket.gc(&now()).expect("gc");
        assert!(!bucket.has(&leaf).expect("has"));
    }

    #[test]
    fn undecodable_reachable_block_aborts() {
        let bucket = Bucket::in_memory();
        let bad = bucket.put(Codec::DAG_CBOR, &b"\xff\xff"[..]).expect("put");
        let name = RefName::new("x").expect("name");
        bucket
            .set_ref(&name, Some(&bad), &RefNote::default())
            .expect("set");
        let garbage = bucket.put(Codec::RAW, &b"g"[..]).expect("put");
        assert!(bucket.gc(&now()).is_err());
        assert!(bucket.has(&garbage).expect("has"));
    }
}
