//! Three-way merge of committed filesystem roots: how two writers of one
//! filesystem commit at once without losing either's changes.
//!
//! Names merge per directory: a side's change stands when the other side
//! left the name as it was; directories changed on both sides merge
//! recursively; metadata merges field by field (times take the later).
//! Hard-link groups numbered by both sides from the same base are told
//! apart by moving ours past theirs. What both sides changed differently
//! is a conflict: refused, or with [`OnConflict::KeepBoth`] ours keeps the
//! name and theirs is kept beside it as `NAME.conflict-N`.

use std::collections::{BTreeMap, BTreeSet};

use hydra_dag::{Block, Bucket, Cid};

use crate::error::{FsError, FsResult};
use crate::node::{
    Entry, FsRoot, Kind, Meta, Record, Stored, encode_entry, read_dir, write_encoded,
};

/// What a merge does where both sides changed the same thing differently.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OnConflict {
    /// Fail the commit with [`FsError::MergeConflict`], changing nothing.
    #[default]
    Refuse,
    /// Keep ours at the name and theirs beside it (`NAME.conflict-N`); a
    /// change that meets a deletion is kept.
    KeepBoth,
}

/// A merged root and what it had to resolve.
#[derive(Debug)]
pub struct Merged {
    /// The merged root (its blocks are in `blocks`).
    pub root: Cid,
    /// Blocks to store before the root is used.
    pub blocks: Vec<Block>,
    /// Paths where both sides' versions were kept, or a change won over a
    /// deletion.
    pub conflicts: Vec<String>,
}

/// Merges `ours` and `theirs`, both made from `base` (`None`: the empty
/// filesystem).
pub fn merge_roots(
    bucket: &Bucket,
    base: Option<&Cid>,
    ours: &Cid,
    theirs: &Cid,
    policy: OnConflict,
) -> FsResult<Merged> {
    let b = match base {
        Some(cid) => FsRoot::read(bucket, cid)?,
        None => FsRoot {
            root: Record {
                kind: Kind::Dir,
                meta: Meta::default(),
                content: Stored::Dir(None),
            },
            links: Vec::new(),
            next_group: 1,
        },
    };
    let o = FsRoot::read(bucket, ours)?;
    let t = FsRoot::read(bucket, theirs)?;
    let shift = t.next_group.saturating_sub(b.next_group);
    let mut m = Merger {
        bucket,
        policy,
        new_from: b.next_group,
        shift,
        ours_new_groups: o.links.iter().any(|(g, _, _)| *g >= b.next_group),
        blocks: Vec::new(),
        conflicts: Vec::new(),
        refused: Vec::new(),
        extra_root: Vec::new(),
    };
    let links = m.links(&b.links, &o.links, &t.links)?;
    let root = m
        .record("/", Some(&b.root), Some(&o.root), Some(&t.root))?
        .into_iter()
        .next()
        .ok_or(FsError::Invalid("a merge removed the root"))?;
    if !m.refused.is_empty() {
        return Err(FsError::MergeConflict { paths: m.refused });
    }
    let fs_root = FsRoot {
        root,
        links,
        next_group: o.next_group.max(b.next_group) + shift,
    };
    let (block, mut blocks) = fs_root.write()?;
    m.blocks.append(&mut blocks);
    Ok(Merged {
        root: *block.cid(),
        blocks: m.blocks,
        conflicts: m.conflicts,
    })
}

struct Merger<'a> {
    bucket: &'a Bucket,
    policy: OnConflict,
    /// Groups at or past this number are new on their side.
    new_from: u64,
    /// What ours' new groups move by, past theirs'.
    shift: u64,
    /// Whether ours made groups (then its subtrees are rewritten).
    ours_new_groups: bool,
    blocks: Vec<Block>,
    conflicts: Vec<String>,
    refused: Vec<String>,
    /// Entries for the root directory (theirs of conflicting link groups).
    extra_root: Vec<(Vec<u8>, Entry)>,
}

/// The three-way choice: what one side changed, `None` when both
/// changed it differently.
fn pick<'v, T: PartialEq>(b: Side<'v, T>, o: Side<'v, T>, t: Side<'v, T>) -> Option<Side<'v, T>> {
    if o == t || t == b {
        Some(o)
    } else if o == b {
        Some(t)
    } else {
        None
    }
}

/// One metadata field merged: the side that changed it wins; both
/// changed differently sets `clash` and keeps ours.
fn merge_field<T: PartialEq + Clone>(b: &T, o: &T, t: &T, clash: &mut bool) -> T {
    if o == b {
        return t.clone();
    }
    if t != b && t != o {
        *clash = true;
    }
    o.clone()
}

/// The record an entry holds itself.
fn as_record(e: Side<Entry>) -> Side<Record> {
    match e {
        Some(Entry::Inode(r)) => Some(r),
        _ => None,
    }
}

/// One side's value of a merged item.
type Side<'a, T> = Option<&'a T>;

