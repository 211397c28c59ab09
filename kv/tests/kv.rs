//! The prolly tree against a `BTreeMap` model, its canonical form, and
//! named stores with transactions.

use std::collections::BTreeMap;
use std::ops::Bound;

use bytes::Bytes;
use hydra_dag::Bucket;
use hydra_kv::{Edit, Item, Kv, KvError, MAX_KEY, Tree};
use proptest::prelude::*;

/// xorshift, deterministic.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn key(n: u64) -> Bytes {
    Bytes::from(format!("key-{n:08}"))
}

fn all(tree: &Tree, reverse: bool) -> Vec<(Bytes, Bytes)> {
    let mut out = Vec::new();
    tree.scan(Bound::Unbounded, Bound::Unbounded, reverse, &mut |k, i| {
        out.push((k.clone(), tree.value(i)?));
        Ok(true)
    })
    .expect("scan");
    out
}

fn range(tree: &Tree, from: Bound<&[u8]>, to: Bound<&[u8]>, reverse: bool) -> Vec<Bytes> {
    let mut out = Vec::new();
    tree.scan(from, to, reverse, &mut |k, _| {
        out.push(k.clone());
        Ok(true)
    })
    .expect("scan");
    out
}

fn fresh(bucket: &Bucket, model: &BTreeMap<Bytes, Bytes>) -> Tree {
    let edits = model
        .iter()
        .map(|(k, v)| (k.clone(), Some(v.clone())))
        .collect();
    Tree::new(bucket.clone(), None)
        .apply(&bucket.session(), edits)
        .expect("build")
}

#[test]
fn random_batches_agree_with_a_btreemap_and_stay_canonical() {
    let bucket = Bucket::in_memory();
    let session = bucket.session();
    let mut tree = Tree::new(bucket.clone(), None);
    let mut model: BTreeMap<Bytes, Bytes> = BTreeMap::new();
    let mut rng = Rng(7);
    for round in 0..40 {
        let mut edits: BTreeMap<Bytes, Edit> = BTreeMap::new();
        let n = 1 + rng.next() % 2000;
        for _ in 0..n {
            let k = key(rng.next() % 30_000);
            if rng.next().is_multiple_of(4) {
                edits.insert(k.clone(), None);
                model.remove(&k);
            } else {
                let v = Bytes::from(format!("v{}-{}", round, rng.next() % 1000));
                edits.insert(k.clone(), Some(v.clone()));
                model.insert(k, v);
            }
        }
        tree = tree.apply(&session, edits).expect("apply");
        // Every few rounds: the whole contents, both ways, and the root a
        // fresh build of the same contents gives.
        if round % 8 == 7 || round == 39 {
            let want: Vec<(Bytes, Bytes)> =
                model.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            assert_eq!(all(&tree, false), want, "round {round}");
            let mut rev = want.clone();
            rev.reverse();
            assert_eq!(all(&tree, true), rev);
            assert_eq!(
                fresh(&bucket, &model).root(),
                tree.root(),
                "canonical after round {round}"
            );
        }
        for _ in 0..200 {
            let k = key(rng.next() % 30_000);
            assert_eq!(tree.get(&k).expect("get"), model.get(&k).cloned(), "{k:?}");
        }
    }
    let root = tree.root().expect("non-empty");
    assert!(
        tree.node(&root).expect("root").level >= 2,
        "three levels exercised"
    );
    // Ranges with every kind of bound, both ways.
    for _ in 0..50 {
        let a = key(rng.next() % 30_000);
        let b = key(rng.next() % 30_000);
        let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
        let want: Vec<Bytes> = model
            .range::<Bytes, _>((Bound::Included(&lo), Bound::Excluded(&hi)))
            .map(|(k, _)| k.clone())
            .collect();
        assert_eq!(
            range(&tree, Bound::Included(&lo), Bound::Excluded(&hi), false),
            want
        );
        let mut rev = want.clone();
        rev.reverse();
        assert_eq!(
            range(&tree, Bound::Included(&lo), Bound::Excluded(&hi), true),
            rev
        );
        let want: Vec<Bytes> = model
            .range::<Bytes, _>((Bound::Excluded(&lo), Bound::Included(&hi)))
            .map(|(k, _)| k.clone())
            .collect();
        assert_eq!(
            range(&tree, Bound::Excluded(&lo), Bound::Included(&hi), false),
            want
        );
    }
    // Deleting everything leaves the empty tree.
    let edits = model.keys().map(|k| (k.clone(), None)).collect();
    let empty = tree.apply(&session, edits).expect("apply");
    assert_eq!(empty.root(), None);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    /// The same contents give the same root, whatever the batches and order.
    #[test]
    fn root_depends_only_on_contents(
        pairs in prop::collection::btree_map(0u32..5000, 0u32..100, 1..600),
        cuts in prop::collection::vec(0usize..600, 0..6),
        extra in prop::collection::btree_set(5000u32..6000, 0..50),
    ) {
        let bucket = Bucket::in_memory();
        let session = bucket.session();
        let model: BTreeMap<Bytes, Bytes> = pairs
            .iter()
            .map(|(k, v)| (Bytes::from(k.to_be_bytes().to_vec()), Bytes::from(v.to_string())))
            .collect();
        let one = fresh(&bucket, &model);
        // In batches, with keys that come and go on the way.
        let entries: Vec<(Bytes, Bytes)> = model.iter().rev().map(|(k, v)| (k.clone(), v.clone())).collect();
        let mut bounds: Vec<usize> = cuts.iter().map(|c| c % (entries.len() + 1)).collect();
        bounds.push(0);
        bounds.push(entries.len());
        bounds.sort_unstable();
        let mut tree = Tree::new(bucket.clone(), None);
        let transient: BTreeMap<Bytes, Edit> = extra
            .iter()
            .map(|k| (Bytes::from(k.to_be_bytes().to_vec()), Some(Bytes::from_static(b"t"))))
            .collect();
        tree = tree.apply(&session, transient.clone()).expect("apply");
        for w in bounds.windows(2) {
            let batch = entries[w[0]..w[1]].iter().map(|(k, v)| (k.clone(), Some(v.clone()))).collect();
            tree = tree.apply(&session, batch).expect("apply");
        }
        let gone = transient.keys().map(|k| (k.clone(), None)).collect();
        tree = tree.apply(&session, gone).expect("apply");
        prop_assert_eq!(tree.root(), one.root());
    }
}

