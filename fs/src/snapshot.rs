//! Comparing committed roots: which paths were added, removed or changed.
//!
//! Works on the stored nodes, not on a loaded filesystem, and skips every
//! directory whose entry list has the same CID on both sides, so the cost
//! follows the size of the change, not of the tree.

use std::collections::HashMap;

use hydra_dag::{Bucket, Cid};

use crate::error::FsResult;
use crate::node::{Entry, FsRoot, Kind, Record, Stored, read_entries};

/// How a path differs between two roots.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum ChangeKind {
    /// Only in the second.
    Added,
    /// Only in the first.
    Removed,
    /// In both, with other content or metadata.
    Modified,
}

impl ChangeKind {
    /// One-letter code as `git diff --name-status` prints it.
    pub fn letter(self) -> char {
        match self {
            ChangeKind::Added => 'A',
            ChangeKind::Removed => 'D',
            ChangeKind::Modified => 'M',
        }
    }
}

/// One difference: a path (directories end in `/`) and how it changed.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Change {
    /// How.
    pub kind: ChangeKind,
    /// Where, from the root, starting with `/`.
    pub path: String,
}

/// Calls `f(path, record)` for every path of the filesystem committed at
/// `root`: `/` first, then each directory's entries in name order before
/// what lies below them (a hard-linked inode once per name), until `f`
/// returns false.
pub fn walk(
    bucket: &Bucket,
    root: &Cid,
    f: &mut dyn FnMut(&[u8], &Record) -> FsResult<bool>,
) -> FsResult<()> {
    let (record, side) = Side::load(bucket, root)?;
    if !f(b"/", &record)? {
        return Ok(());
    }
    let mut stack: Vec<(Vec<u8>, Stored)> = vec![(Vec::new(), record.content)];
    while let Some((dir, stored)) = stack.pop() {
        let mut subdirs = Vec::new();
        for (name, entry) in entries(bucket, &stored)? {
            let Some(record) = side.record(entry) else {
                continue;
            };
            let mut path = dir.clone();
            path.push(b'/');
            path.extend_from_slice(&name);
            if !f(&path, &record)? {
                return Ok(());
            }
            if record.kind == Kind::Dir {
                subdirs.push((path, record.content));
            }
        }
        // Popped in reverse: the first subdirectory is walked first.
        stack.extend(subdirs.into_iter().rev());
    }
    Ok(())
}

struct Side {
    links: HashMap<u64, Record>,
}

impl Side {
    fn load(bucket: &Bucket, root: &Cid) -> FsResult<(Record, Side)> {
        let fs_root = FsRoot::read(bucket, root)?;
        let links = fs_root.links.into_iter().map(|(g, _, r)| (g, r)).collect();
        Ok((fs_root.root, Side { links }))
    }

    fn record(&self, entry: Entry) -> Option<Record> {
        match entry {
            Entry::Inode(r) => Some(r),
            Entry::Link(g) => self.links.get(&g).cloned(),
        }
    }
}

/// The paths that differ between the filesystems committed at `a` and `b`.
pub fn diff_roots(bucket: &Bucket, a: &Cid, b: &Cid) -> FsResult<Vec<Change>> {
    let (root_a, side_a) = Side::load(bucket, a)?;
    let (root_b, side_b) = Side::load(bucket, b)?;
    let mut out = Vec::new();
    let cx = Diff {
        bucket,
        a: &side_a,
        b: &side_b,
    };
    cx.records("/", Some(root_a), Some(root_b), &mut out)?;
    Ok(out)
}

struct Diff<'a> {
    bucket: &'a Bucket,
    a: &'a Side,
    b: &'a Side,
}

fn entries(bucket: &Bucket, stored: &Stored) -> FsResult<Vec<(Vec<u8>, Entry)>> {
    match stored {
        Stored::Dir(Some(cid)) => read_entries(bucket, cid)?
            .into_iter()
            .map(|(n, v)| Ok((n, Entry::from_ipld(&v, cid)?)))
            .collect(),
        _ => Ok(Vec::new()),
    }
}

impl Diff<'_> {
    fn records(
        &self,
        path: &str,
        a: Option<Record>,
        b: Option<Record>,
        out: &mut Vec<Change>,
    ) -> FsResult<()> {
        let shown = |r: &Record| {
            if r.kind == Kind::Dir && path != "/" {
                format!("{path}/")
            } else {
                path.to_string()
            }
        };
        match (a, b) {
            (None, None) => {}
            (Some(a), None) => out.push(Change {
                kind: ChangeKind::Removed,
                path: shown(&a),
            }),
            (None, Some(b)) => out.push(Change {
                kind: ChangeKind::Added,
                path: shown(&b),
            }),
            (Some(a), Some(b)) => {
                if a.kind != b.kind {
                    out.push(Change {
                        kind: ChangeKind::Removed,
                        path: shown(&a),
                    });
                    out.push(Change {
                        kind: ChangeKind::Added,
                        path: shown(&b),
                    });
                } else if a.kind == Kind::Dir {
                    if a.meta != b.meta {
                        out.push(Change {
                            kind: ChangeKind::Modified,
                            path: shown(&a),
                        });
                    }
                    if a.content != b.content {
                        self.dirs(path, &a.content, &b.content, out)?;
                    }
                } else if a != b {
                    out.push(Change {
                        kind: ChangeKind::Modified,
                        path: shown(&a),
                    });
                }
            }
        }
        Ok(())
    }

    fn dirs(&self, path: &str, a: &Stored, b: &Stored, out: &mut Vec<Change>) -> FsResult<()> {
        let left = entries(self.bucket, a)?;
        let right = entries(self.bucket, b)?;
        let (mut i, mut j) = (0, 0);
        let child = |name: &[u8]| {
            let name = String::from_utf8_lossy(name);
            if path == "/" {
                format!("/{name}")
            } else {
                format!("{path}/{name}")
            }
        };
        while i < left.len() || j < right.len() {
            let order = match (left.get(i), right.get(j)) {
                (Some((x, _)), Some((y, _))) => x.cmp(y),
                (Some(_), None) => std::cmp::Ordering::Less,
                _ => std::cmp::Ordering::Greater,
            };
            match order {
                std::cmp::Ordering::Less => {
                    let (name, e) = &left[i];
                    self.records(&child(name), self.a.record(e.clone()), None, out)?;
                    i += 1;
                }
                std::cmp::Ordering::Greater => {
                    let (name, e) = &right[j];
                    self.records(&child(name), None, self.b.record(e.clone()), out)?;
                    j += 1;
                }
                std::cmp::Ordering::Equal => {
                    let (name, ea) = &left[i];
                    let (_, eb) = &right[j];
                    self.records(
                        &child(name),
                        self.a.record(ea.clone()),
                        self.b.record(eb.clone()),
                        out,
                    )?;
                    i += 1;
                    j += 1;
                }
            }
        }
        Ok(())
    }
}
