//! End-to-end tests of the `hydra` binary against real stores on disk.

#[path = "e2e/buckets.rs"]
mod buckets;
#[path = "e2e/fuse.rs"]
mod fuse;
#[path = "e2e/gateway.rs"]
mod gateway;
#[path = "e2e/git.rs"]
mod git;
#[path = "e2e/guest.rs"]
mod guest;
#[path = "e2e/kernel9p.rs"]
mod kernel9p;
#[path = "e2e/kv.rs"]
mod kv;
#[path = "e2e/ninep.rs"]
mod ninep;
#[path = "e2e/overlay.rs"]
mod overlay;
#[path = "e2e/postgres.rs"]
mod postgres;
#[path = "e2e/powercut.rs"]
mod powercut;
#[path = "e2e/privileges.rs"]
mod privileges;
#[path = "e2e/redis.rs"]
mod redis;
#[path = "e2e/signed.rs"]
mod signed;
#[path = "e2e/sql.rs"]
mod sql;
#[path = "e2e/tar.rs"]
mod tar;
#[path = "e2e/transforms.rs"]
mod transforms;

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::process::Stdio;

use hydra_tests::{TestStore, hydra_bin, last_line, tree_digest};

fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    // xorshift: deterministic, incompressible enough for tests.
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[test]
fn block_round_trip_refs_and_log() {
    let s = TestStore::new();
    s.ok(&["init"]);
    let file = s.scratch("data");
    let data = random_bytes(300_000, 1);
    std::fs::write(&file, &data).expect("write");
    let out = s.ok(&["block", "put", file.to_str().expect("utf-8")]);
    let cid = last_line(&out).to_string();
    assert!(cid.starts_with("bafkr4"), "raw BLAKE3 CIDv1: {cid}");

    let got = s.cmd().args(["block", "get", &cid]).output().expect("run");
    assert!(got.status.success());
    assert_eq!(got.stdout, data);

    // stdin input, tiny block (inline in the index).
    let mut child = s
        .cmd()
        .args(["block", "put", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"hi")
        .expect("write");
    let out = child.wait_with_output().expect("wait");
    let small = last_line(&String::from_utf8(out.stdout).expect("utf-8")).to_string();
    assert_eq!(
        s.cmd()
            .args(["block", "get", &small])
            .output()
            .expect("run")
            .stdout,
        b"hi"
    );

    s.ok(&["ref", "set", "fs/a", &cid, "-m", "first"]);
    s.ok(&["ref", "set", "fs/a", &small, "-m", "second"]);
    assert_eq!(last_line(&s.ok(&["ref", "get", "fs/a"])), small);
    let log: serde_json::Value =
        serde_json::from_str(&s.ok(&["--json", "ref", "log", "fs/a"])).expect("json");
    let log = log.as_array().expect("array");
    assert_eq!(log.len(), 2);
    assert_eq!(log[0]["message"], "second");
    assert_eq!(log[0]["old"], cid.as_str());
    assert_eq!(log[1]["old"], serde_json::Value::Null);
    // A compare-and-swap with a stale expectation fails and changes nothing.
    let err = s.fails(&["ref", "set", "fs/a", &cid, "--expect", &cid]);
    assert!(err.contains("changed concurrently"), "{err}");
    assert_eq!(last_line(&s.ok(&["ref", "get", "fs/a"])), small);
    let list = s.ok(&["ref", "list"]);
    assert!(list.contains("fs/a"), "{list}");
    // Setting a ref to a block the store lacks is refused.
    let absent = "bafkr4ihkr4ld3m4gqkjf4reryxsy2s5tkbxprqkow6fin2iiyvreuzzabe";
    s.fails(&["ref", "set", "fs/b", absent]);
}

#[test]
fn gc_sweeps_only_unreachable_blocks() {
    let s = TestStore::new();
    let keep = s.scratch("keep");
    let drop = s.scratch("drop");
    std::fs::write(&keep, random_bytes(100_000, 2)).expect("write");
    std::fs::write(&drop, random_bytes(100_000, 3)).expect("write");
    let keep_cid = last_line(&s.ok(&["block", "put", keep.to_str().expect("utf-8")])).to_string();
    let drop_cid = last_line(&s.ok(&["block", "put", drop.to_str().expect("utf-8")])).to_string();
    s.ok(&["ref", "set", "fs/k", &keep_cid]);
    // Inside the default grace period nothing unreachable goes.
    s.ok(&["gc"]);
    s.ok(&["block", "stat", &drop_cid]);
    let report: serde_json::Value =
        serde_json::from_str(&s.ok(&["--json", "gc", "--grace", "0"])).expect("json");
    assert_eq!(report["swept_blocks"], 1);
    s.ok(&["block", "stat", &keep_cid]);
    let err = s.fails(&["block", "get", &drop_cid]);
    assert!(err.contains("not found"), "{err}");
    s.fails(&["gc", "--grace", "soon"]);
}

#[test]
fn corrupt_block_is_an_integrity_error() {
    let s = TestStore::new();
    let file = s.scratch("data");
    let data = random_bytes(50_000, 4);
    std::fs::write(&file, &data).expect("write");
    let cid = last_line(&s.ok(&["block", "put", file.to_str().expect("utf-8")])).to_string();
    // Flip one byte of the stored data in the pack.
    let pack = s.path().join("packs/00000001.pack");
    let bytes = std::fs::read(&pack).expect("read pack");
    let at = bytes
        .windows(64)
        .position(|w| w == &data[1000..1064])
        .expect("data in pack") as u64;
    let f = OpenOptions::new()
        .write(true)
        .open(&pack)
        .expect("open pack");
    f.write_all_at(&[!data[1000]], at).expect("flip");
    drop(f);
    let out = s.run(&["block", "get", &cid]);
    assert_eq!(out.status.code(), Some(3), "integrity errors exit with 3");
    assert!(out.stdout.is_empty(), "no wrong bytes on stdout");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("integrity") && err.contains(&cid), "{err}");
}