/// Every node under `cid`, with its block's size.
fn node_sizes(tree: &Tree, cid: hydra_dag::Cid, out: &mut Vec<usize>) {
    let node = tree.node(&cid).expect("node");
    out.push(node.to_block().expect("encode").len());
    for item in &node.items {
        if let Item::Child(c) = item {
            node_sizes(tree, *c, out);
        }
    }
}

#[test]
fn nodes_of_long_keys_stay_within_a_block_and_canonical() {
    // 4,000-byte keys and 1 KiB values: 64 entries average 320 KB, so
    // cutting on key hashes alone makes nodes over a block's 1 MiB.
    let bucket = Bucket::in_memory();
    let session = bucket.session();
    let long = |n: u64| Bytes::from(format!("{n:08}").repeat(500));
    let mut tree = Tree::new(bucket.clone(), None);
    let mut model = BTreeMap::new();
    let mut rng = Rng(11);
    for _ in 0..8 {
        let mut edits: BTreeMap<Bytes, Edit> = BTreeMap::new();
        for _ in 0..500 {
            let k = long(rng.next() % 5000);
            if rng.next().is_multiple_of(5) {
                edits.insert(k.clone(), None);
                model.remove(&k);
            } else {
                let v = Bytes::from(vec![(rng.next() % 251) as u8; 1000]);
                edits.insert(k.clone(), Some(v.clone()));
                model.insert(k, v);
            }
        }
        tree = tree.apply(&session, edits).expect("apply");
        assert_eq!(tree.root(), fresh(&bucket, &model).root(), "canonical");
    }
    let mut sizes = Vec::new();
    node_sizes(&tree, tree.root().expect("root"), &mut sizes);
    let max = sizes.iter().max().copied().unwrap_or(0);
    assert!(
        max < hydra_kv::node::MAX_NODE_BYTES + 8 * 1024,
        "largest node {max} bytes"
    );
    assert_eq!(all(&tree, false).len(), model.len());
}

