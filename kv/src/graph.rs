//! The graph view: RDF quads (subject, predicate, object, graph) in one
//! prolly tree under the ref `graph/<name>`, indexed six ways so that
//! every pattern of bound and unbound positions is a prefix scan.
//!
//! Terms are kept in N-Triples syntax (`<iri>`, `_:label`, `"lit"@en`,
//! `"1"^^<dt>`); the default graph is the empty string. A key is one
//! index byte, then the four terms in that index's order, each as a
//! 4-byte big-endian length and its bytes; values are empty.

use std::collections::{HashMap, HashSet, VecDeque};
use std::ops::Bound;

use bytes::Bytes;
use hydra_dag::{Bucket, Cid, LogEntry, RefName};
use oxrdf::GraphName;
use oxrdfio::{RdfFormat, RdfParser};

use crate::diff::Change;
use crate::error::KvResult;
use crate::map::Kv;
use crate::tree::{Tree, prefix_end};

/// A quad in N-Triples syntax; `g` is empty for the default graph.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Quad {
    /// Subject.
    pub s: String,
    /// Predicate.
    pub p: String,
    /// Object.
    pub o: String,
    /// Graph name ("" for the default graph).
    pub g: String,
}

impl std::fmt::Display for Quad {
    /// One N-Quads line (without the newline).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.g.is_empty() {
            write!(f, "{} {} {} .", self.s, self.p, self.o)
        } else {
            write!(f, "{} {} {} {} .", self.s, self.p, self.o, self.g)
        }
    }
}

/// A pattern: `None` matches anything.
pub type Pattern = [Option<String>; 4];

/// The six index orders (positions 0 s, 1 p, 2 o, 3 g): every set of
/// bound positions is a prefix of one of them.
const ORDERS: [[usize; 4]; 6] = [
    [0, 1, 2, 3],
    [1, 2, 3, 0],
    [2, 3, 0, 1],
    [3, 0, 1, 2],
    [0, 2, 3, 1],
    [1, 3, 0, 2],
];

fn parts(q: &Quad) -> [&str; 4] {
    [&q.s, &q.p, &q.o, &q.g]
}

fn push_term(key: &mut Vec<u8>, term: &str) {
    key.extend_from_slice(&(term.len() as u32).to_be_bytes());
    key.extend_from_slice(term.as_bytes());
}

fn index_key(order: usize, q: &Quad) -> Bytes {
    let p = parts(q);
    let mut key = vec![order as u8];
    for pos in ORDERS[order] {
        push_term(&mut key, p[pos]);
    }
    Bytes::from(key)
}

fn decode_key(key: &[u8]) -> Option<Quad> {
    let order = *ORDERS.get(usize::from(*key.first()?))?;
    let mut terms: [String; 4] = Default::default();
    let mut pos = 1;
    for slot in order {
        let len = u32::from_be_bytes(key.get(pos..pos + 4)?.try_into().ok()?) as usize;
        pos += 4;
        terms[slot] = String::from_utf8(key.get(pos..pos + len)?.to_vec()).ok()?;
        pos += len;
    }
    let [s, p, o, g] = terms;
    (pos == key.len()).then_some(Quad { s, p, o, g })
}

/// Parses one N-Quads line into a quad.
pub fn parse_line(line: &str) -> Result<Option<Quad>, String> {
    let mut parsed = RdfParser::from_format(RdfFormat::NQuads).for_slice(line.as_bytes());
    let Some(first) = parsed.next() else {
        return Ok(None);
    };
    let q = first.map_err(|e| e.to_string())?;
    if parsed.next().is_some() {
        return Err("more than one quad on the line".into());
    }
    Ok(Some(Quad {
        s: q.subject.to_string(),
        p: q.predicate.to_string(),
        o: q.object.to_string(),
        g: match q.graph_name {
            GraphName::DefaultGraph => String::new(),
            other => other.to_string(),
        },
    }))
}

/// Checks one term written in N-Triples syntax; returns its canonical form.
pub fn parse_term(term: &str) -> Result<String, String> {
    let line = format!("<urn:hydra:s> <urn:hydra:p> {term} .");
    match parse_line(&line)? {
        Some(q) => Ok(q.o),
        None => Err(format!("{term:?} is not a term")),
    }
}

