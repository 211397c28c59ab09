//! Ref names and changelog entries.

use std::fmt;

use crate::cid::Cid;
use crate::error::{DagError, DagResult};
use crate::identity::Signature;

/// The name of a ref, such as `fs/home` or `kv/settings`.
///
/// Segments separated by `/` hold letters, digits and `._-+@=`; none is
/// empty, `.` or `..`; the whole is at most 255 bytes.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, serde::Serialize)]
#[serde(transparent)]
pub struct RefName(String);

impl RefName {
    /// Validates and wraps a ref name.
    pub fn new(name: impl Into<String>) -> DagResult<RefName> {
        let name = name.into();
        let bad = |reason| DagError::InvalidRefName {
            name: name.chars().take(80).collect(),
            reason,
        };
        if name.is_empty() {
            return Err(bad("empty"));
        }
        if name.len() > 255 {
            return Err(bad("longer than 255 bytes"));
        }
        for segment in name.split('/') {
            if segment.is_empty() || segment == "." || segment == ".." {
                return Err(bad("empty, '.' or '..' path segment"));
            }
            let ok = |c: char| c.is_ascii_alphanumeric() || "._-+@=".contains(c);
            if !segment.chars().all(ok) {
                return Err(bad("only letters, digits, '/' and ._-+@= are allowed"));
            }
        }
        Ok(RefName(name))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RefName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for RefName {
    type Err = DagError;

    fn from_str(s: &str) -> DagResult<RefName> {
        RefName::new(s)
    }
}

/// Who made a ref update, and why.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RefNote {
    /// Who made the change (user, tool).
    pub author: String,
    /// Why.
    pub message: String,
    /// When, if not now (an entry copied from another store).
    pub time_ns: Option<i64>,
    /// The entry's signature, when made elsewhere (the bucket signs
    /// entries without one with its store's identity).
    pub signature: Option<Signature>,
}

impl RefNote {
    /// A note by the current user with `message`.
    pub fn by_current_user(message: impl Into<String>) -> RefNote {
        use std::os::unix::fs::MetadataExt;
        let author = std::env::var("USER")
            .or_else(|_| std::env::var("LOGNAME"))
            .ok()
            .filter(|u| !u.is_empty())
            .or_else(|| {
                let uid = std::fs::metadata("/proc/self").ok()?.uid();
                Some(if uid == 0 {
                    "root".into()
                } else {
                    format!("uid {uid}")
                })
            })
            .unwrap_or_else(|| "unknown".into());
        RefNote {
            author,
            message: message.into(),
            ..RefNote::default()
        }
    }
}

/// One entry of the changelog: a ref moved from `old` to `new`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct LogEntry {
    /// Position in the changelog; increases with every update.
    pub id: u64,
    /// The ref that moved.
    pub name: RefName,
    /// Its previous root (none when it was created).
    pub old: Option<Cid>,
    /// Its new root (none when it was deleted).
    pub new: Option<Cid>,
    /// When, in nanoseconds since the Unix epoch.
    pub time_ns: i64,
    /// Who.
    pub author: String,
    /// Why.
    pub message: String,
    /// Who vouches for the entry (see [`LogEntry::verify`]).
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub signature: Option<Signature>,
}

impl LogEntry {
    /// The entry logging a move of `name` described by `note`.
    pub fn from_note(
        id: u64,
        name: &RefName,
        old: Option<Cid>,
        new: Option<Cid>,
        note: &RefNote,
    ) -> LogEntry {
        LogEntry {
            id,
            name: name.clone(),
            old,
            new,
            time_ns: note.time_ns.unwrap_or_else(now_ns),
            author: note.author.clone(),
            message: note.message.clone(),
            signature: note.signature,
        }
    }
}

/// The current time in nanoseconds since the Unix epoch.
pub fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates_names() {
        for good in ["fs/home", "kv/a.b-c", "git/x@y", "a"] {
            assert!(RefName::new(good).is_ok(), "{good}");
        }
        for bad in ["", "/a", "a/", "a//b", "a/../b", "a b", "a\nb", "ä"] {
            assert!(RefName::new(bad).is_err(), "{bad:?}");
        }
        assert!(RefName::new("x".repeat(256)).is_err());
    }
}
