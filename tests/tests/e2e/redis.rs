//! Stores on a Redis Cluster from the command line: two stores (as on two
//! machines) sharing one deployment.

use std::process::Command;

use hydra_tests::redis::Redis;
use hydra_tests::{TestStore, Unmount, eventually, last_line, sh};

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

#[test]
fn two_mounts_on_a_shared_redis_cluster_follow_and_merge_each_other() {
    let redis = Redis::cluster(3, 1);
    // Two daemons (as on two machines), and a third store for the CLI
    // while both hold theirs.
    let (a, b, c) = (TestStore::new(), TestStore::new(), TestStore::new());
    for (s, node) in [(&a, 0), (&b, 1), (&c, 2)] {
        let url = format!("redis://{}", redis.nodes[node]);
        s.ok(&["init", "--volume", &url, "--prefix", "m"]);
    }
    let (pa, pb) = (a.scratch("mnt"), b.scratch("mnt"));
    std::fs::create_dir_all(&pa).expect("mkdir");
    std::fs::create_dir_all(&pb).expect("mkdir");
    // Background commits only when told (fsync, unmount): the test decides
    // what is committed when.
    let slow = ["--commit-interval", "600", "--refresh-interval", "0.2"];
    let mount = |s: &TestStore, p: &std::path::Path| {
        let mut args = vec!["mount", "shared", p.to_str().expect("utf-8")];
        args.extend_from_slice(&slow);
        s.ok(&args);
    };
    mount(&a, &pa);
    let _ua = Unmount(&a, pa.clone());
    mount(&b, &pb);
    let _ub = Unmount(&b, pb.clone());
    let read = |p: std::path::PathBuf| std::fs::read(p).unwrap_or_default();

    // A commit by one daemon is seen by the other (and by `hydra ref get`).
    sh("mkdir x && echo one > one.txt && sync one.txt", &pa);
    eventually("b sees a's file", || read(pb.join("one.txt")) == b"one\n");
    assert!(pb.join("x").is_dir());
    let root = last_line(&c.ok(&["ref", "get", "fs/shared"])).to_string();
    eventually("b's daemon reports the root", || {
        b.ok(&["status"]).contains(&root)
    });

    // Both write at once, each fsyncing every file: every commit that lost
    // the race is merged, nothing is lost, each mount ends with all files.
    let writer = |dir: &std::path::Path, tag: &str| {
        Command::new("bash")
            .arg("-c")
            .arg(format!(
                "for i in $(seq 1 20); do echo {tag}$i > x/{tag}-$i && sync x/{tag}-$i || exit 1; done"
            ))
            .current_dir(dir)
            .spawn()
            .expect("spawn")
    };
    let (mut wa, mut wb) = (writer(&pa, "a"), writer(&pb, "b"));
    assert!(wa.wait().expect("wait").success());
    assert!(wb.wait().expect("wait").success());
    for p in [&pa, &pb] {
        eventually("both writers' files in both mounts", || {
            (1..=20).all(|i| {
                read(p.join(format!("x/a-{i}"))) == format!("a{i}\n").as_bytes()
                    && read(p.join(format!("x/b-{i}"))) == format!("b{i}\n").as_bytes()
            })
        });
    }

    // The same file changed by both before either commits: the later commit
    // keeps its own version at the name and the other's beside it; the
    // first mount then shows the merge, its cached pages dropped.
    sh("echo base > same.txt && sync same.txt", &pa);
    eventually("b sees same.txt", || read(pb.join("same.txt")) == b"base\n");
    std::fs::write(pa.join("same.txt"), b"from a\n").expect("write a");
    std::fs::write(pb.join("same.txt"), b"from b\n").expect("write b");
    sh("sync same.txt", &pa);
    sh("sync same.txt", &pb);
    assert_eq!(read(pb.join("same.txt")), b"from b\n");
    assert_eq!(read(pb.join("same.txt.conflict-1")), b"from a\n");
    eventually("a follows the merge", || {
        read(pa.join("same.txt")) == b"from b\n"
            && read(pa.join("same.txt.conflict-1")) == b"from a\n"
    });
    let log = c.ok(&["ref", "log", "fs/shared"]);
    drop(_ub);
    drop(_ua);
    // Committed state, read without a mount.
    let cat = |path: &str| a.ok(&["fs", "cat", "shared", path]);
    assert_eq!(cat("/same.txt"), "from b\n");
    assert_eq!(cat("/x/a-20"), "a20\n");
    assert_eq!(cat("/x/b-20"), "b20\n");
    assert!(log.lines().count() >= 43, "{log}");
}
