//! Stores on a Redis Cluster from the command line: two stores (as on two
//! machines) sharing one deployment.

use std::process::Command;

use hydra_tests::redis::Redis;
use hydra_tests::{TestStore, last_line, sh};

#[test]
fn two_stores_share_a_redis_cluster_and_lose_no_update() {
    let redis = Redis::cluster(3, 1);
    let (a, b) = (TestStore::new(), TestStore::new());
    // Each store points at different nodes of the same cluster.
    let url_a = format!("redis://{}", redis.nodes[0]);
    let url_b = format!("redis://{},{}", redis.nodes[4], redis.nodes[2]);
    a.ok(&["init", "--volume", &url_a, "--prefix", "shared"]);
    b.ok(&["init", "--volume", &url_b, "--prefix", "shared"]);

    // A commit by one is seen by the other.
    a.ok(&["kv", "k", "put", "hello", "from a"]);
    assert_eq!(b.ok(&["kv", "k", "get", "hello"]), "from a\n");
    assert_eq!(
        last_line(&a.ok(&["ref", "get", "kv/k"])),
        last_line(&b.ok(&["ref", "get", "kv/k"]))
    );

    // Files too: an archive imported through one, read through the other.
    let work = a.scratch("work");
    std::fs::create_dir_all(&work).expect("mkdir");
    sh(
        "mkdir src && seq 1 20000 > src/numbers && head -c 300000 /dev/urandom > src/blob && tar -cf t.tar -C src .",
        &work,
    );
    a.ok(&[
        "import",
        "tar",
        work.join("t.tar").to_str().expect("utf-8"),
        "--fs",
        "docs",
    ]);
    let blob = Command::new(hydra_tests::hydra_bin())
        .arg("--store")
        .arg(b.path())
        .args(["fs", "cat", "docs", "/blob"])
        .output()
        .expect("run");
    assert_eq!(
        blob.stdout,
        std::fs::read(work.join("src/blob")).expect("read")
    );

    // Writers in both stores at once: commits to different keys are
    // replayed on each other, none is lost.
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let store = if w % 2 == 0 { a.path() } else { b.path() };
            Command::new("bash")
                .arg("-c")
                .arg(format!(
                    "for i in $(seq 1 15); do {} --store {} kv k put w{w}-$i v$i || exit 1; done",
                    hydra_tests::hydra_bin().display(),
                    store.display()
                ))
                .spawn()
                .expect("spawn")
        })
        .collect();
    for mut w in writers {
        assert!(w.wait().expect("wait").success(), "a writer failed");
    }
    let keys = b.ok(&["kv", "k", "scan", "--prefix", "w"]);
    assert_eq!(keys.lines().count(), 60, "{keys}");
    // 1 + 60 commits, plus the fs import.
    assert_eq!(a.ok(&["kv", "k", "log"]).lines().count(), 61);

    // A store whose Redis cannot be reached is not created.
    let c = TestStore::new();
    let err = c.fails(&["init", "--volume", "redis://127.0.0.1:1"]);
    assert!(err.contains("redis"), "{err}");
    assert!(!c.path().exists());
    c.fails(&["init", "--volume", "redis://nohostport"]);
    c.fails(&["init", "--volume", "s3://bucket"]);
}
