//! Block locations read ahead in pack order.
//!
//! A file's chunks are written one after another into a pack, so a reader
//! going through the file meets them in pack order. Once two lookups in a
//! row land close together in one pack, the index hands out the next
//! [`WINDOW`] locations of that pack in one query, and the blocks after
//! are found here instead of one SQLite read transaction each (about a
//! tenth of the daemon's time in a cold sequential read). Random reads
//! never look ahead.
//!
//! A location kept here can only go stale by a compaction or a delete:
//! this process's own clear it, and another's deletes the old pack file,
//! which sends the reader back to the index (see `read_located`). Pack
//! numbers only grow, so a stale location never names another pack's
//! bytes, and whatever it reads is verified against the CID above this
//! volume. Every location is taken once, and all are dropped once none
//! was looked up ahead for [`FRESH_FOR`]: a look-ahead serves the readers
//! going on now, not one that comes back later.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::cid::Cid;
use crate::local::pack::PackId;

/// Locations fetched per look-ahead query.
pub const WINDOW: u32 = 64;
/// Locations kept at most; past this, what was never taken is dropped.
const MAX_KEPT: usize = 4 * WINDOW as usize;
/// How far past the end of the last block located the next one may start
/// and still count as sequential.
const NEAR: u64 = 4 << 20;
/// How long locations looked up ahead stay usable after the last look-ahead.
const FRESH_FOR: Duration = Duration::from_secs(1);

/// A block's place in a pack: pack, data offset, length.
pub type Packed = (PackId, u64, usize);

/// Locations looked up ahead of a sequential reader.
#[derive(Debug, Default)]
pub struct Ahead {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    kept: HashMap<Cid, Packed>,
    /// When the last locations were kept.
    kept_at: Option<Instant>,
    /// The pack and end offset of the last block located.
    last_end: Option<(PackId, u64)>,
}

impl Ahead {
    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes the kept location of `cid`, if one is.
    pub fn take(&self, cid: &Cid) -> Option<Packed> {
        let mut inner = self.inner();
        if inner.kept_at.is_some_and(|t| t.elapsed() > FRESH_FOR) {
            inner.kept.clear();
            inner.kept_at = None;
        }
        let found = inner.kept.remove(cid)?;
        inner.last_end = Some((found.0, found.1 + found.2 as u64));
        Some(found)
    }

    /// Notes a location found in the index and says whether it follows the
    /// last one closely enough to look ahead from it.
    pub fn located(&self, (pack, offset, len): Packed) -> bool {
        let mut inner = self.inner();
        let follows = matches!(inner.last_end,
            Some((p, end)) if p == pack && offset >= end && offset - end <= NEAR);
        inner.last_end = Some((pack, offset + len as u64));
        follows
    }

    /// Keeps locations the index listed after the one a reader asked for.
    pub fn keep(&self, found: impl IntoIterator<Item = (Cid, Packed)>) {
        let mut inner = self.inner();
        if inner.kept.len() >= MAX_KEPT {
            inner.kept.clear();
        }
        inner.kept.extend(found);
        inner.kept_at = Some(Instant::now());
    }

    /// How many locations are kept.
    #[cfg(test)]
    pub fn kept(&self) -> usize {
        self.inner().kept.len()
    }

    /// Drops every kept location (blocks moved or deleted).
    pub fn clear(&self) {
        let mut inner = self.inner();
        inner.kept.clear();
        inner.kept_at = None;
        inner.last_end = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cid::Codec;

    fn cid(i: u8) -> Cid {
        Cid::hash(Codec::RAW, &[i])
    }

    #[test]
    fn only_a_lookup_right_after_the_last_looks_ahead() {
        let a = Ahead::default();
        assert!(!a.located((PackId(1), 100, 50)), "nothing before it");
        assert!(a.located((PackId(1), 190, 50)), "just after the last");
        assert!(!a.located((PackId(1), 100, 50)), "before the last");
        assert!(!a.located((PackId(2), 150, 50)), "another pack");
        assert!(!a.located((PackId(2), 200 + NEAR + 1, 50)), "too far on");
    }

    #[test]
    fn a_location_is_taken_once_and_moves_the_reader_on() {
        let a = Ahead::default();
        a.keep([
            (cid(1), (PackId(3), 1000, 10)),
            (cid(2), (PackId(3), 1050, 10)),
        ]);
        assert_eq!(a.take(&cid(1)), Some((PackId(3), 1000, 10)));
        assert_eq!(a.take(&cid(1)), None);
        assert!(a.located((PackId(3), 1020, 5)), "follows the taken one");
        a.clear();
        assert_eq!(a.take(&cid(2)), None);
    }

    #[test]
    fn what_is_never_taken_does_not_pile_up() {
        let a = Ahead::default();
        for round in 0..10u8 {
            a.keep((0..WINDOW).map(|i| {
                let c = Cid::hash(Codec::RAW, &[round, i as u8]);
                (c, (PackId(1), u64::from(i), 1))
            }));
        }
        assert!(a.kept() <= MAX_KEPT);
    }
}
