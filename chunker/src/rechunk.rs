//! Cutting in-memory content again after edits: only around the bytes
//! that changed, reusing the chunks of the version stored before.
//!
//! A cut point depends only on the bytes from its chunk's start to the
//! byte after it, and every chunk starts where the one before it ended. So
//! the chunks before the first changed byte stay as they were, and once a
//! cut after the changes falls where an old one did, the old chunks go on
//! from there for as long as their bytes are unchanged.

use bytes::Bytes;
use hydra_dag::{Block, Cid, Codec};

use crate::blob::{Blob, INLINE_MAX};
use crate::cut::Scanned;
use crate::error::ChunkResult;
use crate::params::ChunkParams;
use crate::tree::{Link, TreeBuilder};

/// The chunks of a version of in-memory content as stored, and which of
/// its bytes changed since.
#[derive(Debug, Clone, Default)]
pub struct Prior {
    /// The stored version's chunks, in order.
    leaves: Vec<Link>,
    /// The stored version's length.
    len: u64,
    /// Bytes `[from, to)` may have changed since (empty when `from >= to`).
    from: u64,
    to: u64,
}

impl Prior {
    /// Notes that bytes `[from, to)` changed (written, or cut off or added
    /// at the end).
    pub fn changed(&mut self, from: u64, to: u64) {
        if self.from >= self.to {
            (self.from, self.to) = (from, to);
        } else {
            self.from = self.from.min(from);
            self.to = self.to.max(to);
        }
    }
}

