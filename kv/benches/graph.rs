//! The graph view (`cargo bench -p hydra-kv --bench graph`): load 1M
//! quads from N-Quads text (parsed line by line, committed in batches of
//! 100k) into a store on the disk, then the latency of each pattern shape
//! (which of s, p, o, g are bound), median of 200 queries each.

use std::time::{Duration, Instant};

use hydra_dag::{Store, StoreOptions};
use hydra_kv::graph::{self, Graph, Pattern, Quad};

const QUADS: usize = 1_000_000;
const BATCH: usize = 100_000;
const QUERIES: usize = 200;

fn main() {
    let mut lines = String::with_capacity(QUADS * 80);
    let mut x: u64 = 3;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for i in 0..QUADS {
        let s = i / 10;
        let p = next() % 20;
        let o = next() % 200_000;
        let g = next() % 4;
        let obj = if o % 3 == 0 {
            format!("\"value {o}\"@en")
        } else {
            format!("<urn:n:{o}>")
        };
        lines.push_str(&format!("<urn:n:{s}> <urn:p:{p}> {obj} <urn:g:{g}> .\n"));
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, _) = Store::init(&dir.path().join("s"), &StoreOptions::default()).expect("store");
    let g = Graph::open(store.bucket().clone(), "bench").expect("open");
    let start = Instant::now();
    let mut parsed: Vec<Quad> = Vec::with_capacity(QUADS);
    for line in lines.lines() {
        parsed.extend(graph::parse_line(line).expect("parses"));
    }
    let parse = start.elapsed();
    for chunk in parsed.chunks(BATCH) {
        let changes: Vec<(Quad, bool)> = chunk.iter().map(|q| (q.clone(), true)).collect();
        g.change(&changes, "load").expect("commit");
    }
    let load = start.elapsed();
    println!("\n== graph (1M quads) ==");
    println!(
        "load from N-Quads: {:.1} s ({:.0} quads/s; parsing {:.1} s of it)",
        load.as_secs_f64(),
        QUADS as f64 / load.as_secs_f64(),
        parse.as_secs_f64()
    );
    let tree = g.tree().expect("tree");
    for mask in 0u8..16 {
        let mut times: Vec<Duration> = Vec::with_capacity(QUERIES);
        let mut found = 0;
        for i in 0..QUERIES {
            let q = &parsed[(i * 4999) % QUADS];
            let terms = [&q.s, &q.p, &q.o, &q.g];
            let pattern: Pattern =
                std::array::from_fn(|k| (mask >> k & 1 == 1).then(|| terms[k].clone()));
            let t = Instant::now();
            found += graph::matches(&tree, &pattern, 100).expect("match").len();
            times.push(t.elapsed());
        }
        times.sort();
        let shape: String = ["s", "p", "o", "g"]
            .iter()
            .enumerate()
            .map(|(k, c)| {
                if mask >> k & 1 == 1 {
                    c.to_string()
                } else {
                    "?".into()
                }
            })
            .collect::<Vec<_>>()
            .join(" ");
        println!(
            "pattern {shape}: median {:>8.1} µs (first 100 matches; {:.1} found on average)",
            times[QUERIES / 2].as_secs_f64() * 1e6,
            found as f64 / QUERIES as f64
        );
    }
}