/// A named graph store.
#[derive(Debug, Clone)]
pub struct Graph {
    kv: Kv,
}

impl Graph {
    /// The graph `name` (empty until its first commit).
    pub fn open(bucket: Bucket, name: &str) -> KvResult<Graph> {
        Ok(Graph {
            kv: Kv::at_ref(bucket, RefName::new(format!("graph/{name}"))?)?,
        })
    }

    /// The tree as last committed.
    pub fn tree(&self) -> KvResult<Tree> {
        self.kv.tree()
    }

    /// The ref that names the graph.
    pub fn ref_name(&self) -> &RefName {
        self.kv.ref_name()
    }

    /// The tree at `root` (a snapshot).
    pub fn at(&self, root: Option<Cid>) -> Tree {
        self.kv.at(root)
    }

    /// The graph's commits, newest first.
    pub fn log(&self, limit: usize) -> KvResult<Vec<LogEntry>> {
        self.kv.log(limit)
    }

    /// Adds (`true`) or removes quads in one commit; fails with
    /// [`crate::KvError::Conflict`] if another writer committed meanwhile.
    pub fn change(&self, quads: &[(Quad, bool)], message: &str) -> KvResult<Tree> {
        let mut txn = self.kv.begin()?;
        for (q, add) in quads {
            for order in 0..ORDERS.len() {
                txn.edit(index_key(order, q), add.then(Bytes::new))?;
            }
        }
        txn.commit(message)
    }
}

/// Every quad of `tree` matching `pattern`, in the order of the index used.
pub fn matches(tree: &Tree, pattern: &Pattern, limit: usize) -> KvResult<Vec<Quad>> {
    let bound: Vec<usize> = (0..4).filter(|&i| pattern[i].is_some()).collect();
    let order = (0..ORDERS.len())
        .find(|&o| {
            let lead = &ORDERS[o][..bound.len()];
            bound.iter().all(|b| lead.contains(b))
        })
        .unwrap_or(0);
    let mut prefix = vec![order as u8];
    for pos in &ORDERS[order][..bound.len()] {
        if let Some(t) = &pattern[*pos] {
            push_term(&mut prefix, t);
        }
    }
    let end = prefix_end(&prefix);
    let hi = end.as_deref().map_or(Bound::Unbounded, Bound::Excluded);
    let mut out = Vec::new();
    tree.scan(Bound::Included(&prefix), hi, false, &mut |k, _| {
        if let Some(q) = decode_key(k) {
            out.push(q);
        }
        Ok(out.len() < limit)
    })?;
    Ok(out)
}

/// The quads `new` has that `old` lacks, and those it lost, in SPOG order.
pub fn diff_quads(old: &Tree, new: &Tree) -> KvResult<(Vec<Quad>, Vec<Quad>)> {
    let (mut added, mut removed) = (Vec::new(), Vec::new());
    crate::diff::diff_each(old, new, &mut |change| {
        let (key, into) = match &change {
            Change::Added(k, _) => (k, &mut added),
            Change::Removed(k, _) => (k, &mut removed),
            Change::Changed(..) => return Ok(true),
        };
        // The first index holds every quad once.
        if key.first() == Some(&0)
            && let Some(q) = decode_key(key)
        {
            into.push(q);
        }
        Ok(true)
    })?;
    Ok((added, removed))
}

