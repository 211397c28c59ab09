//! The kernel's lookup counts: which inodes the kernel may still name
//! without looking them up, so the filesystem unloads only the others.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use hydra_fs::{Holds, Ino};

/// Lookup counts by kernel inode number, as FUSE defines them: one per
/// entry replied, given back by FORGET.
#[derive(Debug, Default)]
pub struct KernelRefs {
    counts: Mutex<HashMap<u64, u64>>,
    ended: AtomicU64,
}

impl KernelRefs {
    fn counts(&self) -> std::sync::MutexGuard<'_, HashMap<u64, u64>> {
        self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The kernel got an entry naming `ino`.
    pub fn add(&self, ino: u64) {
        self.add_all([ino]);
    }

    /// The kernel got entries naming each of `inos` (one lock for a reply).
    pub fn add_all(&self, inos: impl IntoIterator<Item = u64>) {
        let mut counts = self.counts();
        for ino in inos {
            *counts.entry(ino).or_insert(0) += 1;
        }
    }

    /// The kernel gave back `n` of its lookups of `ino`.
    pub fn forget(&self, ino: u64, n: u64) {
        let mut counts = self.counts();
        if let Some(count) = counts.get_mut(&ino) {
            *count = count.saturating_sub(n);
            if *count == 0 {
                counts.remove(&ino);
                self.ended.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

impl Holds for KernelRefs {
    fn held(&self, ino: Ino) -> bool {
        self.counts().contains_key(&ino.0)
    }

    fn ended(&self) -> u64 {
        self.ended.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_follow_lookups_and_forgets() {
        let refs = KernelRefs::default();
        refs.add(5);
        refs.add(5);
        refs.add(7);
        refs.forget(5, 1);
        assert!(refs.held(Ino(5)));
        assert_eq!(refs.ended(), 0);
        refs.forget(5, 1);
        refs.forget(9, 3);
        assert!(!refs.held(Ino(5)));
        assert!(refs.held(Ino(7)));
        assert_eq!(refs.ended(), 1);
        refs.add_all([7, 8]);
        refs.forget(7, 1);
        assert!(refs.held(Ino(7)) && refs.held(Ino(8)));
        assert_eq!(refs.ended(), 1);
    }
}