#[test]
fn bad_input_gives_one_line_and_changes_nothing() {
    let s = TestStore::new();
    let file = s.scratch("data");
    std::fs::write(&file, random_bytes(80_000, 5)).expect("write");
    let cid = last_line(&s.ok(&["block", "put", file.to_str().expect("utf-8")])).to_string();
    s.ok(&["ref", "set", "fs/x", &cid]);
    let car = s.scratch("x.car");
    s.ok(&["export", "car", "fs/x", car.to_str().expect("utf-8")]);
    let before = tree_digest(&s.path());
    // stored_bytes counts SQLite's WAL, which opening and closing may resize.
    let logical_stats = |s: &TestStore| {
        let mut v: serde_json::Value =
            serde_json::from_str(&s.ok(&["--json", "stats"])).expect("json");
        v["volumes"][0]
            .as_object_mut()
            .expect("volume stats")
            .remove("stored_bytes");
        v
    };
    let stats_before = logical_stats(&s);
    let log_before = s.ok(&["--json", "ref", "log"]);

    for bad in ["", "b", "Qmfoo", "bafkr4!!", "zdj7W"] {
        s.fails(&["block", "get", bad]);
    }
    s.fails(&["ref", "get", "no/such/ref"]);
    s.fails(&["ref", "set", "bad name", &cid]);

    let good = std::fs::read(&car).expect("read car");
    let mut flipped = good.clone();
    let n = flipped.len();
    flipped[n - 10] ^= 0xff;
    for (name, bytes) in [
        ("truncated.car", good[..good.len() / 2].to_vec()),
        ("garbage.car", b"definitely not a CAR file".to_vec()),
        ("empty.car", Vec::new()),
        ("flipped.car", flipped),
    ] {
        let path = s.scratch(name);
        std::fs::write(&path, bytes).expect("write");
        let err = s.fails(&[
            "import",
            "car",
            path.to_str().expect("utf-8"),
            "--ref",
            "fs/bad",
        ]);
        assert!(err.contains("CAR"), "{name}: {err}");
    }
    s.fails(&[
        "import",
        "car",
        s.scratch("absent.car").to_str().expect("utf-8"),
    ]);

    assert_eq!(tree_digest(&s.path()), before, "packs and config unchanged");
    assert_eq!(logical_stats(&s), stats_before);
    assert_eq!(s.ok(&["--json", "ref", "log"]), log_before);
}