/// A shortest chain of quads leading from `from` to `to` along edges in
/// either direction (subject → object), at most `max_depth` long.
pub fn path(tree: &Tree, from: &str, to: &str, max_depth: usize) -> KvResult<Option<Vec<Quad>>> {
    if from == to {
        return Ok(Some(Vec::new()));
    }
    let mut seen: HashSet<String> = HashSet::from([from.to_string()]);
    let mut via: HashMap<String, Quad> = HashMap::new();
    let mut queue = VecDeque::from([(from.to_string(), 0usize)]);
    while let Some((node, depth)) = queue.pop_front() {
        if depth == max_depth {
            continue;
        }
        let out = matches(tree, &[Some(node.clone()), None, None, None], usize::MAX)?;
        let inbound = matches(tree, &[None, None, Some(node.clone()), None], usize::MAX)?;
        let steps = out
            .into_iter()
            .map(|q| (q.o.clone(), q))
            .chain(inbound.into_iter().map(|q| (q.s.clone(), q)));
        for (next, q) in steps {
            if next.starts_with('"') || !seen.insert(next.clone()) {
                continue;
            }
            via.insert(next.clone(), q);
            if next == to {
                let mut chain = Vec::new();
                let mut at = to.to_string();
                while at != from {
                    let Some(q) = via.get(&at) else { break };
                    at = if q.o == at { q.s.clone() } else { q.o.clone() };
                    chain.push(q.clone());
                }
                chain.reverse();
                return Ok(Some(chain));
            }
            queue.push_back((next, depth + 1));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str, p: &str, o: &str, g: &str) -> Quad {
        Quad {
            s: s.into(),
            p: p.into(),
            o: o.into(),
            g: g.into(),
        }
    }

    #[test]
    fn every_pattern_finds_exactly_its_quads() {
        let graph = Graph::open(Bucket::in_memory(), "g").expect("open");
        let mut all = Vec::new();
        for s in 0..6 {
            for p in 0..3 {
                for o in 0..4 {
                    let g = if (s + o) % 2 == 0 {
                        String::new()
                    } else {
                        format!("<urn:g{p}>")
                    };
                    all.push(q(
                        &format!("<urn:s{s}>"),
                        &format!("<urn:p{p}>"),
                        &format!("\"o{o}\""),
                        &g,
                    ));
                }
            }
        }
        let changes: Vec<(Quad, bool)> = all.iter().map(|x| (x.clone(), true)).collect();
        let tree = graph.change(&changes, "load").expect("commit");
        let probe = &all[37];
        for mask in 0u8..16 {
            let pattern: Pattern =
                std::array::from_fn(|i| (mask >> i & 1 == 1).then(|| parts(probe)[i].to_string()));
            let mut got = matches(&tree, &pattern, usize::MAX).expect("match");
            got.sort();
            let mut want: Vec<Quad> = all
                .iter()
                .filter(|x| (0..4).all(|i| pattern[i].as_deref().is_none_or(|t| parts(x)[i] == t)))
                .cloned()
                .collect();
            want.sort();
            assert_eq!(got, want, "pattern mask {mask:04b}");
        }
        // Removing a quad removes it from every index; the diff says so.
        let before = tree.clone();
        let tree = graph
            .change(&[(probe.clone(), false)], "del")
            .expect("commit");
        assert_eq!(
            diff_quads(&before, &tree).expect("diff"),
            (Vec::new(), vec![probe.clone()])
        );
        assert_eq!(graph.log(10).expect("log").len(), 2);
        for o in 0..ORDERS.len() {
            assert!(tree.get(&index_key(o, probe)).expect("get").is_none());
        }
    }

    #[test]
    fn shortest_paths_follow_edges_both_ways() {
        let graph = Graph::open(Bucket::in_memory(), "p").expect("open");
        let e = |a: &str, b: &str| {
            (
                q(
                    &format!("<urn:{a}>"),
                    "<urn:knows>",
                    &format!("<urn:{b}>"),
                    "",
                ),
                true,
            )
        };
        let tree = graph
            .change(
                &[
                    e("a", "b"),
                    e("b", "c"),
                    e("c", "d"),
                    e("x", "d"),
                    e("a", "x"),
                ],
                "edges",
            )
            .expect("commit");
        let p = path(&tree, "<urn:a>", "<urn:d>", 5)
            .expect("path")
            .expect("found");
        assert_eq!(p.len(), 2, "a → x → d (x → d walked backwards): {p:?}");
        assert!(
            path(&tree, "<urn:a>", "<urn:d>", 1)
                .expect("path")
                .is_none()
        );
        assert!(
            path(&tree, "<urn:a>", "<urn:zzz>", 9)
                .expect("path")
                .is_none()
        );
    }

    #[test]
    fn lines_and_terms_parse_or_say_why() {
        let quad = parse_line("<urn:a> <urn:p> \"x\"@en <urn:g> .")
            .expect("ok")
            .expect("quad");
        assert_eq!(quad.to_string(), "<urn:a> <urn:p> \"x\"@en <urn:g> .");
        assert_eq!(parse_line("").expect("ok"), None);
        assert!(parse_line("<urn:a> <urn:p> .").is_err());
        assert_eq!(parse_term("<urn:x>").expect("iri"), "<urn:x>");
        assert!(parse_term("not a term").is_err());
    }
}
