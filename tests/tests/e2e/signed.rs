//! Signed history: every changelog entry is signed by the store that made
//! it, checked by `hydra ref log --verify`, and kept through `hydra sync`.

use std::process::Command;

use hydra_tests::{TestStore, last_line};

fn sqlite(db: &std::path::Path, sql: &str) {
    let out = Command::new("sqlite3")
        .arg(db)
        .arg(sql)
        .output()
        .expect("sqlite3 is installed by the test command");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn entries_are_signed_verified_and_keep_their_signatures_through_sync() {
    let (a, b) = (TestStore::new(), TestStore::new());
    let made = a.ok(&["init"]);
    b.ok(&["init"]);
    let id_a = last_line(&a.ok(&["id"])).to_string();
    assert!(made.contains(&format!("identity {id_a}")), "{made}");
    let id_b = last_line(&b.ok(&["id"])).to_string();
    assert!(
        id_a.starts_with("ed25519:") && id_a.len() == 8 + 64,
        "{id_a}"
    );
    assert_ne!(id_a, id_b);
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(a.path().join("identity.key"))
            .expect("identity file")
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);

    for (k, v) in [("x", "1"), ("y", "2"), ("z", "3")] {
        a.ok(&["kv", "k", "put", k, v]);
    }
    let verified = a.ok(&["ref", "log", "kv/k", "--verify"]);
    assert_eq!(
        verified
            .matches(&format!("valid  signed by {id_a} (this store)"))
            .count(),
        3,
        "{verified}"
    );
    assert!(
        verified.contains("3 entries: 3 valid, 0 unsigned, 0 invalid"),
        "{verified}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&a.ok(&["--json", "ref", "log", "kv/k", "--verify"])).expect("json");
    assert_eq!(json[0]["verified"], "valid");
    assert_eq!(json[0]["entry"]["signer"], id_a.as_str());

    // Synced entries keep their times, authors and signatures.
    let synced = a.ok(&[
        "sync",
        a.path().to_str().expect("utf-8"),
        b.path().to_str().expect("utf-8"),
    ]);
    assert!(
        synced.contains("3 changelog entries with their signatures"),
        "{synced}"
    );
    let log_a: serde_json::Value =
        serde_json::from_str(&a.ok(&["--json", "ref", "log", "kv/k"])).expect("json");
    let log_b: serde_json::Value =
        serde_json::from_str(&b.ok(&["--json", "ref", "log", "kv/k"])).expect("json");
    for field in [
        "time_ns",
        "author",
        "message",
        "old",
        "new",
        "signer",
        "signature",
    ] {
        for i in 0..3 {
            assert_eq!(log_a[i][field], log_b[i][field], "{field} of entry {i}");
        }
    }
    let in_b = b.ok(&["ref", "log", "kv/k", "--verify"]);
    assert_eq!(
        in_b.matches(&format!("valid  signed by {id_a}\n")).count(),
        3,
        "{in_b}"
    );
    // New entries in b are b's.
    b.ok(&["kv", "k", "put", "w", "4"]);
    let in_b = b.ok(&["ref", "log", "kv/k", "-n", "1", "--verify"]);
    assert!(
        in_b.contains(&format!("signed by {id_b} (this store)")),
        "{in_b}"
    );

    // An entry edited behind hydra's back no longer verifies: exit 3, one
    // line naming it; the plain log still reads.
    sqlite(
        &b.path().join("index.sqlite"),
        "UPDATE changelog SET message = 'forged' WHERE id = 2",
    );
    let out = b.run(&["ref", "log", "kv/k", "--verify"]);
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains("entry 2") && err.contains(&id_a), "{err}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("INVALID"));
    assert!(b.ok(&["ref", "log", "kv/k"]).contains("forged"));
}

#[test]
fn a_changelog_from_before_signing_reads_as_unsigned_and_gains_signatures() {
    let s = TestStore::new();
    s.ok(&["init"]);
    s.ok(&["kv", "k", "put", "x", "1"]);
    // What a store written by an earlier hydra looks like.
    sqlite(
        &s.path().join("index.sqlite"),
        "ALTER TABLE changelog DROP COLUMN signature",
    );
    let old = s.ok(&["ref", "log", "--verify"]);
    assert!(
        old.contains("1 entries: 0 valid, 1 unsigned, 0 invalid"),
        "{old}"
    );
    s.ok(&["kv", "k", "put", "y", "2"]);
    let now = s.ok(&["ref", "log", "--verify"]);
    assert!(
        now.contains("2 entries: 1 valid, 1 unsigned, 0 invalid"),
        "{now}"
    );
}
