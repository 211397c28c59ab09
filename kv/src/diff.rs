//! Differences between two trees in O(changes), and three-way merge.
//!
//! Two walkers run through the trees in key order, each a stack of
//! pending subtrees and entries. When both have the same subtree next
//! (equal CIDs) it is skipped whole; otherwise the taller one is opened.
//! Because node boundaries depend only on keys, the walkers meet on equal
//! subtrees again right after each changed stretch.

use std::collections::BTreeMap;

use bytes::Bytes;
use hydra_dag::{Cid, WriteSession};

use crate::error::KvResult;
use crate::node::Item;
use crate::tree::{Edit, Tree};

/// One difference, from the old tree to the new.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// The key is new.
    Added(Bytes, Item),
    /// The key is gone.
    Removed(Bytes, Item),
    /// The key's value changed from the first item to the second.
    Changed(Bytes, Item, Item),
}

impl Change {
    /// The key changed.
    pub fn key(&self) -> &Bytes {
        match self {
            Change::Added(k, _) | Change::Removed(k, _) | Change::Changed(k, _, _) => k,
        }
    }
}

enum Pending {
    Node(Cid, u8),
    Entry(Bytes, Item),
}

struct Walker<'a> {
    tree: &'a Tree,
    /// Top of the stack is next in key order.
    stack: Vec<Pending>,
}

impl<'a> Walker<'a> {
    fn new(tree: &'a Tree) -> KvResult<Walker<'a>> {
        let mut stack = Vec::new();
        if let Some(root) = tree.root() {
            let level = tree.node(&root)?.level;
            stack.push(Pending::Node(root, level));
        }
        Ok(Walker { tree, stack })
    }

    /// Replaces the node on top with its children (or entries).
    fn open(&mut self) -> KvResult<()> {
        let Some(Pending::Node(cid, _)) = self.stack.pop() else {
            return Ok(());
        };
        let node = self.tree.node(&cid)?;
        for (k, item) in node.keys.iter().zip(&node.items).rev() {
            self.stack.push(match item {
                Item::Child(c) => Pending::Node(*c, node.level - 1),
                other => Pending::Entry(k.clone(), other.clone()),
            });
        }
        Ok(())
    }

    /// Opens nodes until an entry is on top; returns it (and pops it).
    fn next_entry(&mut self) -> KvResult<Option<(Bytes, Item)>> {
        loop {
            match self.stack.last() {
                None => return Ok(None),
                Some(Pending::Node(..)) => self.open()?,
                Some(Pending::Entry(..)) => {
                    let Some(Pending::Entry(k, i)) = self.stack.pop() else {
                        return Ok(None);
                    };
                    return Ok(Some((k, i)));
                }
            }
        }
    }
}

/// Every change from `old` to `new`, in key order.
pub fn diff(old: &Tree, new: &Tree) -> KvResult<Vec<Change>> {
    let mut out = Vec::new();
    diff_each(old, new, &mut |c| {
        out.push(c);
        Ok(true)
    })?;
    Ok(out)
}

/// Calls `f` with each change from `old` to `new` until it returns false.
pub fn diff_each(
    old: &Tree,
    new: &Tree,
    f: &mut dyn FnMut(Change) -> KvResult<bool>,
) -> KvResult<()> {
    let mut a = Walker::new(old)?;
    let mut b = Walker::new(new)?;
    loop {
        // Skip equal subtrees; open the taller side until entries meet.
        match (a.stack.last(), b.stack.last()) {
            (Some(Pending::Node(x, _)), Some(Pending::Node(y, _))) if x == y => {
                a.stack.pop();
                b.stack.pop();
                continue;
            }
            (Some(Pending::Node(_, la)), Some(Pending::Node(_, lb))) => {
                if la >= lb {
                    a.open()?;
                } else {
                    b.open()?;
                }
                continue;
            }
            (Some(Pending::Node(..)), Some(Pending::Entry(..))) => {
                a.open()?;
                continue;
            }
            (Some(Pending::Entry(..)), Some(Pending::Node(..))) => {
                b.open()?;
                continue;
            }
            _ => {}
        }
        let change = match (a.stack.last(), b.stack.last()) {
            (None, None) => return Ok(()),
            (Some(_), None) => {
                let Some((k, i)) = a.next_entry()? else {
                    return Ok(());
                };
                Change::Removed(k, i)
            }
            (None, Some(_)) => {
                let Some((k, i)) = b.next_entry()? else {
                    return Ok(());
                };
                Change::Added(k, i)
            }
            (Some(Pending::Entry(ka, _)), Some(Pending::Entry(kb, _))) => {
                if ka < kb {
                    let Some((k, i)) = a.next_entry()? else {
                        return Ok(());
                    };
                    Change::Removed(k, i)
                } else if kb < ka {
                    let Some((k, i)) = b.next_entry()? else {
                        return Ok(());
                    };
                    Change::Added(k, i)
                } else {
                    let (Some((k, ia)), Some((_, ib))) = (a.next_entry()?, b.next_entry()?) else {
                        return Ok(());
                    };
                    if ia == ib {
                        continue;
                    }
                    Change::Changed(k, ia, ib)
                }
            }
            _ => continue,
        };
        if !f(change)? {
            return Ok(());
        }
    }
}

/// A conflict of a three-way merge: both sides changed `key` differently
/// from the base. The resolver returns the value to keep (`None`: deleted).
pub struct Conflict<'a> {
    /// The key.
    pub key: &'a Bytes,
    /// Its value in the common base.
    pub base: Option<Bytes>,
    /// Its value on our side.
    pub ours: Option<Bytes>,
    /// Its value on their side.
    pub theirs: Option<Bytes>,
}

/// Merges `theirs` into `ours` (both descended from `base`): every change
/// from base to theirs is applied to ours, unless ours changed the same
/// key differently, in which case `resolve` decides. Returns the merged tree.
pub fn merge(
    base: &Tree,
    ours: &Tree,
    theirs: &Tree,
    session: &WriteSession,
    resolve: &mut dyn FnMut(&Conflict<'_>) -> KvResult<Option<Bytes>>,
) -> KvResult<Tree> {
    let mut edits: BTreeMap<Bytes, Edit> = BTreeMap::new();
    diff_each(base, theirs, &mut |change| {
        let key = change.key().clone();
        let base_value = match &change {
            Change::Added(..) => None,
            Change::Removed(_, i) | Change::Changed(_, i, _) => Some(base.value(i)?),
        };
        let their_value = match &change {
            Change::Removed(..) => None,
            Change::Added(_, i) | Change::Changed(_, _, i) => Some(theirs.value(i)?),
        };
        let our_value = ours.get(&key)?;
        if our_value == base_value {
            edits.insert(key, their_value);
        } else if our_value != their_value {
            let chosen = resolve(&Conflict {
                key: &key,
                base: base_value,
                ours: our_value,
                theirs: their_value,
            })?;
            edits.insert(key, chosen);
        }
        Ok(true)
    })?;
    if edits.is_empty() {
        return Ok(ours.clone());
    }
    ours.apply(session, edits)
}