#[test]
fn built_trees_hold_structured_values_whose_links_the_dag_sees() {
    use hydra_dag::{Cid, Codec, Ipld};
    let target = Cid::hash(Codec::RAW, b"content");
    let entries: Vec<(Bytes, Item)> = (0..500u32)
        .map(|i| {
            let value = Ipld::Map(BTreeMap::from([
                ("n".to_string(), Ipld::Integer(i.into())),
                ("c".to_string(), Ipld::Link(target)),
            ]));
            (
                Bytes::from(format!("{i:05}")),
                Item::Cbor(value.encode().into()),
            )
        })
        .collect();
    let (root, blocks) = hydra_kv::build(entries.clone()).expect("build");
    let root = root.expect("root");
    assert_eq!(blocks.last().map(|b| *b.cid()), Some(root));
    bucket_with(&blocks, |bucket| {
        let tree = Tree::new(bucket.clone(), Some(root));
        let mut back = Vec::new();
        tree.scan(Bound::Unbounded, Bound::Unbounded, false, &mut |k, i| {
            back.push((k.clone(), i.clone()));
            Ok(true)
        })
        .expect("scan");
        assert_eq!(back, entries);
        // Every leaf's links name the content, as a generic walker sees them.
        let leaf_links: usize = blocks
            .iter()
            .map(|b| hydra_dag::cbor::links(b.data()).expect("links"))
            .map(|l| l.iter().filter(|c| **c == target).count())
            .sum();
        assert_eq!(leaf_links, 500);
    });
    // Out of order, or a byte string passed as CBOR: refused.
    let mut swapped = entries.clone();
    swapped.swap(0, 1);
    assert!(hydra_kv::build(swapped).is_err());
    let bytes = Ipld::Bytes(b"x".to_vec()).encode();
    assert!(hydra_kv::build(vec![(Bytes::from("a"), Item::Cbor(bytes.into()))]).is_err());
}

fn bucket_with(blocks: &[hydra_dag::Block], f: impl FnOnce(&Bucket)) {
    let bucket = Bucket::in_memory();
    bucket.session().put_blocks(blocks).expect("store");
    f(&bucket);
}

#[test]
fn large_values_become_blobs_and_long_keys_are_refused() {
    let bucket = Bucket::in_memory();
    let kv = Kv::open(bucket, "big").expect("open");
    let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let mut txn = kv.begin().expect("begin");
    txn.put(b"big", &big).expect("put");
    txn.put(b"small", b"s").expect("put");
    txn.commit("values").expect("commit");
    let tree = kv.tree().expect("tree");
    assert_eq!(tree.get(b"big").expect("get").as_deref(), Some(&big[..]));
    let long = vec![b'k'; MAX_KEY + 1];
    let mut txn = kv.begin().expect("begin");
    assert!(matches!(
        txn.put(&long, b"x"),
        Err(KvError::KeyTooLong { .. })
    ));
}

#[test]
fn concurrent_commits_rebase_or_conflict_but_never_lose_an_update() {
    let kv = Kv::open(Bucket::in_memory(), "c").expect("open");
    let mut t0 = kv.begin().expect("begin");
    t0.put(b"a", b"0").expect("put");
    t0.commit("base").expect("commit");
    // Different keys: the second commit is replayed on the first.
    let mut t1 = kv.begin().expect("begin");
    let mut t2 = kv.begin().expect("begin");
    t1.put(b"a", b"1").expect("put");
    t2.put(b"b", b"2").expect("put");
    assert_eq!(
        t1.get(b"a").expect("get").as_deref(),
        Some(&b"1"[..]),
        "reads its own writes"
    );
    t1.commit("one").expect("first commit wins");
    t2.commit("two").expect("rebased onto the first");
    let tree = kv.tree().expect("tree");
    assert_eq!(tree.get(b"a").expect("get").as_deref(), Some(&b"1"[..]));
    assert_eq!(tree.get(b"b").expect("get").as_deref(), Some(&b"2"[..]));
    assert_eq!(kv.log(10).expect("log").len(), 3);
    // The same key: a conflict, and the loser changes nothing.
    let mut t3 = kv.begin().expect("begin");
    let mut t4 = kv.begin().expect("begin");
    t3.put(b"a", b"3").expect("put");
    t4.put(b"a", b"4").expect("put");
    t4.put(b"c", b"4").expect("put");
    t3.commit("three").expect("first commit wins");
    let err = t4.commit("four").expect_err("overlap");
    assert!(matches!(err, KvError::Conflict { .. }), "{err}");
    let tree = kv.tree().expect("tree");
    assert_eq!(tree.get(b"a").expect("get").as_deref(), Some(&b"3"[..]));
    assert_eq!(
        tree.get(b"c").expect("get"),
        None,
        "the loser changed nothing"
    );
    assert_eq!(kv.log(10).expect("log").len(), 4);
}