#[test]
fn store_paths_that_are_not_stores_are_refused() {
    let s = TestStore::new();
    let file = s.scratch("plain-file");
    std::fs::write(&file, b"x").expect("write");
    let run = |args: &[&str]| {
        let out = std::process::Command::new(hydra_bin())
            .arg("--store")
            .arg(&file)
            .args(args)
            .output()
            .expect("run");
        assert!(!out.status.success(), "{args:?}");
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    assert!(run(&["stats"]).contains("is a file"));
    assert!(run(&["init"]).contains("is a file"));
    assert!(run(&["block", "put", file.to_str().expect("utf-8")]).contains("is a file"));
    assert_eq!(std::fs::read(&file).expect("read"), b"x", "file untouched");
    // A directory with other things in it is not taken over.
    let dir = s.scratch("other");
    std::fs::create_dir(&dir).expect("mkdir");
    std::fs::write(dir.join("notes.txt"), b"mine").expect("write");
    let out = std::process::Command::new(hydra_bin())
        .arg("--store")
        .arg(&dir)
        .arg("init")
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert_eq!(std::fs::read_dir(&dir).expect("ls").count(), 1);
}

#[test]
fn a_locked_store_is_refused() {
    let s = TestStore::new();
    s.ok(&["init"]);
    let lock = OpenOptions::new()
        .write(true)
        .open(s.path().join("LOCK"))
        .expect("open LOCK");
    lock.lock().expect("take the writer lock");
    let file = s.scratch("d");
    std::fs::write(&file, b"data").expect("write");
    let put = ["block", "put", file.to_str().expect("utf-8")];
    let out = s.run(&[&["--lock-wait", "0.5"], &put[..]].concat());
    assert_eq!(out.status.code(), Some(4));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("locked by another writer"), "{err}");
    // Readers are refused too while a writer holds it.
    s.fails(&["--lock-wait", "0", "stats"]);
    // A writer started while the lock is held waits for it to end.
    let waiting = s
        .cmd()
        .args(put)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn hydra");
    std::thread::sleep(std::time::Duration::from_millis(800));
    drop(lock);
    let out = waiting.wait_with_output().expect("wait");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(s.run(&["--lock-wait", "x", "stats"]).status.code(), Some(2));
}

#[test]
fn car_round_trip_between_stores() {
    let a = TestStore::new();
    let b = TestStore::new();
    let file = a.scratch("data");
    std::fs::write(&file, random_bytes(700_000, 6)).expect("write");
    let cid = last_line(&a.ok(&["block", "put", file.to_str().expect("utf-8")])).to_string();
    a.ok(&["ref", "set", "fs/x", &cid]);
    let car = a.scratch("x.car");
    a.ok(&["export", "car", &cid, car.to_str().expect("utf-8")]);
    let out = b.ok(&[
        "import",
        "car",
        car.to_str().expect("utf-8"),
        "--ref",
        "fs/y",
    ]);
    assert_eq!(last_line(&out), cid);
    assert_eq!(last_line(&b.ok(&["ref", "get", "fs/y"])), cid);
    let got = b.cmd().args(["block", "get", &cid]).output().expect("run");
    assert_eq!(got.stdout, std::fs::read(&file).expect("read"));
    let car2 = b.scratch("y.car");
    b.ok(&["export", "car", "fs/y", car2.to_str().expect("utf-8")]);
    assert_eq!(
        std::fs::read(&car).expect("read"),
        std::fs::read(&car2).expect("read")
    );
}

#[test]
fn every_command_has_help() {
    let s = TestStore::new();
    for args in [
        &["--help"][..],
        &["init", "--help"],
        &["block", "put", "--help"],
        &["block", "get", "--help"],
        &["block", "stat", "--help"],
        &["block", "rm", "--help"],
        &["ref", "get", "--help"],
        &["ref", "set", "--help"],
        &["ref", "log", "--help"],
        &["ref", "list", "--help"],
        &["gc", "--help"],
        &["export", "car", "--help"],
        &["import", "car", "--help"],
        &["stats", "--help"],
    ] {
        let out = s.ok(args);
        assert!(out.contains("Usage:"), "{args:?}");
    }
}

