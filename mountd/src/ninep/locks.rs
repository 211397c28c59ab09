//! POSIX byte-range locks for 9P clients (Tlock, Tgetlock).
//!
//! Locks live in the server, not in `Fs`: they are a property of open
//! files on this daemon, never stored. An owner is a connection plus the
//! client's name and process id; a connection's locks go when it does.

use std::collections::HashMap;
use std::sync::Mutex;

use super::wire::lock::{RDLCK, UNLCK, WRLCK};

/// Who holds a lock: connection, client name, client process.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Owner {
    /// The server's connection number.
    pub conn: u64,
    /// The client's name for itself.
    pub client: Vec<u8>,
    /// The process on the client.
    pub proc_id: u32,
}

/// One held range, `start..=end`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Range {
    /// Holder.
    pub owner: Owner,
    /// First byte.
    pub start: u64,
    /// Last byte (inclusive; `u64::MAX` for "to the end").
    pub end: u64,
    /// RDLCK or WRLCK.
    pub kind: u8,
}

/// Most ranges one file may hold: past it a lock fails (ENOLCK).
const MAX_RANGES: usize = 4096;

/// What a lock request came to.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Granted (or released).
    Granted,
    /// Someone else holds a conflicting range.
    Blocked,
    /// The table is full.
    Full,
}

/// The locks of every file, keyed by a file identity.
#[derive(Debug, Default)]
pub struct LockTable {
    files: Mutex<HashMap<(u64, u64), Vec<Range>>>,
}

/// `start, length` to an inclusive end (length 0: to the end of the file).
pub fn span(start: u64, length: u64) -> u64 {
    if length == 0 {
        u64::MAX
    } else {
        start.saturating_add(length - 1)
    }
}

fn conflicts(held: &Range, owner: &Owner, start: u64, end: u64, kind: u8) -> bool {
    held.owner != *owner
        && held.start <= end
        && start <= held.end
        && (held.kind == WRLCK || kind == WRLCK)
}

impl LockTable {
    fn files(&self) -> std::sync::MutexGuard<'_, HashMap<(u64, u64), Vec<Range>>> {
        self.files.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes (RDLCK/WRLCK) or releases (UNLCK) `start..=end` of `file` for `owner`.
    pub fn lock(&self, file: (u64, u64), owner: &Owner, kind: u8, start: u64, end: u64) -> Outcome {
        let mut files = self.files();
        let held = files.entry(file).or_default();
        if kind != UNLCK && held.iter().any(|h| conflicts(h, owner, start, end, kind)) {
            return Outcome::Blocked;
        }
        // Cut the owner's ranges around the new one, then add it.
        let mut next = Vec::with_capacity(held.len() + 2);
        for h in held.iter() {
            if h.owner != *owner || h.end < start || h.start > end {
                next.push(h.clone());
                continue;
            }
            if h.start < start {
                next.push(Range {
                    end: start - 1,
                    ..h.clone()
                });
            }
            if h.end > end {
                next.push(Range {
                    start: end + 1,
                    ..h.clone()
                });
            }
        }
        if kind == RDLCK || kind == WRLCK {
            next.push(Range {
                owner: owner.clone(),
                start,
                end,
                kind,
            });
        }
        if next.len() > MAX_RANGES {
            return Outcome::Full;
        }
        *held = next;
        if held.is_empty() {
            files.remove(&file);
        }
        Outcome::Granted
    }

    /// The first range another owner holds that conflicts with the request.
    pub fn test(
        &self,
        file: (u64, u64),
        owner: &Owner,
        kind: u8,
        start: u64,
        end: u64,
    ) -> Option<Range> {
        self.files()
            .get(&file)?
            .iter()
            .find(|h| conflicts(h, owner, start, end, kind))
            .cloned()
    }

    /// Drops every lock connection `conn` holds.
    pub fn drop_connection(&self, conn: u64) {
        let mut files = self.files();
        files.retain(|_, held| {
            held.retain(|h| h.owner.conn != conn);
            !held.is_empty()
        });
    }

    /// Locks held in all (for tests and status).
    pub fn count(&self) -> usize {
        self.files().values().map(Vec::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner(conn: u64, p: u32) -> Owner {
        Owner {
            conn,
            client: b"c".to_vec(),
            proc_id: p,
        }
    }

    #[test]
    fn readers_share_writers_exclude() {
        let t = LockTable::default();
        let f = (1, 5);
        assert_eq!(t.lock(f, &owner(1, 1), RDLCK, 0, 99), Outcome::Granted);
        assert_eq!(t.lock(f, &owner(1, 2), RDLCK, 50, 149), Outcome::Granted);
        assert_eq!(t.lock(f, &owner(2, 1), WRLCK, 90, 95), Outcome::Blocked);
        assert_eq!(
            t.lock(f, &owner(2, 1), WRLCK, 150, u64::MAX),
            Outcome::Granted
        );
        let c = t.test(f, &owner(3, 1), RDLCK, 200, 300).expect("conflict");
        assert_eq!((c.owner.conn, c.kind), (2, WRLCK));
        t.drop_connection(2);
        assert!(t.test(f, &owner(3, 1), RDLCK, 200, 300).is_none());
    }

    #[test]
    fn unlocking_the_middle_splits_a_range() {
        let t = LockTable::default();
        let f = (1, 5);
        let me = owner(1, 1);
        assert_eq!(t.lock(f, &me, WRLCK, 0, 99), Outcome::Granted);
        assert_eq!(t.lock(f, &me, UNLCK, 40, 59), Outcome::Granted);
        assert_eq!(t.count(), 2);
        assert_eq!(t.lock(f, &owner(2, 1), WRLCK, 40, 59), Outcome::Granted);
        assert_eq!(t.lock(f, &owner(2, 1), WRLCK, 39, 59), Outcome::Blocked);
        // Upgrading one's own lock over its own ranges is allowed.
        assert_eq!(t.lock(f, &me, RDLCK, 0, 39), Outcome::Granted);
        assert_eq!(t.lock(f, &me, UNLCK, 0, u64::MAX), Outcome::Granted);
        assert_eq!(t.count(), 1);
    }
}