fn tree_of(bucket: &Bucket, model: &BTreeMap<Bytes, Bytes>) -> Tree {
    fresh(bucket, model)
}

#[test]
fn diff_lists_exactly_the_changes_and_merge_applies_the_other_side() {
    use hydra_kv::{Change, diff, merge};
    let bucket = Bucket::in_memory();
    let base: BTreeMap<Bytes, Bytes> = (0..50_000u64)
        .map(|i| (key(i), Bytes::from(format!("v{i}"))))
        .collect();
    let mut ours = base.clone();
    let mut theirs = base.clone();
    let mut rng = Rng(11);
    for _ in 0..40 {
        let k = key(rng.next() % 60_000);
        ours.insert(k, Bytes::from_static(b"ours"));
        let k = key(rng.next() % 60_000);
        theirs.insert(k, Bytes::from_static(b"theirs"));
        ours.remove(&key(rng.next() % 50_000));
        theirs.remove(&key(rng.next() % 50_000));
    }
    // Both sides touch key 7 differently: a conflict.
    ours.insert(key(7), Bytes::from_static(b"mine"));
    theirs.insert(key(7), Bytes::from_static(b"yours"));
    let (tb, to, tt) = (
        tree_of(&bucket, &base),
        tree_of(&bucket, &ours),
        tree_of(&bucket, &theirs),
    );
    // The diff against the model's.
    let changes = diff(&tb, &tt).expect("diff");
    let mut want = Vec::new();
    for (k, v) in &theirs {
        match base.get(k) {
            None => want.push((k.clone(), None, Some(v.clone()))),
            Some(b) if b != v => want.push((k.clone(), Some(b.clone()), Some(v.clone()))),
            _ => {}
        }
    }
    for (k, b) in &base {
        if !theirs.contains_key(k) {
            want.push((k.clone(), Some(b.clone()), None));
        }
    }
    want.sort();
    let got: Vec<(Bytes, Option<Bytes>, Option<Bytes>)> = changes
        .iter()
        .map(|c| match c {
            Change::Added(k, i) => (k.clone(), None, Some(tt.value(i).expect("v"))),
            Change::Removed(k, i) => (k.clone(), Some(tb.value(i).expect("v")), None),
            Change::Changed(k, a, b) => (
                k.clone(),
                Some(tb.value(a).expect("v")),
                Some(tt.value(b).expect("v")),
            ),
        })
        .collect();
    assert_eq!(got, want);
    assert!(diff(&tt, &tt).expect("diff").is_empty());
    // Merge: theirs onto ours; the conflict resolved to ours.
    let mut conflicts = 0;
    let merged = merge(&tb, &to, &tt, &bucket.session(), &mut |c| {
        conflicts += 1;
        assert_eq!(c.key, &key(7));
        Ok(c.ours.clone())
    })
    .expect("merge");
    assert_eq!(conflicts, 1);
    let mut expect = ours.clone();
    for (k, before, after) in &want {
        if ours.get(k) == before.as_ref() {
            match after {
                Some(v) => expect.insert(k.clone(), v.clone()),
                None => expect.remove(k),
            };
        }
    }
    assert_eq!(merged.root(), tree_of(&bucket, &expect).root());
}