impl Merger<'_> {
    /// Ours' group number in the merged root.
    fn group(&self, g: u64) -> u64 {
        if g >= self.new_from {
            g + self.shift
        } else {
            g
        }
    }

    fn conflict(&mut self, path: &str) {
        match self.policy {
            OnConflict::Refuse => self.refused.push(path.to_string()),
            OnConflict::KeepBoth => self.conflicts.push(path.to_string()),
        }
    }

    /// The merged link table.
    fn links(
        &mut self,
        b: &[(u64, u32, Record)],
        o: &[(u64, u32, Record)],
        t: &[(u64, u32, Record)],
    ) -> FsResult<Vec<(u64, u32, Record)>> {
        let index = |list: &[(u64, u32, Record)], map: &dyn Fn(u64) -> u64| {
            list.iter()
                .map(|(g, n, r)| (map(*g), (*n, r.clone())))
                .collect::<BTreeMap<u64, (u32, Record)>>()
        };
        let same = |g: u64| g;
        let (bm, om, tm) = (
            index(b, &same),
            index(o, &|g| self.group(g)),
            index(t, &same),
        );
        let groups: BTreeSet<u64> = bm
            .keys()
            .chain(om.keys())
            .chain(tm.keys())
            .copied()
            .collect();
        let mut out = Vec::new();
        for g in groups {
            let (bs, os, ts) = (bm.get(&g), om.get(&g), tm.get(&g));
            // Names come and go on both sides: counts add up.
            let count = |s: Option<&(u32, Record)>| i64::from(s.map_or(0, |(n, _)| *n));
            let nlink = count(os) + count(ts) - count(bs);
            let path = format!("/(hard link group {g})");
            let records = self.record(
                &path,
                bs.map(|(_, r)| r),
                os.map(|(_, r)| r),
                ts.map(|(_, r)| r),
            )?;
            let mut records = records.into_iter();
            if let Some(record) = records.next()
                && nlink > 0
            {
                out.push((g, u32::try_from(nlink).unwrap_or(u32::MAX), record));
            }
            // Theirs of a conflicting group lives on as a file in the root.
            for theirs in records {
                let name = format!("hydra-conflict-link-{g}").into_bytes();
                self.extra_root.push((name, Entry::Inode(theirs)));
            }
        }
        Ok(out)
    }

    /// Merges one name's entries; returns what the merged directory holds
    /// (nothing, one entry, or ours then theirs).
    fn entry(
        &mut self,
        path: &str,
        b: Side<Entry>,
        o: Option<Entry>,
        t: Side<Entry>,
    ) -> FsResult<Vec<Entry>> {
        let o = o.map(|e| match e {
            Entry::Link(g) => Entry::Link(self.group(g)),
            other => other,
        });
        let o = o.as_ref();
        let links = [b, o, t].iter().any(|e| matches!(e, Some(Entry::Link(_))));
        if !links {
            let records = self.record(path, as_record(b), as_record(o), as_record(t))?;
            return Ok(records.into_iter().map(Entry::Inode).collect());
        }
        // Links: their content merges in the link table; here only which
        // group (or inode) the name names.
        Ok(self.choose(path, b, o, t).into_iter().cloned().collect())
    }

    /// The three-way choice of a value; both changed differently is a
    /// conflict that keeps ours, then theirs.
    fn choose<'v, T: PartialEq>(
        &mut self,
        path: &str,
        b: Side<'v, T>,
        o: Side<'v, T>,
        t: Side<'v, T>,
    ) -> Vec<&'v T> {
        if let Some(chosen) = pick(b, o, t) {
            return chosen.into_iter().collect();
        }
        self.conflict(path);
        o.into_iter().chain(t).collect()
    }

    /// Merges one inode's records; returns what the merged directory holds
    /// under its name (nothing, one record, or ours then theirs).
    fn record(
        &mut self,
        path: &str,
        b: Side<Record>,
        o: Side<Record>,
        t: Side<Record>,
    ) -> FsResult<Vec<Record>> {
        if o == t {
            return Ok(o.into_iter().cloned().collect());
        }
        if t == b {
            return o
                .map(|or| self.ours_rewritten(path, b, or))
                .into_iter()
                .collect();
        }
        if o == b {
            return Ok(t.into_iter().cloned().collect());
        }
        // Both changed it, differently.
        let (or, tr) = match (o, t) {
            (Some(or), Some(tr)) => (or, tr),
            (Some(or), None) => {
                // Changed here, deleted there: the change is kept.
                self.conflict(path);
                return Ok(vec![self.ours_rewritten(path, b, or)?]);
            }
            (None, Some(tr)) => {
                self.conflict(path);
                return Ok(vec![tr.clone()]);
            }
            (None, None) => return Ok(Vec::new()),
        };
        let content = if or.kind != tr.kind {
            None
        } else if let (Stored::Dir(od), Stored::Dir(td)) = (&or.content, &tr.content) {
            let bd = match b.map(|r| &r.content) {
                Some(Stored::Dir(bd)) => *bd,
                _ => None,
            };
            Some(Stored::Dir(self.dir(path, bd, *od, *td)?))
        } else {
            let bc = b.map(|r| &r.content);
            pick(bc, Some(&or.content), Some(&tr.content))
                .flatten()
                .cloned()
        };
        let Some(content) = content else {
            // Both changed the content (or the kind) differently.
            self.conflict(path);
            return Ok(vec![self.ours_rewritten(path, b, or)?, tr.clone()]);
        };
        let meta = self.meta(path, b.map(|r| &r.meta), &or.meta, &tr.meta);
        Ok(vec![Record {
            kind: or.kind,
            meta,
            content,
        }])
    }

    /// Ours' record with its new groups renumbered.
    fn ours_rewritten(&mut self, path: &str, b: Side<Record>, o: &Record) -> FsResult<Record> {
        if !(self.ours_new_groups && o.kind == Kind::Dir) {
            return Ok(o.clone());
        }
        let Stored::Dir(od) = o.content else {
            return Ok(o.clone());
        };
        let bd = match b.map(|r| &r.content) {
            Some(Stored::Dir(bd)) => *bd,
            _ => None,
        };
        // Merging ours against the base with the base as theirs rewrites
        // exactly ours' changes.
        let list = self.dir(path, bd, od, bd)?;
        Ok(Record {
            content: Stored::Dir(list),
            ..o.clone()
        })
    }

    /// Metadata merged field by field: times take the later; other
    /// fields changed on both sides take ours (a conflict when refusing).
    fn meta(&mut self, path: &str, b: Side<Meta>, o: &Meta, t: &Meta) -> Meta {
        let Some(b) = b else {
            return o.clone();
        };
        let mut clash = false;
        let perm = merge_field(&b.perm, &o.perm, &t.perm, &mut clash);
        let uid = merge_field(&b.uid, &o.uid, &t.uid, &mut clash);
        let gid = merge_field(&b.gid, &o.gid, &t.gid, &mut clash);
        let rdev = merge_field(&b.rdev, &o.rdev, &t.rdev, &mut clash);
        let xattrs = merge_field(&b.xattrs, &o.xattrs, &t.xattrs, &mut clash);
        if clash && self.policy == OnConflict::Refuse {
            self.conflict(path);
        }
        Meta {
            perm,
            uid,
            gid,
            rdev,
            xattrs,
            atime: o.atime.max(t.atime),
            mtime: o.mtime.max(t.mtime),
            ctime: o.ctime.max(t.ctime),
        }
    }

    /// The entries of a stored list by name.
    fn entries(&self, list: Option<Cid>) -> FsResult<BTreeMap<Vec<u8>, Entry>> {
        read_dir(self.bucket, list)
    }

    /// Merges a directory's entry lists.
    fn dir(
        &mut self,
        path: &str,
        b: Option<Cid>,
        o: Option<Cid>,
        t: Option<Cid>,
    ) -> FsResult<Option<Cid>> {
        let root = path == "/";
        let extra = if root {
            std::mem::take(&mut self.extra_root)
        } else {
            Vec::new()
        };
        if extra.is_empty() && !self.ours_new_groups {
            if o == t || t == b {
                return Ok(o);
            }
            if o == b {
                return Ok(t);
            }
        }
        let (bm, mut om, tm) = (self.entries(b)?, self.entries(o)?, self.entries(t)?);
        let names: BTreeSet<Vec<u8>> = bm
            .keys()
            .chain(om.keys())
            .chain(tm.keys())
            .cloned()
            .collect();
        let mut out: BTreeMap<Vec<u8>, Entry> = BTreeMap::new();
        let mut copies = Vec::new();
        for name in &names {
            let child = format!(
                "{}/{}",
                path.trim_end_matches('/'),
                String::from_utf8_lossy(name)
            );
            let merged = self.entry(&child, bm.get(name), om.remove(name), tm.get(name))?;
            let mut merged = merged.into_iter();
            if let Some(first) = merged.next() {
                out.insert(name.clone(), first);
            }
            for other in merged {
                copies.push((name.clone(), other));
            }
        }
        for (name, entry) in extra {
            match out.entry(name) {
                std::collections::btree_map::Entry::Vacant(free) => {
                    free.insert(entry);
                }
                std::collections::btree_map::Entry::Occupied(taken) => {
                    copies.push((taken.key().clone(), entry));
                }
            }
        }
        for (name, entry) in copies {
            let mut n = 1;
            let free = loop {
                let mut candidate = name.clone();
                candidate.extend_from_slice(format!(".conflict-{n}").as_bytes());
                if !names.contains(&candidate) && !out.contains_key(&candidate) {
                    break candidate;
                }
                n += 1;
            };
            out.insert(free, entry);
        }
        let listed = out
            .into_iter()
            .map(|(n, e)| (n, encode_entry(&e)))
            .collect();
        let (list, mut blocks) = write_encoded(listed)?;
        self.blocks.append(&mut blocks);
        Ok(list)
    }
}