#[test]
fn blob_put_cat_stat() {
    let s = TestStore::new();
    let file = s.scratch("big");
    let mut data = random_bytes(3 << 20, 7);
    data.extend_from_slice(&data.clone()); // a repeat: dedups
    std::fs::write(&file, &data).expect("write");
    let out = s.ok(&[
        "blob",
        "put",
        file.to_str().expect("utf-8"),
        "--ref",
        "blob/big",
    ]);
    let cid = last_line(&out).to_string();
    assert!(cid.starts_with("bafyr4"), "a tree root is dag-cbor: {cid}");
    assert_eq!(last_line(&s.ok(&["ref", "get", "blob/big"])), cid);

    let all = s.cmd().args(["blob", "cat", &cid]).output().expect("run");
    assert!(all.status.success());
    assert_eq!(all.stdout, data);
    let part = s
        .cmd()
        .args(["blob", "cat", &cid, "--offset", "1000000", "--len", "5000"])
        .output()
        .expect("run");
    assert_eq!(part.stdout, &data[1_000_000..1_005_000]);
    let stat: serde_json::Value =
        serde_json::from_str(&s.ok(&["--json", "blob", "stat", &cid])).expect("json");
    assert_eq!(stat["logical_bytes"], data.len() as u64);
    let unique = stat["unique_bytes"].as_u64().expect("unique");
    assert!(unique < (3 << 20) + (512 << 10), "repeat dedups: {stat}");
    s.fails(&["blob", "cat", &cid, "--offset", "999999999"]);

    // Tiny input: one raw chunk.
    let tiny = s.scratch("tiny");
    std::fs::write(&tiny, b"hello").expect("write");
    let tiny_cid = last_line(&s.ok(&["blob", "put", tiny.to_str().expect("utf-8")])).to_string();
    assert!(tiny_cid.starts_with("bafkr4"));
    assert_eq!(
        s.cmd()
            .args(["blob", "cat", &tiny_cid])
            .output()
            .expect("run")
            .stdout,
        b"hello"
    );
    // Empty input round-trips too.
    let empty = s.scratch("empty");
    std::fs::write(&empty, b"").expect("write");
    let empty_cid = last_line(&s.ok(&["blob", "put", empty.to_str().expect("utf-8")])).to_string();
    assert!(
        s.cmd()
            .args(["blob", "cat", &empty_cid])
            .output()
            .expect("run")
            .stdout
            .is_empty()
    );
}

#[test]
fn blob_with_a_damaged_chunk_fails_only_there() {
    let s = TestStore::new();
    let file = s.scratch("f");
    let data = random_bytes(2 << 20, 8);
    std::fs::write(&file, &data).expect("write");
    let cid = last_line(&s.ok(&["blob", "put", file.to_str().expect("utf-8")])).to_string();
    // Flip a byte near the end of the data, inside the last chunks.
    let pack = s.path().join("packs/00000001.pack");
    let bytes = std::fs::read(&pack).expect("read pack");
    let probe = &data[data.len() - 2000..data.len() - 1936];
    let at = bytes
        .windows(64)
        .position(|w| w == probe)
        .expect("data in pack") as u64;
    let f = OpenOptions::new().write(true).open(&pack).expect("open");
    f.write_all_at(&[!probe[0]], at).expect("flip");
    drop(f);
    let head = s
        .cmd()
        .args(["blob", "cat", &cid, "--len", "10000"])
        .output()
        .expect("run");
    assert!(head.status.success(), "the intact start reads");
    assert_eq!(head.stdout, &data[..10_000]);
    let out = s.run(&[
        "blob",
        "cat",
        &cid,
        "--offset",
        &(data.len() - 3000).to_string(),
    ]);
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("integrity") && err.contains("bafkr4"), "{err}");
}