/// Cuts and hashes in-memory content into blocks without storing them,
/// reusing the chunks of `prior` (the version stored before, with its
/// changes noted) that the changes left alone; returns the blob, the new
/// blocks, and what the next edit of `data` reuses. Same blob as cutting
/// all of `data` afresh (`prior` `None`, as [`crate::chunk_blocks`] does).
pub fn chunk_changed(
    params: ChunkParams,
    data: Bytes,
    prior: Option<&Prior>,
) -> ChunkResult<(Blob, Vec<Block>, Prior)> {
    let n = data.len() as u64;
    let mut next = Prior {
        len: n,
        ..Prior::default()
    };
    if data.len() <= INLINE_MAX {
        return Ok((Blob::Inline(data), Vec::new(), next));
    }
    let empty = Prior::default();
    let prior = prior.unwrap_or(&empty);
    let (changed_from, changed_to) = if prior.from < prior.to {
        (prior.from, prior.to)
    } else {
        (u64::MAX, 0)
    };
    // Old bytes sit at their old offsets, outside the changes, up to here.
    let same_until = prior.len.min(n);
    // An old chunk [start, end) stands while the bytes it depends on (the
    // one after it too) are unchanged; so the last, cut by the old end,
    // never does.
    let stands =
        |start: u64, end: u64| end < same_until && (end < changed_from || start >= changed_to);
    let old = &prior.leaves;
    let mut i = 0;
    let mut old_at = 0u64;
    let mut pos = 0u64;
    let mut blocks = Vec::new();
    while pos < n {
        // Where an old cut lies here, take the old chunks that stand.
        while i < old.len() && old_at < pos {
            old_at += old[i].1;
            i += 1;
        }
        while old_at == pos && i < old.len() && stands(pos, pos + old[i].1) {
            next.leaves.push(old[i]);
            pos += old[i].1;
            old_at = pos;
            i += 1;
        }
        if pos >= n {
            break;
        }
        let at = pos as usize;
        let len = params
            .first_chunk(&data[at..], true, &mut Scanned::default())
            .unwrap_or(data.len() - at);
        let chunk = data.slice(at..at + len);
        let cid = Cid::hash(Codec::RAW, &chunk);
        next.leaves.push((cid, len as u64));
        blocks.push(Block::trusted(cid, chunk));
        pos += len as u64;
    }
    let mut tree = TreeBuilder::new();
    for leaf in &next.leaves {
        tree.push_leaf(*leaf)?;
    }
    let root = tree.finish()?;
    blocks.extend(tree.take_blocks());
    let blob = match root {
        None => Blob::empty(),
        Some((root, size)) => Blob::Stored { root, size },
    };
    Ok((blob, blocks, next))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hydra_dag::Bucket;

    fn noise(len: usize, seed: u64) -> Vec<u8> {
        crate::test_noise(len, seed)
    }

    fn params() -> ChunkParams {
        ChunkParams::new(4096, 16384, 65536).expect("params")
    }

    /// Applies edits one after another, each time comparing the re-cut
    /// with a cut from scratch.
    fn check(start: Vec<u8>, edits: &[(&str, u64, u64)]) {
        let p = params();
        let mut data = start;
        let (_, _, mut prior) = chunk_changed(p, Bytes::from(data.clone()), None).expect("cut");
        for (k, &(what, at, len)) in edits.iter().enumerate() {
            let old_len = data.len() as u64;
            match what {
                "write" => {
                    let end = (at + len) as usize;
                    if data.len() < end {
                        data.resize(end, 0);
                    }
                    data[at as usize..end].copy_from_slice(&noise(len as usize, 99 + k as u64));
                    prior.changed(at.min(old_len), at + len);
                }
                _ => {
                    data.resize(at as usize, 0);
                    prior.changed(at.min(old_len), at.max(old_len));
                }
            }
            let bytes = Bytes::from(data.clone());
            let (blob, blocks, next) =
                chunk_changed(p, bytes.clone(), Some(&prior)).expect("re-cut");
            // The writer that streams files cuts independently of this.
            let fresh = crate::put_bytes(&Bucket::in_memory().session(), p, &bytes).expect("put");
            assert_eq!(blob, fresh, "edit {k}: {what} {at} {len}");
            let (_, all) = crate::chunk_blocks(p, bytes).expect("cut");
            // Every new block is one a fresh cut makes too.
            for b in &blocks {
                assert!(
                    all.iter().any(|a| a.cid() == b.cid()),
                    "edit {k}: stray block"
                );
            }
            prior = next;
        }
    }

    #[test]
    fn re_cuts_equal_fresh_cuts() {
        let base = noise(1 << 20, 7);
        check(
            base.clone(),
            &[
                ("write", 500_000, 100),
                ("write", 0, 10),
                ("write", (1 << 20) - 5, 5),
                ("write", 1 << 20, 30_000),
                ("truncate", 700_000, 0),
                ("truncate", 900_000, 0),
                ("write", 123_456, 200_000),
                ("write", 2_000_000, 10),
                ("truncate", 100, 0),
                ("truncate", 300_000, 0),
            ],
        );
        // Zeros: long runs where cuts fall at the maximum.
        let mut zeros = vec![0u8; 600_000];
        zeros[300_000..300_010].copy_from_slice(b"0123456789");
        check(
            zeros,
            &[
                ("write", 100_000, 3),
                ("write", 599_000, 1000),
                ("truncate", 450_000, 0),
            ],
        );
    }

    #[test]
    fn random_edits_re_cut_as_fresh_cuts() {
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = |below: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % below.max(1)
        };
        for round in 0..12u64 {
            let start = 50_000 + round * 60_000;
            let mut len = start;
            let mut edits = Vec::new();
            for _ in 0..8 {
                let edit = match next(6) {
                    0 => ("truncate", next(len + 100_000), 0),
                    // Mostly small writes, some past the end.
                    1 => ("write", next(len + 50_000), 1 + next(100_000)),
                    _ => ("write", next(len), 1 + next(300)),
                };
                len = match edit {
                    ("truncate", at, _) => at,
                    (_, at, n) => len.max(at + n),
                };
                edits.push(edit);
            }
            check(noise(start as usize, round), &edits);
        }
    }

    #[test]
    fn re_cutting_an_unchanged_version_makes_only_its_last_chunk() {
        let p = params();
        let data = Bytes::from(noise(1 << 20, 3));
        let (blob, blocks, prior) = chunk_changed(p, data.clone(), None).expect("cut");
        let leaves = prior.leaves.len();
        let (again, new, _) = chunk_changed(p, data, Some(&prior)).expect("again");
        assert_eq!(again, blob);
        // The last chunk (cut by the end) and the tree nodes.
        assert!(
            new.len() < blocks.len() / 4,
            "{} of {}",
            new.len(),
            blocks.len()
        );
        assert!(leaves > 20);
    }

    #[test]
    fn a_small_write_makes_few_new_chunks() {
        let p = params();
        let mut data = noise(1 << 20, 5);
        let (_, _, mut prior) = chunk_changed(p, Bytes::from(data.clone()), None).expect("cut");
        data[400_000..400_100].copy_from_slice(&[1; 100]);
        prior.changed(400_000, 400_100);
        let (_, new, next) = chunk_changed(p, Bytes::from(data), Some(&prior)).expect("re-cut");
        let raw = new.iter().filter(|b| b.cid().codec() == Codec::RAW).count();
        // The chunk written into, perhaps the one after, and the last.
        assert!(raw <= 4, "{raw} new chunks of {}", next.leaves.len());
    }
}
