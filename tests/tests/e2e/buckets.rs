//! Buckets over several volumes, fsck, repair and sync from the command line.

use hydra_tests::redis::Redis;
use hydra_tests::{TestStore, last_line};

/// Flips one byte in the middle of every pack of a local volume.
fn damage(dir: &std::path::Path) {
    for e in std::fs::read_dir(dir.join("packs")).expect("packs") {
        let path = e.expect("entry").path();
        let mut bytes = std::fs::read(&path).expect("read");
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0x55;
        std::fs::write(&path, bytes).expect("write");
    }
}

#[test]
fn a_replicated_bucket_fails_over_and_repairs_then_syncs() {
    let redis = Redis::single();
    let s = TestStore::new();
    s.ok(&["init"]);
    let redis_url = redis.url();
    s.ok(&[
        "bucket",
        "create",
        "rep",
        "--volume",
        "local:disk",
        "--volume",
        &redis_url,
        "--replicas",
        "2",
    ]);
    let list = s.ok(&["bucket", "list"]);
    assert!(list.contains("rep\t2 of 2\tlocal,redis"), "{list}");
    s.fails(&["bucket", "create", "rep", "--volume", "local:x"]);
    s.fails(&[
        "bucket",
        "create",
        "bad",
        "--volume",
        "local:x",
        "--replicas",
        "3",
    ]);
    s.fails(&["bucket", "create", "bad", "--volume", "ftp://x"]);

    let data = s.scratch("data");
    let bytes: Vec<u8> = (0..3_000_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    std::fs::write(&data, &bytes).expect("write");
    let cid = last_line(&s.ok(&[
        "--bucket",
        "rep",
        "blob",
        "put",
        data.to_str().expect("utf-8"),
        "--ref",
        "blob/d",
    ]))
    .to_string();
    let show: serde_json::Value =
        serde_json::from_str(&s.ok(&["--bucket", "rep", "bucket", "show"])).expect("json");
    let stats = show["stats"].as_array().expect("per volume");
    assert_eq!(
        stats[0]["blocks"], stats[1]["blocks"],
        "every block on both: {show}"
    );
    assert!(s.ok(&["--bucket", "rep", "fsck"]).contains("0 bad copies"));

    // The local copy damaged: reads fail over to Redis, fsck names the
    // bad copies (exit 3), repair rewrites them from Redis.
    damage(&s.path().join("disk"));
    let read = s
        .cmd()
        .args(["--bucket", "rep", "blob", "cat", &cid])
        .output()
        .expect("run");
    assert!(read.status.success());
    assert_eq!(read.stdout, bytes, "served from the replica");
    let out = s.run(&["--bucket", "rep", "fsck"]);
    assert_eq!(out.status.code(), Some(3));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("corrupt") && text.contains("on volume 0"),
        "{text}"
    );
    let repaired = s.ok(&["--bucket", "rep", "repair"]);
    assert!(repaired.contains("repaired"), "{repaired}");
    assert!(s.ok(&["--bucket", "rep", "fsck"]).contains("0 bad copies"));

    // Sync to another store copies what it lacks, then nothing.
    let other = TestStore::new();
    let dst = other.path();
    let first = s.ok(&[
        "--bucket",
        "rep",
        "sync",
        s.path().to_str().expect("utf-8"),
        dst.to_str().expect("utf-8"),
    ]);
    assert!(
        first.contains("synced 1 refs") && !first.contains(" 0 copied"),
        "{first}"
    );
    let again = s.ok(&[
        "--bucket",
        "rep",
        "sync",
        s.path().to_str().expect("utf-8"),
        dst.to_str().expect("utf-8"),
        "blob/d",
    ]);
    assert!(again.contains(" 0 copied"), "{again}");
    let got = other
        .cmd()
        .args(["blob", "cat", &cid])
        .output()
        .expect("run");
    assert_eq!(got.stdout, bytes);
    assert!(other.ok(&["fsck"]).contains("0 bad copies"));
    other.fails(&["fsck", "no/such/ref"]);

    // Without the replica, a damaged copy cannot be repaired: fsck says so.
    let lone = TestStore::new();
    let file = lone.scratch("f");
    std::fs::write(&file, &bytes).expect("write");
    lone.ok(&[
        "blob",
        "put",
        file.to_str().expect("utf-8"),
        "--ref",
        "blob/f",
    ]);
    damage(&lone.path());
    let out = lone.run(&["repair"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stdout).contains("no good copy anywhere"));
}
